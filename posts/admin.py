"""The posts admin, built for a table of tens of millions of rows.

The changelist reads the newest posts through posts_created_idx (the default order,
-created_at, -id, is the index's order), one author's through posts_author_created_idx (the
link from a user's page), a search through posts_search_document_gin (the API's full-text
document; see newest_matches for how a search stays fast whether a word is rare or common).
Nothing else is sortable, and there is no date hierarchy: its year and month links are a
`SELECT DISTINCT date_trunc(...)` over every row of the table on each page view; the
"created" filter offers index-served ranges instead.

Writes go through posts.services (post_create, post_update, post_delete), like the API's, so
the caches of the post, its author and the feed are invalidated.
"""

import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.views.main import SEARCH_VAR
from django.contrib.postgres.search import SearchQuery
from django.db import OperationalError, connection, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from psycopg.errors import QueryCanceled

from posts.models import SEARCH_CONFIG, Post
from posts.services import EDITABLE_FIELDS, post_create, post_delete, post_update
from project.http.admin import EstimatedCountPaginator, FastChangeListMixin, TermSearchMixin, search_id

# Deleting is one service call per post; the confirmation page lists every post.
BULK_DELETE_LIMIT = 500

# A search lists at most this many of the newest matching posts (20 pages).
SEARCH_RESULTS_LIMIT = 1000
# Time the GIN index gets to find and sort every match (see newest_matches).
SEARCH_BITMAP_TIMEOUT_MS = 200
# A safety net for the whole search page: a query still running after this is cancelled.
SEARCH_PAGE_TIMEOUT_MS = 5000
_BITMAP_ONLY = (
    "SELECT set_config('enable_indexscan', 'off', true), set_config('enable_seqscan', 'off', true), "
    "set_config('work_mem', '64MB', true), set_config('statement_timeout', %s, true)"
)


# A one-word search for a word PostgreSQL's statistics put in at least this share of posts
# walks posts_created_idx straight away: a page of 50 reads about 50 / share posts (5,000 here).
COMMON_WORD_SHARE = 0.01
# What the GIN index can use of a search (querytree: '' for stop words only, 'T' when nothing,
# as in "-word") and, for one word, its share of posts from the statistics ANALYZE keeps on
# the search_document column.
_SEARCH_SHAPE_SQL = """
SELECT q.tree, (
    SELECT f.share
    FROM pg_stats s, LATERAL unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS f(word, share)
    WHERE s.schemaname = current_schema() AND s.tablename = 'posts' AND s.attname = 'search_document'
      AND q.tree = quote_literal(f.word)
)
FROM (SELECT querytree(websearch_to_tsquery(%s::regconfig, %s)) AS tree) AS q
"""


def search_shape(term: str) -> tuple[str, float | None]:
    """The indexable part of a search and, when it is one word the statistics know, its share of posts."""
    with connection.cursor() as cursor:
        cursor.execute(_SEARCH_SHAPE_SQL, [SEARCH_CONFIG, term])
        row = cursor.fetchone()
    if row is None:
        return "", None
    return str(row[0] or ""), None if row[1] is None else float(row[1])


def _cancelled(error: OperationalError) -> bool:
    return isinstance(error.__cause__, QueryCanceled)


def newest_matches(query: SearchQuery) -> list[int] | None:
    """Ids of the newest SEARCH_RESULTS_LIMIT posts matching `query`, through the GIN index; or
    None when it matches too many posts to find and sort them all in SEARCH_BITMAP_TIMEOUT_MS.

    Newest-first matches have two plans, each slow where the other is fast (10M posts, 2 cores):
    - through the GIN index, then sort: ~5 us per matching post: 0.1 s for 20,000 matches,
      2.6 s for a word in a quarter of all posts;
    - walking posts_created_idx from the newest post, checking each: ~30 us per post read,
      so fast for a common word (0.15 s for one in 2 % of posts), but every post is read when
      few or none match: 132 s for a word absent from the seeded posts, whose small vocabulary
      makes the planner expect it in 0.5 % of them.
    A single word the statistics put in COMMON_WORD_SHARE of posts, or a search the index cannot
    serve at all ("-word"), goes straight to the walk (see PostAdmin.get_search_results).
    Anything else tries the index plan first, with a time limit (and work_mem raised so that
    its bitmap stays exact: a lossy one rechecks every post of its pages); a
    search that needs more is common enough for the walk, which the planner picks from its
    estimate.
    """
    matching = (
        Post.objects.filter(search_document=query)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)[:SEARCH_RESULTS_LIMIT]
    )
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_BITMAP_ONLY, [str(SEARCH_BITMAP_TIMEOUT_MS)])
            ids = list(matching)
            # Undo the SET LOCALs above even inside an outer transaction (a rolled-back savepoint).
            transaction.set_rollback(True)
    except OperationalError as error:
        if _cancelled(error):
            return None
        raise
    return ids


class CreatedWithinFilter(admin.SimpleListFilter):
    """Recent posts: a range scan of posts_created_idx, unlike a date hierarchy."""

    title = "created"
    parameter_name = "created_within"
    WINDOWS = {"1d": ("Last 24 hours", 1), "7d": ("Last 7 days", 7), "30d": ("Last 30 days", 30)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.WINDOWS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Post]) -> QuerySet[Post]:
        window = self.WINDOWS.get(self.value() or "")
        if window is None:
            return queryset
        return queryset.filter(created_at__gte=timezone.now() - datetime.timedelta(days=window[1]))


class PostForm(forms.ModelForm):
    class Meta:
        model = Post
        fields = ("author", "title", "body")


@admin.register(Post)
class PostAdmin(FastChangeListMixin, TermSearchMixin, admin.ModelAdmin):
    list_display = ("id", "title", "author_link", "created_at")
    list_display_links = ("id", "title")
    list_select_related = ("author",)
    list_filter = (CreatedWithinFilter,)
    ordering = ("-created_at", "-id")
    sortable_by = ()
    search_fields = ("title", "body")
    search_help_text = "Words in the title or body (full-text, like ?search= in the API), or a post id."
    actions = ("delete_selected",)

    form = PostForm
    # A user picker over a million users would render them all; a raw id has a search popup.
    raw_id_fields = ("author",)

    # --- reads ---

    def get_queryset(self, request: HttpRequest) -> QuerySet[Post]:
        return super().get_queryset(request).select_related("author")

    def search_term(self, request: HttpRequest, queryset: QuerySet[Post], term: str) -> QuerySet[Post]:
        post_id = search_id(term)
        if post_id is not None:
            return queryset.filter(pk=post_id)
        query = SearchQuery(term, search_type="websearch", config=SEARCH_CONFIG)
        tree, share = search_shape(term)
        if not tree:
            return queryset.none()  # only stop words ("the"): PostgreSQL matches nothing
        # "T": nothing the index can use (a search like "-word"), which matches most posts; the
        # index would read all of itself, and in PostgreSQL 15 without heeding the time limit.
        walk = tree == "T" or (share is not None and share >= COMMON_WORD_SHARE)
        ids = None if walk else newest_matches(query)
        if ids is not None:
            if len(ids) == SEARCH_RESULTS_LIMIT:
                self.message_user(
                    request, f"Showing the newest {SEARCH_RESULTS_LIMIT:,} matching posts.", messages.INFO
                )
            return queryset.filter(pk__in=ids)
        # Many matches: the newest are found by walking the created_at index; counting them
        # would read them all, so the paginator shows the planner's estimate.
        request.postline_estimate_only = True  # type: ignore[attr-defined]
        return queryset.filter(search_document=query)

    def get_paginator(self, request: HttpRequest, queryset: Any, per_page: int, *args: Any, **kwargs: Any) -> Any:
        estimate_only = getattr(request, "postline_estimate_only", False)
        return EstimatedCountPaginator(queryset, per_page, *args, estimate_only=estimate_only, **kwargs)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """A search page runs with a statement timeout: a plan gone wrong costs seconds, not minutes."""
        if not request.GET.get(SEARCH_VAR, "").strip():
            return super().changelist_view(request, extra_context)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(SEARCH_PAGE_TIMEOUT_MS)])
                response = super().changelist_view(request, extra_context)
                if isinstance(response, TemplateResponse):
                    response.render()  # the page's queries run while rendering: inside the timeout
                return response
        except OperationalError as error:
            if not _cancelled(error):
                raise
        self.message_user(
            request, "That search took too long and was stopped: add words or filter first.", messages.ERROR
        )
        return HttpResponseRedirect(request.path)

    @admin.display(description="author", ordering=None)
    def author_link(self, obj: Post) -> str:
        url = reverse("admin:users_user_change", args=[obj.author_id])
        return format_html('<a href="{}">{}</a>', url, obj.author.email)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("author", "title", "body")
        return ("author_link", "title", "body", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A post keeps its author, as in the API.
        return () if obj is None else ("author_link", "created_at", "updated_at")

    # --- writes, through posts.services ---

    def save_model(self, request: HttpRequest, obj: Post, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            created = post_create(author=data["author"], title=data["title"], body=data["body"])
            obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at
            obj._state.adding, obj._state.db = False, created._state.db
            return
        post_update(post=obj, data={field: data[field] for field in EDITABLE_FIELDS if field in form.changed_data})

    def delete_model(self, request: HttpRequest, obj: Post) -> None:
        post_delete(post=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Post]) -> None:
        with transaction.atomic():
            for post in queryset.order_by():
                post_delete(post=post)

    @admin.action(description="Delete selected posts", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[Post]) -> HttpResponse | None:
        """Django's action (with its confirmation page), for at most BULK_DELETE_LIMIT posts."""
        if queryset.order_by()[: BULK_DELETE_LIMIT + 1].count() > BULK_DELETE_LIMIT:
            self.message_user(
                request, f"At most {BULK_DELETE_LIMIT} posts at a time: nothing was deleted.", messages.ERROR
            )
            return None
        return django_delete_selected(self, request, queryset)

"""The posts admin, built for a table of tens of millions of rows.

The changelist reads the newest posts through posts_created_idx (the default order,
-created_at, -id, is the index's order), one author's through posts_author_created_idx (the
link from a user's page), a search through posts_search_document_gin (the API's full-text
document; posts.search explains how a search stays fast whether a word is rare or common).
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

from posts import search
from posts.models import SEARCH_CONFIG, Post
from posts.services import EDITABLE_FIELDS, post_create, post_delete, post_update
from project.db.errors import query_cancelled
from project.http.admin import EstimatedCountPaginator, FastChangeListMixin, TermSearchMixin, search_id

# Deleting is one service call per post; the confirmation page lists every post.
BULK_DELETE_LIMIT = 500

# A search lists at most this many of the newest matching posts (20 pages).
SEARCH_RESULTS_LIMIT = 1000
# A safety net for the whole search page: a query still running after this is cancelled.
SEARCH_PAGE_TIMEOUT_MS = 5000


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
        found = search.parse(term)
        if found.matches_nothing:
            return queryset.none()  # only stop words ("the"): PostgreSQL matches nothing
        # A search common enough to fill a page from the newest posts is walked straight away;
        # any other first asks the GIN index for its newest matches (posts.search).
        walk = found.first_plan(self.list_per_page) == search.SCAN
        ids = None if walk else search.newest_ids(found, limit=SEARCH_RESULTS_LIMIT)
        if ids is not None:
            if len(ids) == SEARCH_RESULTS_LIMIT:
                self.message_user(
                    request, f"Showing the newest {SEARCH_RESULTS_LIMIT:,} matching posts.", messages.INFO
                )
            return queryset.filter(pk__in=ids)
        # Many matches: the newest are found by walking the created_at index; counting them
        # would read them all, so the paginator shows the planner's estimate.
        request.postline_estimate_only = True  # type: ignore[attr-defined]
        return queryset.filter(search_document=SearchQuery(term, search_type="websearch", config=SEARCH_CONFIG))

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
            if not query_cancelled(error):
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

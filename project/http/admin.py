"""What every Postline admin page shares: the site's titles and a paginator that never counts
ten million rows.

Django's changelist counts its rows twice per page view (`COUNT(*)` of the filtered and of the
whole table). On 10M posts each count reads the whole table or its smallest index: seconds, on
every page view. Our changelists set `show_full_result_count = False` (no second count) and
use `EstimatedCountPaginator` for the first.
"""

import json
from functools import cached_property
from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.admin import helpers
from django.core.paginator import Paginator
from django.db import DatabaseError, connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

admin.site.site_header = "Postline administration"
admin.site.site_title = "Postline admin"
admin.site.index_title = "Users and posts"

# Counts stop here: a filtered changelist reads at most this many rows (plus one) to count them.
EXACT_COUNT_CAP = 10_000
# Estimates below this are replaced by an exact count (the estimate of a small or
# never-analysed table is often 0 or -1, and counting few rows costs little).
ESTIMATE_ABOVE = EXACT_COUNT_CAP

# reltuples is the row count PostgreSQL's last VACUUM / ANALYZE / CREATE INDEX saw: -1 for a
# table never analysed. Reading it is one catalog lookup, whatever the table's size.
ROW_ESTIMATE_SQL = "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(quote_ident(%s))"


def table_row_estimate(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's estimate of the rows in the queryset's table, or None when it has none."""
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(ROW_ESTIMATE_SQL, [queryset.model._meta.db_table])
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


def planner_row_estimate(queryset: QuerySet[Any]) -> int | None:
    """The planner's estimate of the rows a queryset matches (EXPLAIN, nothing executed)."""
    try:
        plan = json.loads(queryset.order_by().values("pk").explain(format="json"))
        return int(plan[0]["Plan"]["Plan Rows"])
    except (DatabaseError, ValueError, LookupError, TypeError):
        return None


def is_unfiltered(queryset: QuerySet[Any]) -> bool:
    """True when the queryset selects every row of its table (ordering and joins aside)."""
    query = queryset.query
    return not query.where and not query.distinct and query.low_mark == 0 and query.high_mark is None


class EstimatedCountPaginator(Paginator):
    """A paginator whose count never reads a whole big table.

    - Unfiltered: PostgreSQL's row estimate (`pg_class.reltuples`), one catalog read.
    - Filtered (list filters, a search, a link from a user to their posts): the planner's
      estimate (EXPLAIN) when it is above ESTIMATE_ABOVE rows. Counting even a capped number
      of rows can be slow: 10,001 matches of a common word in the full-text search took 5 s on
      10M posts (a lossy bitmap rechecks to_tsvector on every row of its pages).
    - Otherwise (a small table, few matches, no estimate): an exact count of at most
      EXACT_COUNT_CAP rows (`SELECT count(*) FROM (... LIMIT cap + 1)`), reported as the cap
      when there are more.

    Page links stop at the page holding row EXACT_COUNT_CAP: deeper pages would be an OFFSET
    over millions of rows. Staff search or filter to reach older rows.
    """

    estimated = False
    capped = False

    def __init__(self, *args: Any, estimate_only: bool = False, **kwargs: Any) -> None:
        """`estimate_only`: never count, whatever the estimate (a query known to match many rows)."""
        super().__init__(*args, **kwargs)
        self.estimate_only = estimate_only

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        estimate = table_row_estimate(queryset) if is_unfiltered(queryset) else planner_row_estimate(queryset)
        if estimate is not None and (estimate >= ESTIMATE_ABOVE or self.estimate_only):
            self.estimated = True
            return estimate
        counted = queryset.order_by()[: EXACT_COUNT_CAP + 1].count()
        if counted > EXACT_COUNT_CAP:
            self.capped = True
            return EXACT_COUNT_CAP
        return counted

    @property
    def count_label(self) -> str:
        """The count as the changelist shows it: "about 10,000,000", "10,000+" or "42"."""
        count = self.count
        if self.estimated:
            return f"about {count:,}"
        if self.capped:
            return f"{count:,}+"
        return f"{count:,}"

    @cached_property
    def num_pages(self) -> int:
        pages: int = super().num_pages
        reachable = -(-EXACT_COUNT_CAP // self.per_page)
        return min(pages, reachable)


class FastChangeListMixin:
    """Changelist settings for tables of millions of rows; mix into a ModelAdmin."""

    def action_checkbox(self, obj: Any) -> SafeString:
        """Django's row checkbox, without a template render per row (a third of a page's time)."""
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            format_html(gettext("Select this object for an action - {}"), str(obj)),
        )

    paginator: ClassVar[type] = EstimatedCountPaginator
    show_full_result_count: ClassVar[bool] = False
    # Facet counts are a GROUP BY over the whole filtered table on every page view.
    show_facets: ClassVar[admin.ShowFacets] = admin.ShowFacets.NEVER
    # Rendering a row costs more than reading it: 100 rows took ~130 ms of a page's time here.
    list_per_page: ClassVar[int] = 50


def search_id(term: str) -> int | None:
    """The search term as a primary key, when it is one: ASCII digits within bigint range."""
    if term.isascii() and term.isdigit() and int(term) < 2**63:
        return int(term)
    return None


class TermSearchMixin:
    """The search box with its term stripped, and a blank term filtering nothing; mix into a
    ModelAdmin and answer `search_term` with the model's one indexed way to search."""

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> tuple[Any, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return self.search_term(request, queryset, term), False

    def search_term(self, request: HttpRequest, queryset: QuerySet[Any], term: str) -> QuerySet[Any]:
        raise NotImplementedError

"""Reads of posts. Views and the cache layer call these; nothing else builds post querysets."""

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import FloatField, QuerySet
from django.db.models.functions import Cast

from posts.models import SEARCH_CONFIG, SEARCH_VECTOR, Post

# The one order every post collection uses: newest first, ties broken by id so that cursor
# pages never repeat or skip a row. Both composite indexes are built in this order.
POST_ORDERING = ("-created_at", "-id")
SEARCH_ORDERING = ("-rank", "-id")


def post_list(*, author_id: int | None = None, search: str | None = None) -> QuerySet[Post]:
    """Posts newest first, or by relevance when searching.

    The search uses websearch_to_tsquery, which accepts any string (quotes, operators, stray
    punctuation) without a syntax error, and the same expression as the posts_search_gin index.
    """
    posts = Post.objects.select_related("author")
    if author_id is not None:
        posts = posts.filter(author_id=author_id)
    if search:
        query = SearchQuery(search, search_type="websearch", config=SEARCH_CONFIG)
        return (
            posts.alias(document=SEARCH_VECTOR)
            .filter(document=query)
            # ts_rank is a float4; as float8 it survives the round trip through a cursor exactly.
            .annotate(rank=Cast(SearchRank(SEARCH_VECTOR, query), FloatField()))
            .order_by(*SEARCH_ORDERING)
        )
    return posts.order_by(*POST_ORDERING)


def post_get(*, post_id: int) -> Post | None:
    return Post.objects.select_related("author").filter(pk=post_id).first()

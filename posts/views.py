import asyncio
from collections.abc import Sequence
from functools import cached_property, partial
from typing import Any

import orjson
from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response

from posts import search, selectors, services
from posts.models import Post
from posts.permissions import IsAuthorOrStaff
from posts.serializers import (
    PostListQuerySerializer,
    PostSerializer,
    PostWriteSerializer,
    UserOverviewResponseSerializer,
    UserOverviewSerializer,
)
from project.cache import store
from project.http.api import ID_PATTERN
from project.http.idempotency import idempotent
from users import enrichment
from users import selectors as user_selectors


def post_detail_read(post_id: int) -> store.CachedRead:
    """A post's cached detail: its author's name is part of it, so renames invalidate it too."""
    return store.CachedRead("post-detail", (post_id,), (store.post_scope(post_id), store.AUTHORS_SCOPE))


SEARCH_DESCRIPTION = f"""
All posts, newest first; with `author`, one author's.

**Search** (`search`): words in the title or body, matched after English stemming ("databases"
finds "database", "running" finds "run"); English stop words ("the", "a", "is"...) are ignored,
so a search of only stop words finds nothing. Web-search syntax: words are all required,
`"a quoted phrase"` matches the words in that order, `or` between words accepts either, and
`-word` excludes a word (a search of excluded words only looks at the newest
{settings.SEARCH_SCAN_POSTS:,} posts). Any text is accepted; nothing in it is a syntax error.

**Ordering of a search** (`ordering`):
- `relevance` (the default): recent matches, best first by PostgreSQL's `ts_rank` (how often the
  words occur in the post), ties by id, newest first. The ranked window is the newest
  {settings.SEARCH_RELEVANCE_WINDOW:,} matching posts; for a search common enough to fill a page
  among the newest {settings.SEARCH_SCAN_POSTS:,} posts, only the matches among those. Older
  matches are not ranked, however well they match: reach them with `ordering=newest`.
  The cursor keeps the first page's window: later pages rank exactly the same posts, so each
  result appears once, and posts published while you page are not added (search again for them).
- `newest`: every matching post, newest first; posts published while you page appear only
  before the first page, never as repeats.
"""


@extend_schema_view(
    list=extend_schema(
        summary="All posts, newest first, or the results of a search",
        description=SEARCH_DESCRIPTION,
        parameters=[PostListQuerySerializer],
    ),
    create=extend_schema(
        summary="Publish a post as the signed-in user", request=PostWriteSerializer, responses={201: PostSerializer}
    ),
    retrieve=extend_schema(summary="One post with its author's name"),
    partial_update=extend_schema(
        summary="Edit a post (author or staff)", request=PostWriteSerializer, responses=PostSerializer
    ),
    destroy=extend_schema(summary="Delete a post (author or staff)", responses={204: None}),
)
class PostViewSet(viewsets.GenericViewSet):
    queryset = Post.objects.none()
    serializer_class = PostSerializer
    permission_classes = (IsAuthenticatedOrReadOnly, IsAuthorOrStaff)
    lookup_value_regex = ID_PATTERN
    http_method_names = ("get", "post", "patch", "delete", "head", "options")

    def _get_post(self) -> Post:
        post = selectors.post_get(post_id=int(self.kwargs["pk"]))
        if post is None:
            raise NotFound("No such post.")
        self.check_object_permissions(self.request, post)
        return post

    @cached_property
    def _list_query(self) -> PostListQuerySerializer:
        query = PostListQuerySerializer(data=self.request.query_params)
        query.is_valid()
        return query

    def _feed_page_read(self) -> store.CachedRead | None:
        """The cache entry of the unfiltered feed's first page; nothing else in a list is cached."""
        query = self._list_query
        filters = query.validated_data.get("author") is not None or query.validated_data.get("search")
        if query.errors or filters:
            return None
        return store.first_page_read(self.request, "feed", (), (store.FEED_SCOPE,))

    def list(self, request: Request) -> Response | HttpResponse:
        query = self._list_query
        query.is_valid(raise_exception=True)
        author_id, text = query.validated_data.get("author"), query.validated_data.get("search")
        ordering = query.validated_data.get("ordering", search.RELEVANCE)

        def page() -> Any:
            posts: Sequence[Post] | None
            if text:
                posts = self._search_page(search.parse(text, author_id=author_id), ordering)
            else:
                posts = self.paginate_queryset(selectors.post_list(author_id=author_id))
            return self.get_paginated_response(PostSerializer(posts, many=True).data).data

        return store.page_response(request, self._feed_page_read(), page)

    def _search_page(self, found: search.Search, ordering: str) -> Sequence[Post]:
        hits = self.paginator.paginate_rows(  # type: ignore[union-attr]
            self.request,
            search.sort_keys(ordering),
            partial(search.fetch, found, ordering),
            state_fields=search.window_fields(ordering),
        )
        return [hit.post for hit in hits]

    @idempotent
    def create(self, request: Request) -> Response:
        body = PostWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        post = services.post_create(author=request.user, **body.validated_data)  # type: ignore[arg-type]
        return Response(PostSerializer(post).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> HttpResponse:
        body = store.cached_json(post_detail_read(int(pk)), compute=lambda: PostSerializer(self._get_post()).data)
        return store.json_response(request, body)

    def partial_update(self, request: Request, pk: str, *args: Any, **kwargs: Any) -> Response:
        post = self._get_post()
        body = PostWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        return Response(PostSerializer(services.post_update(post=post, data=body.validated_data)).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.post_delete(post=self._get_post())
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserPostsViewSet(viewsets.GenericViewSet):
    """A user's posts, newest first (/api/users/{id}/posts/)."""

    queryset = Post.objects.none()
    serializer_class = PostSerializer
    permission_classes = (AllowAny,)

    @extend_schema(summary="A user's posts, newest first", responses=PostSerializer(many=True))
    def list(self, request: Request, pk: str) -> Response | HttpResponse:
        user_id = int(pk)

        def page() -> Any:
            posts = self.paginate_queryset(selectors.post_list(author_id=user_id))
            # An empty page is a user without posts (there) or no user at all (a 404): only then
            # does the user's row need a query of its own.
            if not posts and not user_selectors.user_exists(user_id=user_id):
                raise NotFound("No such user.")
            return self.get_paginated_response(PostSerializer(posts, many=True).data).data

        read = store.first_page_read(request, "user-posts", (user_id,), (store.user_scope(user_id),))
        return store.page_response(request, read, page)


class UserOverviewView(AsyncAPIView):
    """Profile, latest posts and post count, with the external enrichment fetched meanwhile.

    The database part (one query, or the cache) runs on Django's sync thread while the
    outbound call waits on the event loop, so the response takes about the longer of the
    two, not their sum.
    """

    permission_classes = (AllowAny,)

    @staticmethod
    def _profile(user_id: int) -> bytes:
        def compute() -> Any:
            user = selectors.user_overview(user_id=user_id)
            if user is None:
                raise NotFound("No such user.")
            return UserOverviewSerializer(user).data

        return store.cached_json(
            store.CachedRead("user-overview", (user_id,), (store.user_scope(user_id),)), compute=compute
        )

    @extend_schema(
        summary="A user's profile, latest posts and external enrichment", responses=UserOverviewResponseSerializer
    )
    async def get(self, request: Request, pk: str) -> HttpResponse:
        user_id = int(pk)
        profile, external = await asyncio.gather(
            sync_to_async(self._profile)(user_id), enrichment.fetch_enrichment(user_id)
        )
        overview = orjson.loads(profile)
        overview["external"] = external
        overview["degraded"] = bool(settings.PROFILE_ENRICHMENT_URL) and external is None
        return store.json_response(request, orjson.dumps(overview))

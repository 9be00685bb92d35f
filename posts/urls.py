from django.urls import re_path
from rest_framework.routers import DefaultRouter

from posts.views import PostViewSet, UserOverviewView, UserPostsViewSet
from project.http.api import ID_PATTERN

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("posts", PostViewSet, basename="post")

# Under /api/users/ but here: they compose a user with their posts, and posts may depend on
# users, never the reverse (the import contracts in pyproject.toml).
urlpatterns = [
    re_path(rf"^users/(?P<pk>{ID_PATTERN})/posts/$", UserPostsViewSet.as_view({"get": "list"}), name="user-posts"),
    re_path(rf"^users/(?P<pk>{ID_PATTERN})/overview/$", UserOverviewView.as_view(), name="user-overview"),
    *router.urls,
]

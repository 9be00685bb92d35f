from rest_framework.routers import DefaultRouter

from posts.views import PostViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("posts", PostViewSet, basename="post")

urlpatterns = router.urls

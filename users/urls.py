from django.urls import path, re_path
from rest_framework.routers import DefaultRouter

from users.views import ID_PATTERN, TokenView, UserOverviewView, UserViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("users", UserViewSet, basename="user")

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    re_path(rf"^users/(?P<pk>{ID_PATTERN})/overview/$", UserOverviewView.as_view(), name="user-overview"),
    *router.urls,
]

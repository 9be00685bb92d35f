from django.urls import path, re_path
from rest_framework.routers import DefaultRouter

from project.http.api import ID_PATTERN
from users import auth_views
from users.views import UserViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("users", UserViewSet, basename="user")

urlpatterns = [
    path("auth/token/", auth_views.TokenView.as_view(), name="auth-token"),
    path("auth/logout/", auth_views.LogoutView.as_view(), name="auth-logout"),
    path("auth/logout-all/", auth_views.LogoutAllView.as_view(), name="auth-logout-all"),
    path("auth/tokens/", auth_views.TokenListView.as_view(), name="auth-tokens"),
    re_path(
        rf"^auth/tokens/(?P<token_id>{ID_PATTERN})/$", auth_views.TokenDetailView.as_view(), name="auth-token-detail"
    ),
    path("auth/password-reset/", auth_views.PasswordResetView.as_view(), name="auth-password-reset"),
    path(
        "auth/password-reset/confirm/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="auth-password-reset-confirm",
    ),
    path("auth/verify-email/", auth_views.VerifyEmailView.as_view(), name="auth-verify-email"),
    path("auth/verify-email/resend/", auth_views.VerifyEmailResendView.as_view(), name="auth-verify-email-resend"),
    *router.urls,
]

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from project.http import health
from project.observability import metrics

# JSON bodies for unmatched URLs and unhandled errors, never an HTML page or a traceback.
handler404 = "project.http.api.not_found"
handler500 = "project.http.api.server_error"

urlpatterns = [
    path("", TemplateView.as_view(template_name="landing.html"), name="landing"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="prometheus-django-metrics"),
    path("admin/", admin.site.urls),
    # Session sign-in and sign-out pages of the browsable API.
    path("api-auth/", include("rest_framework.urls")),
    path("api/", include("users.urls")),
    path("api/", include("posts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script from ?script: no inline script, as the CSP asks.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
]

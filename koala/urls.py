from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from koala.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[],
                                                     permission_classes=[]), name="api-docs"),
    path("api/v1/", include("organizations.urls")),
    path("api/v1/", include("events.urls")),
    path("api/v1/", include("queries.urls")),
    path("api/v1/", include("budgets.urls")),
    path("", include("queries.dashboard_urls")),  # the dashboard pages: /login/, /, /o/<org_slug>/...
]

handler400 = "koala.views.bad_request"
handler403 = "koala.views.permission_denied"
handler404 = "koala.views.page_not_found"
handler500 = "koala.views.server_error"

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("payments.api.urls")),
    path("api/v1/", include("remittances.api.urls")),
]

# Under /api/ these answer JSON in the console's error shape; elsewhere Django's own pages.
handler400 = "billing_backoffice.api_errors.handler400"
handler403 = "billing_backoffice.api_errors.handler403"
handler404 = "billing_backoffice.api_errors.handler404"
handler500 = "billing_backoffice.api_errors.handler500"

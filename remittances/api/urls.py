"""Console API endpoints of the remittances app (credit applications, claims)."""

from django.urls import path  # noqa: F401

from remittances.api import claims, credit

urlpatterns: list = [
    path(
        "accounts/<int:account_id>/credit-applications/",
        credit.CreditApplicationCreateView.as_view(),
        name="credit-application-create",
    ),
    path("accounts/<int:account_id>/claims/", claims.ClaimCreateView.as_view(), name="claim-create"),
]

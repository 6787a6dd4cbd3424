"""Console API endpoints of the remittances app (credit applications, claims)."""

from django.urls import path

import billing_backoffice.url_converters  # noqa: F401  registers <id:...> (1 to 2**63 - 1)
from remittances.api import claims, credit

urlpatterns: list = [
    path(
        "accounts/<id:account_id>/credit-applications/",
        credit.CreditApplicationCreateView.as_view(),
        name="credit-application-create",
    ),
    path("accounts/<id:account_id>/claims/", claims.ClaimCreateView.as_view(), name="claim-create"),
]

"""Console API routes, mounted under /api/v1/ by billing_backoffice.urls."""

from django.urls import path

import billing_backoffice.url_converters  # noqa: F401  registers <id:...> (1 to 2**63 - 1)
from payments.api import billing, messages, three_ds, views

app_name = "payments-api"

urlpatterns = [
    path("accounts/", views.AccountCreateView.as_view(), name="account-create"),
    path("accounts/<id:account_id>/", views.AccountDetailView.as_view(), name="account-detail"),
    path("accounts/<id:account_id>/cards/", views.CardLinkView.as_view(), name="card-link"),
    path("accounts/<id:account_id>/paypal/", views.PayPalLinkView.as_view(), name="paypal-link"),
    path("accounts/<id:account_id>/wallets/", views.WalletLinkView.as_view(), name="wallet-link"),
    path(
        "accounts/<id:account_id>/payment-methods/",
        views.PaymentMethodListView.as_view(),
        name="payment-method-list",
    ),
    path("accounts/<id:account_id>/usage/", billing.UsageCreateView.as_view(), name="usage-create"),
    path("accounts/<id:account_id>/orders/", billing.OrderCreateView.as_view(), name="order-create"),
    path("accounts/<id:account_id>/messages/", messages.MessageListView.as_view(), name="message-list"),
    path("messages/<id:message_id>/read/", messages.MessageReadView.as_view(), name="message-read"),
    path("paypal/<id:method_id>/agreement/", views.PayPalAgreementView.as_view(), name="paypal-agreement"),
    path("three-ds/<id:challenge_id>/complete/", three_ds.ThreeDSCompleteView.as_view(), name="three-ds-complete"),
    path("payment-methods/<id:method_id>/", views.PaymentMethodDetailView.as_view(), name="payment-method-detail"),
    path(
        "payment-methods/<id:method_id>/default/",
        views.PaymentMethodDefaultView.as_view(),
        name="payment-method-default",
    ),
]

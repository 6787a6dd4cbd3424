"""Cloud accounts: region (ELIG-1), life cycle (LINK-2), KYC and the flags later work reads."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django_countries.fields import CountryField
from stdnum import luhn

from billing_backoffice import audit
from payments.eligibility import Region


def new_account_uid() -> str:
    """16 digits like the provider's account UIDs (uuid4 entropy; a unique constraint guards).

    A UID is never Luhn-valid, so card-number scanners and the log redaction (SEC-1) can never
    mistake one for a card number.
    """
    uid = str(uuid.uuid4().int)[:16]
    if luhn.is_valid(uid):
        uid = uid[:-1] + str((int(uid[-1]) + 1) % 10)
    return uid


@audit.track("acct")
class Account(models.Model):
    class Kind(models.TextChoices):
        INDIVIDUAL = "individual", "Individual"
        ENTERPRISE = "enterprise", "Enterprise"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DEACTIVATED = "deactivated", "Deactivated (silent period)"
        CLOSED = "closed", "Closed"

    class KycStatus(models.TextChoices):
        NOT_REQUIRED = "not_required", "Not required"
        REQUIRED = "required", "Required, not started"
        PENDING = "pending", "Submitted, under review"
        VERIFIED = "verified", "Verified"

    uid = models.CharField("UID", max_length=32, unique=True, default=new_account_uid)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    country = CountryField(help_text="Registration country (ISO 3166 alpha-2).")
    region = models.CharField(max_length=16, choices=Region.choices, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    kyc_status = models.CharField(
        "KYC status", max_length=16, choices=KycStatus.choices, default=KycStatus.NOT_REQUIRED
    )
    account_manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_accounts",
    )
    # Flags read by later work (credit, settlement, DEL-3).
    credit_approved = models.BooleanField(default=False)
    credit_limit = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    credit_currency = models.CharField(max_length=3, default="USD")
    auto_settlement_enabled = models.BooleanField(default=True)
    has_running_resources = models.BooleanField(default=False)
    # PAY-2: PayPal pay-as-you-go usage is charged when it reaches this (USD 8..500).
    paypal_charge_threshold = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("100.00"))
    has_outstanding_bills = models.BooleanField(
        default=False, help_text="Outstanding or overdue bills (DEL-3)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("deactivate_account", "Can deactivate or reactivate an account")]
        indexes = [
            models.Index(fields=["region", "status"]),
            models.Index(fields=["status", "deactivated_at"]),
            # Admin search: name -> trigram (icontains), e-mail -> exact (iexact).
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="account_name_trgm"),
            models.Index(Upper("email"), name="account_email_upper"),
        ]
        constraints = [
            models.CheckConstraint(
                name="account_deactivated_has_time",
                condition=~Q(status="deactivated") | Q(deactivated_at__isnull=False),
            ),
            models.CheckConstraint(
                name="account_credit_limit_not_negative", condition=Q(credit_limit__gte=0)
            ),
            models.CheckConstraint(
                name="account_paypal_threshold_range",
                condition=Q(paypal_charge_threshold__gte=8) & Q(paypal_charge_threshold__lte=500),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.uid})"

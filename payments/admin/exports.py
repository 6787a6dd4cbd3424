"""What the payments lists export (issue 10): bills, charges, ledger entries, accounts and payment
methods, streamed by ``billing_backoffice.admin_export``.

Columns name things as the screens do: accounts by UID and name, bills by reference, people by
username, never an internal foreign key id; amounts are plain decimals beside a currency column;
codes in words (choices by their labels, failure reasons through ``reason_label``).
SEC-1: a payment method is exported masked: kind, brand, last four digits, expiry, status; never
its gateway token, fingerprint, cardholder or billing address.
"""

from __future__ import annotations

from billing_backoffice.admin_export import Column, StreamedResource
from payments.models import Account, Bill, Charge, LedgerEntry, PaymentMethod
from payments.reasons import reason_label

ACCOUNT_COLUMNS = ("account_uid", "account_name")


def account_columns():
    return Column("account_uid", "account__uid"), Column("account_name", "account__name")


def masked_method(kind, last4, paypal_email, paypal_payer_id) -> str:
    """``Card •••• 4242`` or ``PayPal payer@example.com``: what ``PaymentMethod.masked`` shows."""
    if kind is None:
        return ""
    label = PaymentMethod.Kind(kind).label
    shown = f"•••• {last4}" if kind == PaymentMethod.Kind.CARD else (paypal_email or paypal_payer_id)
    return f"{label} {shown}"


def expiry_text(month, year) -> str:
    return f"{month:02d}/{year % 100:02d}" if month and year else ""


class BillResource(StreamedResource):
    account_uid, account_name = account_columns()
    region = Column("region", "account__region")
    outstanding = Column("outstanding", "total", "amount_paid", convert=lambda total, paid: total - paid)
    automatic_settlement = Column("automatic_settlement", "account__auto_settlement_enabled")

    class Meta:
        model = Bill
        fields = (
            "reference", *ACCOUNT_COLUMNS, "region", "kind", "order_kind", "status", "period_start", "period_end",
            "issued_at", "due_date", "amount_before_tax", "tax", "total", "amount_paid", "outstanding", "currency",
            "paid_at", "automatic_settlement",
        )
        export_order = fields


class ChargeResource(StreamedResource):
    account_uid, account_name = account_columns()
    bill = Column("bill", "bill__reference")
    payment_method = Column(
        "payment_method", "payment_method__kind", "payment_method__last4", "payment_method__paypal_email",
        "payment_method__paypal_payer_id", convert=masked_method,
    )
    failure_reason = Column("failure_reason", "failure_reason", convert=reason_label)

    class Meta:
        model = Charge
        fields = (
            "id", "created_at", "completed_at", *ACCOUNT_COLUMNS, "bill", "kind", "status", "amount", "currency",
            "failure_reason", "failure_rule", "failure_detail", "attempts", "payment_method", "gateway_reference",
            "idempotency_key",
        )
        export_order = fields


class LedgerEntryResource(StreamedResource):
    account_uid, account_name = account_columns()
    reverses = Column("reverses", "reverses__reference")
    created_by = Column("created_by", "created_by__username")

    class Meta:
        model = LedgerEntry
        fields = (
            "id", "created_at", *ACCOUNT_COLUMNS, "kind", "amount", "currency", "reference", "reverses", "memo",
            "created_by",
        )
        export_order = fields


class AccountResource(StreamedResource):
    country = Column("country", "country", convert=str)  # the code, as the list shows it
    account_manager = Column("account_manager", "account_manager__username")

    class Meta:
        model = Account
        fields = (
            "uid", "name", "email", "kind", "country", "region", "status", "kyc_status", "account_manager",
            "credit_approved", "credit_limit", "credit_currency", "auto_settlement_enabled", "deactivated_at",
            "closed_at", "created_at",
        )
        export_order = fields


class PaymentMethodResource(StreamedResource):
    """SEC-1: masked; ``Meta.fields`` is the whole list of what leaves the admin."""

    account_uid, account_name = account_columns()
    brand = Column("brand", "network")
    last_four = Column("last_four", "last4")
    expiry = Column("expiry", "exp_month", "exp_year", convert=expiry_text)
    paypal_email = Column("paypal_email", "paypal_email")
    failure_reason = Column("failure_reason", "failure_reason", convert=reason_label)

    class Meta:
        model = PaymentMethod
        fields = (
            "id", *ACCOUNT_COLUMNS, "kind", "brand", "last_four", "expiry", "status", "is_default", "paypal_email",
            "failure_reason", "created_at", "activated_at", "removed_at",
        )
        export_order = fields

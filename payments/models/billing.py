"""Usage, bills and charges (PAY-1..6, SET-1..4, CRED-3).

Money: Decimal with two places and an ISO 4217 currency. A bill is paid only through the ledger
(``bill_payment`` entries); ``amount_paid`` is the running total of those entries, checked by
constraints so it can never exceed the bill's total.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q

from billing_backoffice import audit
from billing_backoffice.money import money_text

from .accounts import Account
from .methods import PaymentMethod


@audit.track("usage")
class UsageRecord(models.Model):
    """Pay-as-you-go usage reported by the console, idempotent by the console's reference."""

    class Status(models.TextChoices):
        UNBILLED = "unbilled", "Unbilled"
        CHARGED = "charged", "Charged at the threshold (PAY-2)"
        BILLED = "billed", "On the monthly bill (PAY-3)"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="usage_records")
    amount = models.DecimalField(max_digits=14, decimal_places=2, help_text="Before tax.")
    currency = models.CharField(max_length=3)
    period = models.CharField(max_length=7, help_text="Billing month, YYYY-MM.")
    reference = models.CharField(max_length=120, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNBILLED)
    charge = models.ForeignKey(
        "Charge", null=True, blank=True, on_delete=models.PROTECT, related_name="usage_records"
    )
    bill = models.ForeignKey("Bill", null=True, blank=True, on_delete=models.PROTECT, related_name="usage_records")
    reported_at = models.DateTimeField()

    class Meta:
        ordering = ["-reported_at", "-id"]
        indexes = [
            models.Index(fields=["account", "period"], condition=Q(status="unbilled"), name="usage_unbilled_scan"),
        ]
        constraints = [
            models.CheckConstraint(name="usage_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(name="usage_period_format", condition=Q(period__regex=r"^[0-9]{4}-(0[1-9]|1[0-2])$")),
        ]

    def __str__(self) -> str:
        return f"Usage {money_text(self.amount, self.currency)} {self.period} ({self.reference})"


@audit.track("bill")
class Bill(models.Model):
    """A bill: monthly (pay-as-you-go and credit accounts) or for one subscription order."""

    class Kind(models.TextChoices):
        MONTHLY = "monthly", "Monthly bill"
        ORDER = "order", "Subscription order"
        USAGE_THRESHOLD = "usage_threshold", "Pay-as-you-go threshold"

    class OrderKind(models.TextChoices):
        PURCHASE = "purchase", "Purchase"
        UPGRADE = "upgrade", "Upgrade"
        RENEWAL = "renewal", "Renewal"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PARTIALLY_PAID = "partially_paid", "Partially paid"
        PAID = "paid", "Paid"
        OVERDUE = "overdue", "Overdue"

    UNPAID_STATUSES = (Status.OPEN, Status.PARTIALLY_PAID, Status.OVERDUE)

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="bills")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    order_kind = models.CharField(max_length=10, choices=OrderKind.choices, blank=True)
    reference = models.CharField(max_length=120, unique=True, help_text="The event that made it (order, month).")
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    issued_at = models.DateTimeField()
    due_date = models.DateField()
    amount_before_tax = models.DecimalField(max_digits=14, decimal_places=2)
    tax = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    total = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    amount_paid = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        permissions = [("pay_bill", "Can pay a bill from the account's balance (SET-3)")]
        indexes = [
            # SET-2: the unpaid bills of an account, oldest first.
            models.Index(
                fields=["account", "issued_at", "id"],
                condition=Q(status__in=["open", "partially_paid", "overdue"]),
                name="bill_unpaid_oldest_first",
            ),
            models.Index(fields=["status", "due_date"], name="bill_status_due"),
            # The unpaid bills' amounts, read without the table (an index-only scan): the index's
            # overdue figure and ageing chart and the CC-4 report sum every unpaid bill; with the
            # account, so the report by region or account manager joins accounts from the index.
            models.Index(
                fields=["status", "currency", "due_date"],
                include=["total", "amount_paid", "id", "account"],
                condition=Q(status__in=["open", "partially_paid", "overdue"]),
                name="bill_unpaid_ageing",
            ),
            # CC-4 days sales outstanding: the bills issued in the last 90 days, index-only.
            models.Index(fields=["issued_at"], include=["currency", "total", "account"], name="bill_issued_sales"),
            models.Index(fields=["due_date"]),
            # The admin's amount filter ("10,000 and more" matches few of a million bills).
            models.Index(fields=["total"], name="bill_total"),
        ]
        constraints = [
            models.CheckConstraint(name="bill_total_is_sum", condition=Q(total=F("amount_before_tax") + F("tax"))),
            models.CheckConstraint(name="bill_total_positive", condition=Q(total__gt=0)),
            models.CheckConstraint(
                name="bill_paid_within_total", condition=Q(amount_paid__gte=0) & Q(amount_paid__lte=F("total"))
            ),
            models.CheckConstraint(
                name="bill_paid_status_matches",
                condition=(Q(status="paid") & Q(amount_paid=F("total")) & Q(paid_at__isnull=False))
                | (~Q(status="paid") & Q(amount_paid__lt=F("total"))),
            ),
            models.CheckConstraint(
                name="bill_order_has_order_kind", condition=~Q(kind="order") | ~Q(order_kind="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.reference}: {money_text(self.total, self.currency)} ({self.get_status_display()})"

    @property
    def outstanding(self) -> Decimal:
        return self.total - self.amount_paid


@audit.track("chg")
class Charge(models.Model):
    """One charge of a card or PayPal method at the gateway (PAY-1..5), with its saved key."""

    class Kind(models.TextChoices):
        ORDER = "order", "Subscription order (PAY-1)"
        THRESHOLD = "threshold", "Pay-as-you-go threshold (PAY-2)"
        MONTH_END = "month_end", "Month-end deduction (PAY-3)"
        PAYPAL_PREAUTH = "paypal_preauth", "PayPal pre-authorization (HOLD-4)"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending at the gateway"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="charges")
    bill = models.ForeignKey(Bill, null=True, blank=True, on_delete=models.PROTECT, related_name="charges")
    payment_method = models.ForeignKey(
        PaymentMethod, null=True, blank=True, on_delete=models.PROTECT, related_name="charges"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=120, unique=True)
    gateway_reference = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    failure_reason = models.CharField(max_length=40, blank=True)
    failure_rule = models.CharField(max_length=10, blank=True)
    failure_detail = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    authenticated_by = models.OneToOneField(
        "ThreeDSChallenge", null=True, blank=True, on_delete=models.PROTECT, related_name="replay_charge",
        help_text="The completed 3-D Secure challenge this order charge replays (PAY-1).",
    )
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["account", "-created_at"]),
        ]
        constraints = [
            models.CheckConstraint(name="charge_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="charge_failed_has_reason", condition=~Q(status="failed") | ~Q(failure_reason="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {money_text(self.amount, self.currency)} ({self.get_status_display()})"

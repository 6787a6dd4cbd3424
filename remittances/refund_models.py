"""Money after the bill: refunds, transfers between accounts and outgoing payment files (RFD-1..3).

Imported by ``remittances.models`` so the app registry finds them; the names are the contract
(DESIGN.md). Every write goes through ``remittances.services.refunds`` / ``transfers`` /
``payment_files``; money moves only through ``payments.services.ledger.ledger_post``.

State machines (DESIGN.md): ``RefundRequest`` ``submitted`` -> ``approved`` | ``rejected``; an
approved refund -> ``in_file`` (in exactly one ``PaymentFile``) -> ``sent`` | ``returned`` (the
bank reported the payment rejected: the money is credited back once). A ``payer_return`` is the
same flow for a transfer that was never credited (a currency mismatch): it moves no ledger money,
its bank transaction becomes ``returned`` when its file is sent. ``FundsTransfer``
``submitted`` -> ``approved`` | ``rejected``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from billing_backoffice import audit
from billing_backoffice.money import money_text
from payments.models import Account, LedgerEntry

USER = settings.AUTH_USER_MODEL


def refund_ledger_reference(refund_id: int) -> str:
    """The one ledger reference of a refund's debit (RFD-1: approval debits once)."""
    return f"refund:{refund_id}"


def transfer_ledger_references(transfer_id: int) -> tuple[str, str]:
    """RFD-2: the linked references of a transfer's debit and credit."""
    return f"transfer:{transfer_id}:out", f"transfer:{transfer_id}:in"


@audit.track("payfile")
class PaymentFile(models.Model):
    """One outgoing ISO 20022 pain.001.001.03 file: one debtor account and one currency."""

    class Status(models.TextChoices):
        GENERATED = "generated", "Generated (to upload to the bank)"
        SENT = "sent", "Sent to the bank"

    debtor_account = models.ForeignKey(
        "remittances.RemittanceAccount", on_delete=models.PROTECT, related_name="payment_files"
    )
    currency = models.CharField(max_length=3)
    message_id = models.CharField(max_length=35, unique=True, help_text="pain.001 GrpHdr/MsgId.")
    payment_count = models.PositiveIntegerField()
    total = models.DecimalField(max_digits=16, decimal_places=2)
    content = models.TextField(help_text="The pain.001 XML as generated.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.GENERATED)
    created_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    sent_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("generate_paymentfile", "Can generate outgoing payment files"),
            ("send_paymentfile", "Can download payment files and mark them sent"),
        ]
        constraints = [
            models.CheckConstraint(name="payfile_total_positive", condition=Q(total__gt=0) & Q(payment_count__gt=0)),
        ]

    def __str__(self) -> str:
        return f"pain.001 {self.message_id} ({self.payment_count} x {self.currency}, {self.get_status_display().lower()})"


@audit.track("refund")
class RefundRequest(models.Model):
    """RFD-1: credited funds paid back to the payer's bank account, decided by four eyes; or, as a
    ``payer_return``, a transfer that could not be credited (its currency is not the receiving
    account's) paid back whole, in its own currency, without touching any balance."""

    class Kind(models.TextChoices):
        REFUND = "refund", "Refund of credited funds"
        PAYER_RETURN = "payer_return", "Return of a transfer that was never credited"

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved (waiting for a payment file)"
        REJECTED = "rejected", "Rejected"
        IN_FILE = "in_file", "In a payment file"
        SENT = "sent", "Sent to the bank"
        RETURNED = "returned", "Returned by the bank (money credited back)"

    # The refunds whose money has left the balance (RFD-3 counts them against their transaction).
    DEBITED_STATUSES = (Status.APPROVED, Status.IN_FILE, Status.SENT)

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.REFUND)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="refund_requests",
        help_text="The account debited; a payer return of a transfer on a shared account has none.",
    )
    bank_transaction = models.ForeignKey(
        "remittances.BankTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="refunds",
        help_text="The credited bank transaction the money came from, where there is one.",
    )
    debtor_account = models.ForeignKey(
        "remittances.RemittanceAccount", on_delete=models.PROTECT, related_name="refunds",
        help_text="Our bank account the refund is paid from.",
    )
    amount = models.DecimalField(max_digits=16, decimal_places=2)
    currency = models.CharField(max_length=3)
    payer_name = models.CharField(max_length=140)
    payer_iban = models.CharField("payer IBAN", max_length=34)
    payer_bic = models.CharField("payer BIC", max_length=11)
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    requested_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decision_note = models.TextField(blank=True)
    ledger_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="refund"
    )
    payment_file = models.ForeignKey(
        PaymentFile, null=True, blank=True, on_delete=models.PROTECT, related_name="refunds"
    )
    return_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="returned_refund"
    )
    return_reason = models.CharField(max_length=300, blank=True)
    submitted_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    returned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        permissions = [("approve_refundrequest", "Can approve or reject refund requests")]
        indexes = [models.Index(fields=["status", "submitted_at"])]
        constraints = [
            models.CheckConstraint(name="refund_amount_positive", condition=Q(amount__gt=0)),
            # RFD-1 four eyes: whoever recorded the refund never decides it.
            models.CheckConstraint(
                name="refund_decider_not_requester",
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
            ),
            models.CheckConstraint(
                name="refund_debited_has_entry",
                condition=Q(status__in=["submitted", "rejected"]) | Q(kind="payer_return")
                | (Q(ledger_entry__isnull=False) & Q(decided_by__isnull=False)),
            ),
            models.CheckConstraint(name="refund_has_account", condition=~Q(kind="refund") | Q(account__isnull=False)),
            # A payer return pays back a transfer that was never credited: no balance moves, ever.
            models.CheckConstraint(
                name="payer_return_moves_no_ledger_money",
                condition=~Q(kind="payer_return")
                | (Q(ledger_entry__isnull=True) & Q(return_entry__isnull=True) & Q(bank_transaction__isnull=False)),
            ),
            models.CheckConstraint(
                name="payer_return_decided_by_someone",
                condition=~Q(kind="payer_return") | Q(status__in=["submitted"]) | Q(decided_by__isnull=False),
            ),
            # Each payment in exactly one file: a refund past ``approved`` names its file.
            models.CheckConstraint(
                name="refund_in_file_has_file",
                condition=~Q(status__in=["in_file", "sent", "returned"]) | Q(payment_file__isnull=False),
            ),
            models.CheckConstraint(
                name="refund_returned_has_entry",
                condition=~Q(status="returned") | Q(kind="payer_return") | Q(return_entry__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        noun = "Payer return" if self.kind == self.Kind.PAYER_RETURN else "Refund"
        return f"{noun} #{self.pk} {money_text(self.amount, self.currency)} ({self.get_status_display().lower()})"


@audit.track("fundsxfer")
class FundsTransfer(models.Model):
    """RFD-2: funds credited to the wrong cloud account moved to the right one (four eyes)."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved (moved)"
        REJECTED = "rejected", "Rejected"

    from_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="transfers_out")
    to_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="transfers_in")
    bank_transaction = models.ForeignKey(
        "remittances.BankTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="transfers",
        help_text="The credited bank transaction the money came from, where there is one.",
    )
    amount = models.DecimalField(max_digits=16, decimal_places=2)
    currency = models.CharField(max_length=3)
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    requested_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decision_note = models.TextField(blank=True)
    debit_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="transfer_out"
    )
    credit_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="transfer_in"
    )
    submitted_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        permissions = [("approve_fundstransfer", "Can approve or reject transfers between accounts")]
        indexes = [models.Index(fields=["status", "submitted_at"])]
        constraints = [
            models.CheckConstraint(name="xfer_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(name="xfer_two_accounts", condition=~Q(from_account=F("to_account"))),
            models.CheckConstraint(
                name="xfer_decider_not_requester",
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
            ),
            # RFD-2: an approved transfer has both sides.
            models.CheckConstraint(
                name="xfer_approved_has_both_sides",
                condition=~Q(status="approved") | (Q(debit_entry__isnull=False) & Q(credit_entry__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        amount = money_text(self.amount, self.currency)
        return f"Transfer #{self.pk} {amount} from {self.from_account.uid} to {self.to_account.uid}"

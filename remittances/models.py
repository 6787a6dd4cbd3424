"""Credit limits, remittance (bank transfer) accounts, bank statements and claims.

Rules CRED-1..3, REM-1..7, CLM-1..4. Models hold data, constraints and transitions; every write
goes through ``remittances.services``. Money reaches an account only through the payments
ledger (``payments.services.ledger.ledger_post``) with the reference ``bank-txn:<id>``, shared by
the dedicated auto-credit and the claim approval, so one bank transaction credits once (CLM-2).
"""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper

from billing_backoffice import audit
from billing_backoffice.money import money_text
from payments.models import Account, LedgerEntry

USER = settings.AUTH_USER_MODEL


def bank_transaction_ledger_reference(transaction_id: int) -> str:
    """The one ledger reference of a bank transaction, whichever path credits it (CLM-2, REM-4)."""
    return f"bank-txn:{transaction_id}"


@audit.track("credreq")
class CreditLimitRequest(models.Model):
    """CRED-1/CRED-2: an application for a credit limit, decided by an account manager."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    class Source(models.TextChoices):
        CONSOLE = "console", "Sent by the console"
        STAFF = "staff", "Recorded by staff"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="credit_requests")
    requested_limit = models.DecimalField(
        max_digits=14, decimal_places=2, help_text="0 revokes the account's credit approval."
    )
    currency = models.CharField(max_length=3, default="USD")
    justification = models.TextField(blank=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    recorded_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    decided_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decision_note = models.TextField(blank=True)
    submitted_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        permissions = [("approve_creditlimitrequest", "Can approve or reject credit limit requests")]
        indexes = [models.Index(fields=["status", "submitted_at"])]
        constraints = [
            models.CheckConstraint(name="credit_limit_not_negative", condition=Q(requested_limit__gte=0)),
            # CRED-2: whoever recorded the request never decides it.
            models.CheckConstraint(
                name="credit_decider_is_not_recorder",
                condition=Q(decided_by__isnull=True) | Q(recorded_by__isnull=True) | ~Q(decided_by=F("recorded_by")),
            ),
            models.CheckConstraint(
                name="credit_decided_has_decider",
                condition=Q(status="submitted") | (Q(decided_by__isnull=False) & Q(decided_at__isnull=False)),
            ),
            models.UniqueConstraint(
                fields=["account"], condition=Q(status="submitted"), name="credit_one_open_request_per_account"
            ),
        ]

    def __str__(self) -> str:
        limit = money_text(self.requested_limit, self.currency)
        return f"Credit limit {limit} for {self.account.name} ({self.account.uid}), {self.get_status_display().lower()}"


@audit.track("remacct")
class RemittanceAccount(models.Model):
    """REM-1/REM-2: a receiving bank account, dedicated to one cloud account or shared."""

    class Kind(models.TextChoices):
        DEDICATED = "dedicated", "Dedicated"
        NON_DEDICATED = "non_dedicated", "Non-dedicated (shared)"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="remittance_accounts"
    )
    number = models.CharField(max_length=34, unique=True, help_text="IBAN or account number, no spaces.")
    bank_name = models.CharField(max_length=140)
    bic = models.CharField("SWIFT/BIC", max_length=11)
    bank_code = models.CharField(
        max_length=15, blank=True,
        help_text="National bank code (e.g. a German BLZ), where statements name the bank by it (REM-7).",
    )
    bank_country = models.CharField(max_length=2)
    currency = models.CharField(max_length=3)
    beneficiary_name = models.CharField(max_length=140)
    issued_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    issued_at = models.DateTimeField()
    suspended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        permissions = [
            ("issue_remittanceaccount", "Can issue dedicated remittance accounts"),
            ("suspend_remittanceaccount", "Can suspend or resume remittance accounts"),
        ]
        constraints = [
            # REM-1: one dedicated account per cloud account; REM-2: shared ones belong to nobody.
            models.UniqueConstraint(
                fields=["account"], condition=Q(kind="dedicated"), name="rem_one_dedicated_per_account"
            ),
            models.CheckConstraint(
                name="rem_dedicated_has_account",
                condition=(Q(kind="dedicated") & Q(account__isnull=False))
                | (Q(kind="non_dedicated") & Q(account__isnull=True)),
            ),
        ]
        triggers = [
            # REM-1: a dedicated number is never reassigned to another cloud account.
            pgtrigger.Protect(
                name="rem_never_reassigned",
                operation=pgtrigger.Update,
                condition=pgtrigger.Q(old__account_id__df=pgtrigger.F("new__account_id"))
                | pgtrigger.Q(old__number__df=pgtrigger.F("new__number"))
                | pgtrigger.Q(old__kind__df=pgtrigger.F("new__kind")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.number}"


@audit.track("stmt")
class BankStatement(models.Model):
    """REM-4/REM-5/REM-7: one imported statement (camt.053/054 or MT940), all-or-nothing."""

    class Format(models.TextChoices):
        CAMT053 = "camt053", "ISO 20022 camt.053"
        CAMT054 = "camt054", "ISO 20022 camt.054"
        MT940 = "mt940", "SWIFT MT940"

    receiving_account = models.ForeignKey(RemittanceAccount, on_delete=models.PROTECT, related_name="statements")
    format = models.CharField(max_length=8, choices=Format.choices)
    identity = models.CharField(max_length=140, help_text="The bank's statement id, or the file's hash.")
    currency = models.CharField(max_length=3)
    opening_balance = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    closing_balance = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    sequence_number = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="RCN-1: the bank's running statement number (camt ElctrncSeqNb/LglSeqNb, MT940 :28C:).",
    )
    file_name = models.CharField(max_length=255, blank=True)
    file_sha256 = models.CharField(max_length=64)
    imported_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    imported_at = models.DateTimeField()
    summary = models.JSONField(default=dict, help_text="entries, credited, unmatched, duplicates, rejected")

    class Meta:
        ordering = ["-imported_at", "-id"]
        permissions = [("import_bankstatement", "Can import bank statements")]
        indexes = [models.Index(fields=["file_sha256"], name="statement_file_sha256")]
        constraints = [
            models.UniqueConstraint(fields=["receiving_account", "identity"], name="statement_once_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.get_format_display()} {self.identity}"


@audit.track("banktxn")
class BankTransaction(models.Model):
    """One credit (or recorded non-credit) line of a statement; REM-6 splits batch entries."""

    class Status(models.TextChoices):
        UNMATCHED = "unmatched", "Unmatched (shared account)"
        MATCHED = "matched", "Matched (dedicated account)"
        CLAIMED = "claimed", "Claimed"
        CREDITED = "credited", "Credited"
        REVIEW = "review", "Needs review (currency mismatch, or a repeat that differs)"
        NOT_CREDITABLE = "not_creditable", "Not creditable (debit, reversal or pending)"
        # RVS-1/RVS-2 (remittances.services.reversals): the bank took the transfer back.
        REVERSED = "reversed", "Reversed or returned by the bank"
        # RFD-1 (remittances.services.payment_files): credited, then refunded in full to the payer
        # by refunds whose payment file went to the bank; a returned refund makes it credited again.
        REFUNDED = "refunded", "Refunded to the payer"
        # A transfer that could not be credited (currency mismatch) paid back whole to the payer
        # (remittances.services.payer_returns); never on any balance.
        RETURNED = "returned", "Returned to the payer (never credited)"

    class EntryKind(models.TextChoices):
        CREDIT = "credit", "Booked credit"
        DEBIT = "debit", "Debit"
        REVERSAL = "reversal", "Reversal"
        PENDING = "pending", "Pending (not booked)"

    class ReversalOf(models.TextChoices):
        CREDIT = "credit", "Reversal of a credit (money out)"
        DEBIT = "debit", "Reversal of a debit (money back in)"

    statement = models.ForeignKey(BankStatement, on_delete=models.PROTECT, related_name="transactions")
    receiving_account = models.ForeignKey(RemittanceAccount, on_delete=models.PROTECT, related_name="transactions")
    bank_reference = models.CharField(
        max_length=200,
        help_text="Account servicer's reference; where missing or repeated, statement identity + position.",
    )
    position = models.PositiveIntegerField(help_text="Entry position within the statement (1-based).")
    detail_index = models.PositiveIntegerField(default=0, help_text="Detail within a batch entry (REM-6).")
    entry_kind = models.CharField(max_length=10, choices=EntryKind.choices)
    # RVS-1: what a reversal line takes back (camt RvslInd with DBIT / MT940 RC: a credit, money
    # out; with CRDT / RD: a debit, money back in); blank on every other line.
    reversal_of = models.CharField(max_length=6, choices=ReversalOf.choices, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices)
    amount = models.DecimalField(max_digits=16, decimal_places=2)
    currency = models.CharField(max_length=3)
    booking_date = models.DateField(null=True, blank=True)
    value_date = models.DateField(null=True, blank=True)
    payer_name = models.CharField(max_length=140, blank=True)
    payer_account = models.CharField(max_length=34, blank=True)
    remittance_info = models.CharField(max_length=500, blank=True)
    end_to_end_id = models.CharField(max_length=35, blank=True)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="bank_transactions",
        help_text="The cloud account credited (dedicated) or claimed for.",
    )
    ledger_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="bank_transaction"
    )
    received_at = models.DateTimeField(help_text="When the back office imported it.")
    credited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["status", "received_at"]),
            models.Index(fields=["value_date"]),
            models.Index(fields=["amount"]),
            # Admin search: exact bank reference, payer name by trigram (pg_trgm, payments 0003).
            models.Index(fields=["bank_reference"], name="banktxn_bank_reference"),
            GinIndex(OpClass(Upper("payer_name"), name="gin_trgm_ops"), name="banktxn_payer_trgm"),
        ]
        constraints = [
            # REM-4: an entry is known by its receiving account and the bank's reference for it.
            models.UniqueConstraint(
                fields=["receiving_account", "bank_reference"], name="banktxn_once_per_receiving_account"
            ),
            models.CheckConstraint(name="banktxn_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="banktxn_credited_has_entry",
                condition=~Q(status__in=["credited", "refunded"])
                | (Q(ledger_entry__isnull=False) & Q(account__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        return f"{money_text(self.amount, self.currency)} from {self.payer_name or 'unknown payer'} ({self.bank_reference})"


class BankTransactionKey(models.Model):
    """REM-4: one bank reference of a recorded line, naming it on its receiving account.

    A line carries several references (the entry's account servicer reference, its detail's):
    each is a key of the line, so the same transfer reported in another message under the other
    reference is recognised. Only the statement import writes them; they are never changed.
    """

    # No indexes of their own: every import inserts a key per line, and lookups go by the
    # unique (account, key) index.
    receiving_account = models.ForeignKey(
        RemittanceAccount, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    key = models.CharField(max_length=200)
    bank_transaction = models.ForeignKey(
        BankTransaction, on_delete=models.PROTECT, related_name="keys", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["receiving_account", "key"], name="banktxn_key_once_per_account"),
        ]
        triggers = [
            pgtrigger.Protect(name="banktxn_key_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
            audit.no_truncate("banktxn_key_no_truncate"),
        ]

    def __str__(self) -> str:
        return f"{self.key} -> {self.bank_transaction_id}"


@audit.track("claim")
class RemittanceClaim(models.Model):
    """CLM-1..4: a claim that a transfer on the shared account belongs to a cloud account."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        REVIEWED = "reviewed", "Reviewed"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    class Source(models.TextChoices):
        CONSOLE = "console", "Customer (console)"
        STAFF = "staff", "Account manager"

    OPEN_STATUSES = (Status.SUBMITTED, Status.REVIEWED)

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="remittance_claims")
    bank_transaction = models.ForeignKey(
        BankTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="claims"
    )
    # The transfer as the claimant describes it, matched to a transaction when it arrives.
    amount = models.DecimalField(max_digits=16, decimal_places=2)
    currency = models.CharField(max_length=3)
    value_date = models.DateField(null=True, blank=True)
    payer_name = models.CharField(max_length=140, blank=True)
    bank_reference = models.CharField(max_length=200, blank=True)
    proof = models.FileField(upload_to="claims/%Y/%m/", blank=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    # A console claim is known by what it describes (account, amount, currency, value date, bank
    # reference, payer): a client that retries, or sends the same form ten times at once, files
    # one claim. Staff claims start from a transaction, which the live-claim constraint guards.
    idempotency_key = models.CharField(max_length=64, null=True, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    initiated_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reviewed_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True, help_text="Review note, or the reason for a rejection (CLM-4).")
    submitted_at = models.DateTimeField()
    reviewed_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        permissions = [
            ("review_remittanceclaim", "Can review remittance claims"),
            ("approve_remittanceclaim", "Can approve or reject reviewed remittance claims"),
        ]
        indexes = [
            models.Index(fields=["status", "submitted_at"]),
            # The admin's exact search by the customer's bank reference (no scan of every claim).
            models.Index(fields=["bank_reference"], condition=~Q(bank_reference=""), name="claim_bank_reference"),
        ]
        constraints = [
            models.CheckConstraint(name="claim_amount_positive", condition=Q(amount__gt=0)),
            # CLM-3: the initiator and the reviewer never approve.
            models.CheckConstraint(
                name="claim_decider_not_initiator",
                condition=Q(decided_by__isnull=True) | Q(initiated_by__isnull=True) | ~Q(decided_by=F("initiated_by")),
            ),
            models.CheckConstraint(
                name="claim_decider_not_reviewer",
                condition=Q(decided_by__isnull=True) | Q(reviewed_by__isnull=True) | ~Q(decided_by=F("reviewed_by")),
            ),
            models.CheckConstraint(
                name="claim_approved_is_complete",
                condition=~Q(status="approved")
                | (Q(bank_transaction__isnull=False) & Q(reviewed_by__isnull=False) & Q(decided_by__isnull=False)),
            ),
            # The same console claim sent again (a retry, a double click) is the first one.
            models.UniqueConstraint(
                fields=["account", "idempotency_key"], condition=Q(idempotency_key__isnull=False),
                name="claim_console_once",
            ),
            # CLM-2: one transaction is claimed by at most one live claim, approved at most once.
            models.UniqueConstraint(
                fields=["bank_transaction"],
                condition=Q(status__in=["submitted", "reviewed", "approved"]),
                name="claim_one_live_claim_per_transaction",
            ),
        ]

    def __str__(self) -> str:
        return f"Claim #{self.pk} {money_text(self.amount, self.currency)} ({self.get_status_display().lower()})"


# RFD-1..3 (issue 13): refunds, transfers and outgoing payment files live in their own module.
from remittances.refund_models import (  # noqa: E402,F401  (registered with the app)
    FundsTransfer,
    PaymentFile,
    RefundRequest,
    refund_ledger_reference,
    transfer_ledger_references,
)
from remittances.reversal_models import BankReversal  # noqa: E402,F401  (RVS-1/RVS-2)
from remittances.reconciliation_models import ReconciliationDay, ReconciliationException  # noqa: E402,F401  (RCN)

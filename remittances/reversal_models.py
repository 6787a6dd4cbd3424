"""RVS-1/RVS-2: what the back office did with a reversal or return the bank reported.

One row per reversal line of a statement (``reversal``, unique), naming the original entry it
takes back (``original``, unique: an entry is reversed at most once). Only
``remittances.services.reversals`` writes them. Outcomes:

- ``debited``: the original was credited; a reversing ledger entry of its credit was posted.
- ``owing``: the original was credited but the account's balance cannot take the debit (I3
  keeps the floor): nothing posted yet; the account owes it and finance works it from the queue.
- ``closed``: the original was never credited (unmatched, claimed...): it is closed, a pending
  claim on it was rejected with the reason.
- ``returned``: a reversal of a debit (money back in) naming one of our refund payments
  (end-to-end id ``RFD-<id>``): the bank returned the payment; the refund's money was credited
  back once (``refunds.refund_return``), ``ledger_entry`` is that credit.
- ``unknown``: no single original was found: waits for a person's review.
``reversal_of`` is the direction of the reversal line (what it takes back: a credit, money out;
or a debit, money back in); a reversal of a debit never debits a customer.
A person records a resolution (who, when, what) on ``owing`` and ``unknown`` rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing_backoffice import audit
from billing_backoffice.money import money_text
from payments.models import Account, LedgerEntry


@audit.track("bankrvsl")
class BankReversal(models.Model):
    class Outcome(models.TextChoices):
        DEBITED = "debited", "Credit reversed on the ledger"
        OWING = "owing", "Account left owing (finance's queue)"
        CLOSED = "closed", "Uncredited entry closed"
        RETURNED = "returned", "Refund payment returned (money credited back)"
        UNKNOWN = "unknown", "Original unknown (waits for review)"

    class ReversalOf(models.TextChoices):  # the same values as BankTransaction.ReversalOf
        CREDIT = "credit", "Reversal of a credit (money out)"
        DEBIT = "debit", "Reversal of a debit (money back in)"

    reversal = models.OneToOneField(
        "remittances.BankTransaction", on_delete=models.PROTECT, related_name="reversal_record"
    )
    original = models.OneToOneField(
        "remittances.BankTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reversal_of = models.CharField(max_length=6, choices=ReversalOf.choices, default=ReversalOf.CREDIT)
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(max_digits=16, decimal_places=2)
    currency = models.CharField(max_length=3)
    ledger_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="bank_reversal"
    )
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("resolve_bankreversal", "Can record the resolution of a reversal")]
        indexes = [models.Index(fields=["outcome", "created_at"])]
        constraints = [
            models.CheckConstraint(
                name="rvsl_debited_has_entry", condition=~Q(outcome="debited") | Q(ledger_entry__isnull=False)
            ),
            models.CheckConstraint(
                name="rvsl_known_has_original",
                condition=Q(outcome__in=["unknown", "returned"]) | Q(original__isnull=False),
            ),
            models.CheckConstraint(
                name="rvsl_returned_has_entry", condition=~Q(outcome="returned") | Q(ledger_entry__isnull=False)
            ),
            # RVS-1: only a reversal of a credit takes money from a customer.
            models.CheckConstraint(
                name="rvsl_debit_reversal_debits_nobody",
                condition=Q(reversal_of="credit") | Q(outcome__in=["returned", "unknown"]),
            ),
        ]

    def __str__(self) -> str:
        return f"Reversal #{self.pk} {money_text(self.amount, self.currency)} ({self.get_outcome_display().lower()})"

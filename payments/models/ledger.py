"""The append-only ledger (SEC-4, I1, I2)."""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import Q

from billing_backoffice import audit
from billing_backoffice.money import money_text

from .accounts import Account


@audit.track("ledger")
class LedgerEntry(models.Model):
    """One movement of an account's money (SEC-4, I1, I2, SEC-2).

    Append-only: database triggers refuse UPDATE, DELETE and TRUNCATE, so corrections are
    reversing entries. Every insert, through the services or raw SQL, is copied by a trigger into
    the audit trail with the context of who made it (``billing_backoffice.audit``). ``reference`` names the business event (bank entry, claim, bill payment ...) and is
    unique, so a replayed event moves no money. Written by ``ledger_post``, ``ledger_credit_many``
    (bulk credits of a statement import) and the settlement sweep's SQL insert, nothing else;
    ``payments/services/ledger.py`` says which invariants each keeps.
    """

    class Kind(models.TextChoices):
        REMITTANCE_CREDIT = "remittance_credit", "Remittance credit"
        CLAIM_CREDIT = "claim_credit", "Claim credit"
        BILL_PAYMENT = "bill_payment", "Bill payment"
        CHARGE = "charge", "Card or PayPal charge"
        REFUND = "refund", "Refund"
        ADJUSTMENT = "adjustment", "Adjustment"
        REVERSAL = "reversal", "Reversal"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="ledger_entries")
    amount = models.DecimalField(max_digits=16, decimal_places=2, help_text="Signed: credits > 0.")
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reference = models.CharField(max_length=120, unique=True)
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    memo = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["account", "currency", "created_at"]),
            # Today's credits on the dashboard: entries arrive in time order, so BRIN is tiny.
            BrinIndex(fields=["created_at"], name="ledger_created_brin"),
        ]
        constraints = [
            models.CheckConstraint(name="ledger_amount_not_zero", condition=~Q(amount=0)),
            models.CheckConstraint(name="ledger_currency_iso", condition=Q(currency__regex=r"^[A-Z]{3}$")),
            models.CheckConstraint(
                name="ledger_reversal_links_original",
                condition=~Q(kind="reversal") | Q(reverses__isnull=False),
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="ledger_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
            audit.no_truncate("ledger_no_truncate"),
        ]

    def __str__(self) -> str:
        return f"{money_text(self.amount, self.currency, signed=True)} {self.get_kind_display()} ({self.reference})"

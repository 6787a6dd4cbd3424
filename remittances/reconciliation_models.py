"""RCN-1..3: the daily proof that the back office and the bank agree, per receiving account.

``ReconciliationDay``: one per receiving account and day (unique), written once by the daily job
(``remittances.services.reconciliation``) with the figures it checked: the bank's opening and
closing balances and the booked entries between (RCN-1), what the ledger credited against what
the bank paid in less reversals (RCN-2, dedicated accounts), and the booked credits per state
and age (RCN-3, shared accounts). Verdict ``agreed`` | ``difference`` -> ``resolved`` (a person
recorded a resolution of every exception). ``ReconciliationException``: one difference, with
the statements and entries involved and its resolution.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from billing_backoffice import audit

USER = settings.AUTH_USER_MODEL


@audit.track("rcnday")
class ReconciliationDay(models.Model):
    class Verdict(models.TextChoices):
        AGREED = "agreed", "Agreed"
        DIFFERENCE = "difference", "Difference"
        RESOLVED = "resolved", "Resolved"

    receiving_account = models.ForeignKey(
        "remittances.RemittanceAccount", on_delete=models.PROTECT, related_name="reconciliation_days"
    )
    day = models.DateField()
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    currency = models.CharField(max_length=3)
    opening_balance = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    booked_total = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    closing_balance = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    ledger_credited = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    bank_creditable = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    totals_per_state = models.JSONField(default=dict, help_text="RCN-3: {state: {count, amount, by_age}}")
    computed_at = models.DateTimeField()
    run_id = models.CharField(max_length=36, editable=False)

    class Meta:
        ordering = ["-day", "receiving_account_id"]
        permissions = [("resolve_reconciliationday", "Can record the resolution of reconciliation differences")]
        indexes = [models.Index(fields=["verdict", "day"]), models.Index(fields=["run_id"])]
        constraints = [
            models.UniqueConstraint(fields=["receiving_account", "day"], name="rcn_one_day_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.receiving_account.number} {self.day}: {self.get_verdict_display().lower()}"


@audit.track("rcnexc")
class ReconciliationException(models.Model):
    day = models.ForeignKey(ReconciliationDay, on_delete=models.PROTECT, related_name="exceptions")
    rule = models.CharField(max_length=8)
    detail = models.CharField(max_length=500)
    amount = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)  # the day's; every amount has one (I6)
    statement_ids = models.JSONField(default=list)
    transaction_ids = models.JSONField(default=list)
    resolved_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-day__day", "id"]
        indexes = [models.Index(fields=["resolved_at"], condition=Q(resolved_at__isnull=True), name="rcnexc_open")]
        constraints = [
            models.CheckConstraint(
                name="rcnexc_resolution_has_person",
                condition=Q(resolved_at__isnull=True) | (Q(resolved_by__isnull=False) & ~Q(resolution="")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail[:60]}"

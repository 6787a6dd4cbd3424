"""The remittances app's work queues (``billing_backoffice.work_queues``): each a named condition on
one model, counted on the admin index and selected by ``?queue=<name>`` on the model's list.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from billing_backoffice.work_queues import WorkQueue
from remittances.models import BankReversal, BankStatement, BankTransaction, CreditLimitRequest, RemittanceClaim

Claim = RemittanceClaim.Status


def credit_to_decide(*, user, now: datetime) -> Q:
    """CRED-1: applications waiting for a decision that ``user`` did not record (nobody decides
    an application they recorded)."""
    return Q(status=CreditLimitRequest.Status.SUBMITTED) & ~Q(recorded_by=user)


def claims_to_review(*, user, now: datetime) -> Q:
    """CLM-2: submitted claims with their transfer attached, for an account manager to review."""
    return Q(status=Claim.SUBMITTED, bank_transaction__isnull=False)


def claims_waiting(*, user, now: datetime) -> Q:
    """Submitted claims whose transfer has not arrived (nobody's work until it does)."""
    return Q(status=Claim.SUBMITTED, bank_transaction__isnull=True)


def claims_to_approve(*, user, now: datetime) -> Q:
    """CLM-3 four eyes: reviewed claims that ``user`` neither initiated nor reviewed."""
    return Q(status=Claim.REVIEWED) & ~Q(initiated_by=user) & ~Q(reviewed_by=user)


def unmatched_aged(first_day: int, last_day: int | None):
    """REM-2: unmatched shared-account transfers received ``first_day``..``last_day`` whole days ago."""

    def condition(*, user, now: datetime) -> Q:
        q = Q(status=BankTransaction.Status.UNMATCHED, received_at__lte=now - timedelta(days=first_day))
        if last_day is not None:
            q &= Q(received_at__gt=now - timedelta(days=last_day + 1))
        return q

    return condition


def currency_mismatches(*, user, now: datetime) -> Q:
    """Transfers held for review (a currency other than the receiving account's, or a repeat that
    differs): finance credits, returns or resolves them."""
    return Q(status=BankTransaction.Status.REVIEW)


def imported_today(*, user, now: datetime) -> Q:
    start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return Q(imported_at__gte=start)


def left_owing(*, user, now: datetime) -> Q:
    """RVS-1: reversals that left an account owing, not resolved yet
    (``selectors.accounts_left_owing_by_reversal`` lists the same rows)."""
    return Q(outcome=BankReversal.Outcome.OWING, resolved_at__isnull=True)


CREDIT_QUEUES = (WorkQueue("to_decide", "Waiting for my decision", CreditLimitRequest, credit_to_decide, "CRED-1"),)
CLAIM_QUEUES = (
    WorkQueue("to_review", "To review (account managers)", RemittanceClaim, claims_to_review, "CLM-2"),
    WorkQueue("waiting", "Waiting for the transfer", RemittanceClaim, claims_waiting, "CLM-2"),
    WorkQueue("to_approve", "To approve (finance, not my own)", RemittanceClaim, claims_to_approve, "CLM-3"),
)
TRANSACTION_QUEUES = (
    WorkQueue("unmatched_0_2d", "Unmatched, 0-2 days", BankTransaction, unmatched_aged(0, 2), "REM-2"),
    WorkQueue("unmatched_3_7d", "Unmatched, 3-7 days", BankTransaction, unmatched_aged(3, 7), "REM-2"),
    WorkQueue("unmatched_older", "Unmatched, older than 7 days", BankTransaction, unmatched_aged(8, None), "REM-2"),
    WorkQueue("review", "Currency mismatches to resolve", BankTransaction, currency_mismatches, "REM-2"),
)
STATEMENT_QUEUES = (WorkQueue("today", "Imported today", BankStatement, imported_today),)
REVERSAL_QUEUES = (WorkQueue("owing", "Accounts left owing", BankReversal, left_owing, "RVS-1"),)

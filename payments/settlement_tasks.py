"""Celery tasks of settlement and overdue marking (SET-1..4, CRED-3): thin, ids in, one service
call each, retried only on transient database errors (``payments.tasks.RETRY_OPTIONS``).

Every task is safe to run twice or concurrently: the settlement locks the account rows and
posts each allocation under a unique reference (SET-4), and overdue marking is a conditional
UPDATE. That is also how "one sweep per window" is met: two beat firings in one window (or a
sweep redelivered after a worker died) fan out the same chunks twice, and the second settlement
of each chunk finds nothing left to pay and changes nothing (tested). Overlapping sweeps are
cheap: one query to find the accounts, then one small task per chunk.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from payments.services.bills import bills_mark_overdue
from payments.services.settlement import settle_accounts, settlement_due_chunks
from payments.tasks import RETRY_OPTIONS


@shared_task(name="payments.settle_account", **RETRY_OPTIONS)
def settle_account(*, account_id: int) -> int:
    """SET-2: pay one account's unpaid bills from its balance (after a credit); payments made."""
    return settle_accounts(account_ids=[account_id], now=timezone.now()).payments


@shared_task(name="payments.settle_chunk", **RETRY_OPTIONS)
def settle_chunk(*, account_ids: list[int]) -> int:
    """SET-2 / SET-4: settle one chunk of accounts in one set-based transaction."""
    return settle_accounts(account_ids=account_ids, now=timezone.now()).payments


@shared_task(name="payments.settlement_sweep", **RETRY_OPTIONS)
def settlement_sweep() -> int:
    """SET-2 (beat): fan out the accounts with unpaid bills and money into chunk tasks."""
    chunks = settlement_due_chunks()
    for chunk in chunks:
        settle_chunk.delay_on_commit(account_ids=chunk)
    return len(chunks)


@shared_task(name="payments.mark_overdue_bills", **RETRY_OPTIONS)
def mark_overdue_bills() -> int:
    """CRED-3: unpaid bills past their due date become overdue."""
    return bills_mark_overdue(now=timezone.now())

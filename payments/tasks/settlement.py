"""Celery tasks of settlement (SET-1..4): thin, ids in, one service call each
(``payments.services.settlement``), retried only on transient database errors
(``billing_backoffice.task_retries``). Overdue marking (CRED-3) is ``payments.tasks.bills``.

Every task is safe to run twice or concurrently: the settlement locks the account rows and
posts each allocation under a unique reference (SET-4). Overlapping sweeps are cheap: one query to find the accounts, then one small task per
chunk.

One sweep per window (SET-4): ``settlement_sweep`` claims its beat window first
(``billing_backoffice/scheduled_runs.py``; the window is the beat interval the firing fell in,
``2026-11-26T12:15:00Z`` for the default 15 minutes). A second beat firing in that window is
skipped: it returns 0 and sends no chunk. The same message delivered again after its worker died
sweeps again, as does a later firing once a dead sweep's lease expired: the chunks it sends
again find nothing left to pay. A finished sweep is never repeated in its window.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing_backoffice.scheduled_runs import beat_window, firing_task_id, window_claim, window_finish
from billing_backoffice.task_retries import RETRY_OPTIONS
from payments.services.settlement import settle_accounts, settlement_due_chunks


@shared_task(name="payments.settle_account", **RETRY_OPTIONS)
def settle_account(*, account_id: int) -> int:
    """SET-2: pay one account's unpaid bills from its balance (after a credit); payments made."""
    return settle_accounts(account_ids=[account_id], now=timezone.now()).payments


@shared_task(name="payments.settle_chunk", **RETRY_OPTIONS)
def settle_chunk(*, account_ids: list[int]) -> int:
    """SET-2 / SET-4: settle one chunk of accounts in one set-based transaction."""
    return settle_accounts(account_ids=account_ids, now=timezone.now()).payments


@shared_task(bind=True, name="payments.settlement_sweep", **RETRY_OPTIONS)
def settlement_sweep(self) -> int:
    """SET-2 (beat): fan out the accounts with unpaid bills and money into chunk tasks, once per
    window (SET-4). Returns how many chunks were sent (0 when the window's sweep is another's)."""
    now, task_id = timezone.now(), firing_task_id(self.request)
    run = window_claim(job=self.name, window=beat_window(task_name=self.name, now=now), task_id=task_id, now=now)
    if run is None:
        return 0
    chunks = settlement_due_chunks()
    for chunk in chunks:
        settle_chunk.delay_on_commit(account_ids=chunk)
    window_finish(run=run, now=timezone.now())  # after the chunks are sent: a crash before resends them
    return len(chunks)

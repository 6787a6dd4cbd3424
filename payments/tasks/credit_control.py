"""Celery tasks of credit control (CC-1..3): ids in, one service call each, retried only on
transient database errors (``billing_backoffice.task_retries``).

``run_reminders`` (beat, hourly by default) runs once per beat window
(``billing_backoffice/scheduled_runs.py``): it ends expired pauses, lifts the holds of accounts
with nothing overdue, and fans the accounts with bills past due out into chunk tasks. The chunks
are idempotent (one reminder per bill and level, one hold in force per account, notifications
keyed by event), so a redelivered firing or a chunk run twice sends nothing twice.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from billing_backoffice.scheduled_runs import beat_window, firing_task_id, window_claim, window_finish
from billing_backoffice.task_retries import RETRY_OPTIONS
from payments.services import credit_control


@shared_task(bind=True, name="payments.run_reminders", **RETRY_OPTIONS)
def run_reminders(self) -> int:
    """CC-1 (beat): once per window, fan the accounts with bills past due out into chunks."""
    now, task_id = timezone.now(), firing_task_id(self.request)
    run = window_claim(job=self.name, window=beat_window(task_name=self.name, now=now), task_id=task_id, now=now)
    if run is None:
        return 0
    credit_control.reminder_pauses_end_expired(now=now)
    credit_control.credit_holds_lift_settled(now=now)
    chunks = credit_control.reminder_due_chunks(now=now)
    for chunk in chunks:
        send_reminders_chunk.delay_on_commit(account_ids=chunk)
    window_finish(run=run, now=timezone.now())  # after the chunks are sent: a crash before resends them
    return len(chunks)


@shared_task(name="payments.send_reminders_chunk", **RETRY_OPTIONS)
def send_reminders_chunk(*, account_ids: list[int]) -> int:
    """CC-1 / CC-2: the due reminders and holds of one chunk of accounts."""
    return credit_control.reminders_send_chunk(account_ids=account_ids, now=timezone.now()).reminders

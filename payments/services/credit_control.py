"""Credit control (CC-1..3): the reminder schedule, credit holds and reminder pauses.

The reminder job (``payments.run_reminders``, once per beat window) does, in order:

1. ends the pauses whose end date passed (``reminder_pauses_end_expired``, CC-3), recorded by
   the audit trail like every other change here (SEC-2);
2. lifts the holds of accounts with nothing overdue any more (``credit_holds_lift_settled``, CC-2);
3. splits the accounts with a bill past its due date, paused ones left out, into chunks
   (``reminder_due_chunks``) and sends each chunk's due reminders, holds and their notifications
   in one statement (``reminders_send_chunk``, in ``payments/services/reminders.py``, with the
   levels, the once-a-day rule and the poison-item isolation).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection, transaction

from billing_backoffice.free_text import free_text_check
from billing_backoffice.permissions import staff_require
from payments.errors import AccountNotFound
from payments.models import Account, Bill, CreditHold, Reminder, ReminderPause
from payments.models.credit_control import MAX_PAUSE
from payments.services.notifications import Event, notify, notify_many
from payments.services.reminders import (  # noqa: F401 (the schedule, importable from here)
    DEFAULT_CHUNK_SIZE,
    DEFAULT_REMINDER_DAYS,
    FINAL_LEVEL,
    REMINDER_JOB,
    UNPAID,
    ChunkResult,
    _params,
    chunk_size,
    reminder_days,
    reminder_due_chunks,
    reminders_send_chunk,
)
from payments.errors import (  # noqa: F401 (raised here, importable from here)
    CreditHoldNotFound,
    CreditHoldOn,
    PauseAlreadyInForce,
    PauseInvalid,
    PauseNotFound,
)

logger = logging.getLogger(__name__)

PAUSE_PERMISSION = "payments.pause_reminderpause"
LIFT_PERMISSION = "payments.lift_credithold"

_BILL, _HOLD = Bill._meta.db_table, CreditHold._meta.db_table


# -- CC-2: orders -------------------------------------------------------------------------------


def credit_hold_refusal(*, account_id: int) -> CreditHoldOn | None:
    """CC-2: the refusal of a new order while the account is on hold (usage is still accepted)."""
    if CreditHold.objects.filter(account_id=account_id, lifted_at__isnull=True).exists():
        return CreditHoldOn()
    return None


def account_credit_state(*, account_id: int, now: datetime) -> dict:
    """What the admin shows: the highest level reached by an unpaid bill, the pause and the hold."""
    level = (
        Reminder.objects.filter(account_id=account_id, bill__status__in=UNPAID)
        .order_by("-level").values_list("level", flat=True).first()
    )
    pause = ReminderPause.objects.filter(account_id=account_id, ended_at__isnull=True, ends_at__gt=now).first()
    hold = CreditHold.objects.filter(account_id=account_id, lifted_at__isnull=True).first()
    return {"level": level or 0, "pause": pause, "hold": hold}


# -- CC-2: lifted by itself ------------------------------------------------------------------

_LIFT_SQL = f"""
    UPDATE {_HOLD} h SET lifted_at = %(now)s
    WHERE h.lifted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM {_BILL} b WHERE b.account_id = h.account_id
                      AND b.status = ANY(%(unpaid)s) AND b.due_date < %(today)s)
    RETURNING h.id, h.account_id
"""


@transaction.atomic
def credit_holds_lift_settled(*, now: datetime) -> int:
    """CC-2: the holds of accounts with no bill past its due date any more end by themselves."""
    with connection.cursor() as cursor:
        cursor.execute(_LIFT_SQL, _params(now))
        lifted = cursor.fetchall()
    notify_many(events=[Event(account_id, "credit_hold_ended", f"cc2:hold:{hold_id}:ended") for hold_id, account_id in lifted],
                now=now)
    if lifted:
        logger.info("CC-2: %s credit hold(s) lifted (nothing overdue)", len(lifted))
    return len(lifted)


def reminder_pauses_end_expired(*, now: datetime) -> int:
    """CC-3: pauses past their end date end (``ended_at`` = their end date), recorded (SEC-2)."""
    from django.db.models import F

    return ReminderPause.objects.filter(ended_at__isnull=True, ends_at__lte=now).update(ended_at=F("ends_at"))


# -- CC-2: finance lifts early ------------------------------------------------------------------


@transaction.atomic
def credit_hold_lift(*, account_id: int, reason: str, actor, now: datetime) -> CreditHold:
    """CC-2: finance lifts a hold before the bills are paid, with a reason (recorded, SEC-2)."""
    staff_require(actor, permission=LIFT_PERMISSION, action="lift credit holds", rule="CC-2", system_allowed=False)
    reason = (reason or "").strip()
    if not reason:
        raise PauseInvalid("Give a reason for lifting the hold.", rule="CC-2", code="reason_required")
    free_text_check(reason=reason)
    hold = CreditHold.objects.select_for_update().filter(account_id=account_id, lifted_at__isnull=True).first()
    if hold is None:
        raise CreditHoldNotFound()
    hold.lifted_at, hold.lifted_by, hold.lift_reason = now, actor, reason[:500]
    hold.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    notify(account_id=account_id, kind="credit_hold_ended", event_key=f"cc2:hold:{hold.pk}:ended", params={}, now=now)
    logger.info("CC-2: credit hold %s of account %s lifted by user %s", hold.pk, account_id, actor.pk)
    return hold


# -- CC-3: pauses -------------------------------------------------------------------------------


@transaction.atomic
def reminder_pause(*, account_id: int, reason: str, ends_at: datetime, actor, now: datetime) -> ReminderPause:
    """CC-3: an account manager pauses the account's reminders until ``ends_at`` (<= 30 days)."""
    staff_require(actor, permission=PAUSE_PERMISSION, action="pause reminders", rule="CC-3", system_allowed=False)
    reason = (reason or "").strip()
    if not reason:
        raise PauseInvalid("Give a reason for the pause.", code="reason_required")
    free_text_check(reason=reason)
    if ends_at <= now:
        raise PauseInvalid("The end of the pause must be in the future.")
    if ends_at > now + MAX_PAUSE:
        raise PauseInvalid(f"A pause lasts at most {MAX_PAUSE.days} days (until {now + MAX_PAUSE:%Y-%m-%d %H:%M} UTC).")
    try:
        Account.objects.select_for_update().get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound() from None
    reminder_pauses_end_expired(now=now)
    if ReminderPause.objects.filter(account_id=account_id, ended_at__isnull=True).exists():
        raise PauseAlreadyInForce()
    pause = ReminderPause.objects.create(
        account_id=account_id, reason=reason[:500], started_at=now, ends_at=ends_at, created_by=actor
    )
    logger.info("CC-3: reminders of account %s paused until %s by user %s", account_id, ends_at, actor.pk)
    return pause


@transaction.atomic
def reminder_pause_end(*, account_id: int, actor, now: datetime) -> ReminderPause:
    """CC-3: the account manager ends the pause early; the next run sends what is due."""
    staff_require(actor, permission=PAUSE_PERMISSION, action="resume reminders", rule="CC-3", system_allowed=False)
    pause = (
        ReminderPause.objects.select_for_update()
        .filter(account_id=account_id, ended_at__isnull=True, ends_at__gt=now).first()
    )
    if pause is None:
        raise PauseNotFound()
    pause.ended_at, pause.ended_by = now, actor
    pause.save(update_fields=["ended_at", "ended_by"])
    return pause

"""Credit control (CC-1..3): the reminder schedule, credit holds and reminder pauses.

The reminder job (``payments.notify_tasks.run_reminders``, once per beat window) does, in order:

1. ends the pauses whose end date passed (``reminder_pauses_end_expired``, CC-3), recorded by
   the audit trail like every other change here (SEC-2);
2. lifts the holds of accounts with nothing overdue any more (``credit_holds_lift_settled``, CC-2);
3. splits the accounts with a bill past its due date, paused ones left out, into chunks
   (``reminder_due_chunks``); each chunk is one transaction (``reminders_send_chunk``):
   one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` writes the next level of every bill that
   is due for it, one ``INSERT`` puts the accounts that reached the final level on hold, and the
   notifications of both are written in the same transaction (NOTIFY-2).

Levels (CC-1): level N is due once the bill is ``CC_REMINDER_DAYS[N-1]`` days past its due date
(1, 7 and 14 by default) and level N-1 was sent: each level once per bill (unique (bill,
level)), in order, at most one level per bill and day: a job that was down for weeks catches
up one level a day, and a chunk run again the same day (a redelivery) sends nothing. "Past due"
is the calendar day (UTC) of the run after the due date, whether or not the overdue marking
(CRED-3) ran yet; a bill that is paid leaves the schedule. A run repeated, or two runs at once,
send nothing twice: the unique constraint decides, and the notifications are keyed by bill and
level.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing_backoffice.free_text import free_text_check
from billing_backoffice.permissions import staff_require
from payments.errors import AccountNotFound
from payments.models import Account, Bill, CreditHold, Reminder, ReminderPause
from payments.models.credit_control import MAX_PAUSE
from payments.services.notifications import Event, notify, notify_many
from payments.errors import (  # noqa: F401 (raised here, importable from here)
    CreditHoldNotFound,
    CreditHoldOn,
    PauseAlreadyInForce,
    PauseInvalid,
    PauseNotFound,
)

logger = logging.getLogger(__name__)

DEFAULT_REMINDER_DAYS = (1, 7, 14)
DEFAULT_CHUNK_SIZE = 500
FINAL_LEVEL = Reminder.Level.FINAL
UNPAID = tuple(str(s) for s in Bill.UNPAID_STATUSES)
PAUSE_PERMISSION = "payments.pause_reminderpause"
LIFT_PERMISSION = "payments.lift_credithold"

_BILL, _REMINDER = Bill._meta.db_table, Reminder._meta.db_table
_HOLD, _PAUSE = CreditHold._meta.db_table, ReminderPause._meta.db_table


def reminder_days() -> tuple[int, int, int]:
    days = tuple(getattr(settings, "CC_REMINDER_DAYS", DEFAULT_REMINDER_DAYS))
    if len(days) != 3 or not 1 <= days[0] < days[1] < days[2]:
        raise ValueError(f"CC_REMINDER_DAYS must be three increasing day counts from 1, not {days!r}")
    return days  # type: ignore[return-value]


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


# -- CC-1: the schedule -------------------------------------------------------------------------

_PAUSED = f"""
    EXISTS (SELECT 1 FROM {_PAUSE} p WHERE p.account_id = b.account_id AND p.ended_at IS NULL
            AND p.started_at <= %(now)s AND p.ends_at > %(now)s)
"""

_DUE_ACCOUNTS_SQL = f"""
    SELECT DISTINCT b.account_id FROM {_BILL} b
    WHERE b.status = ANY(%(unpaid)s) AND b.due_date < %(today)s AND NOT {_PAUSED}
    ORDER BY b.account_id
"""

_SEND_SQL = f"""
    WITH candidates AS (
        SELECT b.id AS bill_id, b.account_id, (%(today)s::date - b.due_date) AS days,
               COALESCE(last.level, 0) + 1 AS next_level, last.sent_at AS last_sent_at
        FROM {_BILL} b
        LEFT JOIN LATERAL (
            SELECT r.level, r.sent_at FROM {_REMINDER} r WHERE r.bill_id = b.id ORDER BY r.level DESC LIMIT 1
        ) last ON TRUE
        WHERE b.account_id = ANY(%(account_ids)s) AND b.status = ANY(%(unpaid)s) AND b.due_date < %(today)s
          AND NOT {_PAUSED}
    ),
    sent AS (
        INSERT INTO {_REMINDER} (bill_id, account_id, level, days_past_due, sent_at)
        SELECT bill_id, account_id, next_level, days, %(now)s FROM candidates
        WHERE next_level <= 3 AND days >= (%(days)s::int[])[next_level]
          AND (last_sent_at IS NULL OR last_sent_at < %(day_start)s)
        ORDER BY bill_id
        ON CONFLICT (bill_id, level) DO NOTHING
        RETURNING id, bill_id, account_id, level, days_past_due
    )
    SELECT sent.id, sent.account_id, sent.level, sent.days_past_due, b.id, b.reference, b.total - b.amount_paid,
           b.currency, b.due_date
    FROM sent JOIN {_BILL} b ON b.id = sent.bill_id
    ORDER BY sent.id
"""

_HOLD_SQL = f"""
    INSERT INTO {_HOLD} (account_id, reminder_id, started_at, lift_reason)
    SELECT DISTINCT ON (account_id) account_id, reminder_id, %(now)s, '' FROM unnest(%(accounts)s::bigint[], %(reminders)s::bigint[]) AS f(account_id, reminder_id)
    ORDER BY account_id, reminder_id
    ON CONFLICT (account_id) WHERE lifted_at IS NULL DO NOTHING
    RETURNING id, account_id, reminder_id
"""

_LIFT_SQL = f"""
    UPDATE {_HOLD} h SET lifted_at = %(now)s
    WHERE h.lifted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM {_BILL} b WHERE b.account_id = h.account_id
                      AND b.status = ANY(%(unpaid)s) AND b.due_date < %(today)s)
    RETURNING h.id, h.account_id
"""


def _params(now: datetime, **extra) -> dict:
    today = timezone.localdate(now)
    day_start = timezone.make_aware(datetime.combine(today, time.min))  # the day of ``today``
    return {"now": now, "today": today, "day_start": day_start, "unpaid": list(UNPAID), **extra}


def chunk_size() -> int:
    return getattr(settings, "CC_REMINDER_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)


def reminder_due_chunks(*, now: datetime, size: int | None = None) -> list[list[int]]:
    """CC-1: the accounts with a bill past its due date and no pause in force, in chunks."""
    size = size or chunk_size()
    with connection.cursor() as cursor:
        cursor.execute(_DUE_ACCOUNTS_SQL, _params(now))
        ids = [row[0] for row in cursor.fetchall()]
    return [ids[start : start + size] for start in range(0, len(ids), size)]


@dataclass
class ChunkResult:
    reminders: int = 0
    holds: int = 0


LEVEL_NAMES = {1: "Reminder", 2: "Second reminder", 3: "Final notice"}
FINAL_WORDS = " This is the final notice: until the overdue bills are paid, new orders are refused."


@transaction.atomic
def reminders_send_chunk(*, account_ids: list[int], now: datetime) -> ChunkResult:
    """CC-1 / CC-2: the due reminder levels of these accounts' bills, their holds, and the
    notifications of both, in one transaction with a fixed number of statements."""
    with connection.cursor() as cursor:
        cursor.execute(_SEND_SQL, _params(now, account_ids=list(account_ids), days=list(reminder_days())))
        sent = cursor.fetchall()
        finals = [(row[1], row[0]) for row in sent if row[2] == FINAL_LEVEL]
        holds = []
        if finals:
            cursor.execute(_HOLD_SQL, _params(now, accounts=[a for a, _ in finals], reminders=[r for _, r in finals]))
            holds = cursor.fetchall()
    bill_of_reminder = {row[0]: row[5] for row in sent}
    events = [
        Event(account_id, "bill_overdue", f"cc1:bill:{bill_id}:level:{level}", {
            "level": level, "level_name": LEVEL_NAMES[level], "bill": reference, "outstanding": outstanding,
            "currency": currency, "due_date": due_date.isoformat(), "days": days,
            "final": FINAL_WORDS if level == FINAL_LEVEL else "",
        })
        for _, account_id, level, days, bill_id, reference, outstanding, currency, due_date in sent
    ]
    events += [
        Event(account_id, "credit_hold_started", f"cc2:hold:{hold_id}:started", {"bill": bill_of_reminder.get(reminder_id, "")})
        for hold_id, account_id, reminder_id in holds
    ]
    notify_many(events=events, now=now)
    if sent:
        logger.info("CC-1: %s reminder(s) sent, %s account(s) put on credit hold (CC-2)", len(sent), len(holds))
    return ChunkResult(reminders=len(sent), holds=len(holds))


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

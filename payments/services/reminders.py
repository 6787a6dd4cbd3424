"""The reminder schedule (CC-1) and the holds it places (CC-2): one statement per chunk.

``reminders_send_chunk`` (``payments.send_reminders_chunk``, one task per chunk of
``reminder_due_chunks``) runs ONE statement for a chunk of accounts, whatever its size:

- ``sent``: ``INSERT ... SELECT ... ON CONFLICT (bill, level) DO NOTHING`` of the next level
  of every bill due for it (level N once the bill is ``CC_REMINDER_DAYS[N-1]`` days past its
  due date and level N-1 was sent on an earlier day: each level once, in order, at most one a
  day: a job that was down catches up a level a day, a chunk redelivered the same day sends
  nothing);
- ``held``: the accounts that just reached the final level go on hold (one in force per
  account, ``ON CONFLICT DO NOTHING``; a hold finance lifted is not put back for a bill that
  already had its final notice);
- ``notified``: the console message and e-mail of each reminder and hold, rendered and written
  in the same statement (``payments/services/notification_sql.py``; keyed by bill and level,
  and by hold, so a replay notifies nobody twice), and the new e-mails handed to the delivery
  task after the commit.

"Past due" is the calendar day (UTC) of the run after the due date, whether or not the
overdue marking (CRED-3) ran yet; a paid bill leaves the schedule; a paused account (CC-3) is
left out. Two runs at once send nothing twice: the unique constraints decide.

Poison items (``billing_backoffice/item_failures.py``): a chunk the database refuses is run
again account by account, so one bad account is recorded and retried later, bounded, while
every other account of the chunk gets its reminders; accounts waiting for their retry, or given
up until staff retry them, are left out of the chunk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing_backoffice.enqueue import enqueue_on_commit
from billing_backoffice.item_failures import JobItems
from payments.models import Bill, CreditHold, Reminder, ReminderPause
from payments.services.notification_sql import (
    CARD_LIKE_EVENTS_SQL,
    PENDING_EMAILS_SQL,
    card_like_sql,
    outbox_ctes,
    outbox_params,
)
from payments.services.notifications import DELIVER_TASK, Event, notify_many

logger = logging.getLogger("payments.services.credit_control")

REMINDER_JOB = "payments.send_reminders_chunk"
DEFAULT_REMINDER_DAYS = (1, 7, 14)
DEFAULT_CHUNK_SIZE = 500
FINAL_LEVEL = Reminder.Level.FINAL
UNPAID = tuple(str(s) for s in Bill.UNPAID_STATUSES)
LEVEL_NAMES = {1: "Reminder", 2: "Second reminder", 3: "Final notice"}
FINAL_WORDS = " This is the final notice: until the overdue bills are paid, new orders are refused."

_BILL, _REMINDER = Bill._meta.db_table, Reminder._meta.db_table
_HOLD, _PAUSE = CreditHold._meta.db_table, ReminderPause._meta.db_table


def reminder_days() -> tuple[int, int, int]:
    days = tuple(getattr(settings, "CC_REMINDER_DAYS", DEFAULT_REMINDER_DAYS))
    if len(days) != 3 or not 1 <= days[0] < days[1] < days[2]:
        raise ValueError(f"CC_REMINDER_DAYS must be three increasing day counts from 1, not {days!r}")
    return days  # type: ignore[return-value]


def chunk_size() -> int:
    return getattr(settings, "CC_REMINDER_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)


def _params(now: datetime, **extra) -> dict:
    today = timezone.localdate(now)
    day_start = timezone.make_aware(datetime.combine(today, time.min))  # the day of ``today``
    return {"now": now, "today": today, "day_start": day_start, "unpaid": list(UNPAID), **extra}


_PAUSED = f"""
    EXISTS (SELECT 1 FROM {_PAUSE} p WHERE p.account_id = b.account_id AND p.ended_at IS NULL
            AND p.started_at <= %(now)s AND p.ends_at > %(now)s)
"""

_DUE_ACCOUNTS_SQL = f"""
    SELECT DISTINCT b.account_id FROM {_BILL} b
    WHERE b.status = ANY(%(unpaid)s) AND b.due_date < %(today)s AND NOT {_PAUSED}
    ORDER BY b.account_id
"""


def reminder_due_chunks(*, now: datetime, size: int | None = None) -> list[list[int]]:
    """CC-1: the accounts with a bill past its due date and no pause in force, in chunks."""
    size = size or chunk_size()
    with connection.cursor() as cursor:
        cursor.execute(_DUE_ACCOUNTS_SQL, _params(now))
        ids = [row[0] for row in cursor.fetchall()]
    return [ids[start : start + size] for start in range(0, len(ids), size)]


_SEND_SQL = f"""
    WITH candidates AS (
        SELECT b.id AS bill_id, b.account_id, (%(today)s::date - b.due_date) AS days,
               COALESCE(last.level, 0) + 1 AS next_level, last.sent_at AS last_sent_at
        FROM {_BILL} b
        LEFT JOIN LATERAL (
            SELECT r.level, r.sent_at FROM {_REMINDER} r WHERE r.bill_id = b.id ORDER BY r.level DESC LIMIT 1
        ) last ON TRUE
        WHERE b.account_id = ANY(%(account_ids)s::bigint[]) AND b.status = ANY(%(unpaid)s)
          AND b.due_date < %(today)s AND NOT {_PAUSED}
    ),
    sent AS (
        INSERT INTO {_REMINDER} (bill_id, account_id, level, days_past_due, sent_at)
        SELECT bill_id, account_id, next_level, days, %(now)s FROM candidates
        WHERE next_level <= 3 AND days >= (%(days)s::int[])[next_level]
          AND (last_sent_at IS NULL OR last_sent_at < %(day_start)s)
        ORDER BY bill_id
        ON CONFLICT (bill_id, level) DO NOTHING
        RETURNING id, bill_id, account_id, level, days_past_due
    ),
    held AS (
        INSERT INTO {_HOLD} (account_id, reminder_id, started_at, lift_reason)
        SELECT DISTINCT ON (account_id) account_id, id, %(now)s, '' FROM sent WHERE level = {int(FINAL_LEVEL)}
        ORDER BY account_id, id
        ON CONFLICT (account_id) WHERE lifted_at IS NULL DO NOTHING
        RETURNING id, account_id, reminder_id
    ),
    events AS (
        SELECT s.account_id, 'bill_overdue' AS kind, 'cc1:bill:' || s.bill_id || ':level:' || s.level AS event_key,
               jsonb_build_object(
                   'level', s.level::text, 'level_name', (%(level_names)s::text[])[s.level], 'bill', b.reference,
                   'outstanding', (b.total - b.amount_paid)::text, 'currency', b.currency,
                   'due_date', to_char(b.due_date, 'YYYY-MM-DD'), 'days', s.days_past_due::text,
                   'final', CASE WHEN s.level = {int(FINAL_LEVEL)} THEN %(final)s ELSE '' END
               ) AS params, '' AS link, s.id AS seq,
               {card_like_sql("b.reference || '|' || (b.total - b.amount_paid)::text")} AS card_like
        FROM sent s JOIN {_BILL} b ON b.id = s.bill_id
        UNION ALL
        SELECT h.account_id, 'credit_hold_started', 'cc2:hold:' || h.id || ':started',
               jsonb_build_object('bill', b.reference), '', (SELECT max(id) FROM sent) + h.id,
               {card_like_sql("b.reference")}
        FROM held h JOIN sent s ON s.id = h.reminder_id JOIN {_BILL} b ON b.id = s.bill_id
    ),
    {outbox_ctes(kinds=("bill_overdue", "credit_hold_started"))}
    SELECT (SELECT count(*) FROM sent), (SELECT count(*) FROM held), {PENDING_EMAILS_SQL}, {CARD_LIKE_EVENTS_SQL}
"""


@dataclass
class ChunkResult:
    reminders: int = 0
    holds: int = 0

    def __add__(self, other: "ChunkResult") -> "ChunkResult":
        return ChunkResult(self.reminders + other.reminders, self.holds + other.holds)


def _send(account_ids: list[int], *, now: datetime) -> ChunkResult:
    """The one statement of a chunk (see the module docstring), in the caller's transaction."""
    params = _params(
        now, account_ids=list(account_ids), days=list(reminder_days()),
        level_names=[LEVEL_NAMES[level] for level in sorted(LEVEL_NAMES)], final=FINAL_WORDS,
    )
    with connection.cursor() as cursor:
        cursor.execute(_SEND_SQL, outbox_params(**params))
        reminders, holds, pending, card_like = cursor.fetchone()
    if pending:
        enqueue_on_commit(DELIVER_TASK, notification_ids=list(pending))
    if card_like:  # the redaction decides for these (SEC-1): the Python path of the outbox
        notify_many(events=[Event(*event) for event in card_like], now=now)
    if reminders:
        logger.info("CC-1: %s reminder(s) sent, %s account(s) put on credit hold (CC-2)", reminders, holds)
    return ChunkResult(reminders=reminders, holds=holds)


def reminders_send_chunk(*, account_ids: list[int], now: datetime) -> ChunkResult:
    """CC-1 / CC-2: the due reminder levels of these accounts' bills, their holds, and the
    notifications of both: one statement, in a transaction (a savepoint inside the caller's);
    a chunk that fails is run account by account, so only a poison account fails (recorded)."""
    items = JobItems(job=REMINDER_JOB, item_kind="payments.account", now=now)
    ids = sorted({int(pk) for pk in account_ids})
    return items.run_chunk(ids, lambda chunk: _send(chunk, now=now), combine=lambda results: sum(results, ChunkResult()))

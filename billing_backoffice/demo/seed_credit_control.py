"""Demo credit control (CC-1..3) and customer notifications (NOTIFY-1): what the reminder job
would have left after running daily over the last three weeks, plus one pause.

After the billing history is played up to ``now``, the reminder job's own services run once a day
for the last ``DAYS`` days (at ``now``'s time of day, so each run is on its own calendar day at
any hour, midnight included): the demo's unpaid bills past their due date get their levels (1,
7 and 14 days late, one a day), the accounts that reach the final notice go on credit hold, and
every reminder and hold is a console message and an e-mail (the mailbox). Then one account with
an unpaid bill and no hold gets a pause by the demo account manager (CC-3).

Idempotent: the reminders are unique per bill and level and at most one a day, the holds one in
force per account, the notifications unique per event; a second seed at the same ``now`` writes
nothing, a later one only what the job itself would then send. The pause is placed only when no
demo account has one in force.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from payments.models import Account, Bill, CreditHold, Notification, Reminder, ReminderPause
from payments.services import credit_control as cc

from .tables import UID_PREFIX

DAYS = 21
PAUSE_DAYS = 14
PAUSE_REASON = "Customer disputes the last invoice; the account manager is checking it (demo)."


def _overdue_account_ids() -> list[int]:
    return sorted(set(
        Bill.objects.filter(account__uid__startswith=UID_PREFIX, status__in=cc.UNPAID)
        .values_list("account_id", flat=True)
    ))


def seed_credit_control(*, now: datetime, manager) -> dict[str, int]:
    """Run the reminder job daily over the last ``DAYS`` days for the demo accounts, and pause
    one; returns what the demo then holds (counts by level, holds, pauses, messages)."""
    ids = _overdue_account_ids()
    for days_ago in range(DAYS, -1, -1):
        day = now - timedelta(days=days_ago)
        cc.reminder_pauses_end_expired(now=day)
        cc.credit_holds_lift_settled(now=day)
        for chunk in cc.reminder_due_chunks(now=day):
            demo_chunk = [pk for pk in chunk if pk in set(ids)]
            if demo_chunk:
                cc.reminders_send_chunk(account_ids=demo_chunk, now=day)
    _pause_one(now=now, manager=manager)
    return credit_control_counts()


def _pause_one(*, now: datetime, manager) -> None:
    demo = {"account__uid__startswith": UID_PREFIX}
    if ReminderPause.objects.filter(ended_at__isnull=True, ends_at__gt=now, **demo).exists():
        return
    held = CreditHold.objects.filter(lifted_at__isnull=True, **demo).values_list("account_id", flat=True)
    paused = ReminderPause.objects.filter(ended_at__isnull=True).values("account_id")
    accounts = Account.objects.filter(uid__startswith=UID_PREFIX).exclude(pk__in=paused)
    candidate = (  # an account with an unpaid bill and no hold; else any demo account
        accounts.filter(bills__status__in=cc.UNPAID).exclude(pk__in=held).order_by("pk").values_list("pk", flat=True).first()
        or accounts.order_by("pk").values_list("pk", flat=True).first()
    )
    if candidate is not None:
        cc.reminder_pause(account_id=candidate, reason=PAUSE_REASON, ends_at=now + timedelta(days=PAUSE_DAYS),
                          actor=manager, now=now)


def credit_control_counts() -> dict[str, int]:
    demo = {"account__uid__startswith": UID_PREFIX}
    counts = {
        f"reminders at level {level}": Reminder.objects.filter(level=level, **demo).count() for level in (1, 2, 3)
    }
    counts["credit holds in force"] = CreditHold.objects.filter(lifted_at__isnull=True, **demo).count()
    counts["reminder pauses"] = ReminderPause.objects.filter(**demo).count()
    counts["console messages"] = Notification.objects.filter(channel=Notification.Channel.CONSOLE, **demo).count()
    counts["e-mails"] = Notification.objects.filter(channel=Notification.Channel.EMAIL, **demo).count()
    return counts

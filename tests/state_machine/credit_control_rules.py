"""Credit control and customer notifications in the state machine (issue 12: CC-1..3, NOTIFY-2).

Mixed into ``BillingMachine``: the reminder job as beat runs it (expired pauses end, settled
holds lift, the due accounts in chunks, each chunk's one statement), sometimes twice in a window
or with the worker dying after the commit and before the e-mails were handed on; account
managers pause and resume reminders, finance lifts a hold with a reason; customers give an
e-mail address (so e-mails are really sent); the ``payments.deliver_notifications`` messages are
delivered once, twice or lost, and the sweep sends what a crash left behind.

Checked after every step: each e-mail is sent at most once (the mail outbox holds exactly the
notifications marked sent, NOTIFY-2), each reminder level once per bill and in order, none after
the bill was paid and none while the account was paused (CC-1, CC-3), every hold in force comes
from a final notice (CC-2). Right after a reminder run: a hold is in force if and only if the
account has a bill past due that had its final notice and finance has not lifted the hold since
(CC-2: it also lifts by itself once nothing is overdue).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import Permission
from django.core import mail
from django.db.models import Exists, F, OuterRef, Q
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from payments.models import Account, Bill, CreditHold, Notification, Reminder, ReminderPause
from payments.services import credit_control, notifications
from payments.services.notifications import DELIVER_TASK

index = st.integers(min_value=0, max_value=10_000)
EMAIL = Notification.Channel.EMAIL


def _count_levels(result) -> None:
    """What the runs reached, for the test's summary (``pytest -s``)."""
    from .machine import STATS  # the machine imports this module

    if result is not None:
        STATS["CC-1 reminders sent"] += result.reminders
        STATS["CC-2 holds placed"] += result.holds


class CreditControlRules:
    """Rules and checks of CC-1..CC-3 and NOTIFY-2 (see the module docstring)."""

    @initialize()
    def credit_control_start(self):
        mail.outbox = []
        self.holds_fresh = False  # the "hold iff" check holds right after a reminder run only
        self._cc_people = None
        self.cc_started = True

    def cc_people(self):
        """(manager, finance): the machine's staff with the credit-control permissions."""
        if self._cc_people is None:
            grants = ((self.staff.manager_a, "pause_reminderpause"), (self.staff.finance_a, "lift_credithold"))
            for person, codename in grants:
                person.user_permissions.add(Permission.objects.get(content_type__app_label="payments", codename=codename))
            model = type(self.staff.manager_a)
            self._cc_people = tuple(model.objects.get(pk=person.pk) for person, _ in grants)
        return self._cc_people

    # -- rules ------------------------------------------------------------------------------------

    @precondition(lambda self: self.accounts)
    @rule(i=index)
    def customer_gives_an_email(self, i):
        """The console sets the account's e-mail: from now on its e-mails are sent, not skipped."""
        account_id = self.account(i)
        Account.objects.filter(pk=account_id).update(email=f"billing-{account_id}@example.com")

    @precondition(lambda self: self.accounts)
    @rule(mode=st.sampled_from(("run", "run", "twice", "crash_after_commit")),
          days=st.sampled_from((8, 31, 15, 1)), runs=st.sampled_from((3, 1)), order=st.booleans(), i=index)
    def reminders_run(self, mode, days, runs, order, i):
        """CC-1/CC-2 as ``payments.run_reminders`` and its chunks do it; ``twice``: the window's
        second firing (or a redelivered chunk) sends nothing; ``crash_after_commit``: the worker
        died after the chunk's commit, before its e-mails were handed on (the sweep sends them).
        ``days``: the clock moves on first (hourly runs over days: bills reach each level);
        ``runs``: that many runs, ``days`` apart (a bill goes through its levels); ``order``: an
        account places an order first (a credit account's bill waits for its due
        date; a card's may fail), so that short runs reach bills past due."""
        if order:
            self.place_order(i=i, amount=Decimal("250.25"), kind="purchase", mode="new", j=0)
        queued = len(self.broker)
        for _ in range(runs):
            self.now += timedelta(days=days)
            self._reminder_job()
        if mode == "twice":
            rows = (Reminder.objects.count(), CreditHold.objects.count(), Notification.objects.count())
            for chunk in credit_control.reminder_due_chunks(now=self.now):
                again, _ = self.call(credit_control.reminders_send_chunk, account_ids=chunk, now=self.now)
                assert again is None or again.reminders == 0, "CC-1: a chunk run twice in a day sent again"
            assert rows == (Reminder.objects.count(), CreditHold.objects.count(), Notification.objects.count())
        if mode == "crash_after_commit":
            while len(self.broker) > queued:
                note(f"lost with the worker: {self.broker.take(queued)}")
        self.holds_fresh = True

    def _reminder_job(self) -> None:
        """One firing of ``payments.run_reminders`` and the chunks it fans out."""
        self.call(credit_control.reminder_pauses_end_expired, now=self.now)
        self.call(credit_control.credit_holds_lift_settled, now=self.now)
        for chunk in credit_control.reminder_due_chunks(now=self.now):
            result, _ = self.call(credit_control.reminders_send_chunk, account_ids=chunk, now=self.now)
            _count_levels(result)

    @precondition(lambda self: self.accounts)
    @rule(i=index, action=st.sampled_from(("pause", "pause", "resume", "lift")), days=st.sampled_from((1, 5, 30, 31)))
    def credit_control_staff(self, i, action, days):
        """CC-3: an account manager pauses (at most 30 days) or resumes reminders; CC-2: finance
        lifts a hold early, with a reason. Refusals (no pause, no hold, too long) change nothing."""
        manager, finance = self.cc_people()
        account_id = self.account(i)
        if action == "pause":
            self.call(credit_control.reminder_pause, account_id=account_id, reason="Customer disputes a bill",
                      ends_at=self.now + timedelta(days=days), actor=manager, now=self.now)
        elif action == "resume":
            self.call(credit_control.reminder_pause_end, account_id=account_id, actor=manager, now=self.now)
        else:
            self.call(credit_control.credit_hold_lift, account_id=account_id, reason="Paid by phone", actor=finance,
                      now=self.now)
        self.holds_fresh = False

    @rule(twice=st.booleans())
    def notifications_swept(self, twice):
        """NOTIFY-2: the beat sweep sends e-mails committed but never handed on, once."""
        later = self.now + notifications.SWEEP_GRACE
        self.call(notifications.notifications_sweep, now=later)
        if twice:
            again, _ = self.call(notifications.notifications_sweep, now=later)
            assert not again, "NOTIFY-2: a second sweep sent e-mails again"

    def run_notification_task(self, message) -> bool:
        """The worker's side of ``payments.deliver_notifications`` (False: another task)."""
        if message.task != DELIVER_TASK:
            return False
        for pk in message.kwargs["notification_ids"]:
            self.call(notifications.notification_deliver, notification_id=pk, now=self.now)
        return True

    # -- checks -----------------------------------------------------------------------------------

    @invariant()
    def credit_control_holds(self):
        if not getattr(self, "cc_started", False):  # before this example's initialize step
            return
        sent = Notification.objects.filter(channel=EMAIL, status=Notification.Status.DELIVERED).count()
        assert len(mail.outbox) == sent, f"NOTIFY-2: {len(mail.outbox)} e-mails sent for {sent} delivered e-mail notifications"
        earlier = Reminder.objects.filter(bill=OuterRef("bill"), level=OuterRef("level") - 1,
                                          sent_at__date__lt=OuterRef("sent_at__date"))
        skipped = Reminder.objects.filter(level__gt=1).exclude(Exists(earlier)).values_list("pk", flat=True)
        assert not skipped, f"CC-1: reminders sent without the previous level on an earlier day: {list(skipped)}"
        after_paid = Reminder.objects.filter(bill__paid_at__isnull=False, sent_at__gt=F("bill__paid_at"))
        assert not after_paid.exists(), f"CC-1: reminders of paid bills: {list(after_paid.values_list('pk', flat=True))}"
        paused = ReminderPause.objects.filter(account=OuterRef("account"), started_at__lte=OuterRef("sent_at"),
                                              ends_at__gt=OuterRef("sent_at")).filter(
            Q(ended_at__isnull=True) | Q(ended_at__gt=OuterRef("sent_at")))
        while_paused = Reminder.objects.filter(Exists(paused)).values_list("pk", flat=True)
        assert not while_paused, f"CC-3: reminders sent while the account was paused: {list(while_paused)}"
        unfounded = CreditHold.objects.exclude(reminder__level=Reminder.Level.FINAL).values_list("pk", flat=True)
        assert not unfounded, f"CC-2: holds placed without a final notice: {list(unfounded)}"
        if self.holds_fresh:
            self._holds_match_final_notices()

    def _holds_match_final_notices(self) -> None:
        """CC-2 right after a run: in force iff a bill past due had its final notice and finance
        has not lifted the hold since."""
        today = self.now.date()
        unpaid_late = Bill.objects.filter(status__in=Bill.UNPAID_STATUSES, due_date__lt=today)
        held = set(CreditHold.objects.filter(lifted_at__isnull=True).values_list("account_id", flat=True))
        overdue = set(unpaid_late.values_list("account_id", flat=True))
        assert held <= overdue, f"CC-2: holds in force on accounts with nothing past due: {held - overdue}"
        lifted_by_finance = CreditHold.objects.filter(account=OuterRef("account"), lifted_by__isnull=False,
                                                      lifted_at__gte=OuterRef("sent_at"))
        finals = Reminder.objects.filter(level=Reminder.Level.FINAL, bill__in=unpaid_late).exclude(
            Exists(lifted_by_finance))
        due_a_hold = set(finals.values_list("account_id", flat=True))
        assert due_a_hold <= held, f"CC-2: accounts with a final notice past due and no hold: {due_a_hold - held}"

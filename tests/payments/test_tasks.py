"""Celery tasks of the payments app and the beat schedule: safe to run twice, bounded retries."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from celery.exceptions import Retry
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from billing_backoffice.celery import app as celery_app
from billing_backoffice.task_retries import TRANSIENT_ERRORS
from payments.tasks import holds as hold_tasks, lifecycle as lifecycle_tasks
from payments.gateways.simulated import PROCESSOR
from payments.models import Account, LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold
from tests.factories import AccountFactory, CardMethodFactory, ChallengeFactory, HoldFactory

pytestmark = pytest.mark.django_db
VISIBILITY_TIMEOUT = 3600
ALL_TASKS = [
    hold_tasks.release_due_holds,
    lifecycle_tasks.expire_cards,
    lifecycle_tasks.fail_abandoned_verifications,
    lifecycle_tasks.close_silent_accounts,
    hold_tasks.release_hold,
]


def test_every_scheduled_task_name_is_registered():
    """What a worker registers (autodiscovered tasks modules and CELERY_IMPORTS) covers the beat."""
    celery_app.loader.import_default_modules()
    names = {entry["task"] for entry in settings.BILLING_BEAT_SCHEDULE.values()}
    assert names <= set(celery_app.tasks.keys())
    verification = {name for name in names if name in {t.name for t in ALL_TASKS}}
    assert {t.name for t in ALL_TASKS} == verification | {"payments.release_hold"}


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda t: t.name)
def test_retries_bounded_and_far_below_visibility_timeout(task):
    assert 0 < task.max_retries <= 5
    assert task.retry_backoff_max < VISIBILITY_TIMEOUT / 4
    assert hold_tasks.RELEASE_HOLD_RETRY_COUNTDOWN < VISIBILITY_TIMEOUT / 4
    # Worst case: every retry waits the maximum; all of them together still fit well inside.
    assert task.max_retries * task.retry_backoff_max < VISIBILITY_TIMEOUT
    # Only transient infrastructure errors are retried automatically, never business errors.
    assert set(task.autoretry_for) == set(TRANSIENT_ERRORS)


def test_hold_2_release_due_holds_task_twice_voids_once():
    hold = HoldFactory(placed_at=timezone.now() - timedelta(hours=1))
    assert hold_tasks.release_due_holds() == 1
    assert hold_tasks.release_due_holds() == 0
    hold.refresh_from_db()
    assert hold.status == VerificationHold.Status.RELEASED
    assert PROCESSOR.void_calls[hold.authorization_id] == 1


def test_hold_2_release_hold_task_twice_voids_once():
    hold = HoldFactory()
    assert hold_tasks.release_hold(hold_id=hold.pk) == VerificationHold.Status.RELEASED
    assert hold_tasks.release_hold(hold_id=hold.pk) == VerificationHold.Status.RELEASED
    assert PROCESSOR.void_calls[hold.authorization_id] == 1
    assert hold_tasks.release_hold(hold_id=hold.pk + 1000) == "not_found"


def test_hold_2_release_hold_task_retries_transient_void_failure_with_same_key():
    hold = HoldFactory(authorization_id="auth_voidfailsonce_task0001")
    with pytest.raises(Retry):
        hold_tasks.release_hold(hold_id=hold.pk)
    hold.refresh_from_db()
    assert (hold.status, hold.release_attempts) == (VerificationHold.Status.RELEASE_FAILED, 1)
    # The retry (delivered later) succeeds with the hold's saved void key: one real void.
    assert hold_tasks.release_hold(hold_id=hold.pk) == VerificationHold.Status.RELEASED
    assert PROCESSOR.void_calls[hold.authorization_id] == 1


def test_del_5_expire_cards_task_twice_has_no_second_effect():
    last_year = timezone.now().year - 1
    card = CardMethodFactory(exp_month=12, exp_year=last_year, is_default=True)
    assert lifecycle_tasks.expire_cards() == 1
    changed_at = PaymentMethod.objects.get(pk=card.pk).status_changed_at
    assert lifecycle_tasks.expire_cards() == 0
    card.refresh_from_db()
    assert (card.status, card.is_default, card.status_changed_at) == (PaymentMethod.Status.EXPIRED, True, changed_at)


def test_link_5_fail_abandoned_verifications_task_twice_records_one_attempt():
    challenge = ChallengeFactory(created_at=timezone.now() - timedelta(hours=1))
    assert lifecycle_tasks.fail_abandoned_verifications() == 1
    assert lifecycle_tasks.fail_abandoned_verifications() == 0
    challenge.refresh_from_db()
    assert challenge.status == ThreeDSChallenge.Status.EXPIRED
    assert PaymentMethod.objects.get(pk=challenge.payment_method_id).status == PaymentMethod.Status.FAILED
    assert LinkAttempt.objects.filter(
        payment_method_id=challenge.payment_method_id, reason=LinkAttempt.Reason.THREE_DS_NOT_COMPLETED
    ).count() == 1


def test_link_2_close_silent_accounts_task_twice_closes_once():
    deactivated_at = timezone.now() - timedelta(days=16)
    account = AccountFactory(status=Account.Status.DEACTIVATED, deactivated_at=deactivated_at)
    assert lifecycle_tasks.close_silent_accounts() == 1
    closed_at = Account.objects.get(pk=account.pk).closed_at
    assert lifecycle_tasks.close_silent_accounts() == 0
    account.refresh_from_db()
    assert (account.status, account.closed_at) == (Account.Status.CLOSED, closed_at)


# --- sync_beat_schedule --------------------------------------------------------------------


def sync(*args) -> str:
    out = StringIO()
    call_command("sync_beat_schedule", *args, stdout=out)
    return out.getvalue()


def every(periodic: PeriodicTask) -> timedelta:
    return timedelta(**{periodic.interval.period: periodic.interval.every})


def test_sync_beat_schedule_creates_tasks_and_is_idempotent():
    first = sync()
    assert first.count("created") == len(settings.BILLING_BEAT_SCHEDULE)
    snapshot = list(PeriodicTask.objects.order_by("name").values_list("name", "task", "interval_id", "enabled"))
    intervals = IntervalSchedule.objects.count()

    second = sync()
    assert "created" not in second and second.count("unchanged") == len(settings.BILLING_BEAT_SCHEDULE)
    assert list(PeriodicTask.objects.order_by("name").values_list("name", "task", "interval_id", "enabled")) == snapshot
    assert IntervalSchedule.objects.count() == intervals
    for name, entry in settings.BILLING_BEAT_SCHEDULE.items():
        periodic = PeriodicTask.objects.get(name=name)
        assert periodic.task == entry["task"]
        assert every(periodic) == entry["every"]
        assert periodic.enabled


def test_sync_beat_schedule_keeps_operator_interval_unless_reset():
    sync()
    name = "release-verification-holds"
    periodic = PeriodicTask.objects.get(name=name)
    periodic.interval = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.MINUTES)
    periodic.enabled = False
    periodic.save()

    out = sync()
    assert "kept operator schedule" in out
    periodic.refresh_from_db()
    assert (every(periodic), periodic.enabled) == (timedelta(minutes=2), False)

    out = sync("--reset")
    assert f"updated {name}" in out
    periodic.refresh_from_db()
    assert (every(periodic), periodic.enabled) == (settings.BILLING_BEAT_SCHEDULE[name]["every"], True)


def test_sync_beat_schedule_corrects_a_renamed_task_path():
    sync()
    PeriodicTask.objects.filter(name="expire-cards").update(task="payments.old_name")
    assert "updated expire-cards: task -> payments.expire_cards" in sync()
    assert PeriodicTask.objects.get(name="expire-cards").task == "payments.expire_cards"

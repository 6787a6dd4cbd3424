"""Job item failures (billing_backoffice/item_failures.py): what is kept of an error, what the
isolation rolls back and what it lets through, and the read-only admin with its retry action
(SEC-1, SEC-3). The per-job poison tests are in tests/payments/test_batch_poison.py and
tests/remittances/test_inbox_poison.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import OperationalError
from django.urls import reverse

from billing_backoffice.item_failures import JobItems, retry_delay
from billing_backoffice.models import JobItemFailure
from payments.models import Account
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db


def items(now, job="test.job", kind="payments.account") -> JobItems:
    return JobItems(job=job, item_kind=kind, now=now)


def failing(error):
    def fn():
        raise error
    return fn


def test_sec_1_a_failure_keeps_no_card_number_of_the_error_text(now):
    outcome = items(now).run(7, failing(ValueError("card 4242 4242 4242 4242 refused")))
    assert not outcome.ok
    failure = JobItemFailure.objects.get()
    assert "4242 4242 4242 4242" not in failure.message and "[REDACTED PAN]" in failure.message
    assert (failure.error, failure.object_id, failure.next_retry_at) == ("ValueError", 7, now + retry_delay(1))


def test_a_failing_item_rolls_back_only_its_own_writes_and_its_failure_is_kept(now):
    def half_done():
        AccountFactory(name="written by the failing item")
        raise RuntimeError("boom")

    run = items(now)
    assert run.run(1, lambda: AccountFactory(name="kept").pk).ok
    assert not run.run(2, half_done).ok
    assert set(Account.objects.values_list("name", flat=True)) == {"kept"}
    assert JobItemFailure.objects.get().item_key == "2"


def test_transient_database_errors_are_not_isolated_they_stop_the_run_for_the_task_to_retry(now):
    with pytest.raises(OperationalError):
        items(now).run(1, failing(OperationalError("server closed the connection")))
    assert not JobItemFailure.objects.exists()


def test_a_later_failure_after_recovery_starts_a_new_episode(now):
    run = items(now)
    run.run(1, failing(RuntimeError("first")))
    items(now + timedelta(hours=1)).run(1, lambda: None)
    failure = JobItemFailure.objects.get()
    assert failure.resolved_at == now + timedelta(hours=1)
    items(now + timedelta(days=1)).run(1, failing(RuntimeError("again")))
    failure.refresh_from_db()
    assert (failure.attempts, failure.first_failed_at, failure.resolved_at) == (1, now + timedelta(days=1), None)


# --- admin (SEC-3) --------------------------------------------------------------------------------


def member(group: str, username: str):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def poisoned(now):
    account = AccountFactory()
    run = items(now, job="payments.charge_usage_thresholds")
    for attempt in range(5):
        run = items(now + timedelta(hours=attempt), job="payments.charge_usage_thresholds")
        run.run(f"{account.pk}:USD", failing(RuntimeError("numeric field overflow")), object_id=account.pk)
    failure = JobItemFailure.objects.get()
    assert failure.given_up_at is not None
    return account, failure


def test_sec_3_finance_sees_the_failures_with_the_item_linked_and_retries_one(client, poisoned):
    account, failure = poisoned
    finance = member("Finance staff", "finance-failures")
    client.force_login(finance)
    changelist = reverse("admin:billing_backoffice_jobitemfailure_changelist")
    page = client.get(changelist).content.decode()
    assert reverse("admin:payments_account_change", args=[account.pk]) in page
    assert "numeric field overflow" in page and "given up" in page
    assert client.get(reverse("admin:billing_backoffice_jobitemfailure_change", args=[failure.pk])).status_code == 200

    response = client.post(changelist, {"action": "retry_selected", "_selected_action": [failure.pk]}, follow=True)
    assert "will be retried by the next run" in response.content.decode()
    failure.refresh_from_db()
    assert failure.given_up_at is None and failure.retried_by == finance and failure.next_retry_at is not None


def test_sec_3_account_managers_neither_see_nor_retry_failures(client, poisoned):
    _, failure = poisoned
    client.force_login(member("Account managers", "manager-failures"))
    changelist = reverse("admin:billing_backoffice_jobitemfailure_changelist")
    assert client.get(changelist).status_code == 403
    client.post(changelist, {"action": "retry_selected", "_selected_action": [failure.pk]})
    failure.refresh_from_db()
    assert failure.given_up_at is not None and failure.retried_by is None

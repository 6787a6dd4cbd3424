"""Each role's work queue on the admin index (``billing_backoffice/queue_board.py``, issue 10):
every figure equals the count of the list it links to.

Each case makes rows just inside and just outside its queue (own vs someone else's, 59 vs 61
minutes, 2 vs 3 days ...), renders the index as the role, follows the figure's link and compares
the changelist's ``result_count`` with the figure's ``data-count`` and the expected number. The
clock is frozen (``now`` fixture) for the index and the list alike.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django_celery_beat.models import PeriodicTask
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing_backoffice.models import ScheduledJob, ScheduledRun
from payments.models import LinkAttempt
from remittances.models import BankReversal, BankTransaction, CreditLimitRequest, RemittanceClaim
from tests.factories.accounts import AccountFactory, UserFactory
from tests.factories.billing import BillFactory, ChargeFactory
from tests.factories.core import JobItemFailureFactory, ScheduledRunFactory
from tests.factories.credit_control import CreditHoldFactory, ReminderFactory, ReminderPauseFactory
from tests.factories.linking import CardMethodFactory, ChallengeFactory, LinkAttemptFactory
from tests.factories.reconciliation import BankReversalFactory
from tests.factories.remittances import (
    BankStatementFactory,
    BankTransactionFactory,
    CreditLimitRequestFactory,
    RemittanceClaimFactory,
)

pytestmark = pytest.mark.django_db

Claim = RemittanceClaim.Status


def figure_of(page: str, figure: str) -> tuple[int, str]:
    match = re.search(rf'<a href="([^"]+)" data-figure="{figure}" data-count="(\d+)"', page)
    assert match, f"figure {figure} not on the index"
    return int(match.group(2)), html.unescape(match.group(1))


def check(client, user, figure: str, expected: int) -> None:
    client.force_login(user)
    count, link = figure_of(client.get(reverse("admin:index")).content.decode(), figure)
    response = client.get(link)
    assert response.status_code == 200
    assert (count, response.context["cl"].result_count) == (expected, expected)


# --- account managers -----------------------------------------------------------------------------


def test_cred_1_credit_applications_recorded_by_someone_else(client, manager, now):
    """CRED-1: a manager never decides an application they recorded: theirs is not in their queue."""
    CreditLimitRequestFactory(recorded_by=UserFactory())
    CreditLimitRequestFactory(recorded_by=None)  # from the console
    CreditLimitRequestFactory(recorded_by=manager)
    CreditLimitRequestFactory(status=CreditLimitRequest.Status.APPROVED, decided_by=UserFactory(), decided_at=now)
    check(client, manager, "creditlimitrequest-to-decide", 2)


def test_clm_2_claims_to_review_have_their_transfer(client, manager, now):
    RemittanceClaimFactory(bank_transaction=BankTransactionFactory(status=BankTransaction.Status.CLAIMED))
    RemittanceClaimFactory()  # its transfer has not arrived
    check(client, manager, "remittanceclaim-to-review", 1)


@pytest.mark.parametrize(("figure", "expected"), [
    ("banktransaction-unmatched-0-2d", 2), ("banktransaction-unmatched-3-7d", 2), ("banktransaction-unmatched-older", 1),
])
def test_rem_2_unmatched_transfers_by_age(client, manager, now, figure, expected):
    """REM-2: unmatched shared-account transfers in whole days since they arrived."""
    for age in (timedelta(0), timedelta(days=2, hours=23), timedelta(days=3), timedelta(days=7, hours=23),
                timedelta(days=8)):
        BankTransactionFactory(received_at=now - age)
    BankTransactionFactory(received_at=now - timedelta(days=1), status=BankTransaction.Status.REVIEW)
    check(client, manager, figure, expected)


def test_link_7_failed_links_of_my_accounts_this_week(client, manager, now):
    mine = AccountFactory(account_manager=manager)
    LinkAttemptFactory(account=mine, created_at=now - timedelta(days=6, hours=23))
    LinkAttemptFactory(account=mine, created_at=now - timedelta(days=7, minutes=1))  # older than 7 days
    LinkAttemptFactory(account=mine, outcome=LinkAttempt.Outcome.LINKED, reason="")
    LinkAttemptFactory(account=AccountFactory(account_manager=UserFactory()))  # someone else's account
    check(client, manager, "linkattempt-my-failed-7d", 1)


def test_notify_1_cards_expiring_within_30_days(client, manager, now):
    """The clock is 2026-11-26: a card of 11/2026 ends in 4 days, one of 12/2026 in 35."""
    CardMethodFactory(exp_month=11, exp_year=2026)
    CardMethodFactory(exp_month=12, exp_year=2026)
    CardMethodFactory(exp_month=11, exp_year=2026, status="removed", removed_at=now)
    check(client, manager, "paymentmethod-expiring-30d", 1)


def test_link_5_three_ds_waiting_over_an_hour(client, manager, now):
    ChallengeFactory(created_at=now - timedelta(minutes=61))
    ChallengeFactory(created_at=now - timedelta(minutes=59))
    ChallengeFactory(created_at=now - timedelta(hours=3), status="succeeded", completed_at=now)
    check(client, manager, "threedschallenge-waiting-1h", 1)


# --- finance ---------------------------------------------------------------------------------------


def test_clm_3_claims_to_approve_are_not_my_own(client, finance, now):
    """CLM-3 four eyes: a claim finance initiated or reviewed is not in its queue."""
    other = UserFactory()
    for initiated, reviewed in ((other, other), (finance, other), (other, finance)):
        RemittanceClaimFactory(status=Claim.REVIEWED, initiated_by=initiated, reviewed_by=reviewed, reviewed_at=now)
    check(client, finance, "remittanceclaim-to-approve", 1)


def test_currency_mismatches_to_resolve(client, finance, now):
    BankTransactionFactory(status=BankTransaction.Status.REVIEW, currency="EUR")
    BankTransactionFactory()
    check(client, finance, "banktransaction-review", 1)


def test_statements_imported_today(client, finance, now):
    BankStatementFactory(imported_at=now)
    BankStatementFactory(imported_at=now.replace(hour=0, minute=0) - timedelta(minutes=1))  # yesterday
    check(client, finance, "bankstatement-today", 1)


def test_rvs_1_accounts_left_owing_by_a_reversal(client, finance, now):
    for resolved_at in (None, now):
        BankReversalFactory(outcome=BankReversal.Outcome.OWING, account=AccountFactory(), reversal_of="credit",
                            original=BankTransactionFactory(status=BankTransaction.Status.REVERSED),
                            resolved_at=resolved_at)
    BankReversalFactory()
    check(client, finance, "bankreversal-owing", 1)


@pytest.mark.parametrize(("figure", "expected"), [
    ("bill-past-due-1-30", 2), ("bill-past-due-31-60", 1), ("bill-past-due-61-90", 0), ("bill-past-due-over-90", 1),
])
def test_cc_4_unpaid_bills_past_due_by_age(client, finance, now, figure, expected):
    today = now.date()
    for days in (1, 30, 31, 91):
        BillFactory(due_date=today - timedelta(days=days))
    BillFactory(due_date=today)  # due today: not past due
    BillFactory(due_date=today - timedelta(days=5), status="paid", amount_paid=Decimal("100.00"))
    check(client, finance, figure, expected)


def test_pay_5_failed_charges_by_reason_in_the_last_7_days(client, finance, now):
    ChargeFactory(failed=True, failure_reason="insufficient_funds")
    ChargeFactory(failed=True, failure_reason="insufficient_funds", created_at=now - timedelta(days=6))
    ChargeFactory(failed=True, failure_reason="insufficient_funds", created_at=now - timedelta(days=7, minutes=1))
    ChargeFactory(failed=True, failure_reason="declined")
    check(client, finance, "charge-failed-7d-insufficient-funds", 2)
    check(client, finance, "charge-failed-7d", 3)


def test_scheduled_runs_late_and_job_items_failing(client, finance, now):
    ScheduledRunFactory(started_at=now - timedelta(minutes=11))  # lease ended a minute ago
    ScheduledRunFactory(started_at=now - timedelta(minutes=9))
    JobItemFailureFactory()
    JobItemFailureFactory(resolved_at=now)
    check(client, finance, "scheduledrun-late", 1)
    check(client, finance, "jobitemfailure-failing", 1)


def test_jobs_late_whose_window_never_fired(client, finance, now):
    """A job that no firing has run (beat down, its message lost) leaves no scheduled run at all;
    its ScheduledJob row is late once its last success is older than its interval and the grace."""
    call_command("sync_beat_schedule", stdout=StringIO())
    jobs = ScheduledJob.objects.all()
    jobs.update(last_success_at=now - timedelta(minutes=1))
    jobs.filter(job="payments.settlement_sweep").update(last_success_at=now - timedelta(minutes=31))  # 15 + 15
    jobs.filter(job="payments.release_due_holds").update(last_success_at=now - timedelta(minutes=19))  # 5 + 15
    jobs.filter(job="payments.run_reminders").update(last_success_at=None, created_at=now - timedelta(hours=2))
    jobs.filter(job="payments.expire_cards").update(last_success_at=now - timedelta(days=3))
    PeriodicTask.objects.filter(task="payments.expire_cards").update(enabled=False)  # disabled: not judged
    assert not ScheduledRun.objects.exists()
    check(client, finance, "scheduledjob-late", 2)
    _, link = figure_of(client.get(reverse("admin:index")).content.decode(), "scheduledjob-late")
    listed = client.get(link).context["cl"].result_list
    assert sorted(job.job for job in listed) == ["payments.run_reminders", "payments.settlement_sweep"]
    page = client.get(reverse("admin:billing_backoffice_scheduledjob_changelist")).content.decode()
    assert "not judged" in page and "on time" in page and "never (installed 2" in page


@pytest.mark.parametrize(("figure", "expected"), [
    ("account-reminder-level-1", 2), ("account-reminder-level-2", 1), ("account-reminder-level-3", 1),
])
def test_cc_1_accounts_at_each_dunning_level(client, finance, now, figure, expected):
    """CC-1: the credit-control figures count accounts, each at the highest level among its unpaid
    bills; three bills at the second reminder are one account to chase; a paid bill has left."""
    three_bills = AccountFactory()
    for _ in range(3):
        bill = BillFactory(account=three_bills, status="overdue")
        ReminderFactory(bill=bill)
        ReminderFactory(bill=bill, level=2, days_past_due=7)
    ReminderFactory(bill=BillFactory(status="overdue"))  # one bill at the first reminder
    final = AccountFactory()
    ReminderFactory(bill=BillFactory(account=final, status="overdue"))
    ReminderFactory(bill=BillFactory(account=final, status="overdue"), level=3, days_past_due=14)
    settled_final = AccountFactory()  # its final notice was paid: chased at its open bill's level
    ReminderFactory(bill=BillFactory(account=settled_final, status="paid", amount_paid=Decimal("100.00")),
                    level=3, days_past_due=14)
    ReminderFactory(bill=BillFactory(account=settled_final, status="overdue"))
    paid = BillFactory(status="paid", amount_paid=Decimal("100.00"))
    ReminderFactory(bill=paid, level=2, days_past_due=7)
    check(client, finance, figure, expected)


def test_cc_1_dunning_figures_link_to_the_account_list(client, finance, now):
    """CC-1: the figure opens the account list (not the reminders), filtered the same way."""
    ReminderFactory(bill=BillFactory(status="overdue"))
    client.force_login(finance)
    _, link = figure_of(client.get(reverse("admin:index")).content.decode(), "account-reminder-level-1")
    assert link.startswith(reverse("admin:payments_account_changelist") + "?queue=reminder_level_1")
    assert 'data-figure="reminder-level-1"' not in client.get(reverse("admin:index")).content.decode()


def test_cc_2_holds_and_cc_3_pauses_in_force(client, finance, now):
    CreditHoldFactory()
    CreditHoldFactory(lifted_at=now)
    ReminderPauseFactory(started_at=now - timedelta(days=2), ends_at=now + timedelta(days=1))
    ReminderPauseFactory(started_at=now - timedelta(days=2), ends_at=now - timedelta(minutes=1))  # over
    check(client, finance, "credithold-on-hold", 1)
    check(client, finance, "reminderpause-paused", 1)


# --- the index as a whole --------------------------------------------------------------------------


def test_each_role_sees_only_its_queues(client, manager, finance):
    client.force_login(manager)
    page = client.get(reverse("admin:index")).content.decode()
    assert 'data-figure="creditlimitrequest-to-decide"' in page
    assert 'data-figure="remittanceclaim-to-approve"' not in page
    client.force_login(finance)
    page = client.get(reverse("admin:index")).content.decode()
    assert 'data-figure="remittanceclaim-to-approve"' in page
    assert 'data-figure="creditlimitrequest-to-decide"' not in page


def test_a_figure_needs_the_view_permission_of_its_list(client):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert 'id="work-queues"' not in client.get(reverse("admin:index")).content.decode()


def test_the_work_queues_cost_the_same_queries_whatever_the_data(client, superuser, finance, now):
    client.force_login(superuser)
    client.get(reverse("admin:index"))
    with CaptureQueriesContext(connection) as empty:
        client.get(reverse("admin:index"))
    for _ in range(3):
        BankTransactionFactory()
        ChargeFactory(failed=True, failure_reason="insufficient_funds")
        ChargeFactory(failed=True, failure_reason="declined")
        RemittanceClaimFactory(status=Claim.REVIEWED, initiated_by=finance, reviewed_by=finance, reviewed_at=now)
    with CaptureQueriesContext(connection) as full:
        client.get(reverse("admin:index"))
    assert len(full) == len(empty)

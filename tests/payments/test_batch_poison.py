"""A poison item in the middle of a batch job never stops the rest (billing_backoffice/item_failures.py).

One test per job: the items before and after the poison one are processed, the poison one is
recorded with its reason, a later run retries it boundedly (backoff, then given up until staff
retry it), and the run as a whole does not raise. The poison is real where it can be (usage
whose total overflows the bill column, inserted directly as the API bounds single amounts), else
the database refusing one row (a trigger) or the per-item service raising for one id.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from billing_backoffice.item_failures import MAX_ATTEMPTS, job_item_failure_retry, retry_delay
from billing_backoffice.models import JobItemFailure
from payments.models import Bill, Charge, UsageRecord
from payments.services.scheduled_charging import THRESHOLD_JOB, threshold_charges_run
from tests.factories import UserFactory
from tests.helpers.charging import card_account, report_usage

pytestmark = pytest.mark.django_db
D = Decimal
HUGE = D("999999999999.99")  # fits a usage row; two of them do not fit one bill


def overflowing_usage(account, *, period="2026-11", now):
    """The issue's poison record: two usage rows whose sum no bill column can hold."""
    for n in (1, 2):
        UsageRecord.objects.create(
            account=account, amount=HUGE, currency="USD", period=period, reference=f"huge-{account.pk}-{n}",
            reported_at=now,
        )


def failure_of(job: str, key) -> JobItemFailure:
    return JobItemFailure.objects.get(job=job, item_key=str(key))


def poison_rows(table: str, column: str, value: int) -> None:
    """The database refuses to write rows of ``table`` whose ``column`` is ``value`` (a trigger,
    rolled back with the test): a stand-in for a row a set-based statement cannot write."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION poison_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.{column} = {int(value)} THEN
                    RAISE EXCEPTION 'poison row: % % is refused', TG_TABLE_NAME, NEW.{column};
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER poison_{table} BEFORE INSERT OR UPDATE ON {table}
                FOR EACH ROW EXECUTE FUNCTION poison_{table}();
            """
        )


def cure(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER poison_{table} ON {table}; DROP FUNCTION poison_{table}();")


def until_given_up(run, failure_key, job, start):
    """Run the job at each retry time until the item is given up; returns the clock after it."""
    clock = start
    for attempts in range(1, MAX_ATTEMPTS):
        assert failure_of(job, failure_key).attempts == attempts
        clock += retry_delay(attempts)
        run(clock)
    failure = failure_of(job, failure_key)
    assert failure.attempts == MAX_ATTEMPTS and failure.given_up_at == clock and failure.next_retry_at is None
    return clock


# --- PAY-2: threshold charging ------------------------------------------------------------------


def test_pay_2_threshold_run_charges_around_an_overflowing_account_and_retries_it_boundedly(now, enqueued):
    before, _ = card_account()
    poison, _ = card_account()
    after, _ = card_account()
    report_usage(before, "1500.00", reference="ok-1", now=now)
    report_usage(after, "1500.00", reference="ok-2", now=now)
    overflowing_usage(poison, now=now)

    assert enqueued.commit(threshold_charges_run, now=now) == 2  # does not raise
    assert set(Charge.objects.values_list("account_id", flat=True)) == {before.pk, after.pk}
    assert not Bill.objects.filter(account=poison).exists()
    assert set(UsageRecord.objects.filter(account=poison).values_list("status", flat=True)) == {"unbilled"}
    failure = failure_of(THRESHOLD_JOB, f"{poison.pk}:USD")
    assert (failure.item_kind, failure.object_id, failure.error, failure.attempts) == (
        "payments.account", poison.pk, "DataError", 1
    )
    assert "numeric field overflow" in failure.message
    assert failure.next_retry_at == now + retry_delay(1) and failure.given_up_at is None

    # Before its retry time a run leaves it alone; at it, the run tries it again (and fails).
    enqueued.commit(threshold_charges_run, now=now + timedelta(minutes=1))
    assert failure_of(THRESHOLD_JOB, f"{poison.pk}:USD").attempts == 1
    given_up = until_given_up(
        lambda clock: enqueued.commit(threshold_charges_run, now=clock), f"{poison.pk}:USD", THRESHOLD_JOB, now
    )
    enqueued.commit(threshold_charges_run, now=given_up + timedelta(days=7))  # given up: skipped
    assert failure_of(THRESHOLD_JOB, f"{poison.pk}:USD").attempts == MAX_ATTEMPTS

    # Staff fix the data and retry it: the next run charges it and the failure is resolved.
    UsageRecord.objects.filter(reference=f"huge-{poison.pk}-2").delete()
    staff = UserFactory(username="finance-retry")
    job_item_failure_retry(failure_id=failure.pk, actor=staff, now=given_up + timedelta(days=8))
    assert enqueued.commit(threshold_charges_run, now=given_up + timedelta(days=8)) == 1
    failure.refresh_from_db()
    assert failure.resolved_at == given_up + timedelta(days=8) and failure.retried_by == staff
    assert Bill.objects.get(account=poison).total == HUGE


# --- PAY-3: month-end bills and deduction -----------------------------------------------------


def test_pay_3_month_end_chunk_bills_around_an_overflowing_account_and_retries_it_boundedly(now):
    from payments.services.billing import MONTHLY_BILLS_JOB, AccountChunk, monthly_bills_generate_chunk

    month_end = now.replace(month=11, day=1, hour=1)
    before, _ = card_account()
    poison, _ = card_account()
    after, _ = card_account()
    for account in (before, after):
        report_usage(account, "12.50", reference=f"m-{account.pk}", now=now, period="2026-10")
    overflowing_usage(poison, period="2026-10", now=now)
    chunk = AccountChunk(before.pk, after.pk)

    def run(clock):
        return monthly_bills_generate_chunk(period="2026-10", now=clock, chunk=chunk)

    assert len(run(month_end)) == 2  # does not raise
    assert set(Bill.objects.values_list("account_id", "total")) == {(before.pk, D("12.50")), (after.pk, D("12.50"))}
    assert set(UsageRecord.objects.filter(account=poison).values_list("status", "bill")) == {("unbilled", None)}
    failure = failure_of(MONTHLY_BILLS_JOB, poison.pk)
    assert (failure.object_id, failure.error, failure.attempts) == (poison.pk, "DataError", 1)
    assert "numeric field overflow" in failure.message

    late, _ = card_account()  # usage reported meanwhile is billed by the chunk statement, poison left out
    report_usage(late, "3.00", reference="late", now=now, period="2026-10")
    assert len(monthly_bills_generate_chunk(
        period="2026-10", now=month_end + timedelta(minutes=1), chunk=AccountChunk(before.pk, late.pk)
    )) == 1
    assert failure_of(MONTHLY_BILLS_JOB, poison.pk).attempts == 1
    given_up = until_given_up(run, poison.pk, MONTHLY_BILLS_JOB, month_end)

    UsageRecord.objects.filter(reference=f"huge-{poison.pk}-2").delete()
    job_item_failure_retry(failure_id=failure.pk, actor=None, now=given_up)
    assert len(run(given_up)) == 1
    assert failure_of(MONTHLY_BILLS_JOB, poison.pk).resolved_at == given_up


def test_pay_3_month_end_deduction_charges_around_a_bill_the_database_refuses(now, enqueued):
    from payments.services.billing import monthly_bills_generate
    from payments.services.scheduled_charging import DEDUCTION_JOB, month_end_deduction_run

    month_end = now.replace(month=11, day=1, hour=1)
    accounts = [card_account()[0] for _ in range(5)]
    for account in accounts:
        report_usage(account, "20.00", reference=f"d-{account.pk}", now=now, period="2026-10")
    monthly_bills_generate(period="2026-10", now=month_end)
    poison = Bill.objects.get(account=accounts[2])
    poison_rows(Charge._meta.db_table, "bill_id", poison.pk)

    def run(clock):
        return enqueued.commit(month_end_deduction_run, period="2026-10", now=clock, batch_size=2)

    assert run(month_end) == 4  # does not raise; the batch of the poison bill is redone bill by bill
    assert set(Charge.objects.values_list("bill__account_id", flat=True)) == {
        a.pk for a in accounts if a != accounts[2]
    }
    failure = failure_of(DEDUCTION_JOB, poison.pk)
    assert (failure.item_kind, failure.object_id, failure.attempts) == ("payments.bill", poison.pk, 1)
    assert "poison row" in failure.message
    assert run(month_end + timedelta(minutes=1)) == 0 and failure_of(DEDUCTION_JOB, poison.pk).attempts == 1
    until_given_up(run, poison.pk, DEDUCTION_JOB, month_end)


# --- SET-4: settlement chunks -------------------------------------------------------------------


def test_set_4_settlement_chunk_settles_around_an_account_the_database_refuses(now):
    from payments.models import LedgerEntry
    from payments.services.settlement import SETTLEMENT_JOB, settle_accounts
    from tests.factories import AccountFactory
    from tests.payments.invariants import credit, make_bill

    accounts = [AccountFactory() for _ in range(3)]
    bills = {}
    for account in accounts:
        credit(account, "100.00", now=now - timedelta(days=1))
        bills[account.pk] = make_bill(account, "60.00", issued_at=now - timedelta(days=1))
    before, poison, after = accounts
    poison_rows(LedgerEntry._meta.db_table, "account_id", poison.pk)

    def run(clock):
        return settle_accounts(account_ids=[a.pk for a in accounts], now=clock)

    assert run(now).payments == 2  # does not raise: one chunk, redone account by account
    paid = {bill.account_id: bill.status for bill in Bill.objects.all()}
    assert paid == {before.pk: "paid", poison.pk: "open", after.pk: "paid"}
    failure = failure_of(SETTLEMENT_JOB, poison.pk)
    assert (failure.object_id, failure.attempts) == (poison.pk, 1) and "poison row" in failure.message
    assert run(now + timedelta(minutes=1)).payments == 0 and failure_of(SETTLEMENT_JOB, poison.pk).attempts == 1
    given_up = until_given_up(run, poison.pk, SETTLEMENT_JOB, now)

    cure(LedgerEntry._meta.db_table)
    job_item_failure_retry(failure_id=failure.pk, actor=None, now=given_up)
    assert run(given_up).payments == 1
    assert failure_of(SETTLEMENT_JOB, poison.pk).resolved_at == given_up
    assert Bill.objects.get(pk=bills[poison.pk].pk).status == "paid"


# --- CRED-3: overdue marking ----------------------------------------------------------------------


def test_cred_3_overdue_marking_marks_around_a_bill_the_database_refuses(now):
    from payments.services.bills import OVERDUE_JOB, bills_mark_overdue
    from tests.factories import AccountFactory
    from tests.payments.invariants import make_bill

    bills = [make_bill(AccountFactory(), "10.00", issued_at=now - timedelta(days=40)) for _ in range(3)]
    before, poison, after = bills
    poison_rows(Bill._meta.db_table, "id", poison.pk)

    assert bills_mark_overdue(now=now) == 2  # does not raise
    assert dict(Bill.objects.values_list("pk", "status")) == {
        before.pk: "overdue", poison.pk: "open", after.pk: "overdue"
    }
    failure = failure_of(OVERDUE_JOB, poison.pk)
    assert (failure.item_kind, failure.attempts) == ("payments.bill", 1) and "poison row" in failure.message
    late = make_bill(AccountFactory(), "10.00", issued_at=now - timedelta(days=40))
    assert bills_mark_overdue(now=now + timedelta(minutes=1)) == 1  # the one statement again, poison left out
    assert Bill.objects.get(pk=late.pk).status == "overdue" and failure_of(OVERDUE_JOB, poison.pk).attempts == 1
    given_up = until_given_up(lambda clock: bills_mark_overdue(now=clock), poison.pk, OVERDUE_JOB, now)

    cure(Bill._meta.db_table)
    job_item_failure_retry(failure_id=failure.pk, actor=None, now=given_up)
    assert bills_mark_overdue(now=given_up) == 1
    assert failure_of(OVERDUE_JOB, poison.pk).resolved_at == given_up


# --- DEL-5: card expiry ---------------------------------------------------------------------------


def test_del_5_card_expiry_expires_around_a_card_the_database_refuses(now):
    from payments.models import PaymentMethod
    from payments.services.lifecycle import EXPIRY_JOB, cards_expire
    from tests.factories import CardMethodFactory

    cards = [CardMethodFactory(exp_month=10, exp_year=now.year) for _ in range(3)]
    before, poison, after = cards
    poison_rows(PaymentMethod._meta.db_table, "id", poison.pk)

    assert cards_expire(now=now) == 2  # does not raise
    assert dict(PaymentMethod.objects.values_list("pk", "status")) == {
        before.pk: "expired", poison.pk: "active", after.pk: "expired"
    }
    failure = failure_of(EXPIRY_JOB, poison.pk)
    assert (failure.item_kind, failure.attempts) == ("payments.paymentmethod", 1) and "poison row" in failure.message
    assert cards_expire(now=now + timedelta(minutes=1)) == 0 and failure_of(EXPIRY_JOB, poison.pk).attempts == 1
    given_up = until_given_up(lambda clock: cards_expire(now=clock), poison.pk, EXPIRY_JOB, now)

    cure(PaymentMethod._meta.db_table)
    job_item_failure_retry(failure_id=failure.pk, actor=None, now=given_up)
    assert cards_expire(now=given_up) == 1
    assert failure_of(EXPIRY_JOB, poison.pk).resolved_at == given_up


# --- LINK-2: closing accounts after the silent period ----------------------------------------------


def test_link_2_account_closing_closes_around_an_account_whose_close_raises(now, monkeypatch):
    from payments.models import Account
    from payments.services import lifecycle
    from tests.factories import AccountFactory

    accounts = [
        AccountFactory(status=Account.Status.DEACTIVATED, deactivated_at=now - timedelta(days=20)) for _ in range(3)
    ]
    before, poison, after = accounts
    real_close = lifecycle.account_close

    def close(*, account_id, now):
        if account_id == poison.pk:
            raise ZeroDivisionError("a bug met by this account only")
        return real_close(account_id=account_id, now=now)

    monkeypatch.setattr(lifecycle, "account_close", close)
    assert lifecycle.accounts_close_silent(now=now) == 2  # does not raise
    assert dict(Account.objects.values_list("pk", "status")) == {
        before.pk: "closed", poison.pk: "deactivated", after.pk: "closed"
    }
    failure = failure_of(lifecycle.CLOSE_JOB, poison.pk)
    assert (failure.error, failure.message, failure.attempts) == ("ZeroDivisionError", "a bug met by this account only", 1)
    assert lifecycle.accounts_close_silent(now=now + timedelta(minutes=1)) == 0
    given_up = until_given_up(lambda clock: lifecycle.accounts_close_silent(now=clock), poison.pk, lifecycle.CLOSE_JOB, now)

    monkeypatch.setattr(lifecycle, "account_close", real_close)
    assert lifecycle.accounts_close_silent(now=given_up + timedelta(days=1)) == 0  # given up: skipped
    job_item_failure_retry(failure_id=failure.pk, actor=None, now=given_up + timedelta(days=1))
    assert lifecycle.accounts_close_silent(now=given_up + timedelta(days=1)) == 1
    assert failure_of(lifecycle.CLOSE_JOB, poison.pk).resolved_at == given_up + timedelta(days=1)


# --- HOLD-2: hold release -------------------------------------------------------------------------


def test_hold_2_release_voids_around_a_hold_whose_gateway_raises(now, monkeypatch):
    from payments.gateways.simulated import PROCESSOR
    from payments.models import VerificationHold
    from payments.services import holds
    from tests.factories import HoldFactory

    placed = [HoldFactory(placed_at=now - timedelta(hours=3 - n)) for n in range(3)]  # released in this order
    before, poison, after = placed
    real_void = holds._void

    def void(hold):
        if hold.authorization_id == poison.authorization_id:
            raise KeyError("the processor answered without a status")
        return real_void(hold)

    monkeypatch.setattr(holds, "_void", void)
    assert holds.holds_release_due(now=now, batch_size=10) == 2  # does not raise
    statuses = dict(VerificationHold.objects.values_list("pk", "status"))
    assert statuses == {before.pk: "released", poison.pk: "release_failed", after.pk: "released"}
    assert PROCESSOR.void_calls[poison.authorization_id] == 0
    failure = failure_of(holds.RELEASE_JOB, poison.pk)
    assert (failure.item_kind, failure.error, failure.attempts) == ("payments.verificationhold", "KeyError", 1)
    assert "without a status" in failure.message
    assert "unexpected error (KeyError)" in VerificationHold.objects.get(pk=poison.pk).last_error

    assert holds.holds_release_due(now=now + timedelta(minutes=1), batch_size=10) == 0  # waits for its retry
    given_up = until_given_up(
        lambda clock: holds.holds_release_due(now=clock, batch_size=10), poison.pk, holds.RELEASE_JOB, now
    )
    monkeypatch.setattr(holds, "_void", real_void)
    assert holds.holds_release_due(now=given_up + timedelta(minutes=1), batch_size=10) == 0  # given up
    job_item_failure_retry(failure_id=failure.pk, actor=None, now=given_up + timedelta(minutes=1))
    assert holds.holds_release_due(now=given_up + timedelta(minutes=1), batch_size=10) == 1
    assert failure_of(holds.RELEASE_JOB, poison.pk).resolved_at == given_up + timedelta(minutes=1)
    assert PROCESSOR.void_calls[poison.authorization_id] == 1

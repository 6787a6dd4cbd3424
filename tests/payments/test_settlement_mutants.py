"""Settlement edge by edge (SET-2, SET-4): the survivors of the settlement group of ``make mutate``
(README, "Mutation testing").

What operators and finance read of a run is checked word for word: the conflict a task retries
(SET-4, "nothing was paid"), the one line logged per chunk and the warning when a chunk is
redone account by account; and the poison path itself (a chunk the database refuses is settled
account by account, the refused account waits for its retry and is resolved at the run that
pays it), through ``settle_accounts`` as the jobs call it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction

from billing_backoffice.item_failures import retry_delay
from billing_backoffice.models import JobItemFailure
from payments.models import Bill, LedgerEntry
from payments.services import settlement
from payments.services.ledger import account_balance
from payments.services.settlement import SETTLEMENT_JOB, SettlementConflict, settle_accounts
from tests.factories import AccountFactory
from tests.payments.invariants import credit, make_bill

pytestmark = pytest.mark.django_db
D = Decimal
Status = Bill.Status


def settle(*accounts, now):
    return settle_accounts(account_ids=[a.pk for a in accounts], now=now)


def refuse_ledger_rows_of(*accounts) -> None:
    """The database refuses ledger rows of this account as a constraint would (a trigger, rolled
    back with the test): a stand-in for the one row a set-based statement cannot write."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION refuse_settlement() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.account_id IN ({", ".join(str(int(a.pk)) for a in accounts)}) THEN RAISE EXCEPTION 'refused row' USING ERRCODE = 'check_violation'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_settlement BEFORE INSERT ON {LedgerEntry._meta.db_table}
                FOR EACH ROW EXECUTE FUNCTION refuse_settlement();
            """
        )


def accept_ledger_rows() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER refuse_settlement ON {LedgerEntry._meta.db_table}; DROP FUNCTION refuse_settlement();")


def test_set_4_a_conflict_says_how_many_bills_changed_and_that_nothing_was_paid(now, monkeypatch):
    """The text the task's retry log and the admin job show: bills changed, nothing paid."""
    first, second = AccountFactory(), AccountFactory()
    bill = make_bill(first, "50.00", issued_at=now - timedelta(days=2))
    make_bill(second, "5.00", issued_at=now - timedelta(days=2))
    credit(first, "50.00", now=now)
    credit(second, "5.00", now=now)

    def writer_without_the_lock(cursor, payments):
        Bill.objects.filter(pk=bill.pk).update(amount_paid=D("10.00"), status=Status.PARTIALLY_PAID)

    monkeypatch.setattr(settlement, "_after_insert", writer_without_the_lock)
    with pytest.raises(SettlementConflict) as raised:
        with transaction.atomic():
            settle(first, second, now=now)
    assert raised.value.detail == "1 bill(s) changed during settlement; nothing was paid."


def test_set_2_each_chunk_logs_what_it_locked_paid_and_partly_paid(now, caplog):
    account = AccountFactory()
    make_bill(account, "30.00", issued_at=now - timedelta(days=3))
    make_bill(account, "30.00", issued_at=now - timedelta(days=2))
    credit(account, "45.00", now=now)
    with caplog.at_level(logging.INFO, logger=settlement.logger.name):
        settle(account, now=now)
    lines = [r.getMessage() for r in caplog.records if r.name == settlement.logger.name]
    assert lines == ["settlement: 1 account(s) locked, 2 payment(s), 1 bill(s) paid, 1 partially"]


def test_set_4_a_chunk_the_database_refuses_is_settled_account_by_account(now, caplog):
    """One refused account: the others of its chunk are paid, it is recorded and retried later
    (not before its retry time), and the run that pays it resolves its failure."""
    accounts = [AccountFactory() for _ in range(3)]
    bills = {a.pk: make_bill(a, "60.00", issued_at=now - timedelta(days=1)) for a in accounts}
    for account in accounts:
        credit(account, "100.00", now=now - timedelta(days=1))
    before, refused, after = accounts
    refuse_ledger_rows_of(refused)

    with caplog.at_level(logging.INFO, logger=settlement.logger.name):
        result = settle(*accounts, now=now)
    assert (result.accounts, result.payments, result.bills_paid, result.bills_partially_paid) == (2, 2, 2, 0)
    assert result.totals == {"USD": D("120.00")}
    assert {pk: Bill.objects.get(pk=b.pk).status for pk, b in bills.items()} == {
        before.pk: Status.PAID, refused.pk: Status.OPEN, after.pk: Status.PAID,
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == settlement.logger.name]
    assert warnings == ["SET-4: a chunk of 3 account(s) failed (IntegrityError); settling it account by account"]
    failure = JobItemFailure.objects.get(job=SETTLEMENT_JOB, item_key=str(refused.pk))
    assert (failure.object_id, failure.attempts, failure.next_retry_at) == (refused.pk, 1, now + retry_delay(1))

    # Before its retry time the account is left out of the chunk: no second failure, no warning.
    accept_ledger_rows()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=settlement.logger.name):
        assert settle(*accounts, now=now + timedelta(minutes=1)).payments == 0
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert Bill.objects.get(pk=bills[refused.pk].pk).status == Status.OPEN

    # At its retry time the chunk pays it and resolves the failure, with that run's time.
    retry_at = now + retry_delay(1)
    assert settle(*accounts, now=retry_at).payments == 1
    failure.refresh_from_db()
    assert (failure.resolved_at, failure.next_retry_at) == (retry_at, None)
    assert Bill.objects.get(pk=bills[refused.pk].pk).status == Status.PAID
    assert account_balance(account_id=refused.pk, currency="USD") == D("40.00")


def test_set_4_account_by_account_skips_an_account_waiting_for_its_retry_and_goes_on(now):
    """A chunk redone account by account passes over an account whose failure waits for its
    retry (no second attempt before its time) and still settles the accounts after it."""
    waiting, refused, healthy = sorted((AccountFactory() for _ in range(3)), key=lambda a: a.pk)
    bills = {a.pk: make_bill(a, "60.00", issued_at=now - timedelta(days=1)) for a in (waiting, refused, healthy)}
    for account in (waiting, refused, healthy):
        credit(account, "100.00", now=now - timedelta(days=1))
    refuse_ledger_rows_of(waiting)
    assert settle(waiting, now=now).payments == 0
    accept_ledger_rows()

    refuse_ledger_rows_of(waiting, refused)
    result = settle(waiting, refused, healthy, now=now + timedelta(minutes=1))
    assert (result.payments, result.bills_paid) == (1, 1)
    assert {pk: Bill.objects.get(pk=b.pk).status for pk, b in bills.items()} == {
        waiting.pk: Status.OPEN, refused.pk: Status.OPEN, healthy.pk: Status.PAID,
    }
    attempts = dict(JobItemFailure.objects.filter(job=SETTLEMENT_JOB).values_list("object_id", "attempts"))
    assert attempts == {waiting.pk: 1, refused.pk: 1}


def test_set_4_a_conflict_while_settling_account_by_account_reaches_the_caller(now, monkeypatch):
    """Only database refusals are an account's fault: a bill changed behind the settlement in
    the account-by-account pass rolls back and raises (the task retries), nothing is recorded."""
    refused, changed = sorted((AccountFactory() for _ in range(2)), key=lambda a: a.pk)
    for account in (refused, changed):
        make_bill(account, "60.00", issued_at=now - timedelta(days=1))
        credit(account, "100.00", now=now - timedelta(days=1))
    refuse_ledger_rows_of(refused)

    def writer_without_the_lock(cursor, payments):
        Bill.objects.filter(account=changed).update(amount_paid=D("10.00"), status=Status.PARTIALLY_PAID)

    monkeypatch.setattr(settlement, "_after_insert", writer_without_the_lock)
    with pytest.raises(SettlementConflict):
        with transaction.atomic():
            settle(refused, changed, now=now)
    assert not JobItemFailure.objects.filter(job=SETTLEMENT_JOB, object_id=changed.pk).exists()

"""Credit applications under concurrency, on PostgreSQL with real threads (CRED-1, CRED-3, I3).

Each thread uses its own connection and closes it. Outcomes are collected per thread; the
database is checked afterwards.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from payments.models import Account, LedgerEntry
from payments.services.ledger import InsufficientBalance, account_balance, ledger_post
from remittances.models import CreditLimitRequest
from remittances.services.credit import (
    CreditLimitBelowOwed,
    CreditRequestDecided,
    CreditRequestOpen,
    credit_request_approve,
    credit_request_submit,
)
from tests.concurrency import run_at_once
from tests.factories import AccountFactory
from tests.helpers.credit import MANAGER_PERMS, approve, credit_of, staff_user, submit

pytestmark = [pytest.mark.race, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def account_update_counter():
    """Counts UPDATEs of each account row, with a real trigger (dropped afterwards)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE TABLE test_credit_account_updates (account_id bigint NOT NULL);
            CREATE FUNCTION test_credit_count_account_update() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO test_credit_account_updates VALUES (NEW.id); RETURN NEW; END $$;
            CREATE TRIGGER test_credit_count_account_update AFTER UPDATE ON payments_account
                FOR EACH ROW EXECUTE FUNCTION test_credit_count_account_update();
            """
        )

    def updates_of(account_id: int) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM test_credit_account_updates WHERE account_id = %s", [account_id])
            return cursor.fetchone()[0]

    yield updates_of
    with connection.cursor() as cursor:
        cursor.execute(
            """
            DROP TRIGGER IF EXISTS test_credit_count_account_update ON payments_account;
            DROP FUNCTION IF EXISTS test_credit_count_account_update();
            DROP TABLE IF EXISTS test_credit_account_updates;
            """
        )


def test_cred_1_ten_managers_approving_at_once_make_one_decision(now, account_update_counter):
    account = AccountFactory(kind=Account.Kind.ENTERPRISE)
    recorder = staff_user("am_recorder", *MANAGER_PERMS)
    request = submit(account, now, limit="7500.00", recorded_by=recorder)
    approver_ids = [staff_user(f"am_{i}", *MANAGER_PERMS).pk for i in range(10)]
    User = get_user_model()

    def approve_as(user_id: int):
        def call():
            actor = User.objects.get(pk=user_id)  # loaded in the thread: its own permission cache
            return credit_request_approve(request_id=request.pk, actor=actor, note=f"by {user_id}", now=now)

        return call

    results = run_at_once([approve_as(pk) for pk in approver_ids])

    won = [r for r in results if isinstance(r, CreditLimitRequest)]
    lost = [r for r in results if isinstance(r, CreditRequestDecided)]
    assert len(won) == 1 and len(lost) == 9, results
    request.refresh_from_db()
    assert request.status == CreditLimitRequest.Status.APPROVED
    assert request.decided_by_id == won[0].decided_by_id
    assert request.decision_note == f"by {request.decided_by_id}"
    assert credit_of(account) == (True, Decimal("7500.00"), "USD")
    assert account_update_counter(account.pk) == 1


def test_cred_1_simultaneous_applications_file_one(now):
    account = AccountFactory()

    def apply(limit: str):
        return lambda: credit_request_submit(
            account_id=account.pk, requested_limit=limit, currency="USD", justification="Growth",
            source=CreditLimitRequest.Source.CONSOLE, now=now,
        )

    results = run_at_once([apply(f"{1000 + i}.00") for i in range(8)])

    filed = [r for r in results if isinstance(r, CreditLimitRequest)]
    conflicts = [r for r in results if isinstance(r, CreditRequestOpen)]
    assert len(filed) == 1 and len(conflicts) == 7, results
    assert list(CreditLimitRequest.objects.values_list("pk", flat=True)) == [filed[0].pk]


def wait_until_a_backend_waits_for_a_lock(timeout: float = 10.0) -> None:
    """Block until another connection is queued on a row lock (pg_stat_activity)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("no connection ever waited for the lock")


def hold_open(work, *, done: threading.Event, release: threading.Event, outcome: dict):
    """Run ``work`` in a transaction that stays open (locks held) until ``release`` is set."""

    def run():
        try:
            with transaction.atomic():
                outcome["result"] = work()
                done.set()
                release.wait(timeout=20)
        except BaseException as error:  # noqa: BLE001
            outcome["result"] = error
            done.set()
        finally:
            connection.close()

    return threading.Thread(target=run)


@pytest.fixture
def lowering(now):
    """An account approved for 100.00 USD, owing nothing, with an application to lower it to 30.00."""
    account = AccountFactory(kind=Account.Kind.ENTERPRISE)
    approver = staff_user("am_approver", *MANAGER_PERMS)
    approve(submit(account, now, limit="100.00"), approver, now)
    request = submit(account, now, limit="30.00")

    def lower_limit():
        actor = get_user_model().objects.get(pk=approver.pk)
        return credit_request_approve(request_id=request.pk, actor=actor, now=now)

    def spend_80():
        return ledger_post(
            account_id=account.pk, amount="-80.00", currency="USD", kind=LedgerEntry.Kind.BILL_PAYMENT,
            reference="bill:race", now=now,
        )

    return account, request, lower_limit, spend_80


def race_second_behind_first(first, second) -> tuple:
    """``first`` runs and keeps its transaction open; ``second`` starts and queues on the lock;
    then ``first`` commits. Returns both outcomes."""
    done, release, first_outcome, second_outcome = threading.Event(), threading.Event(), {}, {}
    holder = hold_open(first, done=done, release=release, outcome=first_outcome)
    holder.start()
    assert done.wait(timeout=20)
    follower = threading.Thread(target=lambda: run_into(second, second_outcome))
    follower.start()
    try:
        wait_until_a_backend_waits_for_a_lock()
    finally:
        release.set()
        holder.join(timeout=30)
        follower.join(timeout=30)
    return first_outcome["result"], second_outcome["result"]


def run_into(call, outcome: dict) -> None:
    try:
        outcome["result"] = call()
    except BaseException as error:  # noqa: BLE001
        outcome["result"] = error
    finally:
        connection.close()


def test_cred_3_approval_waiting_behind_a_debit_sees_the_debt(lowering):
    """The approval locks the account, so it checks the balance after the debit committed."""
    account, request, lower_limit, spend_80 = lowering
    spent, approved = race_second_behind_first(spend_80, lower_limit)
    assert not isinstance(spent, BaseException), spent
    assert isinstance(approved, CreditLimitBelowOwed), approved
    assert credit_of(account) == (True, Decimal("100.00"), "USD")
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("-80.00")
    assert CreditLimitRequest.objects.get(pk=request.pk).status == CreditLimitRequest.Status.SUBMITTED


def test_cred_3_debit_waiting_behind_a_lowering_sees_the_new_limit(lowering):
    account, request, lower_limit, spend_80 = lowering
    approved, spent = race_second_behind_first(lower_limit, spend_80)
    assert isinstance(approved, CreditLimitRequest), approved
    assert isinstance(spent, InsufficientBalance), spent
    assert credit_of(account) == (True, Decimal("30.00"), "USD")
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("0.00")

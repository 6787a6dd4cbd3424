"""Automatic settlement (SET-1, SET-2, SET-4), manual payment (SET-3) and overdue marking
(CRED-3), service by service; invariants checked after every test (``invariants.py``).
Thread races on PostgreSQL are in ``test_settlement_races.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from payments.tasks import bills as bills_tasks, settlement as settlement_tasks
from payments.models import Account, Bill, LedgerEntry
from payments.selectors import settlement_switch_history
from payments.services import settlement
from payments.services.bills import (
    BalanceTooLow,
    BillAlreadyPaid,
    OlderBillUnpaid,
    SettlementIsOn,
    bill_pay_manual,
    bills_mark_overdue,
    settlement_switch,
)
from payments.services.ledger import account_balance, ledger_post
from payments.services.settlement import (
    SettlementConflict,
    payment_reference,
    settle_accounts,
    settlement_due_account_ids,
    settlement_request,
)
from billing_backoffice.task_retries import TRANSIENT_ERRORS
from tests.factories import AccountFactory, UserFactory
from tests.helpers.roles import FINANCE, role_group
from tests.payments.invariants import assert_billing_invariants, credit, make_bill

pytestmark = pytest.mark.django_db
D = Decimal
Status = Bill.Status


@pytest.fixture(autouse=True)
def invariants_hold_after_each_test(request):
    yield
    if "django_db_blocker" in request.fixturenames or request.node.get_closest_marker("django_db"):
        assert_billing_invariants()


@pytest.fixture
def account():
    return AccountFactory()


def day(n: int, now: datetime) -> datetime:
    """``n`` days before ``now``: older bills have bigger n."""
    return now - timedelta(days=n)


def fresh(bill: Bill) -> Bill:
    bill.refresh_from_db()
    return bill


def settle(*accounts, now):
    return settle_accounts(account_ids=[a.pk for a in accounts], now=now)


# --- SET-1 --------------------------------------------------------------------------------------


def test_set_1_automatic_settlement_is_on_by_default():
    assert AccountFactory().auto_settlement_enabled is True
    assert Account._meta.get_field("auto_settlement_enabled").default is True


def test_set_1_account_with_settlement_off_is_untouched(account, now):
    account.auto_settlement_enabled = False
    account.save()
    bill = make_bill(account, "40.00", issued_at=day(5, now))
    credit(account, "100.00", now=now)
    result = settle(account, now=now)
    assert (result.accounts, result.payments) == (0, 0)
    assert fresh(bill).status == Status.OPEN
    assert account_balance(account_id=account.pk, currency="USD") == D("100.00")
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).exists()
    assert account.pk not in settlement_due_account_ids()


def test_set_1_switch_records_who_and_when_and_switching_on_settles(account, now, django_capture_on_commit_callbacks, monkeypatch):
    staff = UserFactory(username="finance-switch")
    staff.groups.add(role_group(FINANCE))  # SEC-3: the switch needs payments.pay_bill
    with django_capture_on_commit_callbacks(execute=False) as off_callbacks:
        settlement_switch(account_id=account.pk, enabled=False, actor=staff, now=now)
    account.refresh_from_db()
    assert account.auto_settlement_enabled is False
    assert off_callbacks == []  # switching off asks for nothing
    entry = LogEntry.objects.get(object_id=str(account.pk))
    assert (entry.user_id, entry.action_time, entry.change_message) == (
        staff.pk, now, "Automatic settlement switched off (SET-1).",
    )
    # Same value again: nothing changes, nothing recorded.
    settlement_switch(account_id=account.pk, enabled=False, actor=staff, now=now + timedelta(minutes=1))
    assert LogEntry.objects.filter(object_id=str(account.pk)).count() == 1

    sent = []
    monkeypatch.setattr(settlement_tasks.settle_account, "delay", lambda **kwargs: sent.append(kwargs))
    later = now + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        settlement_switch(account_id=account.pk, enabled=True, actor=staff, now=later)
    assert sent == [{"account_id": account.pk}]
    history = settlement_switch_history(account_id=account.pk)
    assert [(h.change_message, h.action_time) for h in history] == [
        ("Automatic settlement switched on (SET-1).", later),
        ("Automatic settlement switched off (SET-1).", now),
    ]


# --- SET-2 --------------------------------------------------------------------------------------


def test_set_2_oldest_bill_paid_first(account, now):
    young = make_bill(account, "60.00", issued_at=day(1, now))
    old = make_bill(account, "60.00", issued_at=day(9, now))
    credit(account, "60.00", now=now)
    result = settle(account, now=now)
    assert (result.payments, result.bills_paid, result.bills_partially_paid) == (1, 1, 0)
    old, young = fresh(old), fresh(young)
    assert (old.status, old.amount_paid, old.paid_at) == (Status.PAID, D("60.00"), now)
    assert (young.status, young.amount_paid) == (Status.OPEN, D("0.00"))
    assert account_balance(account_id=account.pk, currency="USD") == D("0.00")


def test_set_2_money_left_after_the_oldest_goes_to_the_next(account, now):
    first = make_bill(account, "100.00", issued_at=day(30, now))
    second = make_bill(account, "100.00", issued_at=day(20, now))
    third = make_bill(account, "100.00", issued_at=day(10, now))
    credit(account, "150.00", now=now)
    result = settle(account, now=now)
    assert (result.bills_paid, result.bills_partially_paid, result.totals) == (1, 1, {"USD": D("150.00")})
    assert (fresh(first).status, fresh(second).status, fresh(third).status) == (
        Status.PAID, Status.PARTIALLY_PAID, Status.OPEN,
    )
    assert fresh(second).amount_paid == D("50.00")
    assert account_balance(account_id=account.pk, currency="USD") == D("0.00")
    # The entries name the bill and what was paid before, newest allocation last.
    references = list(
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).order_by("pk").values_list("reference", "amount")
    )
    assert references == [(f"settle:{first.pk}:0.00", D("-100.00")), (f"settle:{second.pk}:0.00", D("-50.00"))]


def test_set_2_partial_payment_then_rest_when_more_money_arrives(account, now):
    bill = make_bill(account, "100.00", issued_at=day(3, now))
    credit(account, "30.00", now=now)
    settle(account, now=now)
    assert (fresh(bill).status, fresh(bill).amount_paid, fresh(bill).paid_at) == (Status.PARTIALLY_PAID, D("30.00"), None)
    credit(account, "100.00", now=now)
    settle(account, now=now + timedelta(hours=1))
    bill = fresh(bill)
    assert (bill.status, bill.amount_paid, bill.paid_at) == (Status.PAID, D("100.00"), now + timedelta(hours=1))
    assert LedgerEntry.objects.filter(reference=f"settle:{bill.pk}:30.00", amount=D("-70.00")).exists()
    assert account_balance(account_id=account.pk, currency="USD") == D("30.00")


def test_set_2_never_pays_a_younger_bill_before_an_older_unpaid_one(account, now):
    """The balance could pay the small young bill, but the big old one comes first."""
    old = make_bill(account, "500.00", issued_at=day(10, now))
    young = make_bill(account, "5.00", issued_at=day(1, now))
    credit(account, "50.00", now=now)
    settle(account, now=now)
    assert (fresh(old).status, fresh(old).amount_paid) == (Status.PARTIALLY_PAID, D("50.00"))
    assert (fresh(young).status, fresh(young).amount_paid) == (Status.OPEN, D("0.00"))


def test_set_2_same_issue_time_ordered_by_id(account, now):
    first = make_bill(account, "10.00", issued_at=day(2, now))
    second = make_bill(account, "10.00", issued_at=day(2, now))
    credit(account, "10.00", now=now)
    settle(account, now=now)
    assert (fresh(first).status, fresh(second).status) == (Status.PAID, Status.OPEN)


def test_set_2_currencies_are_settled_separately(account, now):
    old_eur = make_bill(account, "80.00", issued_at=day(20, now), currency="EUR")
    usd = make_bill(account, "40.00", issued_at=day(10, now), currency="USD")
    credit(account, "50.00", now=now, currency="USD")
    credit(account, "20.00", now=now, currency="EUR")
    settle(account, now=now)
    # USD money pays the USD bill although an older EUR bill is unpaid; EUR money stays EUR.
    assert (fresh(usd).status, fresh(usd).amount_paid) == (Status.PAID, D("40.00"))
    assert (fresh(old_eur).status, fresh(old_eur).amount_paid) == (Status.PARTIALLY_PAID, D("20.00"))
    assert account_balance(account_id=account.pk, currency="USD") == D("10.00")
    assert account_balance(account_id=account.pk, currency="EUR") == D("0.00")


def test_set_2_credit_line_is_never_spent_on_settlement(now):
    account = AccountFactory(credit_approved=True, credit_limit=D("10000.00"), credit_currency="USD")
    bill = make_bill(account, "300.00", issued_at=day(5, now))
    settle(account, now=now)
    assert fresh(bill).status == Status.OPEN  # no money sent, the credit line pays nothing
    credit(account, "120.00", now=now)
    settle(account, now=now)
    assert (fresh(bill).status, fresh(bill).amount_paid) == (Status.PARTIALLY_PAID, D("120.00"))
    assert account_balance(account_id=account.pk, currency="USD") == D("0.00")


def test_set_2_negative_balance_pays_nothing(account, now):
    """A balance already below zero (e.g. a debit on credit) has no money to settle with."""
    account.credit_approved, account.credit_limit = True, D("100.00")
    account.save()
    ledger_post(account_id=account.pk, amount=D("-40.00"), currency="USD", kind=LedgerEntry.Kind.ADJUSTMENT,
                reference="adj-1", now=now)
    bill = make_bill(account, "10.00", issued_at=day(1, now))
    credit(account, "30.00", now=now)
    assert settle(account, now=now).payments == 0
    assert fresh(bill).status == Status.OPEN


def test_set_2_overdue_bill_partially_paid_stays_overdue_and_flag_follows(account, now):
    overdue = make_bill(account, "100.00", issued_at=day(60, now), due_date=day(30, now).date(), status=Status.OVERDUE)
    credit(account, "40.00", now=now)
    settle(account, now=now)
    assert (fresh(overdue).status, fresh(overdue).amount_paid) == (Status.OVERDUE, D("40.00"))
    account.refresh_from_db()
    assert account.has_outstanding_bills is True
    credit(account, "60.00", now=now)
    settle(account, now=now)
    assert fresh(overdue).status == Status.PAID
    account.refresh_from_db()
    assert account.has_outstanding_bills is False  # DEL-3 no longer blocks


def test_set_2_one_chunk_settles_many_accounts_each_from_its_own_balance(now):
    rich, poor, off = AccountFactory(), AccountFactory(), AccountFactory(auto_settlement_enabled=False)
    bills = {a.pk: make_bill(a, "25.00", issued_at=day(3, now)) for a in (rich, poor, off)}
    credit(rich, "25.00", now=now)
    credit(off, "25.00", now=now)
    result = settle(rich, poor, off, now=now)
    assert (result.accounts, result.payments) == (2, 1)
    assert [fresh(bills[a.pk]).status for a in (rich, poor, off)] == [Status.PAID, Status.OPEN, Status.OPEN]


def test_set_2_chunks_of_a_run_each_settle(now):
    accounts = [AccountFactory() for _ in range(5)]
    for a in accounts:
        make_bill(a, "10.00", issued_at=day(1, now))
        credit(a, "10.00", now=now)
    result = settle_accounts(account_ids=[a.pk for a in accounts], now=now, chunk=2)
    assert (result.accounts, result.bills_paid) == (5, 5)


# --- SET-4 --------------------------------------------------------------------------------------


def _snapshot():
    return (
        list(LedgerEntry.objects.order_by("pk").values_list("pk", "reference", "amount")),
        list(Bill.objects.order_by("pk").values_list("pk", "status", "amount_paid", "paid_at")),
        list(Account.objects.order_by("pk").values_list("pk", "has_outstanding_bills")),
    )


def test_set_4_second_run_changes_nothing(account, now):
    make_bill(account, "70.00", issued_at=day(9, now))
    make_bill(account, "70.00", issued_at=day(4, now))
    credit(account, "100.00", now=now)
    first = settle(account, now=now)
    before = _snapshot()
    second = settle(account, now=now + timedelta(minutes=5))
    assert first.payments == 2 and second.payments == 0
    assert _snapshot() == before


def test_set_4_same_credit_event_delivered_twice_pays_once(account, now):
    bill = make_bill(account, "100.00", issued_at=day(2, now))
    for _ in range(2):  # the bank entry's credit is delivered twice, each followed by a settlement
        credit(account, "60.00", now=now, reference="bank-txn:dup-1")
        settle(account, now=now)
    assert (fresh(bill).status, fresh(bill).amount_paid) == (Status.PARTIALLY_PAID, D("60.00"))
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).count() == 1


class InjectedCrash(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_set_4_crash_after_insert_before_commit_rolls_back_and_rerun_pays_once(account, now, monkeypatch):
    bills = [make_bill(account, "30.00", issued_at=day(n, now)) for n in (5, 4, 3)]
    credit(account, "75.00", now=now)

    def crash(cursor, payments):
        assert len(payments) == 3  # the INSERT ran: the entries exist in this transaction
        cursor.execute("SELECT COUNT(*) FROM payments_ledgerentry WHERE kind = 'bill_payment'")
        assert cursor.fetchone()[0] == 3
        raise InjectedCrash

    monkeypatch.setattr(settlement, "_after_insert", crash)
    with pytest.raises(InjectedCrash):
        settle(account, now=now)
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).exists()
    assert [fresh(b).status for b in bills] == [Status.OPEN] * 3
    monkeypatch.undo()

    assert settle(account, now=now).payments == 3
    assert settle(account, now=now).payments == 0
    assert [fresh(b).amount_paid for b in bills] == [D("30.00"), D("30.00"), D("15.00")]
    assert account_balance(account_id=account.pk, currency="USD") == D("0.00")


def test_set_4_bill_changed_behind_the_settlement_rolls_the_chunk_back(account, now, monkeypatch):
    bill = make_bill(account, "50.00", issued_at=day(2, now))
    other = AccountFactory()
    other_bill = make_bill(other, "5.00", issued_at=day(2, now))
    credit(account, "50.00", now=now)
    credit(other, "5.00", now=now)

    def writer_without_the_lock(cursor, payments):
        Bill.objects.filter(pk=bill.pk).update(amount_paid=D("10.00"), status=Status.PARTIALLY_PAID)

    monkeypatch.setattr(settlement, "_after_insert", writer_without_the_lock)
    with pytest.raises(SettlementConflict):
        with transaction.atomic():
            settle(account, other, now=now)
    # Nothing of the chunk was paid, the other account's bill included.
    assert fresh(bill).amount_paid == D("0.00") and fresh(other_bill).amount_paid == D("0.00")
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).exists()


def test_set_4_a_manual_allocation_already_posted_is_not_paid_again(account, now):
    """Same reference scheme: if the ledger already holds this allocation, nothing is posted."""
    bill = make_bill(account, "20.00", issued_at=day(2, now))
    credit(account, "50.00", now=now)
    ledger_post(account_id=account.pk, amount=D("-20.00"), currency="USD", kind=LedgerEntry.Kind.BILL_PAYMENT,
                reference=payment_reference(bill_id=bill.pk, amount_paid_before=D("0")), now=now)
    Bill.objects.filter(pk=bill.pk).update(amount_paid=D("20.00"), status=Status.PAID, paid_at=now)
    assert settle(account, now=now).payments == 0
    assert account_balance(account_id=account.pk, currency="USD") == D("30.00")


def _queries_to_settle(accounts, now) -> int:
    with CaptureQueriesContext(connection) as queries:
        result = settle(*accounts, now=now)
    assert result.bills_paid == sum(a.bills.count() for a in accounts)
    return len(queries)


def test_set_4_query_count_of_a_chunk_does_not_grow_with_accounts_or_bills(now):
    small = [AccountFactory() for _ in range(2)]
    large = [AccountFactory() for _ in range(40)]
    for index, a in enumerate(small):
        make_bill(a, "10.00", issued_at=day(1, now))
        credit(a, "10.00", now=now)
    for index, a in enumerate(large):
        for n in range(5):
            make_bill(a, "10.00", issued_at=day(n + 1, now), currency="EUR" if n == 4 else "USD")
        credit(a, "40.00", now=now)
        credit(a, "10.00", now=now, currency="EUR")
    few = _queries_to_settle(small, now)
    many = _queries_to_settle(large, now)
    assert few == many <= 7  # savepoint + lock + insert + update + flags + release


# --- the jobs -----------------------------------------------------------------------------------


def test_set_2_settlement_request_enqueues_on_commit_only(account, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(settlement_tasks.settle_account, "delay", lambda **kwargs: sent.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        settlement_request(account_id=account.pk)
        assert sent == []  # not before the commit
    assert len(callbacks) == 1 and sent == [{"account_id": account.pk}]


@pytest.mark.django_db(transaction=True)
def test_set_2_nothing_enqueued_when_the_credit_rolls_back(account, now, monkeypatch):
    sent = []
    monkeypatch.setattr(settlement_tasks.settle_account, "delay", lambda **kwargs: sent.append(kwargs))
    with pytest.raises(InjectedCrash):
        with transaction.atomic():
            credit(account, "10.00", now=now)
            settlement_request(account_id=account.pk)
            raise InjectedCrash
    assert sent == []
    with transaction.atomic():
        credit(account, "10.00", now=now)
        settlement_request(account_id=account.pk)
    assert sent == [{"account_id": account.pk}]


def test_set_2_settle_account_task_pays_and_twice_has_no_second_effect(account, now):
    bill = make_bill(account, "10.00", issued_at=day(1, now))
    credit(account, "10.00", now=now)
    assert settlement_tasks.settle_account(account_id=account.pk) == 1
    assert settlement_tasks.settle_account(account_id=account.pk) == 0
    assert fresh(bill).status == Status.PAID


def test_set_2_sweep_fans_out_due_accounts_in_chunks(now, settings, monkeypatch, django_capture_on_commit_callbacks):
    settings.SETTLEMENT_CHUNK_SIZE = 2
    due = []
    for i in range(5):
        a = AccountFactory()
        make_bill(a, "10.00", issued_at=day(1, now))
        credit(a, "5.00", now=now)
        due.append(a.pk)
    broke = AccountFactory()  # unpaid bill, no money
    make_bill(broke, "10.00", issued_at=day(1, now))
    other_currency = AccountFactory()  # money, but not in the bill's currency
    make_bill(other_currency, "10.00", issued_at=day(1, now), currency="EUR")
    credit(other_currency, "10.00", now=now)
    paid_up = AccountFactory()  # money, nothing to pay
    credit(paid_up, "10.00", now=now)
    off = AccountFactory(auto_settlement_enabled=False)
    make_bill(off, "10.00", issued_at=day(1, now))
    credit(off, "10.00", now=now)

    with CaptureQueriesContext(connection) as queries:
        assert settlement_due_account_ids() == sorted(due)
    assert len(queries) == 1  # one query finds them, whatever their number
    sent = []
    monkeypatch.setattr(settlement_tasks.settle_chunk, "delay", lambda **kwargs: sent.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        assert settlement_tasks.settlement_sweep() == 3
    assert [s["account_ids"] for s in sent] == [sorted(due)[0:2], sorted(due)[2:4], sorted(due)[4:]]


def test_set_4_two_beat_firings_in_one_window_pay_each_bill_once(now, monkeypatch, django_capture_on_commit_callbacks):
    """The second firing in the window is skipped (billing_backoffice/scheduled_runs.py), so the
    chunks go out once; delivered twice anyway, the second settlement finds nothing left to pay.
    More cases (redelivery, lease takeover, threads) in tests/test_scheduled_runs.py."""
    accounts = [AccountFactory() for _ in range(3)]
    for a in accounts:
        make_bill(a, "10.00", issued_at=day(2, now))
        make_bill(a, "10.00", issued_at=day(1, now))
        credit(a, "15.00", now=now)
    sent = []
    monkeypatch.setattr(settlement_tasks.settle_chunk, "delay", lambda **kwargs: sent.append(kwargs))
    monkeypatch.setattr(settlement_tasks, "timezone", SimpleNamespace(now=lambda: now))  # one window
    with django_capture_on_commit_callbacks(execute=True):
        settlement_tasks.settlement_sweep()
        settlement_tasks.settlement_sweep()  # beat fired twice before any chunk ran
    assert len(sent) == 1
    results = [settlement_tasks.settle_chunk(**kwargs) for kwargs in sent * 2]
    assert results == [6, 0]
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).count() == 6
    for a in accounts:
        assert account_balance(account_id=a.pk, currency="USD") == D("0.00")


def test_cred_3_overdue_task_twice_has_no_second_effect(account):
    bill = make_bill(account, "10.00", issued_at=datetime(2020, 1, 1, tzinfo=timezone.utc),
                     due_date=datetime(2020, 1, 31, tzinfo=timezone.utc).date())
    assert bills_tasks.mark_overdue_bills() == 1
    assert bills_tasks.mark_overdue_bills() == 0
    assert fresh(bill).status == Status.OVERDUE


@pytest.mark.parametrize(
    "task",
    [settlement_tasks.settle_account, settlement_tasks.settle_chunk, settlement_tasks.settlement_sweep,
     bills_tasks.mark_overdue_bills],
    ids=lambda t: t.name,
)
def test_set_4_task_retries_bounded_below_visibility_timeout(task):
    assert 0 < task.max_retries <= 5
    assert task.max_retries * task.retry_backoff_max < 3600
    assert set(task.autoretry_for) == set(TRANSIENT_ERRORS)


# --- SET-3 --------------------------------------------------------------------------------------


@pytest.fixture
def manual_account():
    return AccountFactory(auto_settlement_enabled=False)


def test_set_3_manual_payment_pays_the_bill_from_the_balance(manual_account, now):
    finance = UserFactory(username="fin-manual")
    finance.groups.add(role_group(FINANCE))  # SEC-3: paying by hand needs payments.pay_bill
    bill = make_bill(manual_account, "80.00", issued_at=day(3, now))
    credit(manual_account, "100.00", now=now)
    paid = bill_pay_manual(bill_id=bill.pk, actor=finance, now=now)
    assert (paid.status, paid.amount_paid, paid.paid_at) == (Status.PAID, D("80.00"), now)
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.BILL_PAYMENT)
    assert (entry.reference, entry.amount, entry.created_by_id) == (f"settle:{bill.pk}:0.00", D("-80.00"), finance.pk)
    assert "0.00 -> 80.00" in entry.memo  # SEC-2: before and after
    assert account_balance(account_id=manual_account.pk, currency="USD") == D("20.00")
    manual_account.refresh_from_db()
    assert manual_account.has_outstanding_bills is False
    with pytest.raises(BillAlreadyPaid):
        bill_pay_manual(bill_id=bill.pk, actor=finance, now=now)


def test_set_3_manual_payment_completes_a_partially_paid_bill(manual_account, now):
    bill = make_bill(manual_account, "80.00", issued_at=day(3, now), status=Status.PARTIALLY_PAID, amount_paid="30.00")
    # The earlier 30.00 came from a settlement while it was on.
    ledger_post(account_id=manual_account.pk, amount=D("30.00"), currency="USD", kind=LedgerEntry.Kind.REMITTANCE_CREDIT,
                reference="earlier-credit", now=now)
    ledger_post(account_id=manual_account.pk, amount=D("-30.00"), currency="USD", kind=LedgerEntry.Kind.BILL_PAYMENT,
                reference=f"settle:{bill.pk}:0.00", now=now)
    credit(manual_account, "50.00", now=now)
    bill_pay_manual(bill_id=bill.pk, actor=None, now=now)
    assert LedgerEntry.objects.filter(reference=f"settle:{bill.pk}:30.00", amount=D("-50.00")).exists()
    assert fresh(bill).status == Status.PAID


def test_set_3_manual_payment_refused_while_settlement_is_on(account, now):
    bill = make_bill(account, "10.00", issued_at=day(3, now))
    credit(account, "100.00", now=now)
    with pytest.raises(SettlementIsOn) as refused:
        bill_pay_manual(bill_id=bill.pk, actor=None, now=now)
    assert refused.value.rule == "SET-3"
    assert fresh(bill).status == Status.OPEN


def test_set_3_manual_payment_refused_while_an_older_bill_is_unpaid(manual_account, now):
    make_bill(manual_account, "10.00", issued_at=day(9, now))
    make_bill(manual_account, "10.00", issued_at=day(9, now), currency="EUR")  # other currency: no matter
    young = make_bill(manual_account, "10.00", issued_at=day(3, now))
    credit(manual_account, "100.00", now=now)
    with pytest.raises(OlderBillUnpaid) as refused:
        bill_pay_manual(bill_id=young.pk, actor=None, now=now)
    assert refused.value.rule == "SET-2"
    assert fresh(young).status == Status.OPEN


def test_set_3_manual_payment_refused_when_the_balance_does_not_cover_it(manual_account, now):
    """Decision: no partial manual payment; the bill stays as it was."""
    manual_account.credit_approved, manual_account.credit_limit = True, D("1000.00")
    manual_account.save()
    bill = make_bill(manual_account, "100.00", issued_at=day(3, now))
    credit(manual_account, "99.99", now=now)
    with pytest.raises(BalanceTooLow) as refused:
        bill_pay_manual(bill_id=bill.pk, actor=None, now=now)
    assert refused.value.rule == "SET-3"
    assert (fresh(bill).status, fresh(bill).amount_paid) == (Status.OPEN, D("0.00"))


def test_set_4_manual_then_automatic_never_double_pays(manual_account, now):
    bill = make_bill(manual_account, "40.00", issued_at=day(3, now))
    credit(manual_account, "100.00", now=now)
    bill_pay_manual(bill_id=bill.pk, actor=None, now=now)
    settlement_switch(account_id=manual_account.pk, enabled=True, actor=None, now=now)
    assert settle(manual_account, now=now).payments == 0
    assert account_balance(account_id=manual_account.pk, currency="USD") == D("60.00")


# --- CRED-3 -------------------------------------------------------------------------------------


def test_cred_3_unpaid_bill_is_overdue_after_its_due_date_not_on_it(account):
    due = datetime(2026, 11, 26, tzinfo=timezone.utc).date()
    on_due_date = make_bill(account, "10.00", issued_at=datetime(2026, 10, 31, tzinfo=timezone.utc), due_date=due)
    last_second = datetime(2026, 11, 26, 23, 59, 59, tzinfo=timezone.utc)
    assert bills_mark_overdue(now=last_second) == 0
    assert fresh(on_due_date).status == Status.OPEN
    next_day = datetime(2026, 11, 27, 0, 0, tzinfo=timezone.utc)
    assert bills_mark_overdue(now=next_day) == 1
    assert fresh(on_due_date).status == Status.OVERDUE
    assert bills_mark_overdue(now=next_day) == 0  # a second run changes nothing


def _paid_from_ledger(bill: Bill, amount, *, now) -> None:
    """Record ``amount`` of ``bill`` as paid from money the account sent (as settlement would)."""
    account_id, amount = bill.account_id, D(amount)
    ledger_post(account_id=account_id, amount=amount, currency=bill.currency,
                kind=LedgerEntry.Kind.REMITTANCE_CREDIT, reference=f"credit-for:{bill.pk}", now=now)
    ledger_post(account_id=account_id, amount=-amount, currency=bill.currency, kind=LedgerEntry.Kind.BILL_PAYMENT,
                reference=payment_reference(bill_id=bill.pk, amount_paid_before=D("0")), now=now)


def test_cred_3_overdue_marking_covers_partially_paid_and_leaves_paid_bills(now):
    account = AccountFactory(credit_approved=True, credit_limit=D("5000.00"))
    yesterday = (now - timedelta(days=1)).date()
    paid = make_bill(account, "10.00", issued_at=day(41, now), due_date=yesterday,
                     status=Status.PAID, amount_paid="10.00", paid_at=now)
    _paid_from_ledger(paid, "10.00", now=now)
    partial = make_bill(account, "100.00", issued_at=day(40, now), due_date=yesterday,
                        status=Status.PARTIALLY_PAID, amount_paid="40.00")
    _paid_from_ledger(partial, "40.00", now=now)
    future = make_bill(account, "10.00", issued_at=day(1, now), due_date=(now + timedelta(days=30)).date())
    Account.objects.filter(pk=account.pk).update(has_outstanding_bills=False)  # the issuer forgot the flag

    assert bills_mark_overdue(now=now) == 1
    assert (fresh(partial).status, fresh(partial).amount_paid) == (Status.OVERDUE, D("40.00"))
    assert fresh(paid).status == Status.PAID
    assert fresh(future).status == Status.OPEN
    account.refresh_from_db()
    assert account.has_outstanding_bills is True


# --- the invariants helper itself can fail ------------------------------------------------------


@pytest.mark.parametrize("violation", ["paid_without_ledger", "younger_before_older", "balance_below_floor"])
def test_i5_invariants_helper_catches_violations(account, now, violation):
    with transaction.atomic():
        old = make_bill(account, "10.00", issued_at=day(5, now))
        young = make_bill(account, "10.00", issued_at=day(1, now))
        credit(account, "10.00", now=now)
        if violation == "paid_without_ledger":
            Bill.objects.filter(pk=old.pk).update(amount_paid=D("5.00"), status=Status.PARTIALLY_PAID)
        elif violation == "younger_before_older":
            ledger_post(account_id=account.pk, amount=D("-10.00"), currency="USD", kind=LedgerEntry.Kind.BILL_PAYMENT,
                        reference=payment_reference(bill_id=young.pk, amount_paid_before=D("0")), now=now)
            Bill.objects.filter(pk=young.pk).update(amount_paid=D("10.00"), status=Status.PAID, paid_at=now)
        else:
            with connection.cursor() as cursor:  # bypassing ledger_post's I3 check
                cursor.execute(
                    "INSERT INTO payments_ledgerentry (account_id, amount, currency, kind, reference, memo, created_at)"
                    " VALUES (%s, -50, 'USD', 'adjustment', 'raw-debit', '', %s)", [account.pk, now],
                )
        with pytest.raises(AssertionError):
            assert_billing_invariants()
        transaction.set_rollback(True)

"""SET-4 / I5 races on PostgreSQL with real threads (each closes its own connection): concurrent
settlements pay each bill once, a settlement racing a credit ends with the right balance, the
manual path and overdue marking never double-pay or deadlock with the job."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from billing_backoffice.errors import BillingError
from payments.models import Bill, LedgerEntry
from payments.services.bills import bill_pay_manual, bills_mark_overdue, settlement_switch
from payments.services.ledger import account_balance
from payments.services.settlement import settle_accounts
from tests.concurrency import run_in_threads
from tests.factories import AccountFactory
from tests.payments.invariants import assert_billing_invariants, credit, make_bill

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race]
D = Decimal
Status = Bill.Status


def bill_payments(account) -> int:
    return LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.BILL_PAYMENT).count()


def test_set_4_eight_concurrent_settlements_of_one_account_pay_each_bill_once(now):
    account = AccountFactory()
    bills = [make_bill(account, "30.00", issued_at=now - timedelta(days=10 - n)) for n in range(5)]
    credit(account, "100.00", now=now)

    results = run_in_threads(8, lambda i: settle_accounts(account_ids=[account.pk], now=now).payments)

    assert sum(results) == 4 and sorted(results)[-1] == 4  # one run paid everything, the rest nothing
    assert bill_payments(account) == 4
    paid = [Bill.objects.get(pk=b.pk) for b in bills]
    assert [b.amount_paid for b in paid] == [D("30.00")] * 3 + [D("10.00"), D("0.00")]
    assert [b.status for b in paid] == [Status.PAID] * 3 + [Status.PARTIALLY_PAID, Status.OPEN]
    assert account_balance(account_id=account.pk, currency="USD") == D("0.00")
    assert_billing_invariants()


def test_set_4_settlement_racing_new_credits_ends_with_the_right_balance(now):
    account = AccountFactory()
    bills = [make_bill(account, "40.00", issued_at=now - timedelta(days=10 - n)) for n in range(6)]  # 240 owed
    credit(account, "20.00", now=now)

    def work(index: int):
        if index % 2:  # credits of 35.00 each, like dedicated transfers arriving
            return credit(account, "35.00", now=now, reference=f"race-credit-{index}")
        return settle_accounts(account_ids=[account.pk], now=now).payments

    run_in_threads(8, work)
    # Whatever the interleaving: the ledger holds every credit once and never went below zero;
    # the final settlement (the one each credit asks for on commit) pays what the money covers.
    settle_accounts(account_ids=[account.pk], now=now)
    credited = D("20.00") + 4 * D("35.00")  # 160.00
    assert sum(Bill.objects.get(pk=b.pk).amount_paid for b in bills) == credited
    assert account_balance(account_id=account.pk, currency="USD") == D("0.00")
    statuses = [Bill.objects.get(pk=b.pk).status for b in bills]
    assert statuses == [Status.PAID] * 4 + [Status.OPEN] * 2
    assert_billing_invariants()


def test_set_4_overlapping_chunks_in_any_order_never_deadlock_or_double_pay(now):
    accounts = [AccountFactory() for _ in range(6)]
    for a in accounts:
        make_bill(a, "10.00", issued_at=now - timedelta(days=3))
        make_bill(a, "10.00", issued_at=now - timedelta(days=2))
        credit(a, "15.00", now=now)
    ids = [a.pk for a in accounts]
    chunks = [ids, list(reversed(ids)), ids[::2] + ids[1::2], ids[3:] + ids[:3]] * 2

    run_in_threads(8, lambda i: settle_accounts(account_ids=chunks[i], now=now, chunk=3))

    for a in accounts:
        assert bill_payments(a) == 2
        assert account_balance(account_id=a.pk, currency="USD") == D("0.00")
    assert_billing_invariants()


def test_set_3_manual_payment_racing_switch_on_and_settlement_pays_once(now):
    account = AccountFactory(auto_settlement_enabled=False)
    bill = make_bill(account, "50.00", issued_at=now - timedelta(days=2))
    credit(account, "80.00", now=now)

    def work(index: int):
        if index == 0:
            try:
                return bill_pay_manual(bill_id=bill.pk, actor=None, now=now).status
            except BillingError as refused:  # settlement already on, or already paid
                return refused.code
        if index == 1:
            return settlement_switch(account_id=account.pk, enabled=True, actor=None, now=now).pk
        return settle_accounts(account_ids=[account.pk], now=now).payments

    for _ in range(3):  # a few interleavings
        run_in_threads(4, work)
    settle_accounts(account_ids=[account.pk], now=now)  # what switching on asked for
    assert bill_payments(account) == 1
    assert Bill.objects.get(pk=bill.pk).status == Status.PAID
    assert account_balance(account_id=account.pk, currency="USD") == D("30.00")
    assert_billing_invariants()


def test_cred_3_overdue_marking_racing_settlement_never_deadlocks(now):
    accounts = [AccountFactory() for _ in range(4)]
    for a in accounts:
        for n in range(4):
            make_bill(a, "10.00", issued_at=now - timedelta(days=40 + n), due_date=(now - timedelta(days=1)).date())
        credit(a, "25.00", now=now)
    ids = [a.pk for a in accounts]

    def work(index: int):
        if index % 2:
            return bills_mark_overdue(now=now)
        return settle_accounts(account_ids=ids, now=now).payments

    run_in_threads(6, work)
    bills_mark_overdue(now=now)  # a bill skipped while it was being settled is marked next run
    for a in accounts:
        statuses = sorted(Bill.objects.filter(account=a).values_list("status", flat=True))
        assert statuses == [Status.OVERDUE, Status.OVERDUE, Status.PAID, Status.PAID]
        assert account_balance(account_id=a.pk, currency="USD") == D("0.00")
    assert_billing_invariants()

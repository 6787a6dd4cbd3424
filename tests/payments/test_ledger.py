"""The ledger: append-only (I1), one posting per event (I2, SEC-4), balance floor (I3), Decimal (I6)."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.utils import ProgrammingError

from payments.models import LedgerEntry
from payments.services.ledger import (
    InsufficientBalance,
    InvalidAmount,
    Posting,
    ReferenceReused,
    account_balance,
    ledger_post,
    ledger_reverse,
)
from tests.concurrency import run_at_once, run_in_threads
from tests.factories import AccountFactory

Kind = LedgerEntry.Kind


def credit(account, amount="100.00", reference="bank:1", now=None, **extra):
    return ledger_post(
        account_id=account.pk, amount=amount, currency="USD", kind=Kind.REMITTANCE_CREDIT,
        reference=reference, now=now, **extra,
    )


@pytest.mark.django_db
def test_sec_4_balance_is_the_sum_of_entries(now):
    account = AccountFactory()
    credit(account, "100.00", "bank:1", now)
    credit(account, "25.50", "bank:2", now)
    ledger_post(account_id=account.pk, amount="-40.25", currency="USD", kind=Kind.BILL_PAYMENT,
                reference="bill:1:1", now=now)
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("85.25")
    assert account_balance(account_id=account.pk, currency="EUR") == Decimal("0.00")


@pytest.mark.django_db
def test_sec_4_same_event_twice_posts_once(now):
    account = AccountFactory()
    first = credit(account, "100.00", "bank:7", now)
    again = credit(account, "100.00", "bank:7", now)
    assert first.created and not again.created and again.entry.pk == first.entry.pk
    assert LedgerEntry.objects.count() == 1


@pytest.mark.django_db
def test_sec_4_same_reference_with_other_amount_refused(now):
    account = AccountFactory()
    credit(account, "100.00", "bank:8", now)
    with pytest.raises(ReferenceReused):
        credit(account, "101.00", "bank:8", now)
    with pytest.raises(ReferenceReused):
        credit(AccountFactory(), "100.00", "bank:8", now)
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("100.00")


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [0.1, "1.001", "abc", "NaN", "Infinity", "0"])
def test_i6_floats_and_more_than_two_decimals_refused(amount, now):
    account = AccountFactory()
    with pytest.raises(InvalidAmount):
        credit(account, amount, "bank:x", now)
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_i3_debit_never_below_minus_credit_limit(now):
    cash = AccountFactory()
    credit(cash, "10.00", "bank:1", now)
    with pytest.raises(InsufficientBalance):
        ledger_post(account_id=cash.pk, amount="-10.01", currency="USD", kind=Kind.BILL_PAYMENT,
                    reference="bill:1", now=now)
    credited = AccountFactory(credit_approved=True, credit_limit=Decimal("500.00"), credit_currency="USD")
    ledger_post(account_id=credited.pk, amount="-500.00", currency="USD", kind=Kind.BILL_PAYMENT,
                reference="bill:2", now=now)
    with pytest.raises(InsufficientBalance):
        ledger_post(account_id=credited.pk, amount="-0.01", currency="USD", kind=Kind.BILL_PAYMENT,
                    reference="bill:3", now=now)


@pytest.mark.django_db
def test_i1_reversal_is_a_new_entry_naming_the_original(now):
    account = AccountFactory()
    original = credit(account, "70.00", "bank:9", now).entry
    reversal = ledger_reverse(entry_id=original.pk, now=now).entry
    assert (reversal.amount, reversal.kind, reversal.reverses_id) == (Decimal("-70.00"), Kind.REVERSAL, original.pk)
    assert not ledger_reverse(entry_id=original.pk, now=now).created  # reversing twice moves nothing
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("0.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE payments_ledgerentry SET amount = 1000000 WHERE id = %s",
        "DELETE FROM payments_ledgerentry WHERE id = %s",
    ],
)
def test_i1_raw_sql_update_and_delete_of_ledger_rows_refused(sql, now):
    account = AccountFactory()
    entry = credit(account, "5.00", "bank:10", now).entry
    with pytest.raises(ProgrammingError, match="Cannot update or delete rows from payments_ledgerentry"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])
    entry.refresh_from_db()
    assert entry.amount == Decimal("5.00")


@pytest.mark.django_db
def test_i1_orm_update_and_delete_refused(now):
    account = AccountFactory()
    entry = credit(account, "5.00", "bank:11", now).entry
    with pytest.raises(ProgrammingError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(memo="edited")
    with pytest.raises(ProgrammingError), transaction.atomic():
        entry.delete()
    assert LedgerEntry.objects.filter(pk=entry.pk, memo="").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.race
def test_i2_race_twenty_threads_post_one_event_once(now):
    account = AccountFactory()
    outcomes = run_in_threads(20, lambda _: credit(account, "42.00", "bank:race", now).created)
    assert sorted(outcomes) == [False] * 19 + [True]
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("42.00")


@pytest.mark.django_db(transaction=True)
@pytest.mark.race
def test_i3_race_concurrent_debits_never_overdraw(now):
    account = AccountFactory()
    credit(account, "100.00", "bank:seed", now)
    results = run_at_once([
        lambda i=i: ledger_post(account_id=account.pk, amount="-30.00", currency="USD",
                                kind=Kind.BILL_PAYMENT, reference=f"bill:{i}", now=now)
        for i in range(8)
    ])
    assert sum(isinstance(result, InsufficientBalance) for result in results) == 5
    assert all(isinstance(result, (Posting, InsufficientBalance)) for result in results)
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("10.00")


@pytest.mark.django_db
def test_i2_bulk_credits_post_each_event_once(now):
    from payments.services.ledger import Credit, ledger_credit_many

    first, second = AccountFactory(), AccountFactory()
    credits = [
        Credit(account_id=first.pk, amount=Decimal("10.00"), currency="USD", kind=Kind.REMITTANCE_CREDIT, reference="bank-txn:1"),
        Credit(account_id=second.pk, amount=Decimal("2.50"), currency="USD", kind=Kind.REMITTANCE_CREDIT, reference="bank-txn:2"),
    ]
    posted = ledger_credit_many(credits=credits, now=now)
    again = ledger_credit_many(credits=credits, now=now)
    assert posted == again and set(posted) == {"bank-txn:1", "bank-txn:2"}
    assert LedgerEntry.objects.count() == 2
    assert account_balance(account_id=first.pk, currency="USD") == Decimal("10.00")


@pytest.mark.django_db
def test_i2_bulk_credit_with_reused_reference_rolls_back_whole_call(now):
    from payments.services.ledger import Credit, ledger_credit_many

    account = AccountFactory()
    credit(account, "10.00", "bank-txn:1", now)
    with pytest.raises(ReferenceReused):
        ledger_credit_many(credits=[
            Credit(account_id=account.pk, amount=Decimal("5.00"), currency="USD", kind=Kind.REMITTANCE_CREDIT, reference="bank-txn:9"),
            Credit(account_id=account.pk, amount=Decimal("99.00"), currency="USD", kind=Kind.REMITTANCE_CREDIT, reference="bank-txn:1"),
        ], now=now)
    assert list(LedgerEntry.objects.values_list("reference", flat=True)) == ["bank-txn:1"]


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [Decimal("-1.00"), Decimal("0.00"), Decimal("1.001")])
def test_i6_bulk_credits_refuse_non_credits_and_sub_cent_amounts(amount, now):
    from payments.services.ledger import Credit, ledger_credit_many

    account = AccountFactory()
    with pytest.raises(InvalidAmount):
        ledger_credit_many(credits=[Credit(account_id=account.pk, amount=amount, currency="USD",
                                           kind=Kind.REMITTANCE_CREDIT, reference="bank-txn:1")], now=now)
    assert not LedgerEntry.objects.exists()

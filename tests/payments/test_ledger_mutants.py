"""SEC-2, SEC-4 and I3 on the ledger, edge by edge: the tests that kill the ledger's mutants.

Who posted an entry and its memo are the audit record (SEC-2); a replay returns the entry first
posted (I2); the balance floor is zero unless the account has approved credit in that currency
(I3); currency codes and amounts are checked before anything is written.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing_backoffice.money import InvalidAmount, InvalidCurrency
from payments.models import LedgerEntry
from payments.services.ledger import (
    Credit,
    InsufficientBalance,
    ReferenceReused,
    ledger_credit_many,
    ledger_post,
    ledger_reverse,
)
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db
Kind = LedgerEntry.Kind


def post(account, amount, reference, now, **extra):
    return ledger_post(account_id=account.pk, amount=Decimal(amount), currency=extra.pop("currency", "USD"),
                       kind=extra.pop("kind", Kind.ADJUSTMENT), reference=reference, now=now, **extra)


def test_sec_2_entry_records_its_actor_and_memo(now):
    actor = UserFactory()
    entry = post(AccountFactory(), "10.00", "adj:1", now, actor=actor, memo="m" * 400).entry
    stored = LedgerEntry.objects.get(pk=entry.pk)
    assert (stored.created_by_id, stored.memo, stored.created_at) == (actor.pk, "m" * 300, now)


def test_sec_2_reversal_records_its_actor_and_names_the_original(now):
    actor = UserFactory()
    original = post(AccountFactory(), "10.00", "adj:2", now).entry
    reversal = ledger_reverse(entry_id=original.pk, now=now, actor=actor).entry
    stored = LedgerEntry.objects.get(pk=reversal.pk)
    assert (stored.created_by_id, stored.memo, stored.reverses_id, stored.amount) == (
        actor.pk, "Reversal of adj:2", original.pk, Decimal("-10.00")
    )
    custom = ledger_reverse(entry_id=post(AccountFactory(), "5.00", "adj:3", now).entry.pk, now=now, memo="why")
    assert custom.entry.memo == "why"


def test_sec_4_replay_returns_the_first_entry_not_a_new_one(now):
    account = AccountFactory()
    first = post(account, "10.00", "adj:4", now)
    replay = post(account, "10.00", "adj:4", now)
    assert (first.created, replay.created, replay.entry.pk) == (True, False, first.entry.pk)


def test_sec_4_same_reference_other_figures_refused_with_the_reference_named(now):
    account = AccountFactory()
    post(account, "10.00", "adj:5", now)
    with pytest.raises(ReferenceReused) as caught:
        post(account, "11.00", "adj:5", now)
    assert caught.value.detail == "Reference adj:5 was already posted with other figures."


def test_i6_zero_and_bad_currency_refused_with_a_message(now):
    account = AccountFactory()
    with pytest.raises(InvalidAmount) as zero:
        post(account, "0.00", "adj:6", now)
    assert zero.value.detail == "A ledger entry cannot be zero."
    for currency in ("US1", "USDD", "", "12", "ZZZ", "XAU"):
        with pytest.raises(InvalidCurrency) as bad:
            post(account, "1.00", f"adj:cur:{currency}", now, currency=currency)
        assert "is not an ISO 4217 currency code" in bad.value.detail
    assert not LedgerEntry.objects.filter(account=account).exists()


def test_i3_debit_below_zero_refused_without_credit(now):
    account = AccountFactory()
    post(account, "0.50", "adj:7", now)
    post(account, "-0.50", "adj:8", now)  # down to exactly zero is fine
    with pytest.raises(InsufficientBalance) as caught:
        post(account, "-0.01", "adj:9", now)
    assert caught.value.detail == "Posting -0.01 USD would take the balance of 0.00 below 0.00."


def test_i3_credit_limit_counts_only_in_its_currency_and_only_when_approved(now):
    approved = AccountFactory(credit_approved=True, credit_limit=Decimal("100.00"), credit_currency="USD")
    post(approved, "-100.00", "adj:10", now)  # down to minus the limit
    with pytest.raises(InsufficientBalance):
        post(approved, "-0.01", "adj:11", now)
    with pytest.raises(InsufficientBalance):
        post(approved, "-1.00", "adj:12", now, currency="EUR")  # the limit is in USD
    not_approved = AccountFactory(credit_approved=False, credit_limit=Decimal("100.00"), credit_currency="USD")
    with pytest.raises(InsufficientBalance):
        post(not_approved, "-1.00", "adj:13", now)


def test_sec_4_credit_many_posts_small_credits_records_actor_and_replays(now):
    actor = UserFactory()
    account = AccountFactory()
    credits = [Credit(account_id=account.pk, amount=Decimal("0.50"), currency="usd", kind=Kind.REMITTANCE_CREDIT,
                      reference="bank:many:1", memo="x" * 400)]
    ids = ledger_credit_many(credits=credits, now=now, actor=actor)
    entry = LedgerEntry.objects.get(reference="bank:many:1")
    assert ids == {"bank:many:1": entry.pk}
    assert (entry.amount, entry.currency, entry.created_by_id, entry.memo) == (Decimal("0.50"), "USD", actor.pk, "x" * 300)
    assert ledger_credit_many(credits=credits, now=now, actor=actor) == {"bank:many:1": entry.pk}
    assert LedgerEntry.objects.filter(reference="bank:many:1").count() == 1


def test_sec_4_credit_many_refuses_a_debit_and_a_reused_reference(now):
    account = AccountFactory()
    with pytest.raises(InvalidAmount) as debit:
        ledger_credit_many(credits=[Credit(account_id=account.pk, amount=Decimal("-1.00"), currency="USD",
                                           kind=Kind.REMITTANCE_CREDIT, reference="bank:neg")], now=now)
    assert "bank:neg" in debit.value.detail
    ledger_credit_many(credits=[Credit(account_id=account.pk, amount=Decimal("1.00"), currency="USD",
                                       kind=Kind.REMITTANCE_CREDIT, reference="bank:r")], now=now)
    with pytest.raises(ReferenceReused) as reused:
        ledger_credit_many(credits=[Credit(account_id=account.pk, amount=Decimal("2.00"), currency="USD",
                                           kind=Kind.REMITTANCE_CREDIT, reference="bank:r")], now=now)
    assert reused.value.detail == "Reference bank:r was already posted with other figures."

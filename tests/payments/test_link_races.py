"""Races on PostgreSQL with real threads: LINK-1 and DEF-1 hold under concurrent requests."""

import pytest
from django.db import connection

from payments.errors import AlreadyLinked
from payments.models import Account, LinkAttempt, PaymentMethod
from payments.services import card_link, payment_method_make_default, payment_method_remove
from payments.services import cards
from tests.concurrency import LockRendezvous, run_at_once
from tests.helpers.cards import card_input
from tests.factories import AccountFactory, CardMethodFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race]


def accounts(n):
    return [Account.objects.create(name=f"Racer {i}", kind="individual", country="US", region="US") for i in range(n)]


def test_link_1_race_ten_accounts_link_one_card_at_once_one_wins(now):
    racers = accounts(10)
    results = run_at_once(
        [lambda a=a: card_link(account_id=a.pk, card=card_input(), now=now) for a in racers]
    )
    wins = [r for r in results if not isinstance(r, Exception)]
    losses = [r for r in results if isinstance(r, Exception)]
    assert len(wins) == 1
    assert all(isinstance(exc, AlreadyLinked) for exc in losses), losses
    assert PaymentMethod.objects.filter(status__in=PaymentMethod.LIVE_STATUSES).count() == 1
    assert LinkAttempt.objects.filter(reason=LinkAttempt.Reason.ALREADY_LINKED).count() == 9


def test_link_1_race_database_constraint_alone_keeps_one_link(now, monkeypatch):
    """Even if every request passes the friendly pre-check, the partial unique index decides."""
    monkeypatch.setattr(cards, "linked_elsewhere_refusal", lambda *a, **k: None)
    racers = accounts(6)
    results = run_at_once(
        [lambda a=a: card_link(account_id=a.pk, card=card_input(), now=now) for a in racers]
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, AlreadyLinked) for r in results if isinstance(r, Exception))
    assert PaymentMethod.objects.filter(status__in=PaymentMethod.LIVE_STATUSES).count() == 1


def is_default_check(sql: str) -> bool:
    """The query by which ``payment_method_activate`` asks whether the account has a default."""
    return 'AS "a" FROM "payments_paymentmethod"' in sql and '"payments_paymentmethod"."is_default"' in sql


def test_def_1_race_methods_activating_together_make_one_default(now):
    """DEF-1: four cards of one account activate at once; the account lock makes one default.

    Each thread stops right after its "has the account a default?" query until the others have
    asked too or are waiting on the lock, so without the lock all four see no default, all four
    claim it and three fail on pm_one_default_per_account: every run, not by chance.
    """
    account = accounts(1)[0]
    numbers = ["4242424242424242", "5555555555554444", "378282246310005", "2223003122003222"]
    rendezvous = LockRendezvous(len(numbers))

    def link(number):
        with connection.execute_wrapper(rendezvous.after_query(is_default_check)):
            return card_link(account_id=account.pk, card=card_input(number), now=now)

    results = run_at_once([lambda n=n: link(n) for n in numbers])
    assert rendezvous.arrivals == len(numbers)  # the pause point was reached: the race was staged
    assert not [r for r in results if isinstance(r, Exception)]
    assert PaymentMethod.objects.filter(account=account, status="active").count() == 4
    assert PaymentMethod.objects.filter(account=account, is_default=True).count() == 1


def test_def_1_race_two_three_ds_completions_at_once_make_one_default(now):
    """DEF-1: two cards of an EU account pass 3-D Secure at the same moment.

    Both completions stop right after asking "has the account a default?" until the other has
    asked too or waits on the account lock. Without the lock both see none, both claim it and
    one ends in IntegrityError on pm_one_default_per_account (a 500 for the console), every run.
    """
    from payments.services import three_ds_complete

    account = Account.objects.create(name="Racer EU", kind="individual", country="DE", region="EU")
    challenges = [
        card_link(account_id=account.pk, card=card_input(number), now=now).challenge
        for number in ("4242424242424242", "5555555555554444")
    ]
    assert all(c is not None for c in challenges)  # EU: both wait for 3DS (LINK-5)
    rendezvous = LockRendezvous(len(challenges))

    def complete(challenge):
        with connection.execute_wrapper(rendezvous.after_query(is_default_check)):
            return three_ds_complete(challenge_id=challenge.pk, outcome="success", now=now)

    results = run_at_once([lambda c=c: complete(c) for c in challenges])
    assert rendezvous.arrivals == len(challenges)  # the race was staged
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(m.status for m in results) == ["active", "active"]
    assert PaymentMethod.objects.filter(account=account, is_default=True).count() == 1
    assert sum(m.is_default for m in results) == 1


def test_del_2_race_removal_and_default_switch_never_leave_the_account_without_a_default(now):
    """Removing the old default while switching to it: one order wins, DEL-2 holds either way."""
    for _ in range(5):
        account = AccountFactory()
        old = CardMethodFactory(account=account, is_default=True)
        new = CardMethodFactory(account=account)
        run_at_once(
            [
                lambda: payment_method_make_default(method_id=new.pk),
                lambda: payment_method_remove(method_id=old.pk, now=now),
            ]
        )
        live_defaults = PaymentMethod.objects.filter(account=account, is_default=True, status="active")
        assert live_defaults.count() == 1

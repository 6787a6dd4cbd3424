"""NOTIFY-1: each customer event is told once, by e-mail and console message, from the service of
the event (a replay of the event tells nobody again). Reminder levels are in test_credit_control."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from payments.models import Notification, ThreeDSChallenge
from payments.services import card_link, customer_events
from payments.services.orders import order_place
from tests.factories import AccountFactory, CardMethodFactory
from tests.helpers.charging import card_account
from tests.helpers.statements import do_import, sample

pytestmark = pytest.mark.django_db


def told(account, kind: str) -> list[Notification]:
    rows = list(Notification.objects.filter(account=account, kind=kind).order_by("channel"))
    assert [row.channel for row in rows] in ([], ["console", "email"]), rows
    return rows


def test_notify_1_a_failed_card_link_is_told_once_with_the_reason_in_words(now, make_card):
    account = AccountFactory()
    with pytest.raises(Exception):
        card_link(account_id=account.pk, card=make_card("4000000000000002"), now=now)
    console, _ = told(account, "card_link_failed")
    assert "0002" in console.title and "declined" in console.body.lower()
    assert "4000000000000002" not in console.body + console.title + str(console.params)


def test_notify_1_three_ds_waiting_at_link_time_with_the_verification_link(now, make_card):
    account = AccountFactory(country="DE")
    result = card_link(account_id=account.pk, card=make_card("2223003122003222"), now=now)
    assert result.challenge is not None
    console, email = told(account, "three_ds_waiting")
    assert console.link.endswith(f"/3ds/{result.challenge.pk}") and "retry the payment" in console.body
    assert email.link == console.link


def test_notify_1_three_ds_waiting_at_order_time_and_no_charge_failed_message(now):
    account, _ = card_account("risk3ds")
    result = order_place(account_id=account.pk, kind="purchase", amount="50.00", currency="USD", reference="o-3ds", now=now)
    challenge = ThreeDSChallenge.objects.get(charge=result.charge)
    console, _ = told(account, "three_ds_waiting")
    assert "order" in console.body and console.link.endswith(f"/3ds/{challenge.pk}")
    assert told(account, "charge_failed") == []
    order_place(account_id=account.pk, kind="purchase", amount="50.00", currency="USD", reference="o-3ds", now=now)
    assert Notification.objects.filter(account=account, kind="three_ds_waiting").count() == 2


def test_notify_1_a_failed_charge_is_told_once_with_the_reason(now):
    account, _ = card_account("chargedecline")
    order_place(account_id=account.pk, kind="purchase", amount="20.00", currency="USD", reference="o-dec", now=now)
    order_place(account_id=account.pk, kind="purchase", amount="20.00", currency="USD", reference="o-dec", now=now)
    console, _ = told(account, "charge_failed")
    assert "20.00 USD" in console.title and "declined" in console.body.lower()


def test_notify_1_card_expiring_within_30_days_once_per_card_and_expiry(now):
    today = now.date()
    soon = CardMethodFactory(exp_month=today.month, exp_year=today.year)
    later = CardMethodFactory(exp_month=today.month, exp_year=today.year + 1)
    assert customer_events.cards_expiring_notify(now=now) == 1
    customer_events.cards_expiring_notify(now=now + timedelta(days=1))
    console, _ = told(soon.account, "card_expiring")
    assert soon.last4 in console.title and f"{today.month:02d}/{today.year}" in console.body
    assert told(later.account, "card_expiring") == []
    soon.exp_year = today.year + 3  # a renewed card: a new expiry, told again when it comes near
    soon.save(update_fields=["exp_year"])
    assert customer_events.cards_expiring_notify(now=now.replace(year=today.year + 3)) == 1


def test_notify_1_card_expiring_leaves_out_expired_and_far_cards(now):
    today = now.date()
    past = date(today.year - 1, 1, 1)
    CardMethodFactory(exp_month=past.month, exp_year=past.year)
    assert customer_events.cards_expiring_notify(now=now) == 0


def test_notify_1_credit_application_decided_once(now):
    from remittances.services.credit import credit_request_approve, credit_request_reject
    from tests.helpers.credit import MANAGER_PERMS, staff_user, submit

    account = AccountFactory()
    recorder, approver = staff_user("cc-rec", *MANAGER_PERMS), staff_user("cc-app", *MANAGER_PERMS)
    request = submit(account, now, recorded_by=recorder)
    credit_request_approve(request_id=request.pk, actor=approver, note="", now=now)
    credit_request_approve(request_id=request.pk, actor=approver, note="", now=now)  # a replay
    console, _ = told(account, "credit_application_decided")
    assert "approved" in console.title and "5000.00 USD" in console.body
    other = AccountFactory()
    rejected = submit(other, now, recorded_by=recorder)
    credit_request_reject(request_id=rejected.pk, actor=approver, note="Too little history", now=now)
    console, _ = told(other, "credit_application_decided")
    assert "rejected" in console.title and "Too little history" in console.body


def test_notify_1_claim_approved_and_rejected_once(now):
    from remittances.services import claims as svc
    from tests.helpers.claims import finance_user, reviewed_claim

    claim, _ = reviewed_claim(now=now)
    finance = finance_user("cc-fin")
    svc.claim_approve(claim_id=claim.pk, actor=finance, now=now)
    svc.claim_approve(claim_id=claim.pk, actor=finance, now=now)
    console, _ = told(claim.account, "claim_decided")
    assert "approved" in console.title and "1200.00 USD" in console.body
    second, _ = reviewed_claim(now=now)
    svc.claim_reject(claim_id=second.pk, actor=finance, reason="No such transfer on our statement", now=now)
    console, _ = told(second.account, "claim_decided")
    assert "rejected" in console.title and "No such transfer" in console.body


def test_notify_1_transfer_credited_once_per_credited_line(dedicated, customer, now):  # noqa: F811
    first = do_import(sample("camt053_v08.xml"), now)
    do_import(sample("camt053_v08.xml"), now)  # the same file again: duplicates only
    rows = Notification.objects.filter(account=customer, kind="transfer_credited", channel="console")
    assert rows.count() == first.credited > 0
    assert Notification.objects.filter(account=customer, kind="transfer_credited", channel="email").count() == first.credited

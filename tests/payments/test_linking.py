"""Linking cards and PayPal through the services: ELIG-2..7, LINK-1..7, HOLD-1, HOLD-3, DEF-1."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from payments.errors import AlreadyLinked, LinkRefused, VerificationNotPending
from payments.gateways import simulated
from payments.models import Account, LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold
from payments.services import (
    GatewayUnavailable,
    account_create,
    account_deactivate,
    card_link,
    paypal_agreement_complete,
    paypal_link,
    three_ds_complete,
    wallet_link,
)
from tests.helpers.cards import card_input

pytestmark = pytest.mark.django_db
Reason = LinkAttempt.Reason
Status = PaymentMethod.Status


def account_in(country: str, kind: str = "individual", **extra) -> Account:
    account = account_create(name=f"Customer in {country}", kind=kind, country=country)
    if extra:
        Account.objects.filter(pk=account.pk).update(**extra)
        account.refresh_from_db()
    return account


def refusal(account, card, now) -> LinkRefused:
    with pytest.raises(LinkRefused) as caught:
        card_link(account_id=account.pk, card=card, now=now)
    return caught.value


def last_attempt(account) -> LinkAttempt:
    return LinkAttempt.objects.filter(account=account).latest("id")


# --- ELIG ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "number"),
    [("MY", "378282246310005"), ("US", "3530111333300000"), ("DE", "3530111333300000"), ("GB", "3530111333300000")],
)
def test_elig_2_card_network_not_available_in_region_is_refused(country, number, now):
    account = account_in(country)
    error = refusal(account, card_input(number), now)
    assert (error.rule, error.reason) == ("ELIG-2", Reason.UNSUPPORTED_REGION)
    assert not PaymentMethod.objects.filter(account=account).exists()
    assert last_attempt(account).reason == Reason.UNSUPPORTED_REGION


def test_elig_2_jcb_links_in_other_region(now):
    account = account_in("JP")
    method = card_link(account_id=account.pk, card=card_input("3530111333300000"), now=now).method
    assert (method.status, method.network) == (Status.ACTIVE, "jcb")


@pytest.mark.parametrize("country", ["DE", "MY"])
def test_elig_2_paypal_refused_in_eu_and_malaysia(country, now):
    account = account_in(country)
    with pytest.raises(LinkRefused) as caught:
        paypal_link(account_id=account.pk, email="a@example.com", payer_id="P1", country=country, now=now)
    assert (caught.value.rule, caught.value.reason) == ("ELIG-2", Reason.UNSUPPORTED_REGION)
    assert not PaymentMethod.objects.exists()


@pytest.mark.parametrize(("number", "label"), [("6200000000000005", "UnionPay"), ("6011111111111117", "Discover")])
def test_elig_3_unionpay_and_other_networks_refused(number, label, now):
    account = account_in("SG")
    error = refusal(account, card_input(number), now)
    assert (error.rule, error.reason) == ("ELIG-3", Reason.UNSUPPORTED_NETWORK)
    assert label in error.detail
    assert not PaymentMethod.objects.exists()


@pytest.mark.parametrize("number", ["4000000000002206", "4000000000003303", "4000000000004400"])
def test_elig_4_prepaid_virtual_gift_refused(number, now):
    account = account_in("US")
    error = refusal(account, card_input(number), now)
    assert (error.rule, error.reason) == ("ELIG-4", Reason.UNSUPPORTED_CARD_TYPE)
    assert not PaymentMethod.objects.exists()
    assert not VerificationHold.objects.exists()


def test_elig_5_card_issued_in_chinese_mainland_refused(now):
    account = account_in("SG")
    error = refusal(account, card_input("4000000000005506"), now)
    assert (error.rule, error.reason) == ("ELIG-5", Reason.ISSUED_IN_CHINESE_MAINLAND)
    assert not PaymentMethod.objects.exists()


def test_elig_5_paypal_registered_in_chinese_mainland_refused(now):
    account = account_in("SG")
    with pytest.raises(LinkRefused) as caught:
        paypal_link(account_id=account.pk, email="a@example.com", payer_id="P1", country="CN", now=now)
    assert (caught.value.rule, caught.value.reason) == ("ELIG-5", Reason.ISSUED_IN_CHINESE_MAINLAND)


@pytest.mark.parametrize(("wallet", "name"), [("alipay", "Alipay"), ("wechat_pay", "WeChat Pay")])
def test_elig_6_chinese_wallets_refused_with_clear_error(wallet, name, now):
    account = account_in("SG")
    with pytest.raises(LinkRefused) as caught:
        wallet_link(account_id=account.pk, wallet=wallet, now=now)
    assert caught.value.rule == "ELIG-6"
    assert name in caught.value.detail and "not a payment method" in caught.value.detail
    assert last_attempt(account).reason == Reason.WALLET_NOT_SUPPORTED
    assert not PaymentMethod.objects.exists()


@pytest.mark.parametrize("kind", ["individual", "enterprise"])
def test_elig_7_both_account_kinds_link_cards_and_paypal(kind, now):
    account = account_in("US", kind=kind)
    card = card_link(account_id=account.pk, card=card_input(), now=now).method
    paypal = paypal_link(account_id=account.pk, email="p@example.com", payer_id=f"PAYER-{kind}", country="US", now=now)
    assert card.status == Status.ACTIVE
    assert paypal.method.status == Status.PENDING and paypal.approval_url


# --- LINK ------------------------------------------------------------------------------------


def test_link_1_card_linked_to_one_account_at_a_time(now):
    first, second = account_in("US"), account_in("US")
    card_link(account_id=first.pk, card=card_input(), now=now)
    with pytest.raises(AlreadyLinked) as caught:
        card_link(account_id=second.pk, card=card_input(exp_month=6), now=now)
    assert caught.value.rule == "LINK-1" and caught.value.http_status == 409
    assert last_attempt(second).reason == Reason.ALREADY_LINKED
    assert not PaymentMethod.objects.filter(account=second).exists()


def test_link_1_same_card_twice_on_one_account_is_refused(now):
    account = account_in("US")
    card_link(account_id=account.pk, card=card_input(), now=now)
    with pytest.raises(AlreadyLinked) as caught:
        card_link(account_id=account.pk, card=card_input(), now=now)
    assert caught.value.reason == Reason.ALREADY_LINKED_HERE
    assert PaymentMethod.objects.filter(account=account).count() == 1


def test_link_1_fingerprint_ignores_spaces_and_is_keyed_hmac(now, settings):
    from payments.services import card_fingerprint

    account = account_in("US")
    method = card_link(account_id=account.pk, card=card_input("4242 4242 4242 4242"), now=now).method
    assert method.fingerprint == card_fingerprint("4242424242424242")
    assert len(method.fingerprint) == 64 and "4242424242424242" not in method.fingerprint
    settings.CARD_FINGERPRINT_KEY = "another-key"
    assert card_fingerprint("4242424242424242") != method.fingerprint


def test_link_1_paypal_account_linked_to_one_account_at_a_time(now):
    first, second = account_in("US"), account_in("GB")
    paypal_link(account_id=first.pk, email="p@example.com", payer_id="PAYERX", country="US", now=now)
    with pytest.raises(AlreadyLinked):
        paypal_link(account_id=second.pk, email="p@example.com", payer_id="PAYERX", country="US", now=now)


def test_link_1_paypal_identity_ignores_case(now):
    """LINK-1: CASEPAYER1 and casepayer1 are one PayPal account; the e-mail is stored lower-cased."""
    first, second = account_in("US"), account_in("GB")
    linked = paypal_link(account_id=first.pk, email=" Case@Example.COM ", payer_id="CASEPAYER1", country="US", now=now)
    assert (linked.method.paypal_payer_id, linked.method.paypal_email) == ("CASEPAYER1", "case@example.com")
    with pytest.raises(AlreadyLinked) as caught:
        paypal_link(account_id=second.pk, email="case@example.com", payer_id="casepayer1", country="US", now=now)
    assert (caught.value.rule, caught.value.http_status) == ("LINK-1", 409)
    assert not PaymentMethod.objects.filter(account=second).exists()
    assert last_attempt(second).reason == Reason.ALREADY_LINKED


def test_link_1_database_refuses_a_payer_id_differing_only_by_case(now):
    """LINK-1 in the database too: a writer that skips the service still cannot link it twice."""
    from django.db import IntegrityError, transaction

    first, second = account_in("US"), account_in("US")
    paypal_link(account_id=first.pk, email="p@example.com", payer_id="MIXEDCASE1", country="US", now=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentMethod.objects.create(
            account=second, kind=PaymentMethod.Kind.PAYPAL, status=Status.PENDING, paypal_payer_id="mixedCase1"
        )


def test_link_2_card_of_deactivated_account_still_counts_as_linked(now):
    first, second = account_in("US"), account_in("US")
    card_link(account_id=first.pk, card=card_input(), now=now)
    account_deactivate(account_id=first.pk, now=now)
    with pytest.raises(AlreadyLinked):
        card_link(account_id=second.pk, card=card_input(), now=now)


def test_link_2_deactivated_account_cannot_link_new_methods(now):
    account = account_in("US")
    account_deactivate(account_id=account.pk, now=now)
    error = refusal(account, card_input(), now)
    assert error.reason == Reason.ACCOUNT_NOT_ACTIVE


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"number": "4242424242424241"}, "card number"),
        ({"number": "4242"}, "card number"),
        ({"exp_month": 13}, "expiry month"),
        ({"cvv": "12"}, "3 digits"),
        ({"cvv": "12a"}, "3 digits"),
        ({"cardholder_name": " "}, "cardholder name"),
        ({"billing_line1": "", "billing_postal_code": ""}, "billing street, billing postal code"),
        ({"billing_country": "XX"}, "billing country"),
    ],
)
def test_link_3_invalid_card_fields_refused_with_the_field_named(overrides, fragment, now):
    account = account_in("US")
    error = refusal(account, card_input(**overrides), now)
    assert (error.rule, error.reason) == ("LINK-3", Reason.INVALID_CARD_DETAILS)
    assert fragment in error.detail
    assert not PaymentMethod.objects.exists()


def test_link_3_amex_needs_four_digit_cvv(now):
    account = account_in("US")
    error = refusal(account, card_input("378282246310005", cvv="123"), now)
    assert "4 digits" in error.detail
    assert card_link(account_id=account.pk, card=card_input("378282246310005", cvv="1234"), now=now).method


@pytest.mark.parametrize(("month", "year"), [(11, 2026), (10, 2026), (12, 2025), (11, 26)])
def test_link_3_card_expiring_this_month_or_earlier_refused(month, year, now):
    account = account_in("US")
    error = refusal(account, card_input(exp_month=month, exp_year=year), now)
    assert (error.rule, error.reason) == ("LINK-3", Reason.EXPIRES_TOO_SOON)


def test_link_3_card_expiring_next_month_links_with_two_digit_year(now):
    account = account_in("US")
    method = card_link(account_id=account.pk, card=card_input(exp_month=12, exp_year=26), now=now).method
    assert (method.exp_month, method.exp_year, method.expiry) == (12, 2026, "12/26")


@pytest.mark.parametrize(
    ("number", "reason", "rule"),
    [
        ("4000000000000002", Reason.ISSUER_DECLINED, "LINK-4"),
        ("4000000000000127", Reason.NOT_ENABLED_ONLINE, "LINK-4"),
        ("4000000000009953", Reason.INSUFFICIENT_FUNDS, "HOLD-1"),
    ],
)
def test_link_4_gateway_decline_fails_the_method_with_reason(number, reason, rule, now):
    account = account_in("US")
    error = refusal(account, card_input(number), now)
    assert (error.rule, error.reason) == (rule, reason)
    method = PaymentMethod.objects.get(account=account)
    assert (method.status, method.failure_reason, method.is_default) == (Status.FAILED, reason, False)
    assert not VerificationHold.objects.exists()
    assert last_attempt(account).reason == reason


def test_link_4_failed_card_frees_its_fingerprint(now):
    first, second = account_in("US"), account_in("US")
    refusal(first, card_input("4000000000000002"), now)
    # A failed method does not hold the card: another account may try it.
    assert refusal(second, card_input("4000000000000002"), now).reason == Reason.ISSUER_DECLINED


@pytest.mark.parametrize("country", ["DE", "MY"])
def test_link_5_eu_and_malaysia_always_need_3ds_before_the_method_is_usable(country, now):
    account = account_in(country)
    result = card_link(account_id=account.pk, card=card_input(), now=now)
    assert result.method.status == Status.PENDING and not result.method.is_default
    assert result.challenge.trigger == ThreeDSChallenge.Trigger.REGION
    assert not VerificationHold.objects.exists()  # HOLD-3: nothing placed or usable before 3DS
    method = three_ds_complete(challenge_id=result.challenge.pk, outcome="success", now=now)
    assert (method.status, method.is_default) == (Status.ACTIVE, True)
    assert VerificationHold.objects.filter(payment_method=method).count() == 1


def test_link_5_risk_check_may_require_3ds_elsewhere(now):
    account = account_in("US")
    risky = card_link(account_id=account.pk, card=card_input("4000000000003204"), now=now)
    assert risky.challenge.trigger == ThreeDSChallenge.Trigger.RISK
    plain = card_link(account_id=account.pk, card=card_input("5555555555554444"), now=now)
    assert plain.challenge is None and plain.method.status == Status.ACTIVE


def test_link_5_failed_3ds_fails_the_method(now):
    account = account_in("DE")
    result = card_link(account_id=account.pk, card=card_input(), now=now)
    with pytest.raises(LinkRefused) as caught:
        three_ds_complete(challenge_id=result.challenge.pk, outcome="failure", now=now)
    assert caught.value.reason == Reason.THREE_DS_NOT_COMPLETED
    result.method.refresh_from_db()
    assert (result.method.status, result.method.failure_reason) == (Status.FAILED, Reason.THREE_DS_NOT_COMPLETED)


def test_link_5_challenge_completes_once_and_not_after_timeout(now):
    from datetime import timedelta

    account = account_in("DE")
    first = card_link(account_id=account.pk, card=card_input(), now=now)
    three_ds_complete(challenge_id=first.challenge.pk, outcome="success", now=now)
    with pytest.raises(VerificationNotPending):
        three_ds_complete(challenge_id=first.challenge.pk, outcome="success", now=now)
    late = card_link(account_id=account.pk, card=card_input("5555555555554444"), now=now)
    with pytest.raises(VerificationNotPending):
        three_ds_complete(challenge_id=late.challenge.pk, outcome="success", now=now + timedelta(hours=1))
    late.method.refresh_from_db()
    assert late.method.status == Status.PENDING
    assert VerificationHold.objects.count() == 1


def test_link_6_paypal_links_only_with_approved_agreement_and_funding(now):
    account = account_in("US")
    result = paypal_link(account_id=account.pk, email="p@example.com", payer_id="PAYER1", country="US", now=now)
    pending = result.method
    assert pending.agreement_state == PaymentMethod.AgreementState.NOT_APPROVED
    assert pending.get_agreement_state_display() == "Agreement not approved"
    method = paypal_agreement_complete(method_id=pending.pk, approved=True, has_funding_source=True, now=now)
    assert (method.status, method.is_default) == (Status.ACTIVE, True)
    hold = VerificationHold.objects.get(payment_method=method)
    assert hold.authorization_id.startswith("ppauth_")


@pytest.mark.parametrize(
    ("approved", "funding", "reason"),
    [(False, True, Reason.AGREEMENT_NOT_APPROVED), (True, False, Reason.NO_FUNDING_SOURCE)],
)
def test_link_6_paypal_without_approval_or_funding_fails(approved, funding, reason, now):
    account = account_in("GB")
    pending = paypal_link(account_id=account.pk, email="p@example.com", payer_id="PAYER2", country="GB", now=now).method
    with pytest.raises(LinkRefused) as caught:
        paypal_agreement_complete(method_id=pending.pk, approved=approved, has_funding_source=funding, now=now)
    assert (caught.value.rule, caught.value.reason) == ("LINK-6", reason)
    pending.refresh_from_db()
    assert (pending.status, pending.failure_reason) == (Status.FAILED, reason)
    assert not VerificationHold.objects.exists()
    with pytest.raises(VerificationNotPending):
        paypal_agreement_complete(method_id=pending.pk, approved=True, has_funding_source=True, now=now)


def test_link_7_every_refusal_reason_is_recorded(now):
    """Drive each refusal once and check the attempt log names every reason of LINK-7."""
    us, my, de = account_in("US"), account_in("MY"), account_in("DE")
    kyc = account_in("US", kyc_status=Account.KycStatus.REQUIRED)
    other = account_in("US")
    attempts = [
        (us, "6200000000000005", {}),  # unsupported network
        (us, "4000000000002206", {}),  # unsupported card type
        (my, "378282246310005", {}),  # unsupported region
        (us, "4000000000005506", {}),  # issued in Chinese mainland
        (us, "4242424242424242", {"exp_month": 11, "exp_year": 2026}),  # expires this month
        (us, "4000000000000002", {}),  # issuer declined
        (us, "4000000000009953", {}),  # insufficient funds
        (kyc, "4242424242424242", {}),  # KYC required
    ]
    for account, number, overrides in attempts:
        with pytest.raises(LinkRefused):
            card_link(account_id=account.pk, card=card_input(number, **overrides), now=now)
    card_link(account_id=us.pk, card=card_input("5555555555554444"), now=now)
    with pytest.raises(AlreadyLinked):
        card_link(account_id=other.pk, card=card_input("5555555555554444"), now=now)
    challenge = card_link(account_id=de.pk, card=card_input(), now=now).challenge
    with pytest.raises(LinkRefused):
        three_ds_complete(challenge_id=challenge.pk, outcome="failure", now=now)
    recorded = set(LinkAttempt.objects.values_list("reason", flat=True))
    assert {
        Reason.UNSUPPORTED_NETWORK, Reason.UNSUPPORTED_CARD_TYPE, Reason.UNSUPPORTED_REGION,
        Reason.ISSUED_IN_CHINESE_MAINLAND, Reason.ALREADY_LINKED, Reason.EXPIRES_TOO_SOON,
        Reason.ISSUER_DECLINED, Reason.INSUFFICIENT_FUNDS, Reason.THREE_DS_NOT_COMPLETED,
        Reason.KYC_REQUIRED,
    } <= recorded
    outcomes = set(LinkAttempt.objects.values_list("outcome", flat=True))
    assert outcomes == {LinkAttempt.Outcome.REJECTED, LinkAttempt.Outcome.LINKED, LinkAttempt.Outcome.PENDING}


def test_link_7_successful_link_recorded_as_linked(now):
    account = account_in("US")
    method = card_link(account_id=account.pk, card=card_input(), now=now).method
    attempt = last_attempt(account)
    assert (attempt.outcome, attempt.payment_method_id, attempt.last4, attempt.network) == (
        LinkAttempt.Outcome.LINKED, method.pk, "4242", "visa",
    )


def test_link_7_gateway_outage_is_recorded_and_nothing_linked(now):
    account = account_in("US")
    with pytest.raises(GatewayUnavailable):
        card_link(account_id=account.pk, card=card_input("4000000000001190"), now=now)
    method = PaymentMethod.objects.get(account=account)
    assert method.status == Status.PENDING  # retried by the abandoned-verification job
    assert last_attempt(account).reason == Reason.GATEWAY_ERROR


# --- HOLD ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "amount", "currency"),
    [("US", "1.00", "USD"), ("SG", "1.00", "USD"), ("DE", "1.00", "EUR"), ("GB", "1.00", "GBP"), ("MY", "5.00", "MYR")],
)
def test_hold_1_usd_one_or_local_equivalent_with_descriptor(country, amount, currency, now):
    account = account_in(country)
    result = card_link(account_id=account.pk, card=card_input(), now=now)
    if result.challenge:
        three_ds_complete(challenge_id=result.challenge.pk, outcome="success", now=now)
    hold = VerificationHold.objects.get(account=account)
    assert (hold.amount, hold.currency, hold.descriptor) == (Decimal(amount), currency, "ALIBABACLOUD.COM")
    assert hold.status == VerificationHold.Status.PLACED
    assert hold.release_deadline - hold.placed_at == __import__("datetime").timedelta(hours=24)


def test_hold_1_authorization_replay_returns_the_same_hold(now):
    """The hold key is derived from the method, so a retried authorization places no second hold."""
    from payments.gateways import card_gateway

    account = account_in("US")
    method = card_link(account_id=account.pk, card=card_input(), now=now).method
    hold = VerificationHold.objects.get(payment_method=method)
    replay = card_gateway().authorize_hold(
        token=method.gateway_token, amount=hold.amount, currency=hold.currency,
        descriptor=hold.descriptor, idempotency_key=f"hold-auth-{method.pk}",
    )
    assert replay.authorization_id == hold.authorization_id
    with pytest.raises(simulated.IdempotencyKeyReused):
        card_gateway().authorize_hold(
            token=method.gateway_token, amount=Decimal("2.00"), currency="USD",
            descriptor=hold.descriptor, idempotency_key=f"hold-auth-{method.pk}",
        )


def test_hold_3_method_is_active_only_after_hold_and_3ds(now):
    account = account_in("MY")
    result = card_link(account_id=account.pk, card=card_input("4000000000009953"), now=now)
    assert result.method.status == Status.PENDING
    with pytest.raises(LinkRefused):
        three_ds_complete(challenge_id=result.challenge.pk, outcome="success", now=now)
    result.method.refresh_from_db()
    assert result.method.status == Status.FAILED and not result.method.is_default


# --- DEF-1 -----------------------------------------------------------------------------------


def test_def_1_first_active_method_becomes_default_only_once(now):
    account = account_in("US")
    first = card_link(account_id=account.pk, card=card_input(), now=now).method
    second = card_link(account_id=account.pk, card=card_input("5555555555554444"), now=now).method
    paypal = paypal_link(account_id=account.pk, email="p@example.com", payer_id="PAYER9", country="US", now=now).method
    paypal = paypal_agreement_complete(method_id=paypal.pk, approved=True, has_funding_source=True, now=now)
    assert [first.is_default, second.is_default, paypal.is_default] == [True, False, False]
    assert PaymentMethod.objects.filter(account=account, is_default=True).count() == 1


def test_def_1_first_method_to_become_active_is_default_even_if_linked_later(now):
    account = account_in("DE")
    earlier = card_link(account_id=account.pk, card=card_input(), now=now)
    later = card_link(account_id=account.pk, card=card_input("5555555555554444"), now=now)
    three_ds_complete(challenge_id=later.challenge.pk, outcome="success", now=now)
    three_ds_complete(challenge_id=earlier.challenge.pk, outcome="success", now=now)
    assert PaymentMethod.objects.get(is_default=True).pk == later.method.pk


def test_renewed_card_replaces_its_own_expired_record(now):
    """LINK-1 holds across accounts, but a renewed card (same number) replaces the expired row."""
    account = account_in("US")
    old = card_link(account_id=account.pk, card=card_input(), now=now).method
    PaymentMethod.objects.filter(pk=old.pk).update(status=Status.EXPIRED)
    renewed = card_link(account_id=account.pk, card=card_input(exp_year=2031), now=now).method
    old.refresh_from_db()
    assert old.status == Status.REMOVED and renewed.status == Status.ACTIVE
    assert renewed.is_default  # the expired default was handed over

"""Factories of the linking models: payment methods, holds, 3-D Secure challenges, link attempts.

Methods built here bypass the gateway; tests of linking use services."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from payments.models import LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold
from payments.services import card_fingerprint

from .accounts import AccountFactory


class CardMethodFactory(factory.django.DjangoModelFactory):
    """An active card; ``number`` is only used to compute the fingerprint and last4."""

    class Meta:
        model = PaymentMethod
        exclude = ("number",)

    account = factory.SubFactory(AccountFactory)
    kind = PaymentMethod.Kind.CARD
    status = PaymentMethod.Status.ACTIVE
    number = factory.Sequence(lambda n: f"4111{n:012d}")
    fingerprint = factory.LazyAttribute(lambda o: card_fingerprint(o.number))
    last4 = factory.LazyAttribute(lambda o: o.number[-4:])
    gateway_token = factory.Sequence(lambda n: f"tok_approve_{n:024x}")
    network = "visa"
    funding = PaymentMethod.Funding.CREDIT
    issuing_country = "US"
    exp_month = 12
    exp_year = factory.LazyFunction(lambda: timezone.now().year + 3)
    cardholder_name = "Ada Lovelace"
    billing_line1 = "1 Main St"
    billing_city = "Springfield"
    billing_postal_code = "12345"
    billing_country = "US"
    activated_at = factory.LazyFunction(timezone.now)


class PayPalMethodFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentMethod

    account = factory.SubFactory(AccountFactory)
    kind = PaymentMethod.Kind.PAYPAL
    status = PaymentMethod.Status.ACTIVE
    paypal_payer_id = factory.Sequence(lambda n: f"PAYER{n:08d}")
    paypal_email = factory.Sequence(lambda n: f"payer{n}@example.com")
    paypal_country = "US"
    agreement_id = factory.Sequence(lambda n: f"ba_approve_{n:08d}")
    agreement_state = PaymentMethod.AgreementState.APPROVED
    has_funding_source = True


class HoldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VerificationHold

    payment_method = factory.SubFactory(CardMethodFactory)
    account = factory.LazyAttribute(lambda o: o.payment_method.account)
    amount = "1.00"
    currency = "USD"
    authorization_id = factory.Sequence(lambda n: f"auth_approve_{n:024x}")
    placed_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    release_after = factory.LazyAttribute(lambda o: o.placed_at + timedelta(minutes=15))
    release_deadline = factory.LazyAttribute(lambda o: o.placed_at + timedelta(hours=24))


class ChallengeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ThreeDSChallenge

    payment_method = factory.SubFactory(CardMethodFactory, status=PaymentMethod.Status.PENDING)
    trigger = ThreeDSChallenge.Trigger.REGION
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda o: o.created_at + timedelta(minutes=30))


class LinkAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LinkAttempt

    account = factory.SubFactory(AccountFactory)
    kind = "card"
    outcome = LinkAttempt.Outcome.REJECTED
    reason = LinkAttempt.Reason.ISSUER_DECLINED
    created_at = factory.LazyFunction(timezone.now)

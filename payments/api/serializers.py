"""Serializers of the console API: input parsing (shape only) and output rendering.

Input serializers check the *shape* of a request (types, lengths, formats) and answer 400 with
the fields at fault. Business rules (Luhn, expiry, networks, regions...) stay in the services,
which answer 422 naming the rule. Output serializers are plain ``Serializer`` classes with
explicit fields so the OpenAPI schema is exact and nothing leaks by accident.

SEC-1: the card number and CVV are write-only and every error message about them is a fixed
text, so a 400 never echoes what was sent (DRF's stock messages for some fields do).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django_countries import countries
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing_backoffice.api_fields import (
    FreeEmailField,
    FreeTextField,
    StrictBooleanField,
    StrictIntegerField,
    pattern_validator,
)
from payments.api.schema import EnumField
from payments.models import Account, PaymentMethod, ThreeDSChallenge
from payments.selectors import account_balances
from payments.services import CardInput

# Digits, single spaces allowed between groups (4242 4242 4242 4242); Luhn and length are LINK-3 (422).
CARD_NUMBER_PATTERN = r"^[0-9]+(?: [0-9]+)*$"
CVV_PATTERN = r"^[0-9]{3,4}$"
COUNTRY_CODES = tuple(code for code, _ in countries)


class CountryCodeField(serializers.ChoiceField):
    """An ISO 3166 alpha-2 code, documented as an enum; lower case is upper-cased (``de`` -> ``DE``)."""

    def __init__(self, **kwargs):
        super().__init__(choices=COUNTRY_CODES, **kwargs)
        self.error_messages["invalid_choice"] = "Not an ISO 3166 alpha-2 country code."

    def to_internal_value(self, data):
        if isinstance(data, str) and data.upper() in countries:
            return data.upper()
        self.fail("invalid_choice", input="")


class SecretField(serializers.CharField):
    """A write-only string whose every error message is fixed text (SEC-1: never echo it)."""

    def __init__(self, *, pattern: str, invalid_message: str, **kwargs):
        self.invalid_message = invalid_message
        kwargs["write_only"] = True
        kwargs["trim_whitespace"] = False  # the documented pattern is the whole check
        super().__init__(**kwargs)
        # Every stock message is replaced: none of DRF's may ever carry the input.
        self.error_messages = {
            **{key: invalid_message for key in self.error_messages},
            "required": "This field is required.",
            "null": "This field may not be null.",
            "blank": "This field may not be blank.",
        }
        self.validators.append(pattern_validator(pattern, invalid_message))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({
    "type": "integer", "anyOf": [{"minimum": 0, "maximum": 99}, {"minimum": 2000, "maximum": 2199}],
    "description": "Two-digit (YY) or four-digit (YYYY) year.",
})
class ExpiryYearField(StrictIntegerField):
    """YY (0..99) or YYYY (2000..2199); whether the card has expired is LINK-3 (422)."""

    def __init__(self, **kwargs):
        super().__init__(min_value=0, max_value=2199, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if 100 <= value < 2000:
            raise serializers.ValidationError("Use a two-digit (YY) or four-digit (YYYY) year.")
        return value


# --- input ------------------------------------------------------------------------------------


class AgreementOutcome(models.TextChoices):
    APPROVED = "approved", "Approved on PayPal"
    CANCELLED = "cancelled", "Cancelled by the customer"


class ThreeDSOutcome(models.TextChoices):
    SUCCESS = "success", "Challenge passed"
    FAILURE = "failure", "Challenge failed or refused"


class AccountCreateSerializer(serializers.Serializer):
    name = FreeTextField(max_length=200)
    kind = EnumField(Account.Kind, enum_name="AccountKindEnum")
    country = CountryCodeField(help_text="Registration country, ISO 3166 alpha-2 (ELIG-1).")
    email = FreeEmailField(required=False, allow_blank=True, default="")


class BillingAddressSerializer(serializers.Serializer):
    line1 = FreeTextField(max_length=200)
    city = FreeTextField(max_length=100)
    postal_code = FreeTextField(max_length=20)
    country = CountryCodeField()


class CardLinkSerializer(serializers.Serializer):
    """LINK-3 card fields. Only the shape is checked here; Luhn and expiry are rules (422)."""

    number = SecretField(
        pattern=CARD_NUMBER_PATTERN,
        max_length=32,
        invalid_message="The card number must be a string of digits (single spaces allowed between groups).",
        help_text="Card number, digits (spaces allowed). Never stored or echoed (SEC-1).",
    )
    exp_month = StrictIntegerField(min_value=1, max_value=12)
    exp_year = ExpiryYearField()
    cvv = SecretField(
        pattern=CVV_PATTERN,
        max_length=4,
        invalid_message="The security code must be 3 or 4 digits.",
        help_text="3 digits (4 for American Express). Never stored or echoed (SEC-1).",
    )
    cardholder_name = FreeTextField(max_length=100, help_text="As printed on the card.")
    company_name = FreeTextField(
        max_length=200, required=False, allow_blank=True, default="", help_text="Corporate cards."
    )
    billing_address = BillingAddressSerializer()

    def to_card_input(self) -> CardInput:
        data = self.validated_data
        address = data["billing_address"]
        return CardInput(
            number=data["number"].replace(" ", ""),
            exp_month=data["exp_month"],
            exp_year=data["exp_year"],
            cvv=data["cvv"],
            cardholder_name=data["cardholder_name"],
            company_name=data["company_name"],
            billing_line1=address["line1"],
            billing_city=address["city"],
            billing_postal_code=address["postal_code"],
            billing_country=address["country"],
        )


class PayPalLinkSerializer(serializers.Serializer):
    email = FreeEmailField()
    payer_id = FreeTextField(
        pattern=r"^[A-Za-z0-9_-]+$", max_length=32,
        pattern_message="Letters, digits, '_' and '-' only.",
    )
    country = CountryCodeField(help_text="Where the PayPal account is registered (ELIG-5).")


class AgreementOutcomeSerializer(serializers.Serializer):
    outcome = EnumField(AgreementOutcome, enum_name="AgreementOutcomeEnum")
    has_funding_source = StrictBooleanField(
        required=False, help_text="JSON true or false; required when the outcome is approved (LINK-6)."
    )

    def validate(self, attrs):
        if attrs["outcome"] == AgreementOutcome.APPROVED and "has_funding_source" not in attrs:
            raise serializers.ValidationError(
                {"has_funding_source": "Required when the agreement was approved."}
            )
        return attrs


class AgreementOutcomeSchema(OpenApiSerializerExtension):
    """The schema states ``validate``'s rule: an approved outcome carries ``has_funding_source``."""

    target_class = AgreementOutcomeSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        # A pattern, not a one-value enum: drf-spectacular would fold such enums into one component.
        schema["oneOf"] = [
            {"properties": {"outcome": {"type": "string", "pattern": f"^{AgreementOutcome.APPROVED.value}$"}},
             "required": ["outcome", "has_funding_source"]},
            {"properties": {"outcome": {"type": "string", "pattern": f"^{AgreementOutcome.CANCELLED.value}$"}},
             "required": ["outcome"]},
        ]
        return schema


class ThreeDSOutcomeSerializer(serializers.Serializer):
    outcome = EnumField(ThreeDSOutcome, enum_name="ThreeDSOutcomeEnum")


class WalletLinkSerializer(serializers.Serializer):
    # A name, never digits first: whatever is sent ends up in the ELIG-6 message.
    wallet = FreeTextField(
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=32, help_text="For example alipay or wechat_pay.",
        pattern_message="A wallet name: a letter, then letters, digits or '_'.",
    )


# --- output -------------------------------------------------------------------------------------


class ThreeDSSerializer(serializers.Serializer):
    id = serializers.IntegerField(required=False, help_text="Present when a challenge is pending.")
    required = serializers.BooleanField()


class PaymentMethodSerializer(serializers.Serializer):
    """A method, masked (SEC-1): last four digits at most, never the number."""

    CARD_ONLY = ("network", "last4", "expiry", "funding", "cardholder_name", "three_ds")
    PAYPAL_ONLY = ("paypal_email", "agreement_state")

    id = serializers.IntegerField()
    account = serializers.IntegerField(source="account_id")
    kind = EnumField(PaymentMethod.Kind, enum_name="PaymentMethodKindEnum")
    status = EnumField(PaymentMethod.Status, enum_name="PaymentMethodStatusEnum")
    is_default = serializers.BooleanField()
    masked = serializers.CharField(help_text="•••• 4242 for a card, the e-mail for PayPal.")
    failure_reason = serializers.CharField(help_text="LINK-7 reason code when failed, else blank.")
    network = serializers.CharField(allow_null=True)
    last4 = serializers.CharField(allow_null=True)
    expiry = serializers.CharField(allow_null=True, help_text="MM/YY")
    funding = serializers.CharField(allow_null=True)
    cardholder_name = serializers.CharField(allow_null=True)
    three_ds = serializers.SerializerMethodField()
    paypal_email = serializers.EmailField(allow_null=True)
    agreement_state = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    activated_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(ThreeDSSerializer(allow_null=True))
    def get_three_ds(self, method: PaymentMethod) -> dict | None:
        if method.kind != PaymentMethod.Kind.CARD:
            return None
        if "three_ds_challenge" in self.context:  # the link call knows it: no query
            challenge = self.context["three_ds_challenge"]
        elif hasattr(method, "pending_challenges"):  # prefetched by the list view
            challenge = next(iter(method.pending_challenges), None)
        else:
            challenge = method.three_ds_challenges.for_linking().filter(status=ThreeDSChallenge.Status.PENDING).first()
        return {"id": challenge.pk, "required": True} if challenge else {"required": False}

    def to_representation(self, method: PaymentMethod) -> dict:
        data = super().to_representation(method)
        # Fields of the other kind are null rather than blank strings.
        for name in self.PAYPAL_ONLY if method.kind == PaymentMethod.Kind.CARD else self.CARD_ONLY:
            data[name] = None
        return data


class CardLinkResultSerializer(PaymentMethodSerializer):
    """The card link answer: the method with ``three_ds`` {id, required} (LINK-5)."""


class PayPalLinkResultSerializer(PaymentMethodSerializer):
    """The PayPal link answer: the pending method and where the customer approves (LINK-6)."""

    approval_url = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.URI)
    def get_approval_url(self, method: PaymentMethod) -> str:
        # The agreement's URL is not stored on the method; the link call passes it in.
        return self.context["approval_url"]


class CreditStatusSerializer(serializers.Serializer):
    approved = serializers.BooleanField(source="credit_approved")
    limit = serializers.DecimalField(source="credit_limit", max_digits=14, decimal_places=2)
    currency = serializers.CharField(source="credit_currency")


class MoneySerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()


class AccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    uid = serializers.CharField()
    name = serializers.CharField()
    email = serializers.EmailField(allow_null=True, help_text="null when the account has no e-mail.")
    kind = EnumField(Account.Kind, enum_name="AccountKindEnum")
    country = serializers.SerializerMethodField()
    region = serializers.CharField(help_text="ELIG-1: US, EU, EUROPE_NON_EU, MY or OTHER.")
    status = EnumField(Account.Status, enum_name="AccountStatusEnum")
    kyc_status = EnumField(Account.KycStatus, enum_name="KycStatusEnum")
    credit = CreditStatusSerializer(source="*")
    balance = serializers.SerializerMethodField(
        help_text="SEC-4: the ledger balance in the account's main currency (its credit currency)."
    )
    balances = serializers.SerializerMethodField(
        help_text="SEC-4: the ledger balance per currency, the main currency always included."
    )
    created_at = serializers.DateTimeField()

    def get_country(self, account: Account) -> str:
        return str(account.country)

    def to_representation(self, account: Account) -> dict:
        data = super().to_representation(account)
        data["email"] = data["email"] or None  # a blank e-mail is no e-mail (the schema says format email)
        return data

    def _ledger_balances(self, account: Account) -> dict:
        # One GROUP BY query per account, shared by ``balance`` and ``balances``.
        cached = getattr(account, "_ledger_balances", None)
        if cached is None:
            cached = {account.credit_currency: Decimal("0.00"), **account_balances(account_id=account.pk)}
            account._ledger_balances = cached
        return cached

    @extend_schema_field(MoneySerializer)
    def get_balance(self, account: Account) -> dict:
        main = account.credit_currency
        return MoneySerializer({"amount": self._ledger_balances(account)[main], "currency": main}).data

    @extend_schema_field(MoneySerializer(many=True))
    def get_balances(self, account: Account) -> list:
        rows = sorted(self._ledger_balances(account).items())
        return MoneySerializer([{"amount": amount, "currency": currency} for currency, amount in rows], many=True).data

"""Console API input fields whose OpenAPI schema states exactly what they enforce.

A client generated from the schema (or a fuzzer driven by it) must never see a schema-valid
value refused as malformed (400), so each field documents every shape check it makes: pattern,
enum, length, minimum and maximum. Checks that depend on another field or on the clock (JPY has
no cents, a usage period within its window) are rules, answered 422 by the services.

- ``FreeTextField``: names, addresses, references...: no leading or trailing blanks, no NUL, and
  never a card number (SEC-1, the only check a pattern cannot state; 400 with a fixed message).
- ``StrictBooleanField``: JSON ``true`` / ``false`` only (DRF's accepts "yes", 1, "on"...).
- ``StrictIntegerField``: a JSON integer only (DRF's accepts "12" and 12.0).
- ``AmountField`` / ``LimitField``: a decimal *string* bounded to the columns (I6).
- ``CurrencyField``: the accepted ISO 4217 codes as an enum (I6).
"""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing_backoffice import money
from billing_backoffice.free_text import MESSAGE as CARD_NUMBER_MESSAGE
from billing_backoffice.free_text import CardNumberInText, card_number_free, contains_card_number

# No blank at either end, no NUL and no lone surrogate (PostgreSQL cannot store either).
# The blanks are spelled out (what Python's ``\s`` matches) rather than written ``\s``: schema
# readers and generators disagree on what ``\s`` covers (a fuzzer put U+00A0 at the end of a
# "valid" value), an explicit list means the same to all of them.
_BLANKS = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_TEXT_CHAR = r"[^\x00\ud800-\udfff]"
_TEXT_EDGE = rf"[^{_BLANKS}\x00\ud800-\udfff]"
FREE_TEXT_PATTERN = rf"^{_TEXT_EDGE}(?:{_TEXT_CHAR}*{_TEXT_EDGE})?$"


class FullMatchValidator(RegexValidator):
    """A RegexValidator that matches the whole value (``$`` alone would accept a trailing newline);
    drf-spectacular documents its pattern like any RegexValidator's."""

    def __call__(self, value):
        if not isinstance(value, str) or not self.regex.fullmatch(value):
            raise serializers.ValidationError(self.message, code=self.code)


def pattern_validator(pattern: str, message: str) -> FullMatchValidator:
    return FullMatchValidator(re.compile(pattern, re.DOTALL), message=message, code="invalid")


class FreeTextField(serializers.CharField):
    """Free text a person typed (SEC-1 checked). ``pattern`` narrows it (payer ids, references)."""

    def __init__(self, *, pattern: str = FREE_TEXT_PATTERN, pattern_message: str | None = None, **kwargs):
        kwargs["trim_whitespace"] = False  # what the schema's pattern says is what is enforced
        super().__init__(**kwargs)
        message = pattern_message or "No blank at the start or the end, and no NUL character."
        self.validators.append(pattern_validator(pattern, message))
        self.validators.append(card_number_free)

    def run_validation(self, data=serializers.empty):
        # The card-number check runs before the length and pattern checks, so a PAN is always
        # refused with the SEC-1 message, and no message ever repeats the input.
        if contains_card_number(data):
            raise serializers.ValidationError(CARD_NUMBER_MESSAGE, code=CardNumberInText.code)
        return super().run_validation(data)


class FreeEmailField(serializers.EmailField):
    """An e-mail address (at most 254 characters, the column's size) that is not a card number."""

    def __init__(self, **kwargs):
        kwargs["trim_whitespace"] = False
        kwargs.setdefault("max_length", 254)
        super().__init__(**kwargs)
        self.validators.append(card_number_free)


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` and nothing else: "yes", "true", 1 and "on" are refused."""

    default_error_messages = {"invalid": "Must be true or false (a JSON boolean)."}

    def to_internal_value(self, data):
        if data is True or data is False:
            return data
        self.fail("invalid")


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: "12", 12.0 and true are refused."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class _DecimalStringField(serializers.Field):
    """An amount as a JSON string holding a plain decimal; the subclass sets pattern and bounds."""

    pattern: re.Pattern
    allow_zero = False
    maximum = money.MAX_AMOUNT
    default_error_messages = {
        "invalid": 'Send the amount as a string of digits with at most 2 decimal places, e.g. "12.50".',
        "number": 'Send the amount as a string such as "12.50", never as a JSON number.',
    }

    def to_internal_value(self, data):
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            self.fail("number")
        if not isinstance(data, str) or not self.pattern.fullmatch(data):
            self.fail("invalid")
        # The pattern already bounds it; the currency's own decimals are the service's rule (I6).
        try:
            return money.amount_validate(data, allow_zero=self.allow_zero, maximum=self.maximum)
        except money.InvalidAmount:  # pragma: no cover - the pattern rules every such value out
            self.fail("invalid")

    def to_representation(self, value):
        return f"{value:.2f}"


_POSITIVE = r"^(?:[1-9][0-9]{0,9}(?:\.[0-9]{1,2})?|0\.(?:[1-9][0-9]?|0[1-9]))$"
_NOT_NEGATIVE = r"^(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?$"


@extend_schema_field({
    "type": "string", "format": "decimal", "pattern": _POSITIVE, "maxLength": 13,
    "description": "A decimal string > 0 with at most 2 places and at most 10 integer digits (I6).",
})
class AmountField(_DecimalStringField):
    """I6: a positive amount, at most ``money.MAX_AMOUNT`` (9999999999.99)."""

    pattern = re.compile(_POSITIVE)


@extend_schema_field({
    "type": "string", "format": "decimal", "pattern": _NOT_NEGATIVE, "maxLength": 15,
    "description": "A decimal string >= 0 with at most 2 places and at most 12 integer digits (I6).",
})
class LimitField(_DecimalStringField):
    """I6: an amount >= 0 that fits a ``max_digits=14`` column (a credit limit)."""

    pattern = re.compile(_NOT_NEGATIVE)
    allow_zero = True
    maximum = money.COLUMN_MAX


class CurrencyField(serializers.ChoiceField):
    """I6: an accepted ISO 4217 code (``money.CURRENCIES``), documented as the enum ``CurrencyEnum``.
    Lower case is taken too and upper-cased (``usd``), as the console always could."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "ISO 4217 alpha-3, e.g. USD (JPY and other zero-decimal currencies: whole amounts).")
        super().__init__(choices=money.CURRENCY_CODES, **kwargs)
        self.error_messages["invalid_choice"] = "Not an ISO 4217 currency code accepted here (USD, EUR, JPY...)."

    def to_internal_value(self, data):
        if isinstance(data, str) and data.upper() in money.CURRENCIES:
            return data.upper()
        self.fail("invalid_choice", input="")

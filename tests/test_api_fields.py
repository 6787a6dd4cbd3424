"""The console API's schema states exactly what its fields enforce (a fuzzer driven by the schema
finds no schema-valid value refused as malformed), the one money module (I6), and strict booleans."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from drf_spectacular.generators import SchemaGenerator
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from billing_backoffice import money
from billing_backoffice.api_fields import (
    FREE_TEXT_PATTERN,
    AmountField,
    CurrencyField,
    FreeTextField,
    LimitField,
    StrictBooleanField,
    StrictIntegerField,
)
from billing_backoffice.free_text import contains_card_number

FUZZ = settings(max_examples=300, deadline=None)
NUMBERISH = st.text(alphabet="0123456789.-+e ", max_size=16)


def accepts(field: serializers.Field, value) -> bool:
    try:
        field.run_validation(value)
    except serializers.ValidationError:
        return False
    return True


# --- I6: amounts ----------------------------------------------------------------------------------


@FUZZ
@given(st.from_regex(AmountField.pattern, fullmatch=True))
def test_i6_every_amount_the_schema_allows_is_accepted(text):
    assert accepts(AmountField(), text)
    assert Decimal("0.01") <= AmountField().run_validation(text) <= money.MAX_AMOUNT


@FUZZ
@given(NUMBERISH)
def test_i6_an_amount_is_accepted_only_when_the_schema_allows_it(text):
    assert accepts(AmountField(), text) == bool(AmountField.pattern.fullmatch(text))


@FUZZ
@given(st.one_of(st.from_regex(LimitField.pattern, fullmatch=True), NUMBERISH))
def test_i6_credit_limit_field_and_its_pattern_agree(text):
    assert accepts(LimitField(), text) == bool(LimitField.pattern.fullmatch(text))
    if accepts(LimitField(), text):
        assert LimitField().run_validation(text) <= money.COLUMN_MAX


@pytest.mark.parametrize("value", [12.5, 1000, True, None, ["1.00"], "1e3", "1,00", " 1.00", "1.00 ", "01.00", "1.005"])
def test_i6_amount_must_be_a_plain_decimal_string(value):
    assert not accepts(AmountField(), value)


# --- free text -----------------------------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=40))
def test_sec_1_free_text_accepted_exactly_when_the_schema_pattern_matches_and_no_card_number(text):
    field = FreeTextField(max_length=40)
    expected = bool(re.fullmatch(FREE_TEXT_PATTERN, text, re.DOTALL)) and not contains_card_number(text)
    assert accepts(field, text) == expected


@FUZZ
@given(st.from_regex(r"[0-9]{13,19}", fullmatch=True))
def test_sec_1_free_text_refuses_luhn_valid_runs_only(digits):
    from stdnum import luhn

    assert accepts(FreeTextField(max_length=40), f"Ref {digits}") == (not luhn.is_valid(digits))


# --- strict booleans and integers ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "no", "true", "false", "True", 1, 0, "1", "on", "", None, [], {}])
def test_link_6_strict_boolean_refuses_everything_but_json_booleans(value):
    assert not accepts(StrictBooleanField(), value)


@pytest.mark.parametrize("value", [True, False])
def test_link_6_strict_boolean_takes_json_booleans(value):
    assert StrictBooleanField().run_validation(value) is value


@pytest.mark.parametrize("value", ["12", 12.0, True, "1e1"])
def test_link_3_strict_integer_refuses_strings_floats_and_booleans(value):
    assert not accepts(StrictIntegerField(min_value=1, max_value=12), value)


# --- I6: the money module ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["ZZZ", "XAU", "XAG", "XXX", "XTS", "XDR", "BOV", "USN", "KWD", "BHD", "CLF", "", "US", 840, None])
def test_i6_only_iso_4217_fiat_currencies_the_columns_can_hold_are_accepted(code):
    with pytest.raises(money.InvalidCurrency):
        money.currency_validate(code)
    assert not accepts(CurrencyField(), code)


def test_i6_currency_codes_are_upper_cased_and_the_business_currencies_are_there():
    assert money.currency_validate(" usd ") == "USD"
    assert CurrencyField().run_validation("eur") == "EUR"
    assert {"USD", "EUR", "GBP", "JPY", "MYR", "SGD", "CNY"} <= set(money.CURRENCIES)


def test_i6_zero_decimal_currencies_take_whole_amounts_only():
    assert money.amount_validate("150", "JPY") == Decimal("150.00")
    assert money.amount_validate("150.00", "JPY") == Decimal("150.00")
    for amount in ("0.01", "149.50"):
        with pytest.raises(money.InvalidAmount):
            money.amount_validate(amount, "JPY")
    assert money.amount_validate("0.01", "USD") == Decimal("0.01")


@pytest.mark.parametrize("amount", [0.1, "1.001", "NaN", "Infinity", "abc", "0", "-5"])
def test_i6_floats_and_anything_finer_than_the_currency_are_refused(amount):
    with pytest.raises(money.InvalidAmount):
        money.amount_validate(amount, "USD")


def test_i6_one_amount_and_an_accumulated_sum_are_bounded_to_the_columns():
    assert money.amount_validate(money.MAX_AMOUNT) == money.MAX_AMOUNT
    with pytest.raises(money.AmountTooLarge):
        money.amount_validate(money.MAX_AMOUNT + Decimal("0.01"))
    money.accumulation_check(current=money.COLUMN_MAX - 1, adding=Decimal("1"), what="x")
    with pytest.raises(money.AmountTooLarge):
        money.accumulation_check(current=money.COLUMN_MAX, adding=Decimal("0.01"), what="x")
    # The column: max_digits=14, decimal_places=2.
    assert money.COLUMN_MAX == Decimal(10) ** 12 - Decimal("0.01")


# --- the schema says what the fields enforce ----------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_i6_schema_currency_enum_is_the_money_module(schema):
    enum = schema["components"]["schemas"]["CurrencyEnum"]["enum"]
    assert enum == list(money.CURRENCY_CODES) and "ZZZ" not in enum and "XAU" not in enum


def test_i6_schema_amount_patterns_are_the_fields_patterns(schema):
    components = schema["components"]["schemas"]
    for name in ("UsageCreateRequest", "OrderCreateRequest", "ClaimCreateJSONRequest"):
        assert components[name]["properties"]["amount"]["pattern"] == AmountField.pattern.pattern
    limit = components["CreditApplicationCreateRequest"]["properties"]["requested_limit"]
    assert limit["pattern"] == LimitField.pattern.pattern


def test_link_6_schema_has_funding_source_is_boolean_and_required_when_approved(schema):
    request = schema["components"]["schemas"]["AgreementOutcomeRequest"]
    assert request["properties"]["has_funding_source"]["type"] == "boolean"
    approved = next(branch for branch in request["oneOf"] if "approved" in branch["properties"]["outcome"]["pattern"])
    assert "has_funding_source" in approved["required"]


def test_account_email_is_nullable_in_the_answer(schema):
    email = schema["components"]["schemas"]["Account"]["properties"]["email"]
    assert email["format"] == "email" and email["nullable"] is True


def test_sec_1_json_claim_offers_no_proof_and_free_text_has_its_pattern(schema):
    components = schema["components"]["schemas"]
    assert "proof" not in components["ClaimCreateJSONRequest"]["properties"]
    assert "proof" in components["ClaimCreateRequest"]["properties"]
    name = components["AccountCreateRequest"]["properties"]["name"]
    assert name["maxLength"] == 200 and name["pattern"].startswith("^[^\\t-\\r")  # blanks spelled out

"""ELIG-3 and LINK-3 at their edges: the tests that kill the mutants of the card rules.

Each range is checked on both sides of both ends (moving an end by one must fail a test), each
network's CVV length on both sides, and the expiry around "this month" with the clock passed in.
``validate_card_fields`` is pure (no database), so these run without one.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from stdnum import luhn

from payments.eligibility import Network, network_from_number
from payments.errors import LinkRefused
from payments.models import LinkAttempt
from payments.services.cards import validate_card_fields
from tests.helpers.cards import card_input

Reason = LinkAttempt.Reason
# A clock in the middle of a month, and one in December for the year rollover.
NOV_2026 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
DEC_2026 = datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc)


def luhn_number(prefix: str, length: int = 16) -> str:
    """A Luhn-valid card number of ``length`` digits starting with ``prefix``."""
    body = prefix + "0" * (length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def refused(card, now=NOV_2026) -> LinkRefused:
    with pytest.raises(LinkRefused) as caught:
        validate_card_fields(card, now=now)
    return caught.value


# --- ELIG-3: the network from the IIN, both sides of every edge -----------------------------


@pytest.mark.parametrize(
    ("prefix", "network"),
    [
        # Mastercard 2221-2720
        ("2220", Network.UNKNOWN), ("2221", Network.MASTERCARD),
        ("2720", Network.MASTERCARD), ("2721", Network.UNKNOWN),
        # Mastercard 51-55
        ("50", Network.UNKNOWN), ("51", Network.MASTERCARD),
        ("55", Network.MASTERCARD), ("56", Network.UNKNOWN),
        # JCB 3528-3589; the rest of 35 is no network
        ("3527", Network.UNKNOWN), ("3528", Network.JCB),
        ("3589", Network.JCB), ("3590", Network.UNKNOWN), ("3500", Network.UNKNOWN),
        # Amex 34 and 37 only; 35 is JCB's, 36 Diners', 33 nobody's
        ("33", Network.UNKNOWN), ("34", Network.AMEX), ("37", Network.AMEX), ("36", Network.DINERS),
        # Visa is any 4
        ("4", Network.VISA), ("49", Network.VISA), ("31", Network.UNKNOWN),
        # UnionPay 62 (its co-badged Discover range 622126-622925 is UnionPay first)
        ("62", Network.UNIONPAY), ("622126", Network.UNIONPAY), ("61", Network.UNKNOWN), ("63", Network.UNKNOWN),
        # Discover 6011, 644-649, 65
        ("6011", Network.DISCOVER), ("6012", Network.UNKNOWN), ("643", Network.UNKNOWN),
        ("644", Network.DISCOVER), ("649", Network.DISCOVER), ("65", Network.DISCOVER),
        # Diners 300-305, 36, 38, 39
        ("300", Network.DINERS), ("305", Network.DINERS), ("306", Network.UNKNOWN),
        ("38", Network.DINERS), ("39", Network.DINERS),
    ],
)
def test_elig_3_network_ranges_at_both_edges(prefix, network):
    assert network_from_number(luhn_number(prefix)) == network


def test_elig_3_too_short_or_not_digits_is_no_network():
    assert network_from_number("42424") == Network.UNKNOWN
    assert network_from_number("424242") == Network.VISA  # six digits are enough for the BIN
    assert network_from_number("4242 4242 4242 4242") == Network.UNKNOWN  # callers strip first


@pytest.mark.parametrize(
    ("prefix", "network"),
    [("2221", Network.MASTERCARD), ("2720", Network.MASTERCARD), ("51", Network.MASTERCARD),
     ("55", Network.MASTERCARD), ("3528", Network.JCB), ("3589", Network.JCB), ("34", Network.AMEX),
     ("37", Network.AMEX), ("4", Network.VISA)],
)
def test_elig_3_inside_edges_link(prefix, network):
    cvv = "1234" if network == Network.AMEX else "123"
    number = luhn_number(prefix, 15 if network == Network.AMEX else 16)
    assert validate_card_fields(card_input(number, cvv=cvv), now=NOV_2026) == (number, network)


@pytest.mark.parametrize("prefix", ["2220", "2721", "50", "56", "3527", "3590", "3500", "33"])
def test_elig_3_just_outside_edges_refused_as_unsupported(prefix):
    error = refused(card_input(luhn_number(prefix)))
    assert (error.rule, error.reason) == ("ELIG-3", Reason.UNSUPPORTED_NETWORK)
    assert "Unknown cards are not accepted" in error.detail


@pytest.mark.parametrize(
    ("prefix", "label"),
    [("62", "UnionPay cards are not accepted"), ("6011", "Discover cards are not accepted"),
     ("36", "Diners Club cards are not accepted")],
)
def test_elig_3_networks_outside_elig_2_refused_by_name(prefix, label):
    error = refused(card_input(luhn_number(prefix)))
    assert (error.rule, error.reason) == ("ELIG-3", Reason.UNSUPPORTED_NETWORK)
    assert error.detail.startswith(label)
    assert "use Visa, Mastercard, American Express or JCB" in error.detail


# --- LINK-3: the card number ----------------------------------------------------------------


@pytest.mark.parametrize("length", [12, 13, 16, 19])
def test_link_3_number_of_12_to_19_digits_accepted(length):
    number = luhn_number("4", length)
    assert validate_card_fields(card_input(number), now=NOV_2026) == (number, Network.VISA)


@pytest.mark.parametrize("length", [11, 20])
def test_link_3_number_shorter_than_12_or_longer_than_19_refused(length):
    error = refused(card_input(luhn_number("4", length)))
    assert (error.rule, error.reason, error.detail) == ("LINK-3", Reason.INVALID_CARD_DETAILS, "The card number is not valid.")


def test_link_3_number_failing_luhn_or_with_letters_refused():
    number = luhn_number("4")
    wrong_check = number[:-1] + str((int(number[-1]) + 1) % 10)
    # Only spaces and dashes are separators: any other character refuses the number.
    for bad in (wrong_check, number[:-1] + "x", "4242.4242.4242.4242", "4242X4242X4242X4242", "4242_4242_4242_4242"):
        assert refused(card_input(bad)).reason == Reason.INVALID_CARD_DETAILS


def test_link_3_spaces_and_dashes_are_stripped_from_the_number():
    assert validate_card_fields(card_input("4242 4242-4242 4242"), now=NOV_2026) == ("4242424242424242", Network.VISA)


# --- LINK-3: CVV length per network -----------------------------------------------------------

THREE_DIGIT_NETWORKS = [("4", Network.VISA, "Visa"), ("2221", Network.MASTERCARD, "Mastercard"),
                        ("51", Network.MASTERCARD, "Mastercard"), ("3528", Network.JCB, "JCB")]


@pytest.mark.parametrize(("prefix", "network", "label"), THREE_DIGIT_NETWORKS)
def test_link_3_cvv_three_digits_for_visa_mastercard_jcb(prefix, network, label):
    number = luhn_number(prefix)
    assert validate_card_fields(card_input(number, cvv="123"), now=NOV_2026) == (number, network)
    for cvv in ("12", "1234", "12345"):
        error = refused(card_input(number, cvv=cvv))
        assert (error.rule, error.reason) == ("LINK-3", Reason.INVALID_CARD_DETAILS)
        assert error.detail == f"The security code must be 3 digits for {label}."


def test_link_3_cvv_four_digits_for_amex():
    number = luhn_number("37", 15)
    assert validate_card_fields(card_input(number, cvv="1234"), now=NOV_2026) == (number, Network.AMEX)
    for cvv in ("12", "123", "12345"):
        error = refused(card_input(number, cvv=cvv))
        assert error.detail == "The security code must be 4 digits for American Express."


@pytest.mark.parametrize("cvv", ["12a", "1 3", "", "-12"])
def test_link_3_cvv_must_be_digits(cvv):
    assert refused(card_input(luhn_number("4"), cvv=cvv)).reason == Reason.INVALID_CARD_DETAILS


# --- LINK-3: expiry, with the clock passed in -------------------------------------------------


@pytest.mark.parametrize(
    ("now", "month", "year"),
    [(NOV_2026, 11, 2026), (NOV_2026, 10, 2026), (NOV_2026, 12, 2025), (NOV_2026, 11, 26),
     (DEC_2026, 12, 2026), (DEC_2026, 12, 26), (DEC_2026, 1, 2026)],
)
def test_link_3_card_expiring_this_month_or_earlier_refused(now, month, year):
    error = refused(card_input(exp_month=month, exp_year=year), now=now)
    assert (error.rule, error.reason) == ("LINK-3", Reason.EXPIRES_TOO_SOON)
    assert error.detail == "A card that expires this month or earlier cannot be added."


@pytest.mark.parametrize(
    ("now", "month", "year"),
    [(NOV_2026, 12, 2026), (NOV_2026, 12, 26), (NOV_2026, 1, 2027), (DEC_2026, 1, 2027), (DEC_2026, 1, 27),
     (NOV_2026, 1, 99)],
)
def test_link_3_card_expiring_next_month_or_later_accepted(now, month, year):
    assert validate_card_fields(card_input(exp_month=month, exp_year=year), now=now)[1] == Network.VISA


def test_link_3_two_digit_year_means_this_century_only_below_100():
    # 100 is a four-digit-style year (AD 100), long past: refused, not read as 2100.
    assert refused(card_input(exp_month=1, exp_year=100)).reason == Reason.EXPIRES_TOO_SOON


@pytest.mark.parametrize("month", [1, 12])
def test_link_3_expiry_month_1_and_12_accepted(month):
    assert validate_card_fields(card_input(exp_month=month, exp_year=2029), now=NOV_2026)[1] == Network.VISA


@pytest.mark.parametrize("month", [0, 13, -1])
def test_link_3_expiry_month_outside_1_to_12_refused(month):
    error = refused(card_input(exp_month=month, exp_year=2029))
    assert (error.rule, error.reason, error.detail) == (
        "LINK-3", Reason.INVALID_CARD_DETAILS, "The expiry month must be 01 to 12."
    )


# --- LINK-3: the other fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "label"),
    [("cardholder_name", "cardholder name"), ("billing_line1", "billing street"),
     ("billing_city", "billing city"), ("billing_postal_code", "billing postal code")],
)
def test_link_3_each_required_field_named_when_blank(field, label):
    for blank in ("", "   "):
        error = refused(card_input(**{field: blank}))
        assert (error.rule, error.reason, error.detail) == ("LINK-3", Reason.INVALID_CARD_DETAILS, f"Missing {label}.")


def test_link_3_all_missing_fields_named_together():
    error = refused(card_input(cardholder_name="", billing_city=" "))
    assert error.detail == "Missing cardholder name, billing city."


def test_link_3_company_name_is_optional():
    assert validate_card_fields(card_input(company_name=""), now=NOV_2026)[1] == Network.VISA


def test_link_3_billing_country_must_be_iso_3166():
    assert validate_card_fields(card_input(billing_country="fr"), now=NOV_2026)[1] == Network.VISA
    error = refused(card_input(billing_country="ZZ"))
    assert (error.rule, error.reason) == ("LINK-3", Reason.INVALID_CARD_DETAILS)
    assert error.detail == "The billing country is not a known ISO 3166 country code."


def test_elig_2_a_region_outside_the_table_allows_no_card_and_no_paypal():
    from payments.eligibility import card_network_allowed, paypal_allowed

    assert not any(card_network_allowed("MARS", network) for network in Network)
    assert not paypal_allowed("MARS")

"""ELIG-1..3: the pure tables, checked against RULES.md cell by cell."""

from decimal import Decimal

import pytest

from payments.eligibility import (
    Network,
    Region,
    card_network_allowed,
    cvv_length,
    network_from_number,
    paypal_allowed,
    region_for_country,
)


@pytest.mark.parametrize(
    ("country", "region"),
    [
        ("US", Region.US),
        ("DE", Region.EU), ("FR", Region.EU), ("IE", Region.EU), ("BG", Region.EU), ("CY", Region.EU),
        ("GB", Region.EUROPE_NON_EU), ("CH", Region.EUROPE_NON_EU), ("NO", Region.EUROPE_NON_EU),
        ("IS", Region.EUROPE_NON_EU), ("UA", Region.EUROPE_NON_EU), ("VA", Region.EUROPE_NON_EU),
        ("MY", Region.MY),
        ("SG", Region.OTHER), ("JP", Region.OTHER), ("KR", Region.OTHER), ("AU", Region.OTHER),
        ("HK", Region.OTHER), ("TW", Region.OTHER), ("MO", Region.OTHER), ("CN", Region.OTHER),
        ("us", Region.US),
    ],
)
def test_elig_1_region_from_registration_country(country, region):
    assert region_for_country(country) == region


def test_elig_1_all_27_eu_member_states():
    from payments.eligibility import EU_MEMBER_STATES

    assert len(EU_MEMBER_STATES) == 27


EU_TERRITORIES = ["AX", "RE", "GP", "MQ", "GF", "YT", "MF"]


@pytest.mark.parametrize("country", EU_TERRITORIES + [c.lower() for c in EU_TERRITORIES[:2]])
def test_elig_1_eu_territories_with_their_own_iso_code_are_eu(country):
    """ELIG-1: Aland, the French outermost regions and Saint-Martin are part of the EU."""
    assert region_for_country(country) == Region.EU


@pytest.mark.parametrize("country", ["BL", "PM", "NC", "PF", "WF", "TF", "AW", "CW", "SX", "BQ", "GL"])
def test_elig_1_overseas_countries_and_territories_are_not_eu(country):
    """ELIG-1: OCTs are associated with the EU but not part of it, so they stay OTHER."""
    assert region_for_country(country) == Region.OTHER


@pytest.mark.django_db
@pytest.mark.parametrize("country", EU_TERRITORIES)
def test_elig_1_link_5_elig_2_eu_territory_accounts_get_the_eu_rules(country, now):
    """An account registered in an EU territory: EU region, 3DS mandatory, no JCB, no PayPal."""
    from payments.errors import LinkRefused
    from payments.models import ThreeDSChallenge
    from payments.services import account_create, card_link, hold_amount_for, paypal_link
    from tests.helpers.cards import card_input

    account = account_create(name=f"Customer in {country}", kind="individual", country=country)
    assert account.region == Region.EU
    assert hold_amount_for(account) == (Decimal("1.00"), "EUR")  # HOLD-1: they all use the euro
    visa = card_link(account_id=account.pk, card=card_input(), now=now)
    assert visa.challenge is not None and visa.challenge.trigger == ThreeDSChallenge.Trigger.REGION
    with pytest.raises(LinkRefused) as jcb:
        card_link(account_id=account.pk, card=card_input("3530111333300000"), now=now)
    with pytest.raises(LinkRefused) as paypal:
        paypal_link(account_id=account.pk, email="p@example.com", payer_id=f"P{country}", country=country, now=now)
    assert jcb.value.rule == paypal.value.rule == "ELIG-2"


# RULES.md ELIG-2 table, row by row: region order US, EU, EUROPE_NON_EU, MY, OTHER.
ELIG_2_TABLE = {
    Network.VISA: (True, True, True, True, True),
    Network.MASTERCARD: (True, True, True, True, True),
    Network.AMEX: (True, True, True, False, True),
    Network.JCB: (False, False, False, False, True),
}
REGIONS = (Region.US, Region.EU, Region.EUROPE_NON_EU, Region.MY, Region.OTHER)


@pytest.mark.parametrize("network", list(ELIG_2_TABLE))
def test_elig_2_card_availability_matches_the_table(network):
    assert tuple(card_network_allowed(region, network) for region in REGIONS) == ELIG_2_TABLE[network]


def test_elig_2_paypal_availability_matches_the_table():
    assert tuple(paypal_allowed(region) for region in REGIONS) == (True, False, True, False, True)


@pytest.mark.parametrize(
    ("number", "network"),
    [
        ("4242424242424242", Network.VISA),
        ("5105105105105100", Network.MASTERCARD),
        ("5555555555554444", Network.MASTERCARD),
        ("2221000000000009", Network.MASTERCARD),
        ("2720990000000007", Network.MASTERCARD),
        ("2721000000000004", Network.UNKNOWN),
        ("340000000000009", Network.AMEX),
        ("378282246310005", Network.AMEX),
        ("3528000000000007", Network.JCB),
        ("3589000000000003", Network.JCB),
        ("3527000000000009", Network.UNKNOWN),
        ("6200000000000005", Network.UNIONPAY),
        ("6011111111111117", Network.DISCOVER),
        ("30569309025904", Network.DINERS),
    ],
)
def test_elig_3_network_from_bin(number, network):
    assert network_from_number(number) == network


@pytest.mark.parametrize("network", [Network.UNIONPAY, Network.DISCOVER, Network.DINERS, Network.UNKNOWN])
def test_elig_3_networks_outside_the_table_are_never_allowed(network):
    assert not any(card_network_allowed(region, network) for region in REGIONS)


def test_link_3_cvv_is_four_digits_for_amex_three_otherwise():
    assert cvv_length(Network.AMEX) == 4
    assert {cvv_length(n) for n in (Network.VISA, Network.MASTERCARD, Network.JCB)} == {3}

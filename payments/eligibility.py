"""Pure eligibility tables: regions (ELIG-1), method availability (ELIG-2), networks (ELIG-3).

No database access here: these functions are the single source of the tables in RULES.md and
are used by the linking services, the admin filters and the seed data alike.
"""

from __future__ import annotations

from django.db import models


class Region(models.TextChoices):
    US = "US", "United States"
    EU = "EU", "European Union"
    EUROPE_NON_EU = "EUROPE_NON_EU", "Europe (outside the EU)"
    MY = "MY", "Malaysia"
    OTHER = "OTHER", "Other regions"


class Network(models.TextChoices):
    VISA = "visa", "Visa"
    MASTERCARD = "mastercard", "Mastercard"
    AMEX = "amex", "American Express"
    JCB = "jcb", "JCB"
    UNIONPAY = "unionpay", "UnionPay"
    DISCOVER = "discover", "Discover"
    DINERS = "diners", "Diners Club"
    UNKNOWN = "unknown", "Unknown"


# ELIG-1: the 27 EU member states.
EU_MEMBER_STATES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)
# ELIG-1: parts of EU member states that ISO 3166-1 gives their own alpha-2 code. They are in
# the EU (Art. 349/355 TFEU): the French outermost regions (GF, GP, MQ, RE, YT), Saint-Martin
# (MF) and the Aland Islands (AX, Finland). Not here, on purpose: the overseas countries and
# territories (OCTs) associated with the EU but not part of it: BL, PM, NC, PF, WF, TF (France),
# AW, CW, SX, BQ (Netherlands), GL (Denmark); they stay OTHER. The Azores, Madeira, the Canary
# Islands, Ceuta and Melilla are in the EU but have no ISO 3166-1 code of their own (IC and EA
# are only "exceptionally reserved"), so an account there registers as PT or ES.
EU_TERRITORIES_WITH_OWN_CODES = frozenset("AX GF GP MQ RE YT MF".split())
EU_COUNTRY_CODES = EU_MEMBER_STATES | EU_TERRITORIES_WITH_OWN_CODES
# ELIG-1: European countries and territories outside the EU.
EUROPE_NON_EU_COUNTRIES = frozenset(
    "GB CH NO IS LI RS UA AL BA MD ME MK AD MC SM VA BY XK GI GG JE IM FO TR".split()
)

CHINESE_MAINLAND = "CN"

# ELIG-2: which card networks and whether PayPal each region may use.
CARD_NETWORKS_BY_REGION = {
    Region.US: frozenset({Network.VISA, Network.MASTERCARD, Network.AMEX}),
    Region.EU: frozenset({Network.VISA, Network.MASTERCARD, Network.AMEX}),
    Region.EUROPE_NON_EU: frozenset({Network.VISA, Network.MASTERCARD, Network.AMEX}),
    Region.MY: frozenset({Network.VISA, Network.MASTERCARD}),
    Region.OTHER: frozenset({Network.VISA, Network.MASTERCARD, Network.AMEX, Network.JCB}),
}
PAYPAL_REGIONS = frozenset({Region.US, Region.EUROPE_NON_EU, Region.OTHER})
SUPPORTED_NETWORKS = frozenset().union(*CARD_NETWORKS_BY_REGION.values())

# LINK-5: linking a card here always needs a completed 3DS challenge.
THREE_DS_MANDATORY_REGIONS = frozenset({Region.EU, Region.MY})

# ELIG-6: wallets that are not payment methods.
REFUSED_WALLETS = {"alipay": "Alipay", "wechat_pay": "WeChat Pay"}


def region_for_country(country_code: str) -> Region:
    """ELIG-1: the region of a registration country (ISO 3166 alpha-2).

    EU territories with their own code (``EU_TERRITORIES_WITH_OWN_CODES``) are EU: 3-D Secure
    is mandatory there (LINK-5) and JCB and PayPal are not offered (ELIG-2).
    """
    code = (country_code or "").upper()
    if code == "US":
        return Region.US
    if code in EU_COUNTRY_CODES:
        return Region.EU
    if code in EUROPE_NON_EU_COUNTRIES:
        return Region.EUROPE_NON_EU
    if code == "MY":
        return Region.MY
    return Region.OTHER


def network_from_number(number: str) -> Network:
    """ELIG-3: the card network from the IIN/BIN of a card number (digits only)."""
    if not number.isdigit() or len(number) < 6:
        return Network.UNKNOWN
    two, four, six = int(number[:2]), int(number[:4]), int(number[:6])
    if number[0] == "4":
        return Network.VISA
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return Network.MASTERCARD
    if two in (34, 37):
        return Network.AMEX
    if 3528 <= four <= 3589:
        return Network.JCB
    if two == 62:
        return Network.UNIONPAY
    if number.startswith("6011") or number.startswith("65") or 644 <= int(number[:3]) <= 649 or 622126 <= six <= 622925:
        return Network.DISCOVER
    if two in (36, 38, 39) or 300 <= int(number[:3]) <= 305:
        return Network.DINERS
    return Network.UNKNOWN


def card_network_allowed(region: str, network: str) -> bool:
    """ELIG-2: may an account of ``region`` link a card of ``network``?"""
    return network in CARD_NETWORKS_BY_REGION.get(region, frozenset())


def paypal_allowed(region: str) -> bool:
    """ELIG-2: may an account of ``region`` link PayPal?"""
    return region in PAYPAL_REGIONS


def cvv_length(network: str) -> int:
    """LINK-3: 4 digits for Amex, 3 for every other network."""
    return 4 if network == Network.AMEX else 3

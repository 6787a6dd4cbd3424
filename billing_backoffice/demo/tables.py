"""Fixed tables the demo draws from: regions and countries, names, card prefixes, weights."""

from __future__ import annotations

from stdnum import luhn

from payments.eligibility import Network, Region
from payments.models import LinkAttempt

ACCOUNT_COUNT = 300
# Demo UIDs are 16 digits like real ones, so staff find them the same way in the admin (digits
# search the UID): "99990", the index, and a last digit that keeps the UID from being Luhn-valid
# (a UID is never taken for a card number, SEC-1). Real UIDs start with 99990 about once in 10^5.
UID_PREFIX = "99990"
SEED = "billing-demo-v1"
Reason = LinkAttempt.Reason

# Countries per region (ELIG-1); the region stored is always region_for_country(country).
COUNTRIES = {
    Region.US: ["US"],
    Region.EU: ["DE", "FR", "NL", "IE", "ES", "IT", "PL", "SE", "AT", "BE"],
    Region.EUROPE_NON_EU: ["GB", "CH", "NO", "IS", "RS", "UA"],
    Region.MY: ["MY"],
    Region.OTHER: ["SG", "JP", "KR", "AU", "HK", "TW", "CA", "IN", "BR"],
}
REGION_ORDER = [Region.US, Region.EU, Region.EUROPE_NON_EU, Region.MY, Region.OTHER]
CITIES = {
    "US": ("Seattle", "98101"), "DE": ("Berlin", "10115"), "FR": ("Lyon", "69001"),
    "NL": ("Utrecht", "3511"), "IE": ("Dublin", "D02 X285"), "ES": ("Valencia", "46001"),
    "IT": ("Milano", "20121"), "PL": ("Kraków", "30-001"), "SE": ("Göteborg", "411 01"),
    "AT": ("Wien", "1010"), "BE": ("Gent", "9000"), "GB": ("Manchester", "M1 1AE"),
    "CH": ("Zürich", "8001"), "NO": ("Bergen", "5003"), "IS": ("Reykjavík", "101"),
    "RS": ("Beograd", "11000"), "UA": ("Lviv", "79000"), "MY": ("Kuala Lumpur", "50450"),
    "SG": ("Singapore", "018956"), "JP": ("Osaka", "530-0001"), "KR": ("Seoul", "04524"),
    "AU": ("Melbourne", "3000"), "HK": ("Hong Kong", "999077"), "TW": ("Taipei", "100"),
    "CA": ("Toronto", "M5H 2N2"), "IN": ("Bengaluru", "560001"), "BR": ("São Paulo", "01000-000"),
}
COMPANY_SUFFIX = {"US": "Inc.", "DE": "GmbH", "AT": "GmbH", "CH": "AG", "MY": "Sdn Bhd", "SG": "Pte Ltd", "JP": "K.K."}
FIRST_NAMES = (
    "Ada Ben Chloe Daniel Emma Farid Grace Hiro Ines Jonas Kavya Liam Mei Noor Oskar Priya Rafael Sofia Tomas Yuki"
).split()
LAST_NAMES = (
    "Andersen Becker Costa Dubois Eriksen Fischer Garcia Hansen Ito Jensen Kim Lee Moreau Nowak Okafor Perez Rossi "
    "Silva Tan Weber"
).split()
COMPANY_WORDS = (
    "Nordwind Bluepeak Orbital Lumen Cedar Harbor Quartz Atlas Kestrel Meridian".split(),
    "Analytics Robotics Logistics Media Health Games Labs Foods Studio Systems".split(),
)
STREETS = "Main Street|Station Road|Harbour Lane|Market Square|Park Avenue|Mill Road".split("|")

# Card number prefixes (ELIG-3) and lengths. A digit after the IIN keeps every demo number away
# from the simulated gateway's TEST_CARDS, so a tester can still link those on any demo account.
CARD_PREFIX = {Network.VISA: ("47", 16), Network.MASTERCARD: ("52", 16), Network.AMEX: ("37", 15), Network.JCB: ("3566", 16)}
NETWORK_WEIGHT = {Network.VISA: 50, Network.MASTERCARD: 35, Network.AMEX: 10, Network.JCB: 10}

# What a live (pending / active / expired) method of an active account is, with weights.
LIVE_SCENARIOS = {
    "active": 64,             # linked days ago; its hold released long since
    "active_hold_due": 7,     # linked hours ago; hold placed, due for release (HOLD-2)
    "active_release_failed": 3,  # hold due, last void failed, will be retried
    "active_hold_not_due": 5,  # linked minutes ago; hold placed, not yet due
    "expired": 9,             # card past its expiry month (DEL-5)
    "pending_3ds": 6,         # waiting for the cardholder's 3DS challenge (LINK-5)
    "pending_paypal": 6,      # waiting for the PayPal agreement approval (LINK-6)
}
CARD_FAILURES = [Reason.ISSUER_DECLINED, Reason.NOT_ENABLED_ONLINE, Reason.INSUFFICIENT_FUNDS, Reason.THREE_DS_NOT_COMPLETED]
PAYPAL_FAILURES = [Reason.AGREEMENT_NOT_APPROVED, Reason.NO_FUNDING_SOURCE, Reason.ISSUER_DECLINED, Reason.INSUFFICIENT_FUNDS]
# Refusals that never created a method (LINK-7); unsupported_region only where ELIG-2 refuses something.
REFUSALS = [
    Reason.UNSUPPORTED_NETWORK, Reason.UNSUPPORTED_CARD_TYPE, Reason.UNSUPPORTED_REGION,
    Reason.ISSUED_IN_CHINESE_MAINLAND, Reason.WALLET_NOT_SUPPORTED, Reason.INVALID_CARD_DETAILS,
    Reason.EXPIRES_TOO_SOON, Reason.ALREADY_LINKED, Reason.ALREADY_LINKED_HERE, Reason.GATEWAY_ERROR,
]



def demo_uid(index: int) -> str:
    body = f"{UID_PREFIX}{index:010d}"
    return next(body + digit for digit in "0123456789" if not luhn.is_valid(body + digit))

"""Account numbers of remittance accounts: generated for dedicated accounts, checked for shared ones.

REM-1: the back office generates each dedicated number itself, under the configured receiving bank
(``settings.REMITTANCE_BANK``):
- where the bank's country uses IBAN (schwifty's registry knows it; e.g. DE), an IBAN with valid
  check digits built from the bank code and a random account part (``schwifty.IBAN.generate``,
  which also fills in the national check digits of countries that have them, e.g. FR);
- elsewhere (e.g. SG, US), a numeric account number ending in two ISO 7064 MOD 97-10 check digits,
  so that a mistyped digit on the customer's transfer order is caught by the bank's validation.
The account part is random rather than a running counter: a customer who knows their own number
cannot guess a neighbour's, and a transfer with a typo is unlikely to land on a live number.
Uniqueness is not decided here but by the database (``RemittanceAccount.number`` is unique); the
issuing service retries with a fresh number on a collision.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Mapping

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from schwifty.registry import get_iban_spec
from schwifty.domain import Component
from stdnum.iso7064 import mod_97_10

# Tests swap this for a seeded ``random.Random`` to force a collision; production draws from the
# OS's CSPRNG.
_random: random.Random = secrets.SystemRandom()

# Body length of a non-IBAN number; with the two check digits it is 12 digits, a common length
# for virtual account numbers in SG and US banks' collection products.
NON_IBAN_BODY_DIGITS = 10

# Two letters (a country) and two digits (check digits) first: treat it as an IBAN and validate
# it as one, so a truncated or mistyped IBAN is refused rather than taken for a local number.
_IBAN_START = re.compile(r"^[A-Z]{2}[0-9]{2}")


def normalise(number: str) -> str:
    """The stored form: no whitespace, upper case (``DE45 3704 ...`` -> ``DE453704...``).

    The same rule as the statement parsers' ``normalise_account_number``, so a registered number
    is found again when a statement names it (REM-7).
    """
    return "".join((number or "").split()).upper()


def looks_like_iban(number: str) -> bool:
    """Whether ``number`` claims to be an IBAN (and so must pass the IBAN checks)."""
    return bool(_IBAN_START.match(normalise(number)))


def country_uses_iban(country: str) -> bool:
    """Whether schwifty has an official (not merely proposed) IBAN format for the country."""
    try:
        spec = get_iban_spec(country.upper())
    except SchwiftyException:
        return False
    return not getattr(spec, "aspirational", False)


def is_valid_iban(number: str) -> bool:
    try:
        IBAN(normalise(number))
    except SchwiftyException:
        return False
    return True


def is_valid_non_iban(number: str) -> bool:
    """A generated non-IBAN number: digits only, ISO 7064 MOD 97-10 check digits at the end."""
    number = normalise(number)
    return number.isdigit() and mod_97_10.is_valid(number)


def format_number(number: str) -> str:
    """For people: an IBAN grouped in fours (its ISO 13616 print form); a local number as stored,
    since bank portals often refuse the spaces a customer would copy with it."""
    if looks_like_iban(number) and is_valid_iban(number):
        return IBAN(normalise(number)).formatted
    return normalise(number)


def _account_code_length(country: str) -> int:
    positions = get_iban_spec(country).positions
    span = positions[Component.ACCOUNT_CODE]
    return span.end - span.start


def _random_digits(length: int) -> str:
    return "".join(str(_random.randrange(10)) for _ in range(length))


def new_dedicated_number(bank: Mapping[str, str]) -> str:
    """One candidate number for a dedicated account under ``bank`` (REM-1); not yet unique.

    ``bank`` is ``settings.REMITTANCE_BANK``: ``country`` and ``bank_code`` (and ``branch_code``
    where the country's IBAN has one, e.g. GB sort codes).
    """
    country = bank["country"].upper()
    if country_uses_iban(country):
        account_code = _random_digits(_account_code_length(country))
        iban = IBAN.generate(
            country, bank_code=bank["bank_code"], branch_code=bank.get("branch_code", ""),
            account_code=account_code,
        )
        return iban.compact
    # No leading 0: spreadsheets and some bank portals strip it from a local account number.
    body = str(_random.randrange(1, 10)) + _random_digits(NON_IBAN_BODY_DIGITS - 1)
    return body + mod_97_10.calc_check_digits(body)


def is_valid_dedicated_number(number: str, *, country: str) -> bool:
    """Whether ``number`` has the shape and check digits of a number generated for ``country``."""
    if country_uses_iban(country):
        return is_valid_iban(number) and normalise(number)[:2] == country.upper()
    return is_valid_non_iban(number)

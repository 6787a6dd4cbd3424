"""The one home of money validation: currencies, their minor units, and the bounds of amounts (I6).

Every amount that enters the back office (console API, admin forms, commands, services) is
checked here, so that one rule holds everywhere:

- A currency is an ISO 4217 code of real (fiat) money whose minor unit the amount columns can
  hold: 2 decimals (USD, EUR...) or 0 (JPY, KRW...). Fund codes (BOV, CHE, USN...), precious
  metals (XAU...), SDR and testing codes (XDR, XTS, XXX) and three- or four-decimal currencies
  (KWD, BHD, CLF...) are refused: every money column is ``decimal_places=2``.
- An amount is a ``Decimal`` (never a float) with no more decimals than its currency has
  (``JPY 0.01`` is refused: there is no such coin).
- One amount is at most ``MAX_AMOUNT`` (under ten billion). Amounts that the back office adds up
  into a column (the unbilled usage of an account, which becomes a bill) are kept under
  ``COLUMN_MAX``, the largest value of a ``max_digits=14, decimal_places=2`` column, by
  ``accumulation_check``: a poison amount is refused at the edge instead of overflowing a batch
  job later (``numeric field overflow``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms

from billing_backoffice.errors import AmountTooLarge, InvalidAmount, InvalidCurrency  # noqa: F401 (raised here)

CENT = Decimal("0.01")
# One amount (a usage report, an order, a claim): ten integer digits at most.
MAX_AMOUNT = Decimal("9999999999.99")
MAX_AMOUNT_INTEGER_DIGITS = 10
# The largest value of the bill, usage, charge and credit-limit columns (max_digits=14, 2 places).
COLUMN_MAX = Decimal("999999999999.99")
COLUMN_MAX_INTEGER_DIGITS = 12

# ISO 4217 minor units of the currencies whose minor unit is not 2 (the list's exceptions).
_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"
# ISO 4217 active fiat currencies with two decimals (funds, metals and units left out).
_TWO_DECIMALS = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF "
    "CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD "
    "HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA "
    "MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN "
    "QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP "
    "TRY TTD TWD TZS UAH USD UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)
# Every ISO 4217 code with a minor unit other than 2, funds included: what the statement parsers
# refuse to import into two-decimal columns.
NON_TWO_DECIMAL_CURRENCIES = frozenset((_ZERO_DECIMALS + " " + _THREE_DECIMALS + " UYI CLF UYW").split())

# The currencies the back office accepts anywhere, with their minor units.
CURRENCIES: dict[str, int] = {
    **{code: 2 for code in _TWO_DECIMALS.split()},
    **{code: 0 for code in _ZERO_DECIMALS.split()},
}
CURRENCY_CODES: tuple[str, ...] = tuple(sorted(CURRENCIES))


def currency_validate(value) -> str:
    """I6: an accepted ISO 4217 code, upper-cased (``usd`` -> ``USD``)."""
    code = value.strip().upper() if isinstance(value, str) else ""
    if code not in CURRENCIES:
        shown = value if isinstance(value, str) and len(value) <= 8 and value.isalnum() else "This value"
        raise InvalidCurrency(f"{shown!s} is not an ISO 4217 currency code accepted here (USD, EUR, JPY...).")
    return code


def minor_units(currency: str) -> int:
    return CURRENCIES[currency_validate(currency)]


def decimal_parse(value) -> Decimal:
    """I6: a finite Decimal from a Decimal, int or string; floats are refused, never rounded."""
    if isinstance(value, (float, bool)):
        raise InvalidAmount("Amounts must be decimals, never floating point numbers.")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidAmount("This is not an amount (digits with a '.' decimal point).") from None
    if not amount.is_finite():
        raise InvalidAmount("This is not an amount (digits with a '.' decimal point).")
    return amount


def amount_validate(
    amount, currency: str | None = None, *, allow_zero: bool = False, maximum: Decimal = MAX_AMOUNT
) -> Decimal:
    """I6: a Decimal > 0 (>= 0 with ``allow_zero``), at most ``maximum``, with no more decimals than
    ``currency`` has (two when no currency is given). Returned with two places, as stored."""
    value = decimal_parse(amount)
    places = 2 if currency is None else minor_units(currency)
    step = Decimal(1).scaleb(-places)
    if value != value.quantize(step):
        if places == 0:
            raise InvalidAmount(f"{currency_validate(currency)} has no minor unit: send a whole amount.")
        raise InvalidAmount("An amount has at most two decimal places.")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidAmount("The amount must be more than zero." if not allow_zero else "The amount cannot be negative.")
    if value > maximum:
        raise AmountTooLarge(f"The amount cannot exceed {maximum}.")
    return value.quantize(CENT)


def money_validate(amount, currency, **bounds) -> tuple[Decimal, str]:
    """I6: the amount and its currency checked together (see ``amount_validate``)."""
    code = currency_validate(currency)
    return amount_validate(amount, code, **bounds), code


def accumulation_check(*, current: Decimal, adding: Decimal, what: str, limit: Decimal = COLUMN_MAX) -> None:
    """I6: refuse an amount whose sum with what is already accumulated would overflow the column
    that sum is written to (a bill made of an account's unbilled usage, for instance)."""
    if current + adding > limit:
        raise AmountTooLarge(
            f"{what} would exceed {limit}, the most one bill can hold; wait for the current charges to be billed."
        )


# --- admin forms -----------------------------------------------------------------------------------


class CurrencyFormField(forms.CharField):
    """An accepted ISO 4217 code in an admin form (upper-cased)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("help_text", "ISO 4217, e.g. USD.")
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in self.empty_values:
            return value
        try:
            return currency_validate(value)
        except InvalidCurrency as error:
            raise forms.ValidationError(error.detail, code=error.code) from None


class AmountFormField(forms.DecimalField):
    """An amount in an admin form, bounded like the API's (``MAX_AMOUNT`` unless told)."""

    def __init__(self, *, allow_zero: bool = False, maximum: Decimal = MAX_AMOUNT, **kwargs):
        self.allow_zero, self.maximum = allow_zero, maximum
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value is None:
            return value
        try:
            return amount_validate(value, allow_zero=self.allow_zero, maximum=self.maximum)
        except InvalidAmount as error:
            raise forms.ValidationError(error.detail, code=error.code) from None


# --- display ---------------------------------------------------------------------------------------


def money_text(amount, currency: str | None, *, signed: bool = False) -> str:
    """``50000`` + ``USD`` -> ``"50,000.00 USD"``: thousands separators, the currency's own minor
    unit (``"5,000 JPY"``), the code after the amount. The one formatter of amounts on screens.

    ``signed`` puts ``+`` before a credit (ledger movements); a debit always shows its ``-``.
    An empty amount is shown as an em dash; an unknown code keeps two decimals.
    """
    if amount is None or amount == "":
        return "—"
    value = decimal_parse(amount)
    code = (currency or "").strip().upper()
    places = CURRENCIES.get(code, 2)
    sign = "+" if signed and value > 0 else ""
    text = f"{sign}{value:,.{places}f}"
    return f"{text} {code}" if code else text

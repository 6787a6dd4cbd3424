"""What every statement parser returns, and the errors a file can fail with.

The parsers turn bytes into these plain dataclasses and nothing else: no database, no rules about
receiving accounts. ``remittances.services.statements`` decides what becomes of each entry.

Money is ``Decimal`` exactly as written in the file; an amount with more than two decimals, a
zero or negative amount, or a currency whose minor unit is not two digits is refused at the edge
(I6) with an error that names the offending value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from billing_backoffice import money
from remittances.errors import (  # noqa: F401 (raised here, importable from here)
    BadAmount,
    HostileXml,
    MalformedStatement,
    StatementError,
    StatementTooLarge,
    UnsupportedStatement,
)

CAMT053 = "camt053"
CAMT054 = "camt054"
MT940 = "mt940"
FORMATS = (CAMT053, CAMT054, MT940)
# The direction a reversal line takes back (``ParsedEntry.reversal_of``, ``BankTransaction.reversal_of``).
CREDIT, DEBIT = "credit", "debit"


# ISO 4217 currencies whose minor unit is not two digits (one list for the project, I6). Amounts in
# them would need other rounding everywhere (ledger, bills), so for now they are refused with a
# clear error.
NON_TWO_DECIMAL_CURRENCIES = money.NON_TWO_DECIMAL_CURRENCIES

_AMOUNT = re.compile(r"^\d{1,14}(\.\d{0,})?$")
_CENT = Decimal("0.01")
_TOO_LARGE = Decimal("1e14")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def parse_currency(raw: str | None, *, where: str) -> str:
    code = (raw or "").strip().upper()
    # Only the shape, not billing_backoffice.money's list of accepted codes: a real bank file may
    # carry a withdrawn code (DEM in the mt-940 corpus) and must still be read; such a line credits
    # nothing, since no receiving account holds that currency (currency mismatch -> review).
    if not _CURRENCY.match(code):
        raise BadAmount(f"{where}: {raw!r} is not an ISO 4217 currency code.")
    if code in NON_TWO_DECIMAL_CURRENCIES:
        raise BadAmount(
            f"{where}: currency {code} does not use two decimal places; only two-decimal "
            "currencies can be imported for now."
        )
    return code


def parse_amount(raw: str | Decimal | None, *, where: str, allow_zero: bool = False) -> Decimal:
    """A non-negative amount with at most two decimals, exactly as written (I6).

    ``raw`` is the text of the file (``"1234.50"``) or a Decimal a library already built from it;
    signs are carried by the credit/debit indicator, never by the amount.
    """
    if isinstance(raw, Decimal):
        value = raw
        if not value.is_finite():
            raise BadAmount(f"{where}: {raw!r} is not an amount.")
        decimals = -value.as_tuple().exponent
    else:
        text = (raw or "").strip()
        if not _AMOUNT.match(text):
            raise BadAmount(f"{where}: {raw!r} is not an amount (digits with a '.' decimal point).")
        try:
            value = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern already guarantees a number
            raise BadAmount(f"{where}: {raw!r} is not an amount.") from None
        point = text.find(".")
        decimals = 0 if point < 0 else len(text) - point - 1  # what Decimal(text)'s exponent says
    if decimals > 2:
        if value != value.quantize(_CENT):
            raise BadAmount(f"{where}: {raw} has more than two decimal places.")
        # "10.500" is exactly 10.50; trailing zeros are not extra precision.
        value = value.quantize(_CENT)
    if value < 0:
        raise BadAmount(f"{where}: {raw} is negative; the credit/debit indicator carries the sign.")
    if value == 0 and not allow_zero:
        raise BadAmount(f"{where}: an entry of 0 moves no money.")
    if value >= _TOO_LARGE:
        raise BadAmount(f"{where}: {raw} is too large.")
    return value


def normalise_account_number(raw: str | None) -> str:
    """IBAN or account number as stored on ``RemittanceAccount.number``: no spaces, upper case."""
    return "".join((raw or "").split()).upper()


@dataclass(slots=True)
class ParsedDetail:
    """One transaction inside an entry (camt ``TxDtls``; MT940 has one per ``:61:``)."""

    amount: Decimal | None
    currency: str | None
    payer_name: str = ""  # the counterparty: debtor of a credit, creditor of a debit
    payer_account: str = ""
    remittance_info: str = ""
    end_to_end_id: str = ""
    reference: str = ""  # the detail's account servicer reference (TxDtls/Refs/AcctSvcrRef)


@dataclass(slots=True)
class ParsedEntry:
    """One booked, pending or reversed movement of the statement (camt ``Ntry``, MT940 ``:61:``)."""

    position: int  # 1-based within the statement
    amount: Decimal
    currency: str
    credit: bool  # CRDT (True) or DBIT (False): the direction of this entry itself
    booked: bool  # Sts BOOK; pending/info/future entries are False
    # RvslInd, or MT940 RC/RD. ``credit`` then says which way the money went: a reversal of a
    # credit (camt DBIT + RvslInd, MT940 RC) takes money out, one of a debit (CRDT + RvslInd, RD)
    # puts it back (``reversal_of``).
    reversal: bool
    booking_date: date | None
    value_date: date | None
    reference: str  # the entry's account servicer reference ("" when the bank gave none)
    details: list[ParsedDetail] = field(default_factory=list)

    @property
    def signed_amount(self) -> Decimal:
        return self.amount if self.credit else -self.amount

    @property
    def reversal_of(self) -> str:
        """RVS: what a reversal takes back: ``credit`` (money out) or ``debit``; "" for no reversal."""
        if not self.reversal:
            return ""
        return DEBIT if self.credit else CREDIT


@dataclass(slots=True)
class ParsedStatement:
    """One statement (camt ``Stmt`` / ``Ntfctn``, one MT940 ``:20:`` block)."""

    format: str  # CAMT053, CAMT054 or MT940
    version: str  # "camt.053.001.08", "mt940"
    identity: str  # the bank's statement id ("" when it gave none)
    account_number: str  # normalised IBAN / account number of the receiving account
    account_candidates: tuple[str, ...] = ()  # other spellings of the account (MT940 "BLZ/number")
    # REM-7: the bank that keeps the account, where the statement names it: the servicer's BIC
    # (camt ``Acct/Svcr``) and/or a national bank code (camt clearing member id, MT940 ``:25:``
    # "bank code/number"; some banks put their BIC there).
    bank_bic: str = ""
    bank_code: str = ""
    currency: str | None = None
    opening_balance: Decimal | None = None  # signed
    closing_balance: Decimal | None = None  # signed
    period_start: date | None = None
    period_end: date | None = None
    entries: list[ParsedEntry] = field(default_factory=list)
    # RCN-1: the bank's running number of the statement (camt ``ElctrncSeqNb``, else ``LglSeqNb``;
    # MT940 ``:28C:`` statement number; its page number is not part of it), None when not given.
    sequence_number: int | None = None

    @property
    def has_balances(self) -> bool:
        return self.format != CAMT054

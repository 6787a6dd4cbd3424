"""SWIFT MT940 customer statements, read with the ``mt-940`` library.

The library is lenient: it happily returns nothing for text that is no statement and keeps going
past a truncated block. So around it we check what it must have found: every ``:20:`` block has an
account (``:25:``), an opening (``:60F:``/``:60M:``) and a closing (``:62F:``/``:62M:``) balance,
as many transactions as the block has ``:61:`` lines, and a SWIFT envelope (``{4:``) is closed
(``-}``). MT940 carries booked entries only (intraday movements are MT942), so every entry is
booked; ``RC``/``RD`` marks are reversals.

Bank layouts: a file is read with the standard ``:61:`` layout first, then with each variant
the library ships for real banks (``mt940.tags.StatementASNB``: ASN Bank's counterparty IBAN
in the 34-character customer reference; ``StatementGLS``: GLS/Atruvia's long customer
reference). The first layout that reads every ``:61:`` line of every block is used; a file that
no layout reads is refused with the standard layout's error.

REM-7: ``:25:`` is an IBAN, a plain number, or "bank code/number" (a national bank code or the
bank's BIC), sometimes with the currency after a further ``/`` or glued to the number. The bank
code is kept on the statement (``bank_code``) so the importer can tell our account from the same
number at another bank.
"""

from __future__ import annotations

import re

import mt940 as mt940_lib
from mt940.tags import StatementASNB, StatementGLS

from .common import (
    MT940,
    MalformedStatement,
    ParsedDetail,
    ParsedEntry,
    ParsedStatement,
    UnsupportedStatement,
    normalise_account_number,
    parse_amount,
    parse_currency,
)

_BLOCK_START = re.compile(r"(?m)^(?=:20:)")
_STATEMENT_LINE = re.compile(r"(?m)^:61:")
_INTERIM_REPORT = re.compile(r"(?m)^:(34F|13D):")  # MT942 fields, never in an MT940
_SUBFIELD = re.compile(r"\?(\d{2})")  # German-style structured :86: (?20 purpose, ?32 name ...)
NO_REFERENCE = {"", "NONREF", "NOTPROVIDED"}
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$")
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
# ``tags`` overrides for mt940.parse_statements, in the order they are tried (None: standard).
LAYOUTS = (None, {StatementASNB.id: StatementASNB()}, {StatementGLS.id: StatementGLS()})


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Many banks still send ISO 8859-1 / Windows-1252; every byte decodes there.
        return data.decode("cp1252", errors="replace")


def _details_from_86(raw: str | None) -> tuple[str, str, str]:
    """Remittance information, counterparty name and account from an ``:86:`` field."""
    raw = (raw or "").replace("\r", "")
    if not _SUBFIELD.search(raw):
        return " ".join(raw.split()), "", ""
    flat = raw.replace("\n", "")
    parts = _SUBFIELD.split(flat)
    fields: dict[str, str] = {}
    for code, value in zip(parts[1::2], parts[2::2]):
        fields[code] = fields.get(code, "") + value
    purpose = "".join(fields.get(f"{n}", "") for n in [*range(20, 30), *range(60, 64)])
    name = (fields.get("32", "") + fields.get("33", "")).strip()
    return " ".join(purpose.split()), name, normalise_account_number(fields.get("31", ""))


def _balance(block_data: dict, keys: tuple[str, ...], *, where: str):
    for key in keys:
        balance = block_data.get(key)
        if balance is not None:
            signed = balance.amount.amount
            parse_amount(abs(signed), where=f"{where} {key.replace('_', ' ')}", allow_zero=True)
            currency = parse_currency(balance.amount.currency, where=f"{where} {key.replace('_', ' ')}")
            return signed, currency, balance.date
    return None, None, None


def _entry(transaction, *, position: int, where: str) -> ParsedEntry:
    data = transaction.data
    mark = (data.get("status") or "").upper()
    if mark not in ("C", "D", "RC", "RD"):
        raise MalformedStatement(f"{where}: debit/credit mark {mark!r} is not C, D, RC or RD.")
    amount = parse_amount(abs(data["amount"].amount), where=f"{where} amount")
    currency = parse_currency(data.get("currency"), where=f"{where} currency")
    info, name, account = _details_from_86(data.get("transaction_details"))
    customer_reference = (data.get("customer_reference") or "").strip()
    if not account and _IBAN.match(customer_reference.upper()):
        # ASN Bank's layout: the counterparty's IBAN where others put the customer reference.
        account, customer_reference = customer_reference.upper(), ""
    reference = (data.get("bank_reference") or "").strip()
    return ParsedEntry(
        position=position,
        amount=amount,
        currency=currency,
        credit=mark in ("C", "RD"),  # a reversed debit puts money back
        booked=True,
        reversal=mark.startswith("R"),
        booking_date=data.get("entry_date") or data.get("date"),
        value_date=data.get("date"),
        reference="" if reference.upper() in NO_REFERENCE else reference,
        details=[
            ParsedDetail(
                amount=amount,
                currency=currency,
                payer_name=name,
                payer_account=account,
                remittance_info=info,
                end_to_end_id="" if customer_reference.upper() in NO_REFERENCE else customer_reference,
            )
        ],
    )


def parse_mt940(data: bytes) -> list[ParsedStatement]:
    """Every ``:20:`` block of the file as a statement; refuses what the library would skip."""
    content = _decode(data).replace("\r\n", "\n")
    if "{4:" in content and "-}" not in content[content.index("{4:"):]:
        raise MalformedStatement("MT940: the message block {4: is never closed with -} (truncated file?).")
    raw_blocks = [b for b in _BLOCK_START.split(content) if b.strip().startswith(":20:")]
    if not raw_blocks:
        raise UnsupportedStatement("Not an MT940 statement: no :20: transaction reference found.")
    blocks = _read_blocks(content, raw_blocks)
    statements = []
    for index, (block, raw) in enumerate(zip(blocks, raw_blocks), start=1):
        statements.append(_statement(block, raw, where=f"MT940 statement {index}"))
    return statements


def _read_blocks(content: str, raw_blocks: list[str]) -> list:
    """The library's blocks in the first layout (``LAYOUTS``) that reads every ``:61:`` line."""
    first_error = None
    for tags in LAYOUTS:
        try:
            blocks = mt940_lib.parse_statements(content, tags=tags, options=mt940_lib.Options.all())
        except (RuntimeError, ValueError, KeyError, TypeError, ArithmeticError) as error:
            detail = str(error.args[0]) if error.args else str(error)
            first_error = first_error or MalformedStatement(f"MT940: a field could not be read: {detail[:200]}")
            continue
        if len(blocks) != len(raw_blocks):
            first_error = first_error or MalformedStatement("MT940: some statement blocks could not be read.")
            continue
        for index, (block, raw) in enumerate(zip(blocks, raw_blocks), start=1):
            expected = len(_STATEMENT_LINE.findall(raw))
            if len(block.transactions) != expected:
                first_error = first_error or MalformedStatement(
                    f"MT940 statement {index}: {expected} :61: lines but {len(block.transactions)} could be read."
                )
                break
        else:
            return blocks
    raise first_error


def account_identification(raw: str) -> tuple[str, str, tuple[str, ...]]:
    """REM-7: ``:25:`` as (bank code, account number, every spelling of the number).

    ``DE89370400440532013000`` -> ("", the IBAN); ``37040044/0532013000`` -> ("37040044",
    "0532013000"); ``BPHKPLPK/320000546101`` -> the BIC as bank code; a currency after a last
    ``/`` or glued to the number (``NL69INGB0123456789EUR``) is dropped; ``1291.99.348`` is also
    tried without its separators.
    """
    whole = normalise_account_number(raw)
    parts = whole.split("/")
    if len(parts) > 2 and _CURRENCY_CODE.match(parts[-1]):
        parts = parts[:-1]
    bank_code, number = ("", parts[0]) if len(parts) == 1 else (parts[0], "".join(parts[1:]))
    spellings = [number, whole]
    if _CURRENCY_CODE.match(number[-3:]) and any(c.isdigit() for c in number[:-3]):
        spellings.append(number[:-3])  # the currency glued to the number
    spellings += [re.sub(r"[^A-Z0-9]", "", spelling) for spelling in list(spellings)]
    return bank_code, number, tuple(dict.fromkeys(s for s in spellings if s))


def _number(raw) -> int | None:
    """RCN-1: the :28C: statement number (its /page part left out), None when absent."""
    text = str(raw or "").strip()
    return int(text) if text.isdigit() else None


def _statement(block, raw: str, *, where: str) -> ParsedStatement:
    data = block.data
    account = (data.get("account_identification") or "").strip()
    if not account:
        raise MalformedStatement(f"{where}: the account identification (:25:) is missing.")
    opening, currency, opening_date = _balance(
        data, ("final_opening_balance", "intermediate_opening_balance", "opening_balance"), where=where
    )
    closing, closing_currency, closing_date = _balance(
        data, ("final_closing_balance", "intermediate_closing_balance", "closing_balance"), where=where
    )
    if (opening is None or closing is None) and _INTERIM_REPORT.search(raw):
        raise UnsupportedStatement(
            f"{where}: an MT942 interim transaction report (floor limit :34F:, time :13D:), not an MT940 "
            "statement; only end-of-day statements with balances are imported."
        )
    if opening is None or closing is None:
        raise MalformedStatement(
            f"{where}: an opening (:60F:/:60M:) and a closing (:62F:/:62M:) balance are required "
            "(truncated file?)."
        )
    reference = (data.get("transaction_reference") or "").strip()
    number = "/".join(p for p in (data.get("statement_number"), data.get("sequence_number")) if p)
    # :20: is reused daily by some banks; the statement number and closing date tell days apart.
    identity = ":".join(p for p in (reference, number, closing_date.isoformat() if closing_date else "") if p)
    bank_code, number, spellings = account_identification(account)
    entries = [
        _entry(t, position=i, where=f"{where} entry {i}") for i, t in enumerate(block.transactions, start=1)
    ]
    return ParsedStatement(
        format=MT940,
        version="mt940",
        identity=identity[:140],
        account_number=number,
        account_candidates=spellings,
        bank_code=bank_code,
        currency=currency or closing_currency,
        opening_balance=opening,
        closing_balance=closing,
        period_start=opening_date,
        period_end=closing_date,
        entries=entries,
        sequence_number=_number(data.get("statement_number")),
    )

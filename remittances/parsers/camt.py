"""ISO 20022 camt.053 (statement) and camt.054 (debit/credit notification), versions .001.02-.13.

- XML only through defusedxml, with DTDs forbidden outright: a billion-laughs bomb or an external
  entity (``file:///etc/passwd``) is refused at its ``<!DOCTYPE`` before anything is expanded.
- Streaming: ``iterparse`` hands us each ``Ntry`` when it is complete; we read it into a small
  dataclass and drop the element, so memory grows with the parsed dataclasses, not the XML tree.
- Namespace-agnostic: elements are matched by local name, so one reader serves every version.
  The version itself comes from the document's namespace and must be one we know; anything else
  (camt.052, pain.001, an unknown version, a document with no ISO 20022 namespace) is an explicit
  error, never an empty success.
- Version differences handled whichever version uses them: entry status as text
  (``<Sts>BOOK</Sts>``, older versions) or as a code (``<Sts><Cd>BOOK</Cd></Sts>``, newer ones);
  party name under ``Dbtr/Nm`` (older) or ``Dbtr/Pty/Nm`` (.08 on); detail amount as
  ``TxDtls/Amt`` or, in .02, ``AmtDtls/TxAmt/Amt``. Only ``BOOK`` is booked; ``PDNG``, ``INFO``
  and ``FUTR`` entries are pending.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from .common import (
    CAMT053,
    CAMT054,
    HostileXml,
    MalformedStatement,
    ParsedDetail,
    ParsedEntry,
    ParsedStatement,
    UnsupportedStatement,
    normalise_account_number,
    parse_amount,
    parse_currency,
)

SUPPORTED_VERSIONS = range(2, 14)  # .001.02 through .001.13
_NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.(\d{3})\.001\.(\d{2})$")
# message element and statement element per message type
_MESSAGES = {CAMT053: ("BkToCstmrStmt", "Stmt"), CAMT054: ("BkToCstmrDbtCdtNtfctn", "Ntfctn")}
OPENING_CODES = ("OPBD", "PRCD")  # opening booked; previously closed booked
CLOSING_CODES = ("CLBD",)  # closing booked


def local(tag: str) -> str:
    """``{urn:...}Ntry`` -> ``Ntry``."""
    return tag.rpartition("}")[2]


def strip_namespaces(element: Element) -> Element:
    """Rename every element of a finished subtree to its local name, in one pass.

    Matching by local name is what makes the reader version- and prefix-agnostic; doing it once
    per subtree lets the lookups below use ElementTree's C ``find`` instead of Python scans.
    """
    for node in element.iter():
        tag = node.tag
        if isinstance(tag, str) and tag[:1] == "{":
            node.tag = tag.rpartition("}")[2]
    return element


# The lookups below expect a subtree passed through strip_namespaces().


def child(element: Element | None, *path: str) -> Element | None:
    """The first descendant along ``path`` of local names, or None."""
    if element is None:
        return None
    return element.find("/".join(path))


def children(element: Element | None, name: str) -> list[Element]:
    return [] if element is None else element.findall(name)


def text(element: Element | None, *path: str) -> str:
    if element is None:
        return ""
    return (element.findtext("/".join(path)) or "").strip()


def _date(element: Element | None, *, where: str) -> date | None:
    """``<X><Dt>2026-11-25</Dt></X>`` or ``<X><DtTm>2026-11-25T10:00:00</DtTm></X>``."""
    raw = text(element, "Dt") or text(element, "DtTm")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise MalformedStatement(f"{where}: {raw!r} is not a date.") from None


def _datetime_date(raw: str, *, where: str) -> date | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).date()
    except ValueError:
        raise MalformedStatement(f"{where}: {raw!r} is not a date and time.") from None


def _account_id(account: Element | None) -> str:
    return normalise_account_number(text(account, "Id", "IBAN") or text(account, "Id", "Othr", "Id"))


def _amount_element(element: Element | None, *, where: str, allow_zero: bool = False):
    if element is None:
        raise MalformedStatement(f"{where}: the amount is missing.")
    amount = parse_amount(element.text, where=where, allow_zero=allow_zero)
    return amount, parse_currency(element.get("Ccy"), where=where)


def _indicator(element: Element | None, *, where: str) -> bool:
    """CdtDbtInd: True for CRDT, False for DBIT."""
    value = text(element, "CdtDbtInd")
    if value not in ("CRDT", "DBIT"):
        raise MalformedStatement(f"{where}: credit/debit indicator {value!r} is neither CRDT nor DBIT.")
    return value == "CRDT"


def _status(entry: Element, *, where: str) -> str:
    status = child(entry, "Sts")
    if status is None:
        raise MalformedStatement(f"{where}: the entry has no status (Sts).")
    code = text(status, "Cd") or text(status, "Prtry") or (status.text or "").strip()
    if not code:
        raise MalformedStatement(f"{where}: the entry status is empty.")
    return code.upper()


def _party(related: Element | None, role: str) -> tuple[str, str]:
    """Name and account of the debtor or creditor, in either the old or the .08+ layout."""
    party = child(related, role)
    name = text(party, "Pty", "Nm") or text(party, "Nm")
    return name, _account_id(child(related, f"{role}Acct"))


def _detail(tx: Element, *, credit: bool, where: str) -> ParsedDetail:
    amount_el = child(tx, "Amt")
    if amount_el is None:
        amount_el = child(tx, "AmtDtls", "TxAmt", "Amt")
    amount = currency = None
    if amount_el is not None:
        amount, currency = _amount_element(amount_el, where=f"{where} amount")
    # The counterparty: who paid us for a credit, whom we paid for a debit.
    related = child(tx, "RltdPties")
    name, account = _party(related, "Dbtr" if credit else "Cdtr")
    remittance = child(tx, "RmtInf")
    info = " ".join(t for t in ((u.text or "").strip() for u in children(remittance, "Ustrd")) if t)
    if not info:
        refs = [text(s, "CdtrRefInf", "Ref") for s in children(remittance, "Strd")]
        info = " ".join(r for r in refs if r)
    end_to_end = text(tx, "Refs", "EndToEndId")
    if end_to_end.upper() == "NOTPROVIDED":
        end_to_end = ""
    return ParsedDetail(
        amount=amount,
        currency=currency,
        payer_name=name,
        payer_account=account,
        remittance_info=info,
        end_to_end_id=end_to_end,
        reference=text(tx, "Refs", "AcctSvcrRef"),
    )


def _entry(entry: Element, *, position: int, where: str) -> ParsedEntry:
    amount, currency = _amount_element(child(entry, "Amt"), where=f"{where} amount")
    credit = _indicator(entry, where=where)
    reversal = text(entry, "RvslInd").lower() in ("true", "1")
    details = [
        _detail(tx, credit=credit, where=f"{where} detail {index}")
        for index, tx in enumerate(
            (tx for dtls in children(entry, "NtryDtls") for tx in children(dtls, "TxDtls")), start=1
        )
    ]
    return ParsedEntry(
        position=position,
        amount=amount,
        currency=currency,
        credit=credit,
        booked=_status(entry, where=where) == "BOOK",
        reversal=reversal,
        booking_date=_date(child(entry, "BookgDt"), where=f"{where} booking date"),
        value_date=_date(child(entry, "ValDt"), where=f"{where} value date"),
        reference=text(entry, "AcctSvcrRef"),
        details=details,
    )


def _balance(balance: Element, statement: ParsedStatement, *, where: str) -> None:
    code = text(balance, "Tp", "CdOrPrtry", "Cd") or text(balance, "Tp", "CdOrPrtry", "Prtry")
    if code not in OPENING_CODES + CLOSING_CODES:
        return  # available, interim and forward balances play no part in REM-5
    amount, currency = _amount_element(child(balance, "Amt"), where=f"{where} balance {code}", allow_zero=True)
    signed = amount if _indicator(balance, where=f"{where} balance {code}") else -amount
    if statement.currency is None:
        statement.currency = currency
    if code in OPENING_CODES:
        statement.opening_balance = signed
        statement.period_start = statement.period_start or _date(child(balance, "Dt"), where=where)
    else:
        statement.closing_balance = signed
        statement.period_end = statement.period_end or _date(child(balance, "Dt"), where=where)


def _check_root(root: Element, expect: str | None) -> tuple[str, str]:
    """The message type and version from the root's namespace; refuse anything else."""
    name = local(root.tag)
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if name != "Document":
        raise UnsupportedStatement(f"Not an ISO 20022 camt document (the root element is <{name}>).")
    match = _NAMESPACE.match(namespace)
    if not match:
        raise UnsupportedStatement(
            f"Unsupported document namespace {namespace or '(none)'!r}: expected camt.053 or camt.054 "
            "versions .001.02 to .001.13."
        )
    message, version = match.groups()
    label = f"camt.{message}.001.{version}"
    fmt = {"053": CAMT053, "054": CAMT054}.get(message)
    if fmt is None:
        raise UnsupportedStatement(f"{label} is not imported; only camt.053 and camt.054 are.")
    if int(version) not in SUPPORTED_VERSIONS:
        raise UnsupportedStatement(f"Unsupported version {label}: camt.{message}.001.02 to .001.13 are imported.")
    if expect and expect != fmt:
        raise UnsupportedStatement(f"The file is {label}, not the requested {expect}.")
    return fmt, label


def parse_camt(data: bytes, *, expect: str | None = None) -> list[ParsedStatement]:
    """Every statement (or notification) in the document, entries in file order.

    Raises HostileXml, MalformedStatement (not well-formed, truncated, missing parts),
    UnsupportedStatement (other message or version) or BadAmount; never returns an empty list.
    """
    try:
        return _parse(data, expect)
    except DefusedXmlException as error:
        raise HostileXml(
            f"XML with a DTD, entity declaration or external reference is refused ({type(error).__name__})."
        ) from None
    except ParseError as error:
        raise MalformedStatement(f"The XML is not well-formed or is truncated: {error}.") from None


def _parse(data: bytes, expect: str | None) -> list[ParsedStatement]:
    events = DET.iterparse(
        io.BytesIO(data), events=("start", "end"), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    # Only the first levels matter here (Document > message > statement > its parts); deeper
    # elements are read when their part ends. The loop does as little as possible per event.
    parents: list[Element | None] = [None, None, None]
    depth = 0
    statements: list[ParsedStatement] = []
    current: ParsedStatement | None = None
    fmt = label = ""
    message_name = statement_name = ""
    for event, element in events:
        if event == "start":
            if depth < 3:
                name = local(element.tag)
                if depth == 0:
                    fmt, label = _check_root(element, expect)
                    message_name, statement_name = _MESSAGES[fmt]
                elif depth == 1 and name != message_name:
                    raise UnsupportedStatement(f"{label}: expected <{message_name}>, found <{name}>.")
                elif depth == 2 and name == statement_name:
                    current = ParsedStatement(format=fmt, version=label, identity="", account_number="")
                parents[depth] = element
            depth += 1
            continue
        depth -= 1
        if depth == 3:
            if current is not None:
                _statement_part(current, strip_namespaces(element), where=f"{label} statement {len(statements) + 1}")
            parents[2].remove(element)  # streaming: a finished part is never needed again
        elif depth == 2:
            if current is not None and local(element.tag) == statement_name:
                statements.append(_finish(current))
                current = None
            parents[1].remove(element)
    if not statements:
        raise MalformedStatement(f"{label or 'The document'} contains no statement.")
    return statements


def _statement_part(statement: ParsedStatement, element: Element, *, where: str) -> None:
    name = element.tag
    if name == "Ntry":
        position = len(statement.entries) + 1
        statement.entries.append(_entry(element, position=position, where=f"{where} entry {position}"))
    elif name == "Id":
        statement.identity = (element.text or "").strip()
    elif name == "Acct":
        statement.account_number = _account_id(element)
        if text(element, "Ccy"):
            statement.currency = parse_currency(text(element, "Ccy"), where=f"{where} account currency")
    elif name == "Bal":
        _balance(element, statement, where=where)
    elif name == "FrToDt":
        statement.period_start = _datetime_date(text(element, "FrDtTm"), where=where) or statement.period_start
        statement.period_end = _datetime_date(text(element, "ToDtTm"), where=where) or statement.period_end


def _finish(statement: ParsedStatement) -> ParsedStatement:
    where = f"{statement.version} statement {statement.identity or '(no id)'}"
    if not statement.account_number:
        raise MalformedStatement(f"{where}: the receiving account (Acct/Id) is missing.")
    if statement.format == CAMT053 and (statement.opening_balance is None or statement.closing_balance is None):
        raise MalformedStatement(
            f"{where}: an opening (OPBD/PRCD) and a closing (CLBD) booked balance are required (REM-5)."
        )
    if statement.currency is None and statement.entries:
        statement.currency = statement.entries[0].currency
    return statement

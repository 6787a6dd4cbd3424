"""ISO 20022 camt.053 (statement) and camt.054 (debit/credit notification), versions .001.02-.13.

- XML only through defusedxml, with DTDs forbidden outright: a billion-laughs bomb or an external
  entity (``file:///etc/passwd``) is refused at its ``<!DOCTYPE`` before anything is expanded.
- Streaming (``xmlstream``): the file is fed to the parser in chunks and each part of a statement
  (``Ntry``, ``Bal``...) is read into a small dataclass once it has ended, then dropped from the
  tree, so memory grows with the parsed dataclasses, not the XML tree.
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

import re
from datetime import date, datetime
from xml.etree.ElementTree import Element, ParseError

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
from .xmlstream import read_document

SUPPORTED_VERSIONS = range(2, 14)  # .001.02 through .001.13
_NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.(\d{3})\.001\.(\d{2})$")
# message element and statement element per message type
_MESSAGES = {CAMT053: ("BkToCstmrStmt", "Stmt"), CAMT054: ("BkToCstmrDbtCdtNtfctn", "Ntfctn")}
OPENING_CODES = ("OPBD", "PRCD")  # opening booked; previously closed booked
CLOSING_CODES = ("CLBD",)  # closing booked


def local(tag: str) -> str:
    """``uri}Ntry`` (as expat names it) or ``{uri}Ntry`` -> ``Ntry``."""
    return tag.rpartition("}")[2]


def strip_namespaces(element: Element, names: dict[str, str]) -> Element:
    """Rename every element of a finished subtree to its local name, in one pass.

    Matching by local name is what makes the reader version- and prefix-agnostic; doing it once
    per subtree lets the lookups below use ElementTree's C ``find`` instead of Python scans.
    ``names`` remembers the local name of each expat name (``uri}Ntry``) met in the document.
    """
    for node in element.iter():
        tag = node.tag
        try:
            node.tag = names[tag]
        except KeyError:
            node.tag = names[tag] = local(tag)
    return element


# The lookups below expect a subtree passed through strip_namespaces(). A path of several names
# means what it means to ElementTree's ``find("A/B")`` (the first B under any A, in document
# order), but walks one name at a time so that each step is ElementTree's C lookup rather than
# its Python path engine.


def child(element: Element | None, *path: str) -> Element | None:
    """The first descendant along ``path`` of local names, or None."""
    if element is None:
        return None
    if len(path) == 1:
        return element.find(path[0])
    first, *rest = path
    for candidate in element.findall(first):
        found = child(candidate, *rest)
        if found is not None:
            return found
    return None


def text(element: Element | None, *path: str) -> str:
    if element is None:
        return ""
    if len(path) == 1:
        value = element.findtext(path[0])
    elif len(path) == 2:  # the common two-step path, without the recursion of child()
        value = None
        first, last = path
        for candidate in element.findall(first):
            found = candidate.find(last)
            if found is not None:
                value = found.text
                break
    else:
        found = child(element, *path)
        value = None if found is None else found.text
    return value.strip() if value else ""


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


_ACCOUNT_OF = {"Dbtr": "DbtrAcct", "Cdtr": "CdtrAcct"}


def _party(related: Element | None, role: str) -> tuple[str, str]:
    """Name and account of the debtor or creditor, in either the old or the .08+ layout."""
    if related is None:
        return "", ""
    party = related.find(role)
    name = text(party, "Pty", "Nm") or text(party, "Nm")
    return name, _account_id(related.find(_ACCOUNT_OF[role]))


# _entry and _detail run once per line of a file of up to 100k lines: they call ElementTree's C
# lookups directly where a path has one step, and keep the order of the checks (the first fault
# of an entry is the one reported).


def _detail(tx: Element, *, credit: bool, where: str) -> ParsedDetail:
    amount_el = tx.find("Amt")
    if amount_el is None:
        amount_el = child(tx, "AmtDtls", "TxAmt", "Amt")
    amount = currency = None
    if amount_el is not None:
        amount, currency = _amount_element(amount_el, where=f"{where} amount")
    # The counterparty: who paid us for a credit, whom we paid for a debit.
    related = tx.find("RltdPties")
    name, account = _party(related, "Dbtr" if credit else "Cdtr")
    remittance = tx.find("RmtInf")
    info = ""
    if remittance is not None:
        lines = remittance.findall("Ustrd")
        if len(lines) == 1:
            info = (lines[0].text or "").strip()
        else:
            info = " ".join(t for t in ((u.text or "").strip() for u in lines) if t)
        if not info:
            refs = [text(s, "CdtrRefInf", "Ref") for s in remittance.findall("Strd")]
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
    amount, currency = _amount_element(entry.find("Amt"), where=f"{where} amount")
    credit = _indicator(entry, where=where)
    reversal = (entry.findtext("RvslInd") or "").strip().lower() in ("true", "1")
    details = []
    for dtls in entry.findall("NtryDtls"):
        for tx in dtls.findall("TxDtls"):
            details.append(_detail(tx, credit=credit, where=f"{where} detail {len(details) + 1}"))
    return ParsedEntry(
        position=position,
        amount=amount,
        currency=currency,
        credit=credit,
        booked=_status(entry, where=where) == "BOOK",
        reversal=reversal,
        booking_date=_date(entry.find("BookgDt"), where=f"{where} booking date"),
        value_date=_date(entry.find("ValDt"), where=f"{where} value date"),
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


def _check_root(tag: str, expect: str | None) -> tuple[str, str]:
    """The message type and version from the root's namespace; refuse anything else."""
    name = local(tag)
    namespace = tag.lstrip("{").split("}", 1)[0] if "}" in tag else ""
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
    reader = _CamtReader(expect)
    read_document(data, reader)
    if not reader.statements:
        raise MalformedStatement(f"{reader.label or 'The document'} contains no statement.")
    return reader.statements


class _CamtReader:
    """What ``read_document`` hands over, read into statements: the root names the message type
    and version, its children must be that message, and each statement's parts are read as they
    end (the group header's are dropped)."""

    def __init__(self, expect: str | None):
        self.expect = expect
        self.fmt = self.label = self.message_name = self.statement_name = ""
        self.statements: list[ParsedStatement] = []
        self.open: dict[Element, ParsedStatement] = {}  # statement element -> what was read of it
        self.local_names: dict[str, str] = {}  # for strip_namespaces

    def root_started(self, tag: str) -> None:
        self.fmt, self.label = _check_root(tag, self.expect)
        self.message_name, self.statement_name = _MESSAGES[self.fmt]

    def root_child(self, element: Element) -> None:
        name = local(element.tag)
        if name != self.message_name:
            raise UnsupportedStatement(f"{self.label}: expected <{self.message_name}>, found <{name}>.")

    def part_ended(self, container: Element, part: Element) -> None:
        statement = self._statement(container)
        if statement is not None:
            where = f"{self.label} statement {len(self.statements) + 1}"
            _statement_part(statement, strip_namespaces(part, self.local_names), where=where)

    def container_ended(self, container: Element) -> None:
        statement = self._statement(container)
        if statement is not None:
            del self.open[container]
            self.statements.append(_finish(statement))

    def _statement(self, container: Element) -> ParsedStatement | None:
        """The statement a container is, or None for the group header and the like."""
        statement = self.open.get(container)
        if statement is None and local(container.tag) == self.statement_name:
            statement = self.open[container] = ParsedStatement(
                format=self.fmt, version=self.label, identity="", account_number=""
            )
        return statement


def _statement_part(statement: ParsedStatement, element: Element, *, where: str) -> None:
    name = element.tag
    if name == "Ntry":
        position = len(statement.entries) + 1
        statement.entries.append(_entry(element, position=position, where=f"{where} entry {position}"))
    elif name == "Id":
        statement.identity = (element.text or "").strip()
    elif name == "Acct":
        statement.account_number = _account_id(element)
        bank = child(element, "Svcr", "FinInstnId")
        statement.bank_bic = (text(bank, "BICFI") or text(bank, "BIC")).upper()
        statement.bank_code = normalise_account_number(text(bank, "ClrSysMmbId", "MmbId"))
        if text(element, "Ccy"):
            statement.currency = parse_currency(text(element, "Ccy"), where=f"{where} account currency")
    elif name == "Bal":
        _balance(element, statement, where=where)
    elif name in ("ElctrncSeqNb", "LglSeqNb"):
        # RCN-1: the statement's running number; the electronic one wins where both are given.
        number = (element.text or "").strip()
        if number.isdigit() and len(number) <= 18 and (name == "ElctrncSeqNb" or statement.sequence_number is None):
            statement.sequence_number = int(number)
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

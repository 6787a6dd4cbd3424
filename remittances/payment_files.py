"""The pain.001.001.03 writer: ISO 20022 customer credit-transfer initiation for outgoing refunds.

Written with ``xml.etree.ElementTree`` (we only write here; parsing of bank files goes through
defusedxml). One file = one debtor account (ours) and one currency = one ``PmtInf`` block;
each refund is one ``CdtTrfTxInf`` whose ``EndToEndId`` is ``RFD-<refund id>``, so the bank's
report of a rejected payment names the refund. Elements are emitted in the XSD's sequence
order; the tests validate the output against the schema shipped by the ``sepaxml`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from xml.etree import ElementTree as ET

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"
INITIATING_PARTY = "Cloud billing back office"


@dataclass(frozen=True)
class Debtor:
    name: str
    account_number: str
    bic: str


@dataclass(frozen=True)
class Payment:
    end_to_end_id: str
    amount: Decimal
    creditor_name: str
    creditor_iban: str
    creditor_bic: str
    remittance_info: str


def end_to_end_id(refund_id: int) -> str:
    return f"RFD-{refund_id}"


def _text(value: str, limit: int) -> str:
    """Max<n>Text: trimmed, never empty, one line."""
    cleaned = " ".join((value or "").split())
    return (cleaned or "-")[:limit]


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NAMESPACE}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def _account(parent: ET.Element, tag: str, number: str) -> None:
    """An IBAN where the number is one, else the bank's own account number (``Othr/Id``)."""
    ident = _sub(_sub(parent, tag), "Id")
    try:
        _sub(ident, "IBAN", IBAN(number).compact)
    except SchwiftyException:
        _sub(_sub(ident, "Othr"), "Id", _text(number, 34))


def _agent(parent: ET.Element, tag: str, bic: str) -> None:
    _sub(_sub(_sub(parent, tag), "FinInstnId"), "BIC", bic)


def pain001_write(
    *, message_id: str, created_at: datetime, execution_date: date, currency: str, debtor: Debtor,
    payments: Sequence[Payment],
) -> bytes:
    """One pain.001.001.03 document (UTF-8 bytes) paying ``payments`` from ``debtor``."""
    if not payments:
        raise ValueError("A payment file needs at least one payment.")
    total = sum((p.amount for p in payments), Decimal("0.00"))
    count = str(len(payments))
    ET.register_namespace("", NAMESPACE)
    document = ET.Element(f"{{{NAMESPACE}}}Document")
    initiation = _sub(document, "CstmrCdtTrfInitn")
    header = _sub(initiation, "GrpHdr")
    _sub(header, "MsgId", _text(message_id, 35))
    _sub(header, "CreDtTm", created_at.replace(microsecond=0, tzinfo=None).isoformat())
    _sub(header, "NbOfTxs", count)
    _sub(header, "CtrlSum", f"{total:.2f}")
    _sub(_sub(header, "InitgPty"), "Nm", INITIATING_PARTY)
    block = _sub(initiation, "PmtInf")
    _sub(block, "PmtInfId", _text(message_id, 35))
    _sub(block, "PmtMtd", "TRF")
    _sub(block, "NbOfTxs", count)
    _sub(block, "CtrlSum", f"{total:.2f}")
    if currency == "EUR":  # a SEPA credit transfer; other currencies go as plain transfers
        _sub(_sub(_sub(block, "PmtTpInf"), "SvcLvl"), "Cd", "SEPA")
    _sub(block, "ReqdExctnDt", execution_date.isoformat())
    _sub(_sub(block, "Dbtr"), "Nm", _text(debtor.name, 140))
    _account(block, "DbtrAcct", debtor.account_number)
    _agent(block, "DbtrAgt", debtor.bic)
    _sub(block, "ChrgBr", "SLEV" if currency == "EUR" else "SHAR")
    for payment in payments:
        item = _sub(block, "CdtTrfTxInf")
        _sub(_sub(item, "PmtId"), "EndToEndId", _text(payment.end_to_end_id, 35))
        _sub(_sub(item, "Amt"), "InstdAmt", f"{payment.amount:.2f}", Ccy=currency)
        _agent(item, "CdtrAgt", payment.creditor_bic)
        _sub(_sub(item, "Cdtr"), "Nm", _text(payment.creditor_name, 140))
        _account(item, "CdtrAcct", payment.creditor_iban)
        _sub(_sub(item, "RmtInf"), "Ustrd", _text(payment.remittance_info, 140))
    return ET.tostring(document, encoding="utf-8", xml_declaration=True)

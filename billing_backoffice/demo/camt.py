"""ISO 20022 camt.053.001.08 bank statements for the demo, as the receiving bank would send them.

One file holds one statement per receiving account (``<Stmt>``), each with its opening and closing
booked balances (REM-5: opening + booked entries = closing) and its entries: booked credits, and
on the shared account also a bank fee (debit), a credit still pending and a batch credit whose
details are separate transfers (REM-6). The file goes through the real import
(``remittances.services.statements.statement_import``), exactly like an uploaded one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from xml.sax.saxutils import escape

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


@dataclass
class Detail:
    """One transfer inside an entry (a batch entry has several, REM-6)."""

    amount: Decimal
    payer_name: str
    payer_iban: str = ""
    info: str = ""
    end_to_end_id: str = ""
    reference: str = ""  # the bank's reference of this detail (batches only)


@dataclass
class Entry:
    amount: Decimal
    currency: str
    reference: str  # the bank's reference (AcctSvcrRef): REM-4 knows the line by it
    details: list[Detail]
    credit: bool = True
    booked: bool = True
    reversal: bool = False  # the bank takes back an earlier entry (RvslInd, RVS-1)


@dataclass
class Statement:
    identity: str
    iban: str
    currency: str
    opening: Decimal
    day: datetime
    entries: list[Entry] = field(default_factory=list)

    @property
    def closing(self) -> Decimal:
        booked = sum((e.amount if e.credit else -e.amount for e in self.entries if e.booked), Decimal("0.00"))
        return self.opening + booked


def _balance(code: str, amount: Decimal, currency: str, day: str) -> str:
    indicator = "CRDT" if amount >= 0 else "DBIT"
    return (
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="{currency}">{abs(amount):.2f}</Amt>'
        f"<CdtDbtInd>{indicator}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>"
    )


def _detail(detail: Detail, entry: Entry) -> str:
    role = "Dbtr" if entry.credit else "Cdtr"
    refs = f"<AcctSvcrRef>{escape(detail.reference)}</AcctSvcrRef>" if detail.reference else ""
    refs += f"<EndToEndId>{escape(detail.end_to_end_id or 'NOTPROVIDED')}</EndToEndId>"
    account = f"<{role}Acct><Id><IBAN>{detail.payer_iban}</IBAN></Id></{role}Acct>" if detail.payer_iban else ""
    info = f"<RmtInf><Ustrd>{escape(detail.info)}</Ustrd></RmtInf>" if detail.info else ""
    indicator = "CRDT" if entry.credit else "DBIT"
    return (
        f"<TxDtls><Refs>{refs}</Refs>"
        f'<Amt Ccy="{entry.currency}">{detail.amount:.2f}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>'
        f"<RltdPties><{role}><Pty><Nm>{escape(detail.payer_name)}</Nm></Pty></{role}>{account}</RltdPties>"
        f"{info}</TxDtls>"
    )


def _entry(entry: Entry, day: str) -> str:
    status = "BOOK" if entry.booked else "PDNG"
    details = "".join(_detail(d, entry) for d in entry.details)
    return (
        f'<Ntry><Amt Ccy="{entry.currency}">{entry.amount:.2f}</Amt>'
        f"<CdtDbtInd>{'CRDT' if entry.credit else 'DBIT'}</CdtDbtInd>"
        f"{'<RvslInd>true</RvslInd>' if entry.reversal else ''}<Sts><Cd>{status}</Cd></Sts>"
        f"<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>"
        f"<AcctSvcrRef>{escape(entry.reference)}</AcctSvcrRef>"
        f"<BkTxCd><Prtry><Cd>NTRF</Cd></Prtry></BkTxCd><NtryDtls>{details}</NtryDtls></Ntry>"
    )


def camt053(statements: list[Statement], *, message_id: str, bic: str) -> bytes:
    """One camt.053 document holding ``statements``."""
    created = statements[0].day.strftime("%Y-%m-%dT%H:%M:%S")
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<Document xmlns="{NAMESPACE}"><BkToCstmrStmt>',
        f"<GrpHdr><MsgId>{escape(message_id)}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>",
    ]
    for s in statements:
        day = s.day.strftime("%Y-%m-%d")
        parts.append(
            f"<Stmt><Id>{escape(s.identity)}</Id><CreDtTm>{created}</CreDtTm>"
            f"<FrToDt><FrDtTm>{day}T00:00:00</FrDtTm><ToDtTm>{day}T23:59:59</ToDtTm></FrToDt>"
            f"<Acct><Id><IBAN>{s.iban}</IBAN></Id><Ccy>{s.currency}</Ccy>"
            f"<Svcr><FinInstnId><BICFI>{bic}</BICFI></FinInstnId></Svcr></Acct>"
            + _balance("OPBD", s.opening, s.currency, day)
            + _balance("CLBD", s.closing, s.currency, day)
            + "".join(_entry(e, day) for e in s.entries)
            + "</Stmt>"
        )
    parts.append("</BkToCstmrStmt></Document>\n")
    return "".join(parts).encode()

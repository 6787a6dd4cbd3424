"""Statement readers on the sample files of ``tests/remittances/samples`` (no database needed).

Each camt sample holds the same day (see ``samples/build.py``): a credit, a batch of three
(REM-6), a debit, a reversal, a pending credit, a credit without reference and two credits that
repeat a reference (REM-4).
"""

from __future__ import annotations

import gc
from decimal import Decimal
from pathlib import Path

import pytest

from remittances.parsers import xmlstream
from remittances.parsers import (
    BadAmount,
    HostileXml,
    MalformedStatement,
    StatementTooLarge,
    UnsupportedStatement,
    detect_format,
    parse_statement_file,
)
from tests.remittances.samples import build

SAMPLES = Path(build.HERE)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_committed_samples_match_their_builder():
    """The committed files are what build.py writes (regenerate with `python .../build.py`)."""
    for name, content in build.samples().items():
        assert (SAMPLES / name).read_text(encoding="utf-8") == content, name


@pytest.mark.parametrize("name", ["camt053_v02.xml", "camt053_v04.xml", "camt053_v08.xml", "camt053_v13.xml"])
def test_rem_4_camt053_versions_read_every_entry(name):
    [statement] = parse_statement_file(sample(name))
    assert statement.format == "camt053"
    assert statement.account_number == build.DEDICATED_IBAN
    assert statement.currency == "USD"
    assert statement.identity.startswith("STMT-053-V")
    assert (statement.opening_balance, statement.closing_balance) == (Decimal("1000.00"), Decimal("1545.00"))
    entries = statement.entries
    assert [e.amount for e in entries] == [Decimal(e.amount) for e in build.STANDARD_DAY]
    assert [e.position for e in entries] == list(range(1, 9))
    # the credit: payer, account, remittance info and end-to-end id, whatever the version's layout
    first = entries[0].details[0]
    assert (first.payer_name, first.payer_account) == ("ACME Corp", "GB33BUKB20201555555555")
    assert (first.remittance_info, first.end_to_end_id) == ("Invoice 2026-0001", "E2E-0001")
    assert entries[0].reference == "E1-REF-0001" and entries[0].credit and entries[0].booked
    # REM-6: the batch keeps each transfer's own amount, payer and reference
    batch = entries[1].details
    assert [(d.amount, d.payer_name, d.reference) for d in batch] == [
        (Decimal("100.00"), "Globex Ltd", "E2-D1"),
        (Decimal("120.00"), "Initech GmbH", "E2-D2"),
        (Decimal("80.00"), "Umbrella Inc", ""),
    ]
    debit, reversal, pending = entries[2], entries[3], entries[4]
    assert not debit.credit and debit.booked and not debit.reversal
    assert debit.details[0].payer_name == "Supplier AG"  # the counterparty of a debit is the creditor
    assert reversal.reversal and not reversal.credit
    assert pending.credit and not pending.booked
    assert entries[5].reference == "" and entries[6].reference == entries[7].reference == "DUP-REF"


@pytest.mark.parametrize("name", ["camt054_v02.xml", "camt054_v08.xml"])
def test_rem_4_camt054_notifications_have_entries_and_no_balances(name):
    [notification] = parse_statement_file(sample(name))
    assert notification.format == "camt054"
    assert notification.identity.startswith("NTFCTN-054-V")
    assert notification.opening_balance is None and notification.closing_balance is None
    assert not notification.has_balances
    assert len(notification.entries) == 8
    assert sum(len(e.details) for e in notification.entries) == build.STANDARD_LINES


@pytest.mark.parametrize("message", ["053", "054"])
@pytest.mark.parametrize("version", range(2, 14))
def test_rem_4_every_common_camt_version_is_read(message, version):
    [statement] = parse_statement_file(build.camt(message=message, version=version).encode())
    assert statement.version == f"camt.{message}.001.{version:02d}"
    assert len(statement.entries) == 8


def test_rem_4_camt_is_namespace_agnostic_with_prefixed_elements():
    """A bank that writes ``<ns2:Ntry>`` is read exactly like one using the default namespace."""
    plain = build.camt(version=8)
    ns = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
    prefixed = (
        plain.replace(f'xmlns="{ns}"', f'xmlns:ns2="{ns}"')
        .replace("</", "</ns2:")
        .replace("<", "<ns2:")
        .replace("<ns2:/ns2:", "</ns2:")
        .replace("<ns2:?xml", "<?xml")
    )
    assert "<ns2:Ntry>" in prefixed
    [a] = parse_statement_file(plain.encode())
    [b] = parse_statement_file(prefixed.encode())
    assert a == b


def test_rem_4_mt940_reads_marks_references_and_structured_details():
    [statement] = parse_statement_file(sample("mt940_day.sta"))
    assert statement.format == "mt940"
    assert statement.account_number == build.DEDICATED_IBAN
    assert (statement.opening_balance, statement.closing_balance) == (Decimal("1000.00"), Decimal("1560.00"))
    marks = [(e.amount, e.credit, e.reversal, e.reference) for e in statement.entries]
    assert marks[:5] == [
        (Decimal("250.00"), True, False, "E1-REF-0001"),
        (Decimal("75.00"), False, False, "E3-REF"),
        (Decimal("40.00"), False, True, "E4-REF"),  # RC: a reversed credit takes money out
        (Decimal("15.00"), True, True, "E4B-REF"),  # RD: a reversed debit puts it back
        (Decimal("60.00"), True, False, ""),  # no bank reference
    ]
    acme = statement.entries[0].details[0]
    assert (acme.payer_name, acme.payer_account, acme.remittance_info) == (
        "ACME Corp", "GB33BUKB20201555555555", "Invoice 2026-0001",
    )
    assert all(e.booked for e in statement.entries)


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml", "external_dtd.xml", "parameter_entity.xml"])
def test_hostile_xml_is_refused_before_any_expansion(name):
    with pytest.raises(HostileXml) as caught:
        parse_statement_file(sample(name))
    assert "DTD" in caught.value.detail
    assert "root:" not in str(caught.value)  # nothing of /etc/passwd leaks into the error


@pytest.mark.parametrize("name", ["camt053_truncated.xml", "mt940_truncated.sta"])
def test_truncated_files_fail_with_a_clear_error(name):
    with pytest.raises(MalformedStatement) as caught:
        parse_statement_file(sample(name))
    assert "truncated" in caught.value.detail


def test_truncated_mt940_without_envelope_is_refused():
    day = build.mt940_day()
    body = day[day.index(":20:"): day.index(":62F:")]  # no closing balance, no envelope
    with pytest.raises(MalformedStatement, match="closing"):
        parse_statement_file(body.encode())


def test_malformed_mt940_statement_line_is_refused():
    broken = build.mt940_day().replace(":61:2611251125D75,00", ":61:XX11251125D75,00")
    with pytest.raises(MalformedStatement, match="could not be read"):
        parse_statement_file(broken.encode())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("camt053_unknown_version.xml", "Unsupported version camt.053.001.99"),
        ("camt052_v08.xml", "camt.052.001.08 is not imported"),
        ("pain001.xml", "pain.001.001.09"),
    ],
)
def test_rem_4_unknown_version_or_other_document_is_an_explicit_error(name, message):
    with pytest.raises(UnsupportedStatement) as caught:
        parse_statement_file(sample(name))
    assert message in caught.value.detail


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b" \r\n\t ",
        b"hello, this is not a statement",
        b"<html><body>statement</body></html>",
        b'<?xml version="1.0"?><Document><BkToCstmrStmt/></Document>',  # no namespace, so no version
    ],
)
def test_rem_4_non_statements_are_refused_never_an_empty_success(content):
    with pytest.raises(UnsupportedStatement):
        parse_statement_file(content)


def test_camt_document_without_a_statement_is_refused():
    empty = (
        '<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">'
        "<BkToCstmrStmt><GrpHdr><MsgId>1</MsgId></GrpHdr></BkToCstmrStmt></Document>"
    )
    with pytest.raises(MalformedStatement, match="no statement"):
        parse_statement_file(empty.encode())


def test_rem_5_camt053_without_balances_cannot_be_reconciled():
    with pytest.raises(MalformedStatement, match="REM-5"):
        parse_statement_file(build.camt(closing=None).encode())


def test_oversized_file_is_refused_before_parsing(settings):
    """The size check comes first: a hostile file over the limit is refused for its size."""
    settings.STATEMENT_MAX_BYTES = 1024
    data = sample("billion_laughs.xml") + b" " * 1024
    with pytest.raises(StatementTooLarge, match="limited to 1024 bytes"):
        parse_statement_file(data)


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("10.005", "more than two decimal places"),
        ("-10.00", "not an amount"),
        ("1,000.00", "not an amount"),
        ("1e3", "not an amount"),
        ("", "not an amount"),
        ("0.00", "moves no money"),
    ],
)
def test_i6_bad_amounts_are_refused(amount, message):
    doc = build.camt(entries=[build.Entry(amount, ref="X", txs=[build.Tx(amount, "A")])], closing=build.STANDARD_OPENING)
    with pytest.raises(BadAmount) as caught:
        parse_statement_file(doc.encode())
    assert message in caught.value.detail


def test_i6_trailing_zeros_are_not_extra_precision():
    doc = build.camt(entries=[build.Entry("10.500", ref="X", txs=[build.Tx("10.50", "A")])], closing=Decimal("1010.50"))
    [statement] = parse_statement_file(doc.encode())
    assert statement.entries[0].amount == Decimal("10.50")


def test_i6_currencies_without_two_decimals_are_refused():
    with pytest.raises(BadAmount, match="JPY does not use two decimal places"):
        parse_statement_file(sample("camt053_jpy_v08.xml"))
    with pytest.raises(BadAmount, match="three decimal|more than two"):
        parse_statement_file(sample("camt053_three_decimals_v08.xml"))


def test_i6_mt940_amount_with_three_decimals_is_refused():
    with pytest.raises(BadAmount, match="more than two decimal places"):
        parse_statement_file(build.mt940_day().replace("C250,00", "C250,001").encode())


def test_format_detection_and_contradicting_requested_format():
    assert detect_format(sample("camt053_v08.xml")) == "camt053"
    assert detect_format(sample("camt054_v02.xml")) == "camt054"
    assert detect_format(sample("mt940_day.sta")) == "mt940"
    with pytest.raises(UnsupportedStatement, match="not the requested camt054"):
        parse_statement_file(sample("camt053_v08.xml"), fmt="camt054")
    with pytest.raises(UnsupportedStatement, match="MT940 statement, not camt053"):
        parse_statement_file(sample("mt940_day.sta"), fmt="camt053")
    with pytest.raises(UnsupportedStatement, match="XML, not an MT940"):
        parse_statement_file(sample("camt053_v08.xml"), fmt="mt940")
    [statement] = parse_statement_file(sample("camt054_v08.xml"), fmt="camt054")
    assert statement.format == "camt054"


# --- streaming: the reader is fed in chunks and reads each part once it has ended -----------------


def two_prefixed_statements() -> bytes:
    """Two statements with ``ns2:`` prefixes: every boundary a chunk can end on is in there."""
    plain = build.camt(version=8, statement_id="FIRST")
    ns = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
    stmt = plain[plain.index("<Stmt>"): plain.index("</Stmt>") + len("</Stmt>")]
    second = stmt.replace("FIRST", "SECOND")
    doc = plain.replace(stmt, stmt + second).replace(f'xmlns="{ns}"', f'xmlns:ns2="{ns}"')
    doc = doc.replace("</", "</ns2:").replace("<", "<ns2:").replace("<ns2:/ns2:", "</ns2:")
    return doc.replace("<ns2:?xml", "<?xml").encode()


@pytest.mark.parametrize("chunk", [1, 7, 100, 1000])
def test_rem_4_reading_in_chunks_gives_the_same_statements_wherever_a_chunk_ends(chunk, monkeypatch):
    """A chunk may end inside a tag, an entry or between statements: the result is the same."""
    doc = two_prefixed_statements()
    whole = parse_statement_file(doc)
    assert [s.identity for s in whole] == ["FIRST", "SECOND"]
    assert [len(s.entries) for s in whole] == [8, 8]
    monkeypatch.setattr(xmlstream, "CHUNK_BYTES", chunk)
    assert parse_statement_file(doc) == whole


@pytest.mark.parametrize("chunk", [1, 100])
def test_hostile_xml_is_refused_in_whatever_chunks_it_arrives(chunk, monkeypatch):
    monkeypatch.setattr(xmlstream, "CHUNK_BYTES", chunk)
    for name in ("billion_laughs.xml", "external_entity.xml", "parameter_entity.xml"):
        with pytest.raises(HostileXml):
            parse_statement_file(sample(name))


@pytest.mark.parametrize("chunk", [32 * 1024, 50])
def test_i6_fault_in_the_last_finished_entry_is_reported_before_the_break(chunk, monkeypatch):
    """A file that breaks off or turns malformed right after an entry with a bad amount: the
    entry's fault is reported, as when each entry is read the moment it ends."""
    monkeypatch.setattr(xmlstream, "CHUNK_BYTES", chunk)
    entries = [*build.STANDARD_DAY, build.Entry("1.001", ref="BAD", txs=[build.Tx("1.001", "x")])]
    doc = build.camt(entries=entries)
    end = doc.index("</Ntry>", doc.index("BAD")) + len("</Ntry>")
    for broken in (doc[:end], doc[:end] + "\n      <Ntry><Amt", doc[:end] + "</Nope>"):
        with pytest.raises(BadAmount, match="entry 9 amount: 1.001"):
            parse_statement_file(broken.encode())
    with pytest.raises(MalformedStatement, match="truncated"):
        parse_statement_file(doc[:end - 2].encode())  # the entry itself never ended


def test_garbage_collection_resumes_after_reading():
    """Reading holds the cyclic collector off; it is back on afterwards, also after a refusal."""
    assert gc.isenabled()
    parse_statement_file(sample("camt053_v08.xml"))
    assert gc.isenabled()
    with pytest.raises(MalformedStatement):
        parse_statement_file(sample("camt053_truncated.xml"))
    assert gc.isenabled()
    gc.disable()
    try:
        parse_statement_file(sample("camt053_v08.xml"))
        assert not gc.isenabled()  # a process that runs without it keeps it off
    finally:
        gc.enable()

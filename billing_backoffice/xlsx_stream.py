"""An XLSX workbook of one sheet written as a stream of bytes (issue 10: exports of 200k rows
without a timeout or a memory spike).

openpyxl, even in write-only mode, makes the whole file before the first byte can leave: 200k
rows took 45 s, past gunicorn's 30 s worker timeout. An XLSX file is a zip of a few XML parts; the
sheet's part is written here row by row into a zip stream (``zipfile`` on an unseekable sink:
sizes go in data descriptors), and what the zip has produced is handed on after each chunk of
rows, so the response starts at once and memory stays one chunk of rows.

Cells: ``int``/``Decimal``/``float`` as numbers, ``date``/``datetime`` as Excel dates (styles
``yyyy-mm-dd`` and ``yyyy-mm-dd hh:mm:ss``), everything else as inline text with the characters
XML cannot hold removed. Strings are inline (no shared-strings table to keep in memory). The
caller passes naive UTC datetimes and formula-safe text (``admin_export.xlsx_cell``).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from xml.sax.saxutils import escape

EPOCH = datetime(1899, 12, 30)  # Excel's day 0 (with its 1900 leap-year quirk folded in)
ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
DATE_STYLE, DATETIME_STYLE = 1, 2

CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>
</Types>"""
ROOT_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
WORKBOOK = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="{title}" sheetId="1" r:id="rId1"/></sheets>
</workbook>"""
WORKBOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>
</Relationships>"""
STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/><numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/><xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>
</styleSheet>"""
SHEET_START = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
SHEET_END = "</sheetData></worksheet>"


def cell_xml(value) -> str:
    if value is None:
        return "<c/>"
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if isinstance(value, (int, Decimal, float)):
        return f"<c><v>{value}</v></c>"
    if isinstance(value, datetime):
        serial = (value.replace(tzinfo=None) - EPOCH).total_seconds() / 86400
        return f'<c s="{DATETIME_STYLE}"><v>{serial:.10f}</v></c>'
    if isinstance(value, date):
        return f'<c s="{DATE_STYLE}"><v>{(value - EPOCH.date()).days}</v></c>'
    text = escape(ILLEGAL.sub("", str(value)))
    return f'<c t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'


def row_xml(values) -> str:
    return "<row>" + "".join(cell_xml(v) for v in values) + "</row>"


class _Sink:
    """An unseekable file the zip writes into; ``take()`` hands on what it holds so far."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def xlsx_stream(headers: list[str], chunks: Iterable[list[list]], *, title: str) -> Iterator[bytes]:
    """The workbook's bytes, a piece after each chunk of rows (``chunks``: lists of cell values)."""
    sink = _Sink()
    safe_title = escape(re.sub(r"[\[\]:*?/\\]", " ", title)[:31] or "Sheet1", {'"': "&quot;"})
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as book:
        for name, text in (("[Content_Types].xml", CONTENT_TYPES), ("_rels/.rels", ROOT_RELS),
                           ("xl/workbook.xml", WORKBOOK.format(title=safe_title)),
                           ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS), ("xl/styles.xml", STYLES)):
            book.writestr(name, text)
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write((SHEET_START + row_xml(headers)).encode())
            for chunk in chunks:
                sheet.write("".join(row_xml(values) for values in chunk).encode())
                yield sink.take()
            sheet.write(SHEET_END.encode())
    yield sink.take()

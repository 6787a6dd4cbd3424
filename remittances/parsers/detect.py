"""Which format a statement file is, from its content, and the one entry point that parses it.

``parse_statement_file`` checks the size limit before reading a byte of the content, then sniffs
the first few kilobytes: XML goes to the camt reader (which names the exact message and version,
or refuses it), ``:20:`` blocks or a SWIFT envelope go to the MT940 reader. A requested format
that the content contradicts is refused rather than forced.
"""

from __future__ import annotations

import re

from django.conf import settings

from .camt import parse_camt
from .common import (
    CAMT053,
    CAMT054,
    FORMATS,
    MT940,
    ParsedStatement,
    StatementTooLarge,
    UnsupportedStatement,
)
from .mt940 import parse_mt940

AUTO = "auto"
XML = "xml"
_SNIFF_BYTES = 8192
_CAMT = re.compile(rb"camt\.(05[34])\.001\.\d{2}")
_MT940 = re.compile(rb"(?m)^:20:")


def detect_format(data: bytes) -> str:
    """``camt053``, ``camt054``, ``mt940``, or ``xml`` for XML that the camt reader must judge."""
    head = data[:_SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        match = _CAMT.search(head)
        if match:
            return CAMT053 if match.group(1) == b"053" else CAMT054
        return XML
    if head.startswith(b"{1:") or _MT940.search(head):
        return MT940
    raise UnsupportedStatement("The file is neither ISO 20022 XML (camt.053/camt.054) nor an MT940 statement.")


def check_size(data: bytes | int, *, max_bytes: int | None = None) -> None:
    """Refuse a file over ``settings.STATEMENT_MAX_BYTES`` before anything reads its content.

    The one place the statement size limit is checked: ``data`` is the file's bytes or, where the
    file is not read yet (an upload's declared size, a file on disk), its size in bytes.
    """
    limit = settings.STATEMENT_MAX_BYTES if max_bytes is None else max_bytes
    size = data if isinstance(data, int) else len(data)
    if size > limit:
        raise StatementTooLarge(f"The file has {size} bytes; statements are limited to {limit} bytes.")


def parse_statement_file(data: bytes, *, fmt: str = AUTO, max_bytes: int | None = None) -> list[ParsedStatement]:
    """Parse ``data`` as ``fmt`` (or the detected format); a list of at least one statement."""
    check_size(data, max_bytes=max_bytes)
    if fmt != AUTO and fmt not in FORMATS:
        raise UnsupportedStatement(f"Unknown format {fmt!r}: choose auto, camt053, camt054 or mt940.")
    if not data or data.isspace():  # not data.strip(): no copy of a large file
        raise UnsupportedStatement("The file is empty.")
    detected = detect_format(data)
    if detected == MT940:
        if fmt not in (AUTO, MT940):
            raise UnsupportedStatement(f"The file is an MT940 statement, not {fmt}.")
        return parse_mt940(data)
    if fmt == MT940:
        raise UnsupportedStatement("The file is XML, not an MT940 statement.")
    return parse_camt(data, expect=None if fmt == AUTO else fmt)

"""Bank statement readers: camt.053/camt.054 (ISO 20022) and MT940, into plain dataclasses."""

from .common import (  # noqa: F401
    CAMT053,
    CAMT054,
    FORMATS,
    MT940,
    BadAmount,
    HostileXml,
    MalformedStatement,
    ParsedDetail,
    ParsedEntry,
    ParsedStatement,
    StatementError,
    StatementTooLarge,
    UnsupportedStatement,
)
from .detect import AUTO, check_size, detect_format, parse_statement_file  # noqa: F401

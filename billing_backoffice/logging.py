"""Card numbers kept out of every log line, access log and exception text (SEC-1).

Any run of 13-19 digits (spaces, dashes, or their URL encodings + and %20 allowed between them) that passes the Luhn check is
replaced by ``[REDACTED PAN]``. A digit run inside an identifier is left alone: a UUID (Celery
task ids, request ids) or a hex token of 24 characters or more with a letter in it
(``secrets.token_hex(12)``, a processor's ``tok_visa_<hex>``, digests) is matched as a whole first,
so ``execute_charge[26a42424-...]`` keeps its id intact. ``card_numbers_in`` names the runs this
reads as card numbers: the tests that scan every table for a stored card number use it, so the
scanners and the redaction agree on what a card number in text is.

``RedactCardNumbers`` is a logging filter for handlers. It redacts, before any formatter sees
the record: the message with its arguments, the exception text (the traceback is formatted here
and ``exc_info`` dropped, so neither the plain nor the JSON formatter formats it again from the
live exception), the stack text, and every extra field (``extra={...}``), nested dicts and
lists included, and integers that read as a card number.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from stdnum import luhn

REDACTED = "[REDACTED PAN]"

_HEX = "[0-9A-Fa-f]"
# Identifiers are matched first and kept: they stand alone (no letter or digit either side).
_IDENTIFIER = (
    rf"(?<![0-9A-Za-z])(?:{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
    rf"|(?=[0-9]*[A-Fa-f]){_HEX}{{24,}})(?![0-9A-Za-z])"
)
# Digits may be grouped by a space, a dash, or a space as a query string encodes it (+, %20).
# Not after a decimal point: "succeeded in 0.0123456789012345s" is a duration, not a card.
_DIGIT_RUN = r"(?<![\d.])(?:\d(?:[ +-]|%20)?){12,18}\d(?!\d)"
_TOKEN = re.compile(rf"(?P<identifier>{_IDENTIFIER})|(?P<run>{_DIGIT_RUN})")
_UNGROUPED_TOKEN = re.compile(rf"(?P<identifier>{_IDENTIFIER})|(?P<run>(?<![\d.])\d{{13,19}}(?!\d))")

# Attributes every LogRecord has; anything else on a record came from ``extra`` or a filter.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName",
}


def _is_card_number(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits)


def card_numbers_in(text: str, *, grouped: bool = True) -> list[str]:
    """The card numbers in ``text`` (digits only), as the redaction reads them: a Luhn-valid run
    of 13-19 digits that is not part of an identifier. ``grouped=False`` reads only runs without
    separators: stored reference data groups digits too (a statement id such as
    ``STMT-20261204-0-038802``, an IBAN), where a log line's typed number is what matters."""
    found = []
    for match in (_TOKEN if grouped else _UNGROUPED_TOKEN).finditer(text):
        if match.group("run"):
            digits = re.sub(r"\D", "", match.group(0).replace("%20", " "))
            if _is_card_number(digits):
                found.append(digits)
    return found


def redact_card_numbers(text: str) -> str:
    def _replace(match: re.Match) -> str:
        if match.group("identifier"):
            return match.group(0)
        digits = re.sub(r"\D", "", match.group(0).replace("%20", " "))
        return REDACTED if _is_card_number(digits) else match.group(0)

    return _TOKEN.sub(_replace, text)


def redact_value(value: Any) -> Any:
    """A structured log field with every card number in it replaced (same shape otherwise)."""
    if isinstance(value, str):
        return redact_card_numbers(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return REDACTED if _is_card_number(str(abs(value))) else value
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_value(item) for item in value]
    # Anything else is rendered by the formatter with str(); redact that text now.
    return redact_card_numbers(str(value))


class RedactCardNumbers(logging.Filter):
    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_card_numbers_redacted", False):
            return True  # a record passes every handler's filter; once is enough
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: log what there is, never raise
            message = f"{record.msg} (unformattable arguments)"
        record.msg = redact_card_numbers(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_card_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_card_numbers(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                setattr(record, name, redact_value(value))
        record._card_numbers_redacted = True
        return True

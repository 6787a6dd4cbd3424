"""Log filter that keeps card numbers out of every log line (SEC-1).

Any run of 13-19 digits (spaces or dashes allowed between them) that passes the Luhn check is
replaced by ``[REDACTED PAN]`` in the message and its arguments before a handler sees it.
"""

from __future__ import annotations

import logging
import re

from stdnum import luhn

# Not after a decimal point: "succeeded in 0.0123456789012345s" is a duration, not a card.
_DIGIT_RUN = re.compile(r"(?<![\d.])(?:\d[ -]?){12,18}\d(?!\d)")


def redact_card_numbers(text: str) -> str:
    def _replace(match: re.Match) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return "[REDACTED PAN]" if 13 <= len(digits) <= 19 and luhn.is_valid(digits) else match.group(0)

    return _DIGIT_RUN.sub(_replace, text)


class RedactCardNumbers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_card_numbers(record.getMessage())
        record.args = None
        return True

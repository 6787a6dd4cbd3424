"""The console API's JSON parser: malformed, non-UTF-8 or absurdly nested bodies answer 400.

The stock parser hands the body to ``json.load``, which recurses once per nesting level:
20,000 ``[`` (40 kB, well under the body limit) raised ``RecursionError``, a 500. No request of
the console nests more than a few levels, so the depth is measured first, without recursion,
and anything deeper than ``MAX_JSON_DEPTH`` is refused before it is decoded.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings

MAX_JSON_DEPTH = 64

# A JSON string literal (brackets inside strings do not nest). Possessive: linear on any input.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deeply ``text`` nests arrays and objects (0 for a scalar); correct for valid JSON."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError:
            raise ParseError(f"The body is not valid {encoding} text.") from None
        if json_depth(text) > MAX_JSON_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels is refused.")
        try:
            if api_settings.STRICT_JSON:  # NaN and Infinity are not JSON
                return json.loads(text, parse_constant=_refuse_constant)
            return json.loads(text)
        except (ValueError, RecursionError) as error:
            raise ParseError(f"JSON parse error - {error}") from None

"""``<id:...>`` in URL patterns: a database id, 1 to 2**63 - 1 (PostgreSQL bigint).

Django's ``<int:...>`` matches any run of digits, so an id past the bigint range reached the
query. Out of range or not digits, the pattern does not match: the answer is the 404 of an
unknown URL (JSON under ``/api/``). The schema documents the same bounds
(``SPECTACULAR_SETTINGS["PATH_CONVERTER_OVERRIDES"]``).
"""

from __future__ import annotations

from django.urls import register_converter

MAX_ID = 2**63 - 1
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


class ObjectIdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValueError(f"{value} is not a database id")  # Django: no match
        return number

    def to_url(self, value) -> str:
        return str(int(value))


register_converter(ObjectIdConverter, "id")

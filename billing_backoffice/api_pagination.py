"""Pages of the console API's lists: ``limit`` and ``offset`` within documented bounds.

DRF's LimitOffsetPagination passes any ``offset`` to the query (past the bigint range:
PostgreSQL refuses it, a 500) and quietly replaces a bad ``limit`` by the default. Here both
must be integers within the bounds the schema documents; anything else answers 400 naming it.
Kept apart from api_views: DRF's generics import the default pagination class at import time.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.pagination import LimitOffsetPagination


class ConsolePagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200
    max_offset = 1_000_000

    def get_limit(self, request) -> int:
        return _bounded_int(request, self.limit_query_param, default=self.default_limit,
                            minimum=1, maximum=self.max_limit)

    def get_offset(self, request) -> int:
        return _bounded_int(request, self.offset_query_param, default=0, minimum=0, maximum=self.max_offset)

    def get_schema_operation_parameters(self, view):
        bounds = {self.limit_query_param: (1, self.max_limit), self.offset_query_param: (0, self.max_offset)}
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            minimum, maximum = bounds[parameter["name"]]
            parameter["schema"] = {**parameter["schema"], "minimum": minimum, "maximum": maximum}
        return parameters

    def query_parameters(self) -> set[str]:
        return {self.limit_query_param, self.offset_query_param}


def _bounded_int(request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # Digits only and at most as long as the maximum: int() of a huge string is never attempted.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(maximum))) or not minimum <= int(raw) <= maximum:
        raise exceptions.ValidationError({name: [f"An integer from {minimum} to {maximum}."]})
    return int(raw)

"""The base class of every business error.

Each error has a stable ``code`` (machine-readable, used by the console), the ``rule`` ID from
RULES.md that it enforces (or ``None`` for plain input problems), a human ``detail`` and the HTTP
status the console API answers with. Services raise subclasses; the API and the admin show them.
"""

from __future__ import annotations


class BillingError(Exception):
    code: str = "billing_error"
    rule: str | None = None
    http_status: int = 422
    default_detail: str = "The operation is not allowed."

    def __init__(self, detail: str | None = None, *, rule: str | None = None, code: str | None = None):
        self.detail = detail or self.default_detail
        if rule is not None:
            self.rule = rule
        if code is not None:
            self.code = code
        super().__init__(self.detail)

    def as_dict(self) -> dict:
        return {"code": self.code, "rule": self.rule, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.detail} ({self.rule})" if self.rule else self.detail


class NotFound(BillingError):
    code = "not_found"
    http_status = 404
    default_detail = "No such object."


class Conflict(BillingError):
    code = "conflict"
    http_status = 409
    default_detail = "The object is in a state that does not allow this."

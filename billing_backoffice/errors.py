"""The base class of every business error, and the catalogue of the project package's own errors.

One catalogue per concern (issue 14): the errors of the core modules are here (money checks,
free text, staff permissions, job item failures), those of the apps in ``payments/errors.py``
and ``remittances/errors.py``; the modules that raise them import them from there (and keep the
names importable). Codes are unique across the project (``tests/test_error_codes.py``).

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

    @property
    def rule_text(self) -> str:
        """The refusal as staff screens say it, rule first: ``"DEL-3: This is the only ..."``."""
        return f"{self.rule}: {self.detail}" if self.rule else str(self.detail)


class NotFound(BillingError):
    code = "not_found"
    http_status = 404
    default_detail = "No such object."


class Conflict(BillingError):
    code = "conflict"
    http_status = 409
    default_detail = "The object is in a state that does not allow this."


# --- money (I6, ``billing_backoffice.money``) ------------------------------------------------------


class InvalidCurrency(BillingError):
    code = "invalid_currency"
    rule = "I6"


class InvalidAmount(BillingError):
    code = "invalid_amount"
    rule = "I6"


class AmountTooLarge(InvalidAmount):
    """I6: over ``MAX_AMOUNT``, or a sum that would no longer fit its column."""

    code = "amount_too_large"


# --- free text (SEC-1, ``billing_backoffice.free_text``) -------------------------------------------

CARD_NUMBER_MESSAGE = (
    "This looks like a card number. Card numbers are never accepted in this field (SEC-1); "
    "remove it and try again."
)


class CardNumberInText(BillingError):
    """SEC-1: a free-text input holds a card number; nothing was stored."""

    code = "card_number_in_text"
    rule = "SEC-1"
    http_status = 422  # well-formed, refused by a rule: never "malformed" (see api_errors)
    default_detail = CARD_NUMBER_MESSAGE


# --- staff (SEC-3, ``billing_backoffice.permissions``) ---------------------------------------------


class StaffPermissionDenied(BillingError):
    """The one staff-permission error; the older per-app names alias it."""

    code = "permission_denied"
    rule = "SEC-3"
    http_status = 403
    default_detail = "You are not allowed to do this."


# --- job item failures (``billing_backoffice.item_failures``) --------------------------------------


class FailureNotFound(NotFound):
    code = "job_item_failure_not_found"
    default_detail = "No such job item failure."

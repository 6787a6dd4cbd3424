"""Business errors of the payment-method domain, each naming the rule it enforces."""

from __future__ import annotations

from billing_backoffice.errors import BillingError, Conflict, NotFound


class LinkRefused(BillingError):
    """A link attempt refused by a rule; ``reason`` is the LinkAttempt reason code (LINK-7)."""

    code = "link_refused"

    def __init__(self, detail: str, *, rule: str, reason: str):
        super().__init__(detail, rule=rule, code=reason)
        self.reason = reason


class AlreadyLinked(LinkRefused):
    http_status = 409

    def __init__(self, detail: str, *, reason: str = "already_linked"):
        super().__init__(detail, rule="LINK-1", reason=reason)


class AccountNotFound(NotFound):
    code = "account_not_found"
    default_detail = "No such account."


class PaymentMethodNotFound(NotFound):
    code = "payment_method_not_found"
    default_detail = "No such payment method."


class ChallengeNotFound(NotFound):
    code = "three_ds_not_found"
    default_detail = "No such 3-D Secure challenge."


class VerificationNotPending(Conflict):
    code = "verification_not_pending"
    default_detail = "This verification is already finished."


class DefaultSwitchRefused(BillingError):
    code = "default_switch_refused"
    rule = "DEF-2"


class RemovalRefused(BillingError):
    code = "removal_refused"


class AccountStateError(Conflict):
    code = "account_state"


class AccountInUse(BillingError):
    """DEL-3 / LINK-2: an account with running resources or unpaid bills is not deactivated.

    Deactivation leads to closure, which removes every method (LINK-2); refusing it up front
    keeps the only method of an account that still owes money or runs resources (DEL-3).
    """

    code = "account_in_use"
    rule = "DEL-3"

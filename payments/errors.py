"""The errors of the payments app, one catalogue (issue 14): payment methods, accounts, bills
and usage, the ledger, holds, the gateway and console API clients, each naming the rule it
enforces. The modules that raise them import them from here (and keep the names importable);
codes are unique across the project (``tests/test_error_codes.py``)."""

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


# --- bills and usage (PAY-3, I2) --------------------------------------------------------------


class InvalidPeriod(BillingError):
    code = "invalid_period"
    rule = "PAY-3"


class InvalidReference(BillingError):
    code = "invalid_reference"
    rule = "I2"



# --- the ledger (SEC-4, I2, I3) ---------------------------------------------------------------


class ReferenceReused(Conflict):
    """The same business event was posted before with other figures (I2)."""

    code = "reference_reused"
    rule = "SEC-4"


class InsufficientBalance(BillingError):
    code = "insufficient_balance"
    rule = "I3"



# --- verification holds (HOLD-2) --------------------------------------------------------------


class HoldNotFound(NotFound):
    code = "hold_not_found"
    default_detail = "No such verification hold."


class HoldReleaseInProgress(Conflict):
    code = "hold_release_in_progress"
    rule = "HOLD-2"
    default_detail = "A release job is voiding this hold right now; it will be released shortly."



# --- the gateway ------------------------------------------------------------------------------


class GatewayUnavailable(BillingError):
    code = "gateway_unavailable"
    http_status = 503
    default_detail = "The payment gateway did not answer; nothing was linked. Try again."



# --- console API clients ----------------------------------------------------------------------


class ApiClientRefused(BillingError):
    code = "api_client_refused"


# --- credit control (CC-2, CC-3) --------------------------------------------------------------


class CreditHoldOn(BillingError):
    """CC-2: the account is on credit hold; new subscription orders are refused."""

    code = "credit_hold"
    rule = "CC-2"
    default_detail = (
        "The account is on credit hold because a bill is unpaid after its final notice; "
        "new orders are refused until the overdue bills are paid."
    )


class CreditHoldNotFound(NotFound):
    code = "credit_hold_not_found"
    default_detail = "This account is not on credit hold."


class PauseInvalid(BillingError):
    code = "pause_invalid"
    rule = "CC-3"


class PauseAlreadyInForce(Conflict):
    code = "pause_in_force"
    rule = "CC-3"
    default_detail = "Reminders of this account are already paused; end that pause first."


class PauseNotFound(NotFound):
    code = "pause_not_found"
    default_detail = "No pause in force for this account."



# --- customer notifications (NOTIFY-2) --------------------------------------------------------


class NotificationNotFound(NotFound):
    code = "notification_not_found"
    default_detail = "No such notification."


class NotificationNotFailed(Conflict):
    code = "notification_not_failed"
    rule = "NOTIFY-2"
    default_detail = "Only a failed delivery can be retried."


# --- paying bills (SET-1, SET-3) --------------------------------------------------------------


class BillNotFound(NotFound):
    code = "bill_not_found"
    default_detail = "No such bill."


class BillAlreadyPaid(Conflict):
    code = "bill_already_paid"
    rule = "SET-4"
    default_detail = "This bill is already paid."


class SettlementIsOn(BillingError):
    """SET-3: manual payment is for accounts whose automatic settlement is off."""

    code = "settlement_is_on"
    rule = "SET-3"
    default_detail = "Automatic settlement is on for this account: the settlement job pays its bills."


class OlderBillUnpaid(BillingError):
    code = "older_bill_unpaid"
    rule = "SET-2"


class BalanceTooLow(BillingError):
    code = "balance_too_low"
    rule = "SET-3"



# --- settlement (SET-2) -----------------------------------------------------------------------


class SettlementConflict(Conflict):
    """A bill changed under the settlement (written without the account lock); rolled back."""

    code = "settlement_conflict"
    rule = "SET-4"



# --- usage (PAY-2, I2) ------------------------------------------------------------------------


class UsageReferenceReused(Conflict):
    code = "usage_reference_reused"
    rule = "I2"



# --- orders (PAY-1, CRED-3, I2) ---------------------------------------------------------------


class OrderReferenceReused(Conflict):
    code = "order_reference_reused"
    rule = "I2"


class OrderRefused(BillingError):
    """The order is refused whole; nothing is created (PAY-5, HOLD-3, CRED-3)."""

    code = "order_refused"


class CreditLimitExceeded(OrderRefused):
    code = "credit_limit_exceeded"
    rule = "CRED-3"


class InvalidOrderKind(BillingError):
    code = "invalid_order_kind"
    rule = "PAY-1"



# --- charges ----------------------------------------------------------------------------------


class ChargeNotFound(NotFound):
    code = "charge_not_found"
    default_detail = "No such charge."

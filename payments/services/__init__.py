"""Every write of the payments app. Admin, API views and tasks call these; nothing else writes."""

from .accounts import account_close, account_create, account_deactivate, account_reactivate
from .attempts import link_attempt_record
from .bills import (
    BalanceTooLow,
    BillAlreadyPaid,
    BillNotFound,
    OlderBillUnpaid,
    SettlementIsOn,
    bill_pay_manual,
    bills_mark_overdue,
    settlement_switch,
)
from .billing import bill_create, monthly_bill_chunks, monthly_bills_generate, monthly_bills_generate_chunk
from .cards import CardInput, card_fingerprint, card_link, three_ds_complete
from .charge_execution import ChargeNotFound, charge_execute
from .defaults import payment_method_activate, payment_method_make_default
from .holds import (
    HoldNotFound,
    HoldReleaseInProgress,
    hold_amount_for,
    hold_release,
    holds_claim_due,
    holds_release_due,
)
from .ledger import account_balance, ledger_post, ledger_reverse
from .lifecycle import accounts_close_silent, cards_expire, verifications_fail_abandoned
from .linking import LinkResult, wallet_link
from .order_three_ds import order_three_ds_complete
from .orders import CreditLimitExceeded, OrderReferenceReused, OrderRefused, order_place
from .paypal import paypal_agreement_complete, paypal_link
from .removal import payment_method_remove
from .scheduled_charging import (
    charge_retry,
    charges_retry_failed,
    month_end_deduction_run,
    threshold_charges_run,
    usage_threshold_charge,
)
from .settlement import (
    SettlementConflict,
    SettlementResult,
    settle_accounts,
    settlement_due_account_ids,
    settlement_request,
    settlement_request_many,
)
from .usage import UsageReferenceReused, paypal_preauth_place, usage_record
from .verification import GatewayUnavailable

__all__ = [
    "BalanceTooLow",
    "BillAlreadyPaid",
    "BillNotFound",
    "OlderBillUnpaid",
    "SettlementConflict",
    "SettlementIsOn",
    "SettlementResult",
    "bill_pay_manual",
    "bills_mark_overdue",
    "settle_accounts",
    "settlement_due_account_ids",
    "settlement_request",
    "settlement_request_many",
    "settlement_switch",
    "ChargeNotFound",
    "CreditLimitExceeded",
    "OrderReferenceReused",
    "OrderRefused",
    "UsageReferenceReused",
    "bill_create",
    "charge_execute",
    "charge_retry",
    "charges_retry_failed",
    "month_end_deduction_run",
    "monthly_bill_chunks",
    "monthly_bills_generate",
    "monthly_bills_generate_chunk",
    "order_place",
    "paypal_preauth_place",
    "threshold_charges_run",
    "usage_record",
    "usage_threshold_charge",
    "HoldNotFound",
    "HoldReleaseInProgress",
    "account_balance",
    "accounts_close_silent",
    "cards_expire",
    "hold_release",
    "holds_claim_due",
    "holds_release_due",
    "ledger_post",
    "ledger_reverse",
    "verifications_fail_abandoned",
    "CardInput",
    "GatewayUnavailable",
    "LinkResult",
    "account_close",
    "account_create",
    "account_deactivate",
    "account_reactivate",
    "card_fingerprint",
    "card_link",
    "hold_amount_for",
    "link_attempt_record",
    "payment_method_activate",
    "payment_method_make_default",
    "payment_method_remove",
    "paypal_agreement_complete",
    "paypal_link",
    "three_ds_complete",
    "order_three_ds_complete",
    "wallet_link",
]

"""Every write of the payments app. Admin, API views and tasks call these; nothing else writes."""

from .accounts import account_close, account_create, account_deactivate, account_reactivate
from .attempts import link_attempt_record
from .billing import bill_create, monthly_bill_chunks, monthly_bills_generate, monthly_bills_generate_chunk
from .charging import (
    ChargeNotFound,
    CreditLimitExceeded,
    OrderReferenceReused,
    OrderRefused,
    UsageReferenceReused,
    charge_execute,
    charge_retry,
    charges_retry_failed,
    month_end_deduction_run,
    order_place,
    paypal_preauth_place,
    threshold_charges_run,
    usage_record,
    usage_threshold_charge,
)
from .defaults import payment_method_activate, payment_method_make_default
from .holds import HoldNotFound, HoldReleaseInProgress, hold_release, holds_claim_due, holds_release_due
from .ledger import account_balance, ledger_post, ledger_reverse
from .lifecycle import accounts_close_silent, cards_expire, verifications_fail_abandoned
from .linking import (
    CardInput,
    GatewayUnavailable,
    LinkResult,
    card_fingerprint,
    card_link,
    hold_amount_for,
    paypal_agreement_complete,
    paypal_link,
    three_ds_complete,
    wallet_link,
)
from .removal import payment_method_remove

__all__ = [
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
    "wallet_link",
]

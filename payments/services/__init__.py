"""Every write of the payments app. Admin, API views and tasks call these; nothing else writes."""

from .accounts import account_close, account_create, account_deactivate, account_reactivate
from .attempts import link_attempt_record
from .defaults import payment_method_activate, payment_method_make_default
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

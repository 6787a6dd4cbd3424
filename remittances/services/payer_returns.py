"""Paying back a transfer the back office cannot credit (issue 10: "a currency-mismatch transfer
offers finance nothing to do").

A credit in another currency than its receiving account's is recorded as ``review`` and credited
to nobody (no conversion is ever guessed). Finance returns it to the payer whole, in its own
currency: a ``RefundRequest`` of kind ``payer_return`` that takes the refund's road (RFD-1:
another finance member approves it, four eyes; it goes into exactly one pain.001 file; the file
marked sent makes the transaction ``returned``; a payment the bank rejects makes it ``review``
again) but never touches a balance: nothing of it was ever on one.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from billing_backoffice.free_text import free_text_check
from billing_backoffice.permissions import staff_require
from remittances.models import RefundRequest
from remittances.services.refunds import PERM_REQUEST, RefundInvalid, payer_bank_account, payer_return_source


@transaction.atomic
def payer_return_request(*, bank_transaction_id: int, payer_name: str, payer_iban: str, payer_bic: str,
                         reason: str, actor, now: datetime) -> RefundRequest:
    """Finance records the return of the whole transfer to the payer's bank account (RFD-1: the
    payer's IBAN and BIC validated, a reason); nothing moves until another finance member approves."""
    staff_require(actor, permission=PERM_REQUEST, action="return transfers to the payer", rule="RFD-1",
                  system_allowed=False)
    free_text_check(payer_name=payer_name, reason=reason)  # SEC-1, before anything is kept
    payer_name, reason = (payer_name or "").strip(), (reason or "").strip()
    if not payer_name:
        raise RefundInvalid("A return needs the payer's name (the creditor of the payment).")
    if not reason:
        raise RefundInvalid("A return needs a reason.")
    iban, bic = payer_bank_account(iban=payer_iban, bic=payer_bic)
    txn = payer_return_source(bank_transaction_id)
    return RefundRequest.objects.create(
        kind=RefundRequest.Kind.PAYER_RETURN, account_id=txn.account_id, bank_transaction=txn,
        debtor_account_id=txn.receiving_account_id, amount=txn.amount, currency=txn.currency,
        payer_name=payer_name[:140], payer_iban=iban, payer_bic=bic, reason=reason, requested_by=actor,
        submitted_at=now,
    )

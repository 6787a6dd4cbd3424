"""Whose turn it is for a bank transaction, in words (issue 10: every state has a next step for
someone, or says whose it is), with a link to the page where it is done when there is one."""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from remittances.admin.payer_returns import is_currency_mismatch, live_payer_return
from remittances.models import BankTransaction

Status = BankTransaction.Status

STEPS = {
    Status.UNMATCHED: "Account manager: find the customer and initiate a claim (CLM-1).",
    Status.MATCHED: "Nobody: the import credits it to the dedicated account's owner (REM-1). If it stays "
                    "here, finance checks the receiving account (suspended?) and the statement's summary.",
    Status.CLAIMED: "Account manager reviews the claim, then finance (someone else) approves it (CLM-1, CLM-3).",
    Status.CREDITED: "Nothing: credited to the account once (CLM-2). A payer's overpayment or mistake is "
                     "refunded (RFD-1) or moved to the right account (RFD-2) by finance.",
    Status.REVIEW: "Finance: it repeats a line with different figures; compare it with the first one (REM-4).",
    Status.NOT_CREDITABLE: "Nothing: a debit, reversal or pending line credits nobody.",
    Status.REFUNDED: "Nothing: paid back in full to the payer (RFD-1), its payment file sent to the bank. If "
                     "the bank reports the payment rejected, finance records the return and the money is "
                     "credited back once.",
    Status.RETURNED: "Nothing: paid back whole to the payer (it was never credited), its payment file sent. "
                     "If the bank reports the payment rejected, finance records it and it waits for review again.",
    Status.REVERSED: "Nothing: the bank took it back (RVS-1/RVS-2); an account left owing is in finance's queue.",
}


def next_step_html(txn: BankTransaction):
    """The step for whoever's turn it is (the list's "claim" column links account managers to
    the claim form; this text says it to everyone)."""
    text = STEPS.get(txn.status, "")
    if is_currency_mismatch(txn):
        return _currency_mismatch_step(txn)
    if txn.status == Status.CLAIMED:
        try:
            url = reverse("admin:remittances_remittanceclaim_changelist") + f"?q={txn.bank_reference}"
        except NoReverseMatch:
            return text
        return format_html('{} <a href="{}">Its claim</a>', text, url)
    return text


def _currency_mismatch_step(txn: BankTransaction):
    """Finance returns it to the payer (or approves the return someone recorded)."""
    under_way = live_payer_return(txn)
    if under_way is None:
        return format_html(
            "Finance: it arrived in {}, a currency the receiving account does not hold, so it credits nobody. "
            '<a href="{}">Return it to the payer</a> (another finance member approves; RFD-1).',
            txn.currency, reverse("admin:remittances_banktransaction_return_to_payer", args=[txn.pk]),
        )
    if under_way.status == under_way.Status.SUBMITTED:
        return format_html(
            'Finance (not {}): <a href="{}">approve or reject {}</a>.', under_way.requested_by,
            reverse("admin:remittances_refundrequest_decide", args=[under_way.pk]), under_way,
        )
    return format_html("Nobody: {} goes to the bank in the next payment file.", under_way)

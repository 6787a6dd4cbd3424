"""The confirmation pages of approving refunds (RFD-1) and transfers between accounts (RFD-2)
(issue 10): what leaves which balance and what is left, or the refusal the service would raise
(``refund_approval_refusal`` / ``transfer_approval_refusal``: four eyes, state, RFD-3 limits).
Read-only; the approval itself is the admin action's ``run_service_action``."""

from __future__ import annotations

from billing_backoffice.admin_confirm import Preview
from billing_backoffice.money import money_text
from payments.services.ledger import account_balance
from remittances.models import FundsTransfer, RefundRequest
from remittances.services import refunds, transfers


def _balance_lines(account, amount, currency: str, *, sign: int) -> list[tuple[str, str]]:
    balance = account_balance(account_id=account.pk, currency=currency)
    return [
        (f"Balance of {account.uid} now", money_text(balance, currency)),
        (f"Balance of {account.uid} after", money_text(balance + sign * amount, currency)),
    ]


def refund_previews(refunds_selected: list[RefundRequest], user) -> list[Preview]:
    previews = []
    for refund in refunds_selected:
        noun = "Payer return" if refund.kind == refund.Kind.PAYER_RETURN else "Refund"
        label = f"{noun} #{refund.pk}: {money_text(refund.amount, refund.currency)} to {refund.payer_name}"
        refusal = refunds.refund_approval_refusal(refund_id=refund.pk, actor=user)
        if refusal is not None:
            previews.append(Preview(label, refusal=refusal.rule_text))
            continue
        if refund.kind == refund.Kind.PAYER_RETURN:
            previews.append(Preview(label, [
                ("Paid to", f"{refund.payer_name}, {refund.payer_iban} ({refund.payer_bic})"),
                ("Balance", "none changes: the transfer was never credited (its currency is not the account's)"),
                ("Then", "it goes into the next pain.001 payment file; once sent, the transfer is returned"),
            ]))
            continue
        previews.append(Preview(label, [
            ("Debited from", f"{refund.account.uid} {refund.account.name}"),
            ("Paid to", f"{refund.payer_name}, {refund.payer_iban} ({refund.payer_bic})"),
            *_balance_lines(refund.account, refund.amount, refund.currency, sign=-1),
            ("Then", "it goes into the next pain.001 payment file for the bank (RFD-1)"),
        ]))
    return previews


def transfer_previews(selected: list[FundsTransfer], user) -> list[Preview]:
    previews = []
    for transfer in selected:
        label = f"Transfer #{transfer.pk}: {money_text(transfer.amount, transfer.currency)}"
        refusal = transfers.transfer_approval_refusal(transfer_id=transfer.pk, actor=user)
        if refusal is not None:
            previews.append(Preview(label, refusal=refusal.rule_text))
            continue
        previews.append(Preview(label, [
            ("From", f"{transfer.from_account.uid} {transfer.from_account.name}"),
            ("To", f"{transfer.to_account.uid} {transfer.to_account.name}"),
            *_balance_lines(transfer.from_account, transfer.amount, transfer.currency, sign=-1),
            *_balance_lines(transfer.to_account, transfer.amount, transfer.currency, sign=1),
        ]))
    return previews

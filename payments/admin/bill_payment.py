"""The confirmation page of "pay from balance" (SET-3, issue 10): for each selected bill, the
amount it takes and the account's balance before and after, or the refusal the service would
raise (``manual_payment_refusal``, SET-2/SET-3). Read-only: nothing is paid here."""

from __future__ import annotations

from decimal import Decimal

from billing_backoffice.admin_confirm import Preview
from billing_backoffice.money import money_text
from payments.models import Bill
from payments.services.bills import manual_payment_refusal
from payments.services.ledger import account_balance


def payment_previews(bills: list[Bill]) -> list[Preview]:
    """In the order the action pays them (by id, per account and currency a running balance), so
    an older bill paid first no longer blocks a newer one and the balance after is cumulative."""
    balances: dict[tuple[int, str], Decimal] = {}
    paid: dict[tuple[int, str], list[int]] = {}
    previews = []
    for bill in sorted(bills, key=lambda b: b.pk):
        key = (bill.account_id, bill.currency)
        if key not in balances:
            balances[key] = account_balance(account_id=bill.account_id, currency=bill.currency)
        before = balances[key]
        label = f"Bill {bill.reference} of account {bill.account.uid} {bill.account.name}"
        refusal = manual_payment_refusal(bill, account=bill.account, balance=before, paid_first=paid.get(key, ()))
        if refusal is not None:
            previews.append(Preview(label, refusal=refusal.rule_text))
            continue
        after = before - bill.outstanding
        balances[key] = after
        paid.setdefault(key, []).append(bill.pk)
        previews.append(Preview(label, [
            ("Amount paid", money_text(bill.outstanding, bill.currency)),
            ("Balance now", money_text(before, bill.currency)),
            ("Balance after", money_text(after, bill.currency)),
            ("Bill after", f"{bill.get_status_display()} -> {Bill.Status.PAID.label}"),
        ]))
    return previews

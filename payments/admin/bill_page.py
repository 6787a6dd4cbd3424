"""What a bill's change page shows besides its fields (issue 10): the charge attempts made for it
(PAY-1..5, failure reasons in words) and the ledger payments that paid it (SET-2, SET-3), each
one bounded query (``payments/account_story.py``)."""

from __future__ import annotations

from django.contrib.admin.utils import display_for_value
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from billing_backoffice.admin_site import money_cell
from payments import account_story as story
from payments.admin.display import EMPTY, masked_html
from payments.models import Bill
from payments.reasons import reason_label


def table(columns: list[str], rows: list[list], empty: str):
    if not rows:
        return empty
    head = format_html_join("", '<th scope="col">{}</th>', ((c,) for c in columns))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html('<table style="width: 100%"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)


def failure_text(charge) -> str:
    """PAY-5: the reason in words, with the rule that failed it, and the gateway's detail."""
    if not charge.failure_reason:
        return EMPTY
    label = reason_label(charge.failure_reason)
    text = f"{label} ({charge.failure_rule})" if charge.failure_rule else label
    return f"{text}: {charge.failure_detail}" if charge.failure_detail else text


def charge_attempts_html(bill: Bill):
    rows = [
        [format_html('<a href="{}">Charge {}</a>', reverse("admin:payments_charge_change", args=[c.pk]), c.pk),
         display_for_value(c.created_at, EMPTY), money_cell(c.amount, c.currency), masked_html(c.payment_method),
         c.get_kind_display(), c.get_status_display(), failure_text(c)]
        for c in story.bill_charges(bill=bill)
    ]
    return table(["Charge", "When", "Amount", "Method", "Kind", "Status", "Failure reason"], rows,
                 "No charge attempt for this bill.")


def payments_html(bill: Bill):
    rows = [
        [display_for_value(e.created_at, EMPTY), money_cell(-e.amount, e.currency), e.reference, e.memo or EMPTY,
         e.created_by.get_username() if e.created_by else "automatic settlement or charge"]
        for e in story.bill_payments(bill=bill)
    ]
    return table(["When", "Paid", "Ledger reference", "Memo", "By"], rows, "No payment yet.")

"""The payments panels of the account page (issue 10, "one customer, one page"): region and what
it may link (ELIG-1..6), methods with their state in words (LINK-5, LINK-6, HOLD-3), holds,
balance per currency (SEC-4), open and overdue bills (CRED-3), recent charges with their failure
reasons (PAY-5), the ledger, link attempts (LINK-7) and the audit history (SEC-2).

Each panel is one or two bounded queries (``payments/account_story.py``) with a "see all" link to
the filtered changelist; the registry and the shape are ``account_panels.py``.
"""

from __future__ import annotations

from django.contrib.admin.utils import display_for_value
from django.urls import reverse
from django.utils.html import format_html

from billing_backoffice.admin_site import money_cell
from billing_backoffice.audit import BASELINE_LABEL
from billing_backoffice.audit_admin import audit_rows
from payments import account_story as story
from payments.admin.account_panels import AccountPanel, PanelTable, bounded, register_account_panel
from payments.admin.display import EMPTY, masked_html, method_status_html
from payments.models import Account
from payments.reasons import reason_label
from payments.selectors import account_balances

LIMIT = story.PANEL_LIMIT


def when(value) -> str:
    return display_for_value(value, EMPTY)


def link(url_name: str, pk: int, text) -> str:
    return format_html('<a href="{}">{}</a>', reverse(url_name, args=[pk]), text)


def changelist(model: str, account: Account, **params: str) -> str:
    query = "&".join([f"account__id__exact={account.pk}", *(f"{k}={v}" for k, v in params.items())])
    return f"{reverse(f'admin:payments_{model}_changelist')}?{query}"


def region_panel(account: Account, now) -> PanelTable:
    offers = story.region_offers(account.region)
    return PanelTable(
        lines=[
            f"Region: {account.get_region_display()}, from the registration country "
            f"{account.country.name} ({account.country.code}) (ELIG-1).",
            story.region_note(account.region),
        ],
        columns=["Method", "May link", "Why"],
        rows=[[offer.method, "yes" if offer.allowed else "no", offer.why] for offer in offers],
    )


def challenge_cell(challenge) -> str:
    if challenge is None:
        return EMPTY
    return format_html(
        '<a href="{}">Challenge {}</a> ({}): sent {}, expires {}',
        reverse("admin:payments_threedschallenge_change", args=[challenge.pk]), challenge.pk,
        challenge.get_trigger_display(), when(challenge.created_at), when(challenge.expires_at),
    )


def methods_panel(account: Account, now) -> PanelTable:
    methods, more = bounded(story.account_methods(account_id=account.pk), story.METHOD_LIMIT)
    rows = []
    for method in methods:
        told = story.method_story(method, account=account)
        rows.append([
            link("admin:payments_paymentmethod_change", method.pk, masked_html(method)),
            method_status_html(method), told.reason, challenge_cell(told.challenge),
            "yes" if method.is_default else "no", method.expiry or EMPTY, when(method.created_at),
        ])
    return PanelTable(
        columns=["Method", "Status", "Why", "3-D Secure", "Default", "Expiry", "Linked"], rows=rows,
        empty="No payment method linked.", see_all_url=changelist("paymentmethod", account), more=more,
    )


def holds_panel(account: Account, now) -> PanelTable:
    holds, more = bounded(story.account_holds(account_id=account.pk), LIMIT)
    rows = [
        [link("admin:payments_verificationhold_change", hold.pk, masked_html(hold.payment_method)),
         money_cell(hold.amount, hold.currency), hold.get_status_display(), when(hold.placed_at),
         when(hold.release_deadline), when(hold.released_at)]
        for hold in holds
    ]
    return PanelTable(
        columns=["Method", "Amount", "Status", "Placed", "Released by (HOLD-2)", "Released"], rows=rows,
        empty="No verification hold.", see_all_url=changelist("verificationhold", account), more=more,
    )


def balances_panel(account: Account, now) -> PanelTable:
    balances = account_balances(account_id=account.pk)
    return PanelTable(
        columns=["Currency", "Balance (sum of the ledger, SEC-4)"],
        rows=[[currency, money_cell(total, currency, signed=True)] for currency, total in balances.items()],
        empty="No money on the ledger yet.",
        see_all_url=reverse("admin:payments_ledgerentry_account", args=[account.pk]), see_all_text="Ledger",
    )


def bills_panel(account: Account, now) -> PanelTable:
    bills, more = bounded(story.account_unpaid_bills(account_id=account.pk), LIMIT)
    rows = []
    for bill in bills:
        state = bill.get_status_display()
        if story.bill_is_overdue(bill, now=now) and bill.status != bill.Status.OVERDUE:
            state = f"{state}, past due"
        rows.append([
            link("admin:payments_bill_change", bill.pk, bill.reference), state, money_cell(bill.total, bill.currency),
            money_cell(bill.outstanding, bill.currency), display_for_value(bill.due_date, EMPTY), when(bill.issued_at),
        ])
    return PanelTable(
        columns=["Bill", "Status", "Total", "Outstanding", "Due", "Issued"], rows=rows,
        empty="No open or overdue bill.", more=more,
        see_all_url=changelist("bill", account, status__in="open,partially_paid,overdue"),
    )


def charge_failure(charge) -> str:
    """PAY-5: the reason in words, with the rule that failed it."""
    if not charge.failure_reason:
        return EMPTY
    label = reason_label(charge.failure_reason)
    return f"{label} ({charge.failure_rule})" if charge.failure_rule else label


def charges_panel(account: Account, now) -> PanelTable:
    charges, more = bounded(story.account_recent_charges(account_id=account.pk), LIMIT)
    rows = [
        [link("admin:payments_charge_change", charge.pk, f"Charge {charge.pk}"), when(charge.created_at),
         money_cell(charge.amount, charge.currency), masked_html(charge.payment_method),
         charge.get_kind_display(), charge.get_status_display(), charge_failure(charge),
         link("admin:payments_bill_change", charge.bill_id, charge.bill.reference) if charge.bill_id else EMPTY]
        for charge in charges
    ]
    return PanelTable(
        columns=["Charge", "When", "Amount", "Method", "Kind", "Status", "Failure reason", "Bill"], rows=rows,
        empty="No charge.", see_all_url=changelist("charge", account), more=more,
    )


def ledger_panel(account: Account, now) -> PanelTable:
    entries, more = bounded(story.account_recent_ledger(account_id=account.pk), LIMIT)
    rows = [
        [when(entry.created_at), entry.get_kind_display(), money_cell(entry.amount, entry.currency, signed=True),
         money_cell(entry.running_balance, entry.currency), entry.reference, entry.memo or EMPTY,
         entry.created_by.get_username() if entry.created_by else EMPTY]
        for entry in entries
    ]
    return PanelTable(
        columns=["When", "Kind", "Amount", "Balance after", "Reference", "Memo", "By"], rows=rows,
        empty="No ledger entry.", more=more, see_all_text="The whole ledger",
        see_all_url=reverse("admin:payments_ledgerentry_account", args=[account.pk]),
    )


def attempts_panel(account: Account, now) -> PanelTable:
    attempts, more = bounded(story.account_recent_attempts(account_id=account.pk), story.ATTEMPT_LIMIT)
    rows = [
        [when(attempt.created_at), attempt.kind, attempt.get_outcome_display(),
         reason_label(attempt.reason) or EMPTY, attempt.rule or EMPTY,
         f"•••• {attempt.last4}" if attempt.last4 else EMPTY, attempt.detail or EMPTY]
        for attempt in attempts
    ]
    return PanelTable(
        columns=["When", "Kind", "Outcome", "Reason", "Rule", "Card", "Detail"], rows=rows,
        empty="No link attempt.", see_all_url=changelist("linkattempt", account), more=more,
    )


def audit_panel(account: Account, now) -> PanelTable:
    """SEC-2: the account's own audit events (database triggers, every write path), newest first."""
    events, more = bounded(audit_rows(models_=[Account], object_id=account.pk, limit=LIMIT + 1), LIMIT)
    rows = []
    for event in events:
        # A creation or baseline event lists every field: its note says enough here (History has the rest).
        shown = [] if event.label in ("insert", BASELINE_LABEL) else event.changes
        changes = "; ".join(f"{c.field}: {c.before} → {c.after}" for c in shown)
        rows.append([when(event.created_at), event.label, event.actor or "no context (direct database change)",
                     " ".join(part for part in (event.note, changes) if part) or EMPTY])
    return PanelTable(
        columns=["When", "Event", "Who", "What changed"], rows=rows, empty="No audit event.", more=more,
        see_all_url=reverse("admin:payments_account_history", args=[account.pk]), see_all_text="History",
    )


for _panel in (
    AccountPanel("region", "Region and what it may link", 10, region_panel),
    AccountPanel("methods", "Payment methods", 20, methods_panel, "payments.view_paymentmethod"),
    AccountPanel("holds", "Verification holds", 30, holds_panel, "payments.view_verificationhold"),
    AccountPanel("balances", "Balance per currency", 40, balances_panel, "payments.view_ledgerentry"),
    AccountPanel("bills", "Open and overdue bills (oldest first)", 50, bills_panel, "payments.view_bill"),
    AccountPanel("charges", "Recent charges", 60, charges_panel, "payments.view_charge"),
    AccountPanel("ledger", "Ledger (newest first)", 80, ledger_panel, "payments.view_ledgerentry"),
    AccountPanel("attempts", "Link attempts (20 most recent)", 85, attempts_panel, "payments.view_linkattempt"),
    AccountPanel("audit", "Audit history (SEC-2)", 90, audit_panel),
):
    register_account_panel(_panel)

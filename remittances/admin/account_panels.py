"""The remittances app's panels on the account page (issue 10): the credit limit and its history
(CRED-1..3), the dedicated remittance account (REM-1, REM-3) and the account's claims (CLM-1..4).

The account page belongs to payments, which never imports remittances; so remittances adds its
panels to payments' registry (``payments/admin/account_panels.py``), as it registers its
ModelAdmins with the admin site. Django's admin autodiscovery imports this module with the rest
of ``remittances.admin``. Each panel is one bounded query with a "see all" link.
"""

from __future__ import annotations

from django.contrib.admin.utils import display_for_value
from django.urls import reverse
from django.utils.html import format_html

from billing_backoffice.admin_site import money_cell
from billing_backoffice.money import money_text
from payments.admin.account_panels import AccountPanel, PanelTable, bounded, register_account_panel
from payments.models import Account
from remittances import numbering
from remittances.models import CreditLimitRequest, RemittanceAccount, RemittanceClaim

LIMIT = 10
EMPTY = "—"


def when(value) -> str:
    return display_for_value(value, EMPTY)


def who(user) -> str:
    return user.get_username() if user is not None else EMPTY


def changelist(model: str, account: Account) -> str:
    return f"{reverse(f'admin:remittances_{model}_changelist')}?account__id__exact={account.pk}"


def credit_panel(account: Account, now) -> PanelTable:
    """CRED-1: the limit in force (only an approved application sets it) and every application."""
    requests, more = bounded(
        list(CreditLimitRequest.objects.filter(account_id=account.pk)
             .select_related("recorded_by", "decided_by").order_by("-submitted_at", "-id")[: LIMIT + 1]),
        LIMIT,
    )
    if account.credit_approved:
        state = (f"Credit approved: limit {money_text(account.credit_limit, account.credit_currency)}; "
                 "bills are paid by bank transfer before their due date (CRED-3), cards are not charged (PAY-6).")
    else:
        state = "Not credit-approved: no bank transfer on credit (CRED-1); cards and PayPal pay the bills."
    rows = [
        [format_html('<a href="{}">{}</a>', reverse("admin:remittances_creditlimitrequest_change", args=[r.pk]),
                     money_text(r.requested_limit, r.currency)),
         r.get_status_display(), r.get_source_display(), when(r.submitted_at), who(r.recorded_by),
         who(r.decided_by), when(r.decided_at), r.decision_note or EMPTY]
        for r in requests
    ]
    return PanelTable(
        lines=[state], columns=["Requested limit", "Status", "Source", "Submitted", "Recorded by", "Decided by",
                                "Decided", "Note"],
        rows=rows, empty="No credit application.", see_all_url=changelist("creditlimitrequest", account), more=more,
    )


def dedicated_panel(account: Account, now) -> PanelTable:
    """REM-1: at most one dedicated account per cloud account; REM-3: its Payment Request Form."""
    dedicated = (RemittanceAccount.objects.filter(account_id=account.pk, kind=RemittanceAccount.Kind.DEDICATED)
                 .select_related("issued_by").first())
    if dedicated is None:
        why = ("none issued yet: an account manager can issue one (REM-3)." if account.credit_approved
               else "none: a dedicated account is issued to credit-approved accounts only (CRED-1).")
        return PanelTable(lines=[f"Dedicated remittance account: {why}"])
    form = EMPTY
    if dedicated.status == RemittanceAccount.Status.ACTIVE:
        form = format_html('<a href="{}">Download the Payment Request Form (PDF)</a>', reverse(
            "admin:remittances_remittanceaccount_payment_request_form", args=[dedicated.pk]))
    number = format_html('<a href="{}">{}</a>', reverse("admin:remittances_remittanceaccount_change",
                                                       args=[dedicated.pk]), numbering.format_number(dedicated.number))
    return PanelTable(
        columns=["Number", "Bank", "Currency", "Status", "Issued", "Issued by", "Payment Request Form"],
        rows=[[number, f"{dedicated.bank_name} ({dedicated.bic})", dedicated.currency, dedicated.get_status_display(),
               when(dedicated.issued_at), who(dedicated.issued_by), form]],
    )


def claims_panel(account: Account, now) -> PanelTable:
    claims, more = bounded(
        list(RemittanceClaim.objects.filter(account_id=account.pk)
             .select_related("initiated_by", "reviewed_by", "decided_by").order_by("-submitted_at", "-id")[: LIMIT + 1]),
        LIMIT,
    )
    rows = [
        [format_html('<a href="{}">Claim {}</a>', reverse("admin:remittances_remittanceclaim_change", args=[c.pk]), c.pk),
         money_cell(c.amount, c.currency), c.get_status_display(), c.get_source_display(), when(c.submitted_at),
         c.bank_reference or EMPTY, who(c.reviewed_by), who(c.decided_by), c.note or EMPTY]
        for c in claims
    ]
    return PanelTable(
        columns=["Claim", "Amount", "Status", "Source", "Submitted", "Bank reference", "Reviewed by", "Decided by",
                 "Note"],
        rows=rows, empty="No claim.", see_all_url=changelist("remittanceclaim", account), more=more,
    )


for _panel in (
    AccountPanel("credit", "Credit limit and its history", 45, credit_panel, "remittances.view_creditlimitrequest"),
    AccountPanel("dedicated", "Dedicated remittance account", 47, dedicated_panel,
                 "remittances.view_remittanceaccount"),
    AccountPanel("claims", "Claims for transfers (newest first)", 70, claims_panel, "remittances.view_remittanceclaim"),
):
    register_account_panel(_panel)

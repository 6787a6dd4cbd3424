"""Issue 10 workflow 2, in Chromium: an account manager records a credit application for a
customer found by UID (CRED-1), another account manager approves it (CRED-2), the first issues the
customer's dedicated account after a confirmation page that shows the number to be issued (REM-1)
and downloads the Payment Request Form (REM-3)."""

from __future__ import annotations

import pytest

from remittances import numbering
from remittances.models import CreditLimitRequest, RemittanceAccount
from tests.factories import AccountFactory
from tests.helpers import browser_world
from tests.helpers.browser import choose_account, confirm, fill_field, messages_text, submit_content_form
from tests.helpers.credit import credit_of

CREDIT = "/admin/remittances/creditlimitrequest/"
REMITTANCE_ACCOUNTS = "/admin/remittances/remittanceaccount/"


def record_application(page, base_url, steps, account) -> CreditLimitRequest:
    page.goto(f"{base_url}{CREDIT}add/")
    choose_account(page, "account", account.uid)
    fill_field(page, "requested_limit", "50000.00")
    fill_field(page, "currency", "USD")
    fill_field(page, "justification", "Enterprise contract, monthly invoices by bank transfer.")
    steps.shot(page, "record a credit application")
    submit_content_form(page)
    assert "Recorded credit application" in messages_text(page), page.locator("#content").inner_text()
    steps.shot(page, "application recorded")
    return CreditLimitRequest.objects.get(account=account, source=CreditLimitRequest.Source.STAFF)


def approve_application(page, base_url, steps, application) -> None:
    page.goto(f"{base_url}{CREDIT}{application.pk}/change/")
    steps.shot(page, "application waiting for a decision")
    page.click("#content a.button:has-text('Approve')")
    fill_field(page, "note", "Trade references checked.")
    steps.shot(page, "approve the application")
    submit_content_form(page)
    assert "approved" in messages_text(page).lower()
    steps.shot(page, "application approved")


def issue_dedicated_account(page, base_url, steps, account) -> RemittanceAccount:
    page.goto(f"{base_url}{REMITTANCE_ACCOUNTS}issue/")
    choose_account(page, "account", account.uid)
    steps.shot(page, "issue a dedicated account")
    submit_content_form(page, "Issue dedicated account")
    said = confirm(page, steps, "issue the dedicated account")
    issued = RemittanceAccount.objects.get(account=account, kind=RemittanceAccount.Kind.DEDICATED)
    assert numbering.format_number(issued.number) in said or issued.number in said.replace(" ", "")
    assert "Issued dedicated account" in messages_text(page)
    steps.shot(page, "dedicated account issued")
    return issued


def test_cred_2_rem_3_credit_application_by_uid_approved_by_another_manager_then_account_issued_and_form_downloaded(
    signed_in, base_url, steps
):
    """CRED-1/CRED-2/REM-1/REM-3: recorded by one manager for a customer typed by UID, approved by
    another, the dedicated account issued after confirming, its Payment Request Form a PDF."""
    browser_world.world()
    customer = AccountFactory(name="Contoso Pharmaceuticals GmbH", kind="enterprise", country="DE")
    ann = signed_in(browser_world.manager())
    application = record_application(ann, base_url, steps, customer)
    ann.goto(f"{base_url}{CREDIT}{application.pk}/change/")
    assert "CRED-2" in ann.locator("#content").inner_text()  # the recorder does not decide it

    bob = signed_in(browser_world.manager("bob.manager"))
    approve_application(bob, base_url, steps, application)
    assert credit_of(customer)[:2] == (True, application.requested_limit)

    issued = issue_dedicated_account(ann, base_url, steps, customer)
    with ann.expect_download() as download_info:
        ann.click("#content a:has-text('Download')")
    download = download_info.value
    pdf = download.path().read_bytes()
    assert pdf.startswith(b"%PDF") and download.suggested_filename.endswith(".pdf")
    ann.goto(f"{base_url}{REMITTANCE_ACCOUNTS}{issued.pk}/change/")
    steps.shot(ann, "remittance account with its form")

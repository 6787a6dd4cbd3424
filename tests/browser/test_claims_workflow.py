"""Issue 10 workflow 1, in Chromium: finance uploads a statement and sees its progress and summary;
a claim an account manager initiated and reviewed is approved by finance (CLM-1..3); a staff
member who took part in a claim cannot approve it and is told why (CLM-3)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from payments.models import Account
from remittances.models import BankStatement, RemittanceAccount, RemittanceClaim
from tests.helpers import browser_world
from tests.helpers.browser import choose_account, messages_text, submit_content_form
from tests.helpers.claims import bank_txn, credits_of, shared_account
from tests.helpers.statements import SAMPLES, make_receiving_account
from tests.remittances.samples import build

CLAIMS = "/admin/remittances/remittanceclaim/"
PROGRESS = "[role=progressbar], progress"


def initiate_and_review(page, base_url, steps, txn, account: Account) -> RemittanceClaim:
    """The account manager finds the transfer in the unmatched queue, claims it for the customer
    (by UID) and reviews the claim."""
    page.goto(f"{base_url}/admin/remittances/banktransaction/?status__exact=unmatched")
    steps.shot(page, "unmatched transfers")
    page.click(f"a[href$='/initiate/{txn.pk}/']")
    choose_account(page, "account", account.uid)
    steps.shot(page, "initiate the claim")
    submit_content_form(page)
    assert "initiated" in messages_text(page)
    claim = RemittanceClaim.objects.get(bank_transaction=txn)
    page.click("a.button:has-text('Review')")
    page.fill("textarea[name=note]", "Payer name and invoice number match the customer.")
    steps.shot(page, "review the claim")
    submit_content_form(page)
    assert "reviewed" in messages_text(page)
    steps.shot(page, "claim reviewed")
    claim.refresh_from_db()
    assert claim.status == RemittanceClaim.Status.REVIEWED
    return claim


def approve(page, base_url, claim) -> None:
    page.goto(f"{base_url}{CLAIMS}{claim.pk}/change/")
    page.click("a.button:has-text('Approve')")
    if page.locator("input[name=confirm]").count():
        page.check("input[name=confirm]")


def test_clm_3_finance_approves_a_claim_the_account_manager_initiated_and_reviewed(signed_in, base_url, steps):
    """CLM-1/CLM-3: initiated and reviewed by an account manager, approved by finance: the
    transfer is credited once to the customer."""
    now = timezone.now()
    customer = browser_world.world().account
    txn = bank_txn(now=now, receiving=shared_account(now=now), amount="4321.00", payer_name="NORTHWIND")
    ann = signed_in(browser_world.manager())
    claim = initiate_and_review(ann, base_url, steps, txn, customer)

    fred = signed_in(browser_world.finance())
    fred.goto(f"{base_url}{CLAIMS}?queue=to_approve")
    steps.shot(fred, "finance queue to approve")
    assert fred.locator(f"#result_list a[href*='/{claim.pk}/change/']").count() == 1
    approve(fred, base_url, claim)
    steps.shot(fred, "approve the claim")
    submit_content_form(fred)
    steps.shot(fred, "claim approved")
    assert "approved" in messages_text(fred)
    claim.refresh_from_db()
    assert claim.status == RemittanceClaim.Status.APPROVED
    assert [entry.account_id for entry in credits_of(txn)] == [customer.pk]


def test_clm_3_a_staff_member_cannot_approve_a_claim_they_reviewed_and_is_told_why(signed_in, base_url, steps):
    """CLM-3: whoever reviewed a claim sees no Approve button but the reason; the approve page
    itself shows the reason and offers nothing to press; nothing is credited."""
    now = timezone.now()
    customer = browser_world.world().account
    txn = bank_txn(now=now, receiving=shared_account(now=now), amount="999.00")
    mia = signed_in(browser_world.both_roles())
    claim = initiate_and_review(mia, base_url, steps, txn, customer)

    mia.goto(f"{base_url}{CLAIMS}{claim.pk}/change/")
    steps.shot(mia, "own claim: no approve button")
    assert mia.locator("a.button:has-text('Approve')").count() == 0
    assert "CLM-3" in mia.locator("#content").inner_text()
    mia.goto(f"{base_url}{CLAIMS}{claim.pk}/approve/")
    steps.shot(mia, "approve page refuses")
    assert "CLM-3: you" in mia.locator("#content").inner_text()
    enabled = mia.locator("#content form [type=submit]:not([disabled])")
    assert enabled.count() == 0
    claim.refresh_from_db()
    assert claim.status == RemittanceClaim.Status.REVIEWED and credits_of(txn) == []


def test_rem_4_finance_uploads_a_statement_and_sees_the_progress_and_the_summary(
    signed_in, base_url, steps, eager_tasks
):
    """REM-4 (issue 10): the upload runs as a task; the page shows a progress bar, then the final
    summary, and the summary stays on the statement."""
    now = timezone.now()
    make_receiving_account(number=build.SHARED_IBAN, kind=RemittanceAccount.Kind.NON_DEDICATED, now=now)
    fred = signed_in(browser_world.finance())
    fred.goto(f"{base_url}/admin/remittances/bankstatement/")
    fred.click("#content a:has-text('Import a bank statement')")
    fred.set_input_files("input[name=file]", str(SAMPLES / "camt053_shared_v08.xml"))
    steps.shot(fred, "upload a statement")
    submit_content_form(fred)
    fred.wait_for_selector(PROGRESS, state="attached")
    steps.shot(fred, "progress")
    summary = fred.locator("#job-summary, #statement-summary").first
    summary.wait_for(timeout=30_000)
    steps.shot(fred, "summary")
    statement = BankStatement.objects.get()
    said = summary.inner_text().lower()
    assert "credited" in said and str(statement.summary["unmatched"]) in said, said
    fred.goto(f"{base_url}/admin/remittances/bankstatement/{statement.pk}/change/")
    steps.shot(fred, "summary on the statement")
    assert str(statement.summary["unmatched"]) in fred.locator("#content").inner_text()

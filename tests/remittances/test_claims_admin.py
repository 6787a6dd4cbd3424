"""The claims admin through the test client, as account managers and finance staff (CLM-1..4, SEC-3).

Each step is a custom view; besides the normal path, crafted POSTs by users who do not see the
button (no permission: 403; CLM-3 initiator/reviewer: refused with the rule) change nothing.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from payments.models import LedgerEntry
from payments.services.ledger import account_balance
from remittances.models import BankTransaction, RemittanceClaim
from remittances.services import claims as svc
from tests.helpers.admin import body_of, messages_of
from tests.factories import AccountFactory
from tests.helpers.claims import (
    bank_txn,
    console_claim,
    finance_user,
    manager_user,
    reviewed_claim,
    staff,
    staff_claim,
)

pytestmark = pytest.mark.django_db

Status = RemittanceClaim.Status
TxnStatus = BankTransaction.Status
PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def manager():
    return manager_user("manager")


@pytest.fixture
def finance():
    return finance_user("finance")


@pytest.fixture
def lead():
    """Holds every claim permission: what CLM-3 must stop is exactly this person's own claims."""
    return staff(
        "lead", "view_remittanceclaim", "add_remittanceclaim", "review_remittanceclaim", "approve_remittanceclaim"
    )


def step_url(step: str, pk: int) -> str:
    return reverse(f"admin:remittances_remittanceclaim_{step}", args=[pk])


def change_url(pk: int) -> str:
    return reverse("admin:remittances_remittanceclaim_change", args=[pk])


CHANGELIST = "/admin/remittances/remittanceclaim/"


def as_user(client, user):
    client.force_login(user)
    return client


def snapshot(claim, txn) -> tuple:
    return (
        RemittanceClaim.objects.values().get(pk=claim.pk),
        BankTransaction.objects.values().get(pk=txn.pk),
        LedgerEntry.objects.count(),
    )


# --- queues -----------------------------------------------------------------------------------


def test_clm_1_queues_to_review_waiting_and_to_approve(client, now, manager, finance, lead):
    to_review = console_claim(AccountFactory(), now=now, amount="10.00", reference="R-1")
    bank_txn(now=now, amount="11.00", reference="R-2")
    to_review = console_claim(AccountFactory(), now=now, amount="11.00", reference="R-2")
    waiting = console_claim(AccountFactory(), now=now, amount="12.00", reference="NONE")
    to_approve, _ = reviewed_claim(now=now)
    mine, _ = reviewed_claim(now=now, reviewer=lead)

    def pks(user, query):
        response = as_user(client, user).get(CHANGELIST + query)
        assert response.status_code == 200
        return {c.pk for c in response.context["cl"].result_list}

    assert to_review.pk in pks(manager, "?queue=to_review")
    assert waiting.pk not in pks(manager, "?queue=to_review")
    assert waiting.pk in pks(manager, "?queue=waiting")
    assert pks(finance, "?queue=to_approve") == {to_approve.pk, mine.pk}
    assert pks(lead, "?queue=to_approve") == {to_approve.pk}  # CLM-3: not the one the lead reviewed
    assert pks(finance, "?status__exact=reviewed&source__exact=console&currency=USD") == {to_approve.pk, mine.pk}
    assert to_approve.pk in pks(finance, "?submitted_at__gte=2026-11-26T00:00:00%2B00:00&submitted_at__lt=2026-11-27T00:00:00%2B00:00")
    assert pks(finance, f"?q={to_approve.account.uid}") == {to_approve.pk}
    assert pks(finance, f"?q={to_approve.pk}") >= {to_approve.pk}
    assert pks(finance, f"?q={to_approve.bank_reference}") == {to_approve.pk}


def test_claims_changelist_query_count_does_not_grow_with_rows(client, now, finance):
    for _ in range(3):
        reviewed_claim(now=now)
    as_user(client, finance)
    with CaptureQueriesContext(connection) as few:
        assert client.get(CHANGELIST).status_code == 200
    for _ in range(12):
        reviewed_claim(now=now)
    with CaptureQueriesContext(connection) as many:
        assert client.get(CHANGELIST).status_code == 200
    assert len(many) == len(few)
    assert not any("COUNT(*)" in q["sql"] and "LIMIT" not in q["sql"] for q in many.captured_queries)


def test_sec_3_claims_admin_is_closed_to_staff_without_permissions(client, now):
    claim, _ = reviewed_claim(now=now)
    outsider = staff("outsider")
    as_user(client, outsider)
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(claim.pk)).status_code == 403
    for step in ("review", "approve", "reject", "attach"):
        assert client.post(step_url(step, claim.pk), {"reason": "x", "confirm": "on"}).status_code == 403
    claim.refresh_from_db()
    assert claim.status == Status.REVIEWED


def test_claims_cannot_be_added_edited_or_deleted_through_model_forms(client, now, lead):
    claim, _ = reviewed_claim(now=now)
    as_user(client, lead)
    assert client.get("/admin/remittances/remittanceclaim/add/").status_code == 403
    response = client.post(change_url(claim.pk), {"status": "approved", "amount": "999999.00"})
    assert response.status_code == 403
    delete_url = reverse("admin:remittances_remittanceclaim_delete", args=[claim.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    claim.refresh_from_db()
    assert (claim.status, claim.amount) == (Status.REVIEWED, claim.amount)


# --- change page and buttons --------------------------------------------------------------------


def test_clm_1_change_page_shows_transfer_evidence_suggestions_and_the_right_buttons(client, now, manager, finance):
    account = AccountFactory(name="Acme Trading", uid="5500000000000042")
    txn = bank_txn(now=now, payer_name="ACME TRADING LTD", remittance_info="acct 5500000000000042", reference="R-9")
    proof = SimpleUploadedFile("advice.pdf", PDF, content_type="application/pdf")
    claim = console_claim(account, now=now, amount=str(txn.amount), reference="R-9", proof=proof)

    page = as_user(client, manager).get(change_url(claim.pk)).content.decode()
    assert "acct 5500000000000042" in page and "ACME TRADING LTD" in page
    assert "Download the proof" in page
    assert "Suggested accounts" in page and "account UID 5500000000000042" in page
    assert step_url("review", claim.pk) in page and step_url("reject", claim.pk) in page
    assert step_url("approve", claim.pk) not in page

    page = as_user(client, finance).get(change_url(claim.pk)).content.decode()
    assert step_url("review", claim.pk) not in page and step_url("approve", claim.pk) not in page

    svc.claim_review(claim_id=claim.pk, actor=manager, now=now)
    page = client.get(change_url(claim.pk)).content.decode()
    assert step_url("approve", claim.pk) in page and step_url("reject", claim.pk) in page
    page = as_user(client, manager).get(change_url(claim.pk)).content.decode()
    assert step_url("approve", claim.pk) not in page and step_url("reject", claim.pk) not in page


def test_clm_3_no_approve_or_reject_button_for_the_reviewer_and_crafted_posts_refused(client, now, lead):
    claim, txn = reviewed_claim(now=now, reviewer=lead)
    as_user(client, lead)
    page = client.get(change_url(claim.pk)).content.decode()
    assert step_url("approve", claim.pk) not in page and step_url("reject", claim.pk) not in page
    assert "CLM-3" in page
    before = snapshot(claim, txn)
    response = client.post(step_url("approve", claim.pk), {"confirm": "on"})
    assert response.status_code == 302
    assert any("CLM-3" in m for m in messages_of(response))
    response = client.post(step_url("reject", claim.pk), {"reason": "mine"})
    assert any("CLM-3" in m for m in messages_of(response))
    assert snapshot(claim, txn) == before


def test_clm_3_initiator_sees_no_approve_button_and_a_crafted_post_is_refused(client, now, lead, manager):
    txn = bank_txn(now=now)
    claim = staff_claim(AccountFactory(), txn, by=lead, now=now)
    claim = svc.claim_review(claim_id=claim.pk, actor=manager, now=now)
    as_user(client, lead)
    assert step_url("approve", claim.pk) not in client.get(change_url(claim.pk)).content.decode()
    assert "CLM-3" in client.get(step_url("approve", claim.pk)).content.decode()  # the form is withheld
    before = snapshot(claim, txn)
    response = client.post(step_url("approve", claim.pk), {"confirm": "on"})
    assert [m for m in messages_of(response) if "CLM-3" in m and f"Claim #{claim.pk}" in m]
    assert snapshot(claim, txn) == before


def test_sec_3_account_manager_crafting_an_approval_gets_403_and_nothing_changes(client, now, manager):
    claim, txn = reviewed_claim(now=now)
    before = snapshot(claim, txn)
    as_user(client, manager)
    assert client.post(step_url("approve", claim.pk), {"confirm": "on"}).status_code == 403
    assert snapshot(claim, txn) == before


def test_sec_3_finance_crafting_a_review_gets_403(client, now, finance):
    txn = bank_txn(now=now)
    claim = console_claim(AccountFactory(), now=now, amount=str(txn.amount), reference=txn.bank_reference)
    before = snapshot(claim, txn)
    assert as_user(client, finance).post(step_url("review", claim.pk), {"note": "ok"}).status_code == 403
    assert snapshot(claim, txn) == before


# --- the steps -------------------------------------------------------------------------------------


def test_clm_1_review_then_approve_through_the_admin_credits_once(client, now, manager, finance):
    txn = bank_txn(now=now, amount="640.00", reference="R-77")
    claim = console_claim(AccountFactory(), now=now, amount="640.00", reference="R-77")

    as_user(client, manager)
    assert client.get(step_url("review", claim.pk)).status_code == 200
    response = client.post(step_url("review", claim.pk), {"note": "Invoice matches"})
    assert response.status_code == 302 and response["Location"] == change_url(claim.pk)
    claim.refresh_from_db()
    assert (claim.status, claim.reviewed_by, claim.note) == (Status.REVIEWED, manager, "Invoice matches")

    as_user(client, finance)
    response = client.post(step_url("approve", claim.pk), {})  # the confirmation box is required
    assert response.status_code == 200
    claim.refresh_from_db()
    assert claim.status == Status.REVIEWED
    response = client.post(step_url("approve", claim.pk), {"confirm": "on"})
    assert response.status_code == 302
    assert any("approved" in m for m in messages_of(response))
    claim.refresh_from_db()
    txn.refresh_from_db()
    assert (claim.status, claim.decided_by, txn.status) == (Status.APPROVED, finance, TxnStatus.CREDITED)
    client.post(step_url("approve", claim.pk), {"confirm": "on"})  # a second click
    assert account_balance(account_id=claim.account_id, currency="USD") == txn.amount
    assert LedgerEntry.objects.count() == 1


def test_clm_2_admin_approval_of_an_already_credited_transfer_shows_the_rule(client, now, finance):
    from payments.services.ledger import ledger_post
    from remittances.models import bank_transaction_ledger_reference

    claim, txn = reviewed_claim(now=now)
    ledger_post(
        account_id=AccountFactory().pk, amount=txn.amount, currency="USD", kind=LedgerEntry.Kind.REMITTANCE_CREDIT,
        reference=bank_transaction_ledger_reference(txn.pk), now=now,
    )
    before = snapshot(claim, txn)
    response = as_user(client, finance).post(step_url("approve", claim.pk), {"confirm": "on"})
    assert any("CLM-2" in m for m in messages_of(response))
    assert snapshot(claim, txn) == before


def test_clm_4_reject_through_the_admin_needs_a_reason_and_frees_the_transfer(client, now, finance):
    claim, txn = reviewed_claim(now=now)
    as_user(client, finance)
    response = client.post(step_url("reject", claim.pk), {"reason": ""})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    claim.refresh_from_db()
    assert claim.status == Status.REVIEWED
    response = client.post(step_url("reject", claim.pk), {"reason": "<b>Wrong</b> customer"})
    assert response.status_code == 302
    claim.refresh_from_db()
    txn.refresh_from_db()
    assert (claim.status, claim.note, txn.status) == (Status.REJECTED, "<b>Wrong</b> customer", TxnStatus.UNMATCHED)
    assert not LedgerEntry.objects.exists()
    page = client.get(change_url(claim.pk)).content.decode()
    assert "&lt;b&gt;Wrong&lt;/b&gt;" in page and "<b>Wrong</b>" not in page  # escaped


def test_clm_1_attach_a_transfer_to_a_waiting_claim(client, now, manager):
    claim = console_claim(AccountFactory(), now=now, amount="88.00", reference="TYPO")
    txn = bank_txn(now=now, amount="88.00", reference="REAL", payer_name="Initech")
    as_user(client, manager)
    page = client.get(change_url(claim.pk)).content.decode()
    assert step_url("attach", claim.pk) in page and step_url("review", claim.pk) not in page
    page = client.get(step_url("attach", claim.pk)).content.decode()
    assert "Initech" in page  # the candidates with the same amount and currency
    response = client.post(step_url("attach", claim.pk), {"bank_transaction": str(txn.pk)})
    assert response.status_code == 302
    claim.refresh_from_db()
    assert claim.bank_transaction_id == txn.pk
    other = bank_txn(now=now, amount="88.00")
    response = client.post(step_url("attach", claim.pk), {"bank_transaction": str(other.pk)})
    assert any("CLM-1" in m for m in messages_of(response))
    other.refresh_from_db()
    assert other.status == TxnStatus.UNMATCHED


def test_claim_proof_download_is_permission_checked(client, now, finance):
    proof = SimpleUploadedFile("advice.pdf", PDF, content_type="application/pdf")
    claim = console_claim(AccountFactory(), now=now, amount="5.00", proof=proof)
    response = as_user(client, finance).get(step_url("proof", claim.pk))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert b"".join(response.streaming_content) == PDF
    assert as_user(client, staff("outsider")).get(step_url("proof", claim.pk)).status_code == 403
    no_proof = console_claim(AccountFactory(), now=now, amount="5.00")
    assert as_user(client, finance).get(step_url("proof", no_proof.pk)).status_code == 404


# --- initiate from an unmatched transaction ----------------------------------------------------------


def test_clm_1_manager_initiates_a_claim_from_an_unmatched_transaction_with_suggestions(client, now, manager):
    likely = AccountFactory(name="Globex Corporation")
    txn = bank_txn(now=now, amount="310.00", payer_name="GLOBEX CORP")
    as_user(client, manager)
    page = client.get(reverse("admin:remittances_remittanceclaim_initiate", args=[txn.pk])).content.decode()
    assert "Globex Corporation" in page and "payer name" in page
    proof = SimpleUploadedFile("advice.pdf", PDF, content_type="application/pdf")
    response = client.post(
        reverse("admin:remittances_remittanceclaim_initiate", args=[txn.pk]), {"suggested": likely.uid, "proof": proof}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    claim = RemittanceClaim.objects.get()
    txn.refresh_from_db()
    assert (claim.account, claim.source, claim.initiated_by, claim.amount) == (likely, "staff", manager, txn.amount)
    assert claim.proof and txn.status == TxnStatus.CLAIMED
    assert response["Location"] == change_url(claim.pk)


def test_clm_1_initiate_by_typed_account_uid_and_refusals(client, now, manager, finance):
    target = AccountFactory()
    txn = bank_txn(now=now)
    initiate = reverse("admin:remittances_remittanceclaim_initiate", args=[txn.pk])
    assert as_user(client, finance).get(initiate).status_code == 403  # finance does not initiate
    as_user(client, manager)
    response = client.post(initiate, {"account": "no-such-account"})
    assert response.status_code == 200 and "No account" in response.content.decode()
    assert client.post(initiate, {"account": target.uid}).status_code == 302
    # CLM-2: the transaction is claimed now; a second initiation is refused with the rule.
    page = client.get(initiate).content.decode()
    assert "CLM-2" in page
    response = client.post(initiate, {"account": str(AccountFactory().pk)})
    assert any("CLM-2" in m for m in messages_of(response))
    assert RemittanceClaim.objects.count() == 1


def test_clm_1_initiate_refuses_a_bad_proof_file(client, now, manager):
    txn = bank_txn(now=now)
    proof = SimpleUploadedFile("x.pdf", b"<script>", content_type="application/pdf")
    response = as_user(client, manager).post(
        reverse("admin:remittances_remittanceclaim_initiate", args=[txn.pk]),
        {"account": AccountFactory().uid, "proof": proof},
    )
    assert any("not a application/pdf file" in m for m in messages_of(response))
    txn.refresh_from_db()
    assert txn.status == TxnStatus.UNMATCHED and not RemittanceClaim.objects.exists()


# --- export ------------------------------------------------------------------------------------------


def test_claims_csv_export_neutralises_formula_cells_and_needs_view_permission(client, now, finance):
    from remittances.admin.claims import RemittanceClaimResource

    claim = console_claim(
        AccountFactory(name="Acme"), now=now, amount="9.99", reference="=HYPERLINK(\"http://evil.invalid\",\"x\")",
        payer_name="+cmd|' /C calc'!A0",
    )
    fields = {f"remittanceclaimresource_{name}": "on" for name in RemittanceClaimResource().get_export_order()}
    url = reverse("admin:remittances_remittanceclaim_export")
    response = as_user(client, finance).post(url, {"format": "0", "resource": "0", **fields})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = body_of(response).decode("utf-8")
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text and "'+cmd" in text
    assert f"{claim.pk}," in text and "9.99" in text and claim.account.uid in text
    assert as_user(client, staff("outsider")).get(url).status_code == 403

"""Issue 10, safe actions on claims and credit applications: the decision a user may not take is
shown disabled with its reason (CLM-3, CRED-2), the approve page shows what approving credits and
the balance after before anything is done (CLM-1), and each decision is written to the admin's
LogEntry (Recent actions, the object's History)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from payments.services.ledger import account_balance
from remittances.models import CreditLimitRequest, RemittanceClaim
from remittances.services import credit as credit_services
from tests.factories import AccountFactory, LedgerEntryFactory
from tests.helpers.claims import finance_user, reviewed_claim, staff

pytestmark = pytest.mark.django_db


def entries_of(obj) -> list[str]:
    return [e.get_change_message() for e in LogEntry.objects.filter(
        object_id=str(obj.pk), content_type__model=obj._meta.model_name)]


def test_clm_3_the_reviewer_with_approval_rights_sees_approve_disabled_with_the_reason(client, now):
    lead = staff("lead", "view_remittanceclaim", "review_remittanceclaim", "approve_remittanceclaim")
    claim, _ = reviewed_claim(now=now, reviewer=lead)
    client.force_login(lead)
    body = client.get(reverse("admin:remittances_remittanceclaim_change", args=[claim.pk])).content.decode()
    assert 'aria-disabled="true" title="CLM-3: you reviewed this claim' in body and ">Approve</span>" in body
    assert reverse("admin:remittances_remittanceclaim_approve", args=[claim.pk]) not in body
    approve_page = client.get(reverse("admin:remittances_remittanceclaim_approve", args=[claim.pk])).content.decode()
    assert "CLM-3: you reviewed this claim" in approve_page and "disabled" in approve_page


def test_clm_1_the_approve_page_shows_the_credit_and_the_balance_after_and_changes_nothing(client, now):
    account = AccountFactory()
    LedgerEntryFactory(account=account, amount=Decimal("100.00"))
    claim, txn = reviewed_claim(now=now, account=account)
    client.force_login(finance_user("fin"))
    page = client.get(reverse("admin:remittances_remittanceclaim_approve", args=[claim.pk])).content.decode()
    assert "1,200.00 USD" in page and "100.00 USD" in page and "1,300.00 USD" in page
    assert "Confirm: approve and credit" in page
    claim.refresh_from_db()
    assert claim.status == RemittanceClaim.Status.REVIEWED
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("100.00")


def test_clm_2_approving_writes_a_log_entry_and_a_second_submit_credits_nothing_more(client, now):
    account = AccountFactory()
    claim, txn = reviewed_claim(now=now, account=account)
    client.force_login(finance_user("fin"))
    url = reverse("admin:remittances_remittanceclaim_approve", args=[claim.pk])
    client.post(url, {"confirm": "on"})
    client.post(url, {"confirm": "on"})  # double submit: the service refuses the second
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("1200.00")
    assert entries_of(claim) == [f"Claim #{claim.pk} approved; the transfer is credited to the account."]


def test_clm_4_rejecting_logs_the_reason(client, now):
    claim, _ = reviewed_claim(now=now)
    client.force_login(finance_user("fin"))
    client.post(reverse("admin:remittances_remittanceclaim_reject", args=[claim.pk]), {"reason": "Wrong payer"})
    claim.refresh_from_db()
    assert claim.status == RemittanceClaim.Status.REJECTED
    [entry] = entries_of(claim)
    assert "rejected" in entry and "Reason: Wrong payer" in entry


def test_cred_2_a_decision_is_logged_with_its_note(client, now):
    from tests.helpers.roles import in_group

    recorder, approver = in_group("Account managers", "am_a"), in_group("Account managers", "am_b")
    application = credit_services.credit_request_submit(
        account_id=AccountFactory().pk, requested_limit=Decimal("900.00"), currency="USD", justification="x",
        source=CreditLimitRequest.Source.STAFF, recorded_by=recorder, now=now,
    )
    client.force_login(approver)
    client.post(reverse("admin:remittances_creditlimitrequest_approve", args=[application.pk]), {"note": "References ok"})
    application.refresh_from_db()
    assert application.status == CreditLimitRequest.Status.APPROVED
    [entry] = entries_of(application)
    assert "approved" in entry and "Reason: References ok" in entry

"""Issue 10, "one customer, one page": the account page tells the whole story in bounded panels,
as the real roles see it, at a fixed number of queries; a bill's page lists its charge attempts
and payments."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from payments import account_story
from payments.models import Bill, Charge, LedgerEntry, PaymentMethod, ThreeDSChallenge
from payments.services import ledger_post
from remittances.models import CreditLimitRequest, RemittanceClaim
from tests.factories import (
    AccountFactory,
    BillFactory,
    CardMethodFactory,
    ChallengeFactory,
    ChargeFactory,
    CreditLimitRequestFactory,
    DedicatedRemittanceAccountFactory,
    HoldFactory,
    LedgerEntryFactory,
    LinkAttemptFactory,
    PayPalMethodFactory,
    RemittanceClaimFactory,
)

pytestmark = pytest.mark.django_db


def page_of(client, account) -> str:
    response = client.get(reverse("admin:payments_account_change", args=[account.pk]))
    assert response.status_code == 200
    return response.content.decode()


def panel(html: str, key: str) -> str:
    """The HTML of one panel of the page."""
    match = re.search(rf'<section[^>]*id="panel-{key}".*?</section>', html, re.S)
    assert match, f"no panel {key}"
    return match.group(0)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- region and methods ----------------------------------------------------------------------


def test_elig_1_elig_2_region_panel_says_what_an_eu_account_may_link_and_why_not_the_rest(as_role):
    account = AccountFactory(country="DE")
    shown = text(panel(page_of(as_role("manager"), account), "region"))
    assert "Region: European Union, from the registration country Germany (DE) (ELIG-1)" in shown
    assert "Visa cards yes offered in European Union (ELIG-2)" in shown
    assert "JCB cards no not offered in European Union (ELIG-2)" in shown
    assert "PayPal no not offered in European Union (ELIG-2)" in shown
    assert "(ELIG-3)" in shown and "(ELIG-4)" in shown and "(ELIG-5)" in shown and "(ELIG-6)" in shown
    assert "Every card link needs a completed 3-D Secure challenge here (LINK-5)" in shown


def test_elig_2_region_offers_follow_the_eligibility_table():
    offers = {o.method: o.allowed for o in account_story.region_offers("MY")}
    assert offers["American Express cards"] is False and offers["Visa cards"] is True and offers["PayPal"] is False
    offers = {o.method: o.allowed for o in account_story.region_offers("OTHER")}
    assert offers["JCB cards"] is True and offers["PayPal"] is True
    assert "only when the risk check" in account_story.region_note("US")


def test_link_5_an_eu_card_waiting_for_3ds_shows_the_challenge_sent_and_expiry(as_role, now):
    """The H6 browser test reads this wording: "Waiting for 3-D Secure", "sent", "expires"."""
    account = AccountFactory(country="FR")
    card = CardMethodFactory(account=account, status=PaymentMethod.Status.PENDING, number="4000000000003220")
    challenge = ChallengeFactory(payment_method=card, created_at=now - timedelta(minutes=5))
    shown = text(panel(page_of(as_role("manager"), account), "methods"))
    assert "•••• 3220" in shown and "Pending verification" in shown
    assert "Waiting for 3-D Secure: the card is not usable until the cardholder completes it (LINK-5)." in shown
    assert f"Challenge {challenge.pk} (Required in the region (EU, Malaysia)): sent" in shown
    assert "expires" in shown
    assert reverse("admin:payments_threedschallenge_change", args=[challenge.pk]) in page_of(as_role("manager"), account)


def test_link_5_a_completed_challenge_is_not_shown_as_waiting(as_role, now):
    account = AccountFactory(country="FR")
    card = CardMethodFactory(account=account, is_default=True)
    ChallengeFactory(payment_method=card, status=ThreeDSChallenge.Status.SUCCEEDED)
    shown = text(panel(page_of(as_role("manager"), account), "methods"))
    assert "Waiting for 3-D Secure" not in shown
    assert "Active: the default method" in shown


def test_link_6_pay_6_method_reasons_in_words(as_role):
    account = AccountFactory(country="GB", credit_approved=True, credit_limit=Decimal("5000.00"))
    PayPalMethodFactory(account=account, status=PaymentMethod.Status.PENDING,
                        agreement_state=PaymentMethod.AgreementState.NOT_APPROVED)
    CardMethodFactory(account=account, status=PaymentMethod.Status.FAILED, failure_reason="three_ds_not_completed")
    CardMethodFactory(account=account)
    shown = text(panel(page_of(as_role("finance"), account), "methods"))
    assert "Agreement not approved: the customer has not approved the billing agreement on PayPal (LINK-6)" in shown
    assert "Failed: 3-D Secure not completed." in shown
    assert "not used for automatic payments: the account pays by bank transfer (PAY-6)" in shown


# --- holds, bills, charges, balance, ledger, audit ----------------------------------------------


def test_pay_5_cred_3_bills_and_charges_panels_show_overdue_and_failure_reasons_in_words(as_role, now):
    account = AccountFactory()
    overdue = BillFactory(account=account, status=Bill.Status.OVERDUE, issued_at=now - timedelta(days=60),
                          due_date=(now - timedelta(days=30)).date(), reference="bill-overdue-1")
    BillFactory(account=account, status=Bill.Status.PAID, amount_paid=Decimal("100.00"), reference="bill-paid-1")
    ChargeFactory(account=account, bill=overdue, status=Charge.Status.FAILED, failure_reason="three_ds_not_completed",
                  failure_rule="PAY-5", completed_at=now)
    html = page_of(as_role("manager"), account)
    bills = text(panel(html, "bills"))
    assert "bill-overdue-1 Overdue 100.00 USD 100.00 USD" in bills and "bill-paid-1" not in bills
    charges = text(panel(html, "charges"))
    assert "3-D Secure not completed (PAY-5)" in charges and "three_ds_not_completed" not in charges
    assert "bill-overdue-1" in charges


def test_sec_4_balance_per_currency_and_ledger_panels(as_role, now):
    account = AccountFactory()
    LedgerEntryFactory(account=account, amount=Decimal("1250.00"), currency="USD", reference="credit-usd-1")
    LedgerEntryFactory(account=account, amount=Decimal("80.00"), currency="EUR", reference="credit-eur-1")
    html = page_of(as_role("finance"), account)
    balances = text(panel(html, "balances"))
    assert "EUR +80.00 EUR" in balances and "USD +1,250.00 USD" in balances
    assert "credit-usd-1" in text(panel(html, "ledger"))


def test_hold_2_holds_panel_lists_the_account_holds(as_role):
    card = CardMethodFactory()
    HoldFactory(payment_method=card)
    shown = text(panel(page_of(as_role("manager"), card.account), "holds"))
    assert "1.00 USD" in shown and "Placed" in shown and f"•••• {card.last4}" in shown


def test_sec_2_audit_panel_shows_who_changed_the_account(client, superuser):
    account = AccountFactory(name="Before")
    client.force_login(superuser)
    client.post(reverse("admin:payments_account_change", args=[account.pk]),
                {"name": "After", "email": account.email, "account_manager": ""})
    shown = text(panel(page_of(client, account), "audit"))
    assert "name: Before → After" in shown and "root" in shown
    assert "created" in shown and "paypal charge threshold" not in shown  # a creation is not every field again
    assert reverse("admin:payments_account_history", args=[account.pk]) in page_of(client, account)


# --- remittances panels, registered from the remittances app ------------------------------------


def test_cred_1_cred_2_credit_panel_shows_the_limit_and_its_history(as_role, manager, now):
    account = AccountFactory(credit_approved=True, credit_limit=Decimal("50000.00"))
    CreditLimitRequestFactory(account=account, status=CreditLimitRequest.Status.APPROVED, decided_by=manager,
                              decided_at=now, requested_limit=Decimal("50000.00"), decision_note="good payer")
    CreditLimitRequestFactory(account=account, requested_limit=Decimal("80000.00"))
    shown = text(panel(page_of(as_role("finance"), account), "credit"))
    assert "Credit approved: limit 50,000.00 USD" in shown
    assert "50,000.00 USD Approved" in shown and "good payer" in shown and "80,000.00 USD Submitted" in shown


def test_rem_1_rem_3_dedicated_account_panel_links_the_payment_request_form(as_role):
    account = AccountFactory(credit_approved=True, credit_limit=Decimal("1000.00"))
    dedicated = DedicatedRemittanceAccountFactory(account=account)
    html = panel(page_of(as_role("manager"), account), "dedicated")
    assert reverse("admin:remittances_remittanceaccount_payment_request_form", args=[dedicated.pk]) in html
    other = AccountFactory()
    assert "issued to credit-approved accounts only (CRED-1)" in text(panel(page_of(as_role("manager"), other), "dedicated"))


def test_clm_1_claims_panel_lists_the_account_claims(as_role):
    account = AccountFactory()
    claim = RemittanceClaimFactory(account=account, status=RemittanceClaim.Status.SUBMITTED, bank_reference="REF-77")
    shown = text(panel(page_of(as_role("manager"), account), "claims"))
    assert f"Claim {claim.pk} 1,200.00 USD Submitted" in shown and "REF-77" in shown


# --- bounded panels and the query budget --------------------------------------------------------


def test_link_7_panels_are_bounded_with_a_see_all_link_to_the_filtered_list(as_role, now):
    account = AccountFactory()
    for n in range(12):
        BillFactory(account=account, issued_at=now - timedelta(days=40 - n), reference=f"bill-many-{n:02d}")
    html = page_of(as_role("manager"), account)
    bills = panel(html, "bills")
    assert "bill-many-00" in bills and "bill-many-09" in bills and "bill-many-10" not in bills  # oldest first
    assert f"account__id__exact={account.pk}&amp;status__in=open,partially_paid,overdue" in bills
    listed = as_role("manager").get(
        reverse("admin:payments_bill_changelist"),
        {"account__id__exact": account.pk, "status__in": "open,partially_paid,overdue"},
    )
    assert listed.status_code == 200 and len(listed.context["cl"].result_list) == 12


def fill(account, n: int, now) -> None:
    """``n`` of everything the page shows."""
    for i in range(n):
        card = CardMethodFactory(account=account, status=PaymentMethod.Status.PENDING)
        ChallengeFactory(payment_method=card)
        HoldFactory(payment_method=card)
        bill = BillFactory(account=account, reference=f"bill-q-{account.pk}-{i}")
        ChargeFactory(account=account, payment_method=card, bill=bill, status=Charge.Status.FAILED,
                      failure_reason="issuer_declined", completed_at=now)
        LinkAttemptFactory(account=account)
        RemittanceClaimFactory(account=account)
        ledger_post(account_id=account.pk, amount=Decimal("10.00"), currency="USD",
                    kind=LedgerEntry.Kind.ADJUSTMENT, reference=f"q-{account.pk}-{i}", now=now)
    CreditLimitRequestFactory(account=account)


def queries_of(client, account) -> int:
    with CaptureQueriesContext(connection) as queries:
        page_of(client, account)
    return len(queries.captured_queries)


@pytest.mark.parametrize("role", ["manager", "finance"])
def test_sec_3_account_page_costs_a_fixed_number_of_queries(as_role, role, now, django_assert_max_num_queries):
    """QUALITY.md budgets: the same number of queries for 2 or 25 of everything."""
    client = as_role(role)
    few, many = AccountFactory(), AccountFactory()
    fill(few, 2, now)
    fill(many, 25, now)
    page_of(client, few)  # warm the permission and content-type caches
    assert queries_of(client, few) == queries_of(client, many)
    with django_assert_max_num_queries(24):
        page_of(client, many)


# --- the bill page ---------------------------------------------------------------------------------


def test_pay_5_set_3_bill_page_lists_its_charge_attempts_and_payments(as_role, finance, now):
    account = AccountFactory(auto_settlement_enabled=False)
    bill = BillFactory(account=account, total=Decimal("40.00"), reference="bill-page-1")
    ChargeFactory(account=account, bill=bill, status=Charge.Status.FAILED, failure_reason="issuer_declined",
                  failure_rule="PAY-5", failure_detail="do not honour", completed_at=now)
    LedgerEntryFactory(account=account, amount=Decimal("100.00"))
    from payments.services.bills import bill_pay_manual

    bill_pay_manual(bill_id=bill.pk, actor=finance, now=now)
    client = as_role("finance")
    response = client.get(reverse("admin:payments_bill_change", args=[bill.pk]))
    shown = text(response.content.decode())
    assert "Issuer declined (PAY-5): do not honour" in shown
    assert "40.00 USD" in shown and f"settle:{bill.pk}:" in shown and "finance" in shown


def test_pay_1_bill_page_queries_do_not_grow_with_its_charges(as_role, now):
    client = as_role("finance")
    bills = []
    for n in (1, 15):
        bill = BillFactory(reference=f"bill-grow-{n}")
        for _ in range(n):
            ChargeFactory(account=bill.account, bill=bill)
        bills.append(bill)
    counts = []
    for bill in bills:
        client.get(reverse("admin:payments_bill_change", args=[bill.pk]))
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("admin:payments_bill_change", args=[bill.pk])).status_code == 200
        counts.append(len(queries.captured_queries))
    assert counts[0] == counts[1]

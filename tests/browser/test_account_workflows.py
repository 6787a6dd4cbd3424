"""Issue 10 workflows 3 and 4, in Chromium.

3. An account manager opens an EU customer whose card waits for 3-D Secure and sees why (the
   challenge, when it was sent, when it expires), then tries to remove a method that cannot be
   removed and is told why (DEL-3) on the confirmation page, before confirming anything.
4. Finance pays a bill from the balance for an account with automatic settlement off (SET-3): the
   confirmation page shows the amount and the balance after; confirming pays the bill.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from payments.models import Bill, PaymentMethod
from payments.services.ledger import account_balance
from tests.factories import AccountFactory, BillFactory, CardMethodFactory, LedgerEntryFactory
from tests.helpers import browser_world
from tests.helpers.browser import confirm, run_action

ACCOUNTS = "/admin/payments/account/"
METHODS = "/admin/payments/paymentmethod/"
BILLS = "/admin/payments/bill/"


def eu_customer_with_one_card():
    """The EU customer of the world: a card waiting for 3-D Secure, and one active card while a
    bill is unpaid (DEL-3 keeps it)."""
    eu = browser_world.world().eu_account
    only_card = CardMethodFactory(account=eu, billing_country="SE", issuing_country="SE")
    BillFactory(account=eu, total=Decimal("240.00"), issued_at=timezone.now() - timedelta(days=3))
    return eu, only_card


def test_link_5_eu_customer_page_explains_the_card_waiting_for_3_d_secure(signed_in, base_url, steps):
    """LINK-5 (EU region): the account page says the card waits for 3-D Secure and shows the
    challenge, when it was sent and when it expires."""
    eu, _ = eu_customer_with_one_card()
    ann = signed_in(browser_world.manager())
    ann.goto(f"{base_url}{ACCOUNTS}{eu.pk}/change/")
    steps.shot(ann, "EU customer's page")
    story = ann.locator("#content").inner_text()
    assert "European Union" in story
    assert "3-D Secure" in story and "challenge" in story.lower()
    assert "sent" in story.lower() and "expires" in story.lower()


def test_del_3_removing_a_method_that_cannot_be_removed_is_refused_before_confirming(signed_in, base_url, steps):
    """DEL-3: removing the only active card of an account that owes money is refused, with the
    rule, on the confirmation page, whose Confirm cannot be pressed; the card stays."""
    eu, only_card = eu_customer_with_one_card()
    ann = signed_in(browser_world.manager())
    ann.goto(f"{base_url}{METHODS}?q={eu.uid}")
    run_action(ann, "Remove", [only_card.pk])
    steps.shot(ann, "remove: told why before confirming")
    page_text = ann.locator("#content").inner_text()
    assert "DEL-3" in page_text and "Confirm" in page_text
    assert ann.locator("#content form [type=submit]:not([disabled])", has_text="Confirm").count() == 0
    only_card.refresh_from_db()
    assert only_card.status == PaymentMethod.Status.ACTIVE


def test_set_3_finance_pays_a_bill_from_the_balance_after_seeing_amount_and_balance_after(
    signed_in, base_url, steps
):
    """SET-3: for an account with automatic settlement off, finance selects the bill, sees the
    amount and the balance after on the confirmation page, confirms, and the bill is paid."""
    browser_world.world()
    account = AccountFactory(name="Fabrikam Logistics", kind="enterprise", auto_settlement_enabled=False)
    LedgerEntryFactory(account=account, amount=Decimal("500.00"))
    bill = BillFactory(account=account, total=Decimal("120.00"), issued_at=timezone.now() - timedelta(days=2))
    fred = signed_in(browser_world.finance())

    fred.goto(f"{base_url}{BILLS}?q={account.uid}")
    steps.shot(fred, "the account's bills")
    run_action(fred, "Pay from balance", [bill.pk])
    said = confirm(fred, steps, "pay from balance")
    assert "120.00" in said and "380.00" in said, said
    steps.shot(fred, "bill paid")
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("380.00")

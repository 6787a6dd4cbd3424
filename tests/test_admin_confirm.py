"""Issue 10, safe actions: the confirmation page of irreversible or money-moving admin actions
(``billing_backoffice/admin_confirm.py``, ``templates/admin/confirm_action.html``).

The page shows what will happen and changes nothing; Confirm runs the service once (a second
submit of the same page does nothing); a stale page is shown again; a refusal names its rule and
the Confirm button is disabled; a crafted confirm still goes through the service's checks; each
success is written to the admin's LogEntry with the reason.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.utils import timezone

from payments.models import Account, Bill, LedgerEntry, PaymentMethod
from payments.services.ledger import account_balance
from tests.factories import AccountFactory, BillFactory, CardMethodFactory, LedgerEntryFactory
from tests.helpers.admin import messages_of
from tests.helpers.roles import action_page, confirm_post

pytestmark = pytest.mark.django_db

D = Decimal
DISABLED_CONFIRM = '<button type="submit" class="default" disabled aria-disabled="true"'


def log_of(obj) -> list[LogEntry]:
    return list(LogEntry.objects.filter(object_id=str(obj.pk), content_type__model=obj._meta.model_name))


# --- removing a payment method (DEL-*) -------------------------------------------------------------


def two_cards():
    account = AccountFactory()
    default = CardMethodFactory(account=account, is_default=True)
    other = CardMethodFactory(account=account)
    return default, other


def test_del_1_removal_confirmation_shows_what_happens_and_changes_nothing(as_role):
    _, other = two_cards()
    page = action_page(as_role("manager"), "paymentmethod", "remove_selected", [other.pk])
    body = page.content.decode()
    assert page.status_code == 200 and page.templates[0].name == "admin/confirm_action.html"
    assert other.masked in body and "Active -&gt; Removed" in body and ">Confirm</button>" in body
    assert DISABLED_CONFIRM not in body
    other.refresh_from_db()
    assert other.status == PaymentMethod.Status.ACTIVE and other.removed_at is None
    assert log_of(other) == []


def test_del_1_confirming_removes_once_logs_the_reason_and_a_second_submit_does_nothing(as_role):
    _, other = two_cards()
    client = as_role("manager")
    page = action_page(client, "paymentmethod", "remove_selected", [other.pk])
    done = confirm_post(client, page, reason="Customer asked by phone")
    assert done.status_code == 302 and "Removed 1 payment method(s)." in messages_of(done)
    other.refresh_from_db()
    assert other.status == PaymentMethod.Status.REMOVED
    [entry] = log_of(other)
    assert entry.action_flag == CHANGE and entry.user.username == "manager"
    assert "Removed (unlinked)" in entry.get_change_message() and "Customer asked by phone" in entry.get_change_message()
    again = confirm_post(client, page, reason="Customer asked by phone")  # the same page, submitted twice
    assert any("already used" in m for m in messages_of(again))
    assert len(log_of(other)) == 1


def test_del_2_removal_of_the_default_is_refused_on_the_page_with_its_rule_and_confirm_disabled(as_role):
    default, _ = two_cards()
    page = action_page(as_role("manager"), "paymentmethod", "remove_selected", [default.pk])
    body = page.content.decode()
    assert "DEL-2: This is the default payment method" in body and DISABLED_CONFIRM in body
    default.refresh_from_db()
    assert default.status == PaymentMethod.Status.ACTIVE


def test_del_3_a_crafted_confirm_of_a_refused_removal_is_refused_by_the_service(as_role):
    """DEL-3: the disabled Confirm is no bypass: a POST that confirms anyway meets the service's check."""
    account = AccountFactory(has_running_resources=True)
    only = CardMethodFactory(account=account, is_default=True)
    client = as_role("manager")
    page = action_page(client, "paymentmethod", "remove_selected", [only.pk])
    assert "DEL-3: This is the only active payment method" in page.content.decode()
    assert DISABLED_CONFIRM in page.content.decode()
    response = confirm_post(client, page)
    assert any("DEL-3" in m for m in messages_of(response))
    only.refresh_from_db()
    assert only.status == PaymentMethod.Status.ACTIVE and log_of(only) == []


# --- deactivating an account (LIFE/LINK-2, DEL-3) -------------------------------------------------


def test_link_2_deactivation_confirmation_shows_the_silent_period_end_and_changes_nothing(as_role):
    account = AccountFactory()
    page = action_page(as_role("manager"), "account", "deactivate_selected", [account.pk])
    body = page.content.decode()
    ends = timezone.now() + timezone.timedelta(days=15)
    assert "Silent period ends" in body and f"{ends:%Y-%m-%d}" in body and "Active -&gt; Deactivated" in body
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE and account.deactivated_at is None


def test_del_3_deactivating_an_account_that_owes_is_refused_on_the_page(as_role):
    account = AccountFactory()
    BillFactory(account=account)
    page = action_page(as_role("manager"), "account", "deactivate_selected", [account.pk])
    body = page.content.decode()
    assert "DEL-3" in body and "cannot be deactivated" in body and DISABLED_CONFIRM in body
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE


# --- pay from balance (SET-2, SET-3) --------------------------------------------------------------


def settlement_off_with(balance: str, *totals: str):
    account = AccountFactory(kind="enterprise", auto_settlement_enabled=False)
    LedgerEntryFactory(account=account, amount=D(balance))
    now = timezone.now()
    bills = [
        BillFactory(account=account, total=D(total), issued_at=now - timezone.timedelta(days=10 - i))
        for i, total in enumerate(totals)
    ]
    return account, bills


def payments_of(account) -> int:
    return LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.BILL_PAYMENT).count()


def test_set_3_pay_confirmation_shows_amount_and_balance_after_and_moves_nothing(as_role):
    account, [bill] = settlement_off_with("500.00", "120.00")
    page = action_page(as_role("finance"), "bill", "pay_from_balance", [bill.pk])
    body = page.content.decode()
    assert "120.00 USD" in body and "500.00 USD" in body and "380.00 USD" in body
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN and payments_of(account) == 0
    assert account_balance(account_id=account.pk, currency="USD") == D("500.00")


def test_set_2_pay_confirmation_of_two_bills_runs_the_balance_oldest_first(as_role):
    account, [older, newer] = settlement_off_with("500.00", "120.00", "300.00")
    page = action_page(as_role("finance"), "bill", "pay_from_balance", [newer.pk, older.pk])
    previews = page.context["previews"]
    assert [p.refusal for p in previews] == [None, None]
    assert dict(previews[0].lines)["Balance after"] == "380.00 USD"
    assert dict(previews[1].lines)["Balance after"] == "80.00 USD"


def test_set_2_pay_confirmation_of_a_newer_bill_alone_names_the_older_one(as_role):
    account, [older, newer] = settlement_off_with("500.00", "120.00", "300.00")
    page = action_page(as_role("finance"), "bill", "pay_from_balance", [newer.pk])
    body = page.content.decode()
    assert "SET-2" in body and older.reference in body and DISABLED_CONFIRM in body


def test_set_4_confirming_pays_once_even_when_submitted_twice(as_role):
    account, [bill] = settlement_off_with("500.00", "120.00")
    client = as_role("finance")
    page = action_page(client, "bill", "pay_from_balance", [bill.pk])
    done = confirm_post(client, page)
    assert "Paid 1 bill(s) from the balance." in messages_of(done)
    confirm_post(client, page)  # double submit
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and payments_of(account) == 1
    assert account_balance(account_id=account.pk, currency="USD") == D("380.00")
    assert [e.get_change_message() for e in log_of(bill)] == ["Paid from the balance (SET-3)."]


def test_set_3_a_stale_confirmation_is_shown_again_instead_of_paying(as_role):
    """The balance moved after the page was shown: confirming shows the new figures, pays nothing."""
    account, [bill] = settlement_off_with("500.00", "120.00")
    client = as_role("finance")
    page = action_page(client, "bill", "pay_from_balance", [bill.pk])
    LedgerEntryFactory(account=account, amount=D("-450.00"))  # e.g. a refund approved meanwhile
    again = confirm_post(client, page)
    body = again.content.decode()
    assert again.status_code == 200 and "has changed since the page was shown" in body
    assert "SET-3: The balance of 50.00 USD does not cover" in body and DISABLED_CONFIRM in body
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN and payments_of(account) == 0


def test_set_3_settlement_switched_on_after_the_page_is_refused_by_the_service(as_role):
    account, [bill] = settlement_off_with("500.00", "120.00")
    client = as_role("finance")
    page = action_page(client, "bill", "pay_from_balance", [bill.pk])
    Account.objects.filter(pk=account.pk).update(auto_settlement_enabled=True)
    page = confirm_post(client, page)  # stale: shown again with the refusal
    assert "SET-3: Automatic settlement is on" in page.content.decode()
    response = confirm_post(client, page)  # confirmed anyway (crafted): the service refuses
    assert any("SET-3" in m for m in messages_of(response))
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN and payments_of(account) == 0


def test_sec_1_a_reason_with_a_card_number_is_refused_and_nothing_is_done(as_role):
    _, other = two_cards()
    client = as_role("manager")
    page = action_page(client, "paymentmethod", "remove_selected", [other.pk])
    again = confirm_post(client, page, reason="card 4242 4242 4242 4242")
    assert again.status_code == 200 and "4242 4242 4242 4242" not in again.content.decode()
    other.refresh_from_db()
    assert other.status == PaymentMethod.Status.ACTIVE


# --- buttons that cannot be used say why ------------------------------------------------------------


def test_del_2_the_default_methods_page_shows_remove_disabled_with_the_rule(as_role):
    default, other = two_cards()
    client = as_role("manager")
    body = client.get(f"/admin/payments/paymentmethod/{default.pk}/change/").content.decode()
    assert 'aria-disabled="true" title="DEL-2: This is the default payment method' in body
    assert "Remove (unlink) cannot be used: DEL-2" in body
    other_page = client.get(f"/admin/payments/paymentmethod/{other.pk}/change/").content.decode()
    assert 'name="action" value="remove_selected"' in other_page and "cannot be used" not in other_page
    assert 'name="action" value="make_default_selected"' in other_page


def test_def_2_an_expired_method_shows_make_default_disabled_with_the_rule(as_role):
    account = AccountFactory()
    CardMethodFactory(account=account, is_default=True)
    expired = CardMethodFactory(account=account, status=PaymentMethod.Status.EXPIRED)
    body = as_role("manager").get(f"/admin/payments/paymentmethod/{expired.pk}/change/").content.decode()
    assert "Make default cannot be used: DEF-2: Only an active method can become the default" in body


def test_del_3_the_account_page_shows_deactivate_disabled_with_the_rule_while_it_owes(as_role):
    owing, free = AccountFactory(), AccountFactory()
    BillFactory(account=owing)
    client = as_role("manager")
    body = client.get(f"/admin/payments/account/{owing.pk}/change/").content.decode()
    assert 'aria-disabled="true" title="DEL-3: The account cannot be deactivated' in body
    assert "Deactivate cannot be used: DEL-3" in body
    free_page = client.get(f"/admin/payments/account/{free.pk}/change/").content.decode()
    assert 'name="action" value="deactivate_selected"' in free_page and "cannot be used" not in free_page


def test_link_2_the_account_page_button_leads_to_the_confirmation_and_reactivate_follows(as_role):
    account = AccountFactory()
    client = as_role("manager")
    page = action_page(client, "account", "deactivate_selected", [account.pk])  # what the button posts
    confirm_post(client, page, reason="customer request")
    account.refresh_from_db()
    assert account.status == Account.Status.DEACTIVATED
    body = client.get(f"/admin/payments/account/{account.pk}/change/").content.decode()
    assert 'name="action" value="reactivate_selected"' in body and 'value="deactivate_selected"' not in body
    assert 'value="deactivate_selected"' not in as_role("finance").get(
        f"/admin/payments/account/{account.pk}/change/").content.decode()


# --- Recent actions and History show what the services did --------------------------------------


def test_sec_2_a_confirmed_payment_appears_in_recent_actions_and_in_the_bills_history(as_role):
    account, [bill] = settlement_off_with("500.00", "120.00")
    client = as_role("finance")
    index = client.get("/admin/").content.decode()
    recent = index[index.index('id="recent-actions-module"'):]
    assert str(bill) not in recent
    confirm_post(client, action_page(client, "bill", "pay_from_balance", [bill.pk]), reason="Customer asked")
    index = client.get("/admin/").content.decode()
    recent = index[index.index('id="recent-actions-module"'):]
    assert str(Bill.objects.get(pk=bill.pk)) in recent or bill.reference in recent
    history = client.get(f"/admin/payments/bill/{bill.pk}/history/").content.decode()
    assert "Paid from the balance (SET-3). Reason: Customer asked" in history

"""Deactivating, reactivating and closing accounts: LINK-2 (the clock decides) and DEL-3.

Services are called with a fixed clock; the admin tests read the real one (the admin passes
``timezone.now()``), and place every time they set relative to it.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from payments.errors import AccountInUse, AccountStateError
from payments.models import Account, Bill, PaymentMethod
from payments.services import account_deactivate, account_reactivate
from payments.services.lifecycle import accounts_close_silent
from tests.helpers.admin import messages_of
from tests.factories import AccountFactory, CardMethodFactory
from tests.helpers.roles import action_post

pytestmark = pytest.mark.django_db
Status = PaymentMethod.Status


def account_with_card(**fields) -> tuple[Account, PaymentMethod]:
    account = AccountFactory(**fields)
    return account, CardMethodFactory(account=account, is_default=True)


def open_bill(account: Account, *, now, status=Bill.Status.OPEN) -> Bill:
    paid = {"amount_paid": Decimal("10.00"), "paid_at": now} if status == Bill.Status.PAID else {}
    if status == Bill.Status.PARTIALLY_PAID:
        paid = {"amount_paid": Decimal("4.00")}
    return Bill.objects.create(
        account=account, kind=Bill.Kind.MONTHLY, reference=f"B-{account.pk}-{status}",
        amount_before_tax=Decimal("10.00"), total=Decimal("10.00"), currency="USD", status=status,
        issued_at=now, due_date=date(2026, 12, 31), **paid,
    )


# --- LINK-2: the silent period is measured by the clock -----------------------------------------


def test_link_2_reactivation_refused_once_the_silent_period_ended_before_the_close_job(now):
    account, card = account_with_card()
    account_deactivate(account_id=account.pk, now=now)
    ends = now + settings.ACCOUNT_SILENT_PERIOD
    with pytest.raises(AccountStateError) as refused:
        account_reactivate(account_id=account.pk, now=ends)
    assert refused.value.rule == "LINK-2" and "silent period ended" in refused.value.detail
    account.refresh_from_db()
    assert (account.status, account.deactivated_at) == (Account.Status.DEACTIVATED, now)
    # The close job still closes it and releases the card (nothing was changed by the refusal).
    assert accounts_close_silent(now=ends) == 1
    assert PaymentMethod.objects.get(pk=card.pk).status == Status.REMOVED


def test_link_2_reactivation_within_the_silent_period_still_works(now):
    account, card = account_with_card()
    account_deactivate(account_id=account.pk, now=now)
    last_second = now + settings.ACCOUNT_SILENT_PERIOD - timedelta(seconds=1)
    account = account_reactivate(account_id=account.pk, now=last_second)
    assert (account.status, account.deactivated_at) == (Account.Status.ACTIVE, None)
    assert PaymentMethod.objects.get(pk=card.pk).status == Status.ACTIVE


def test_link_2_admin_reactivation_after_the_silent_period_refused(as_role):
    account = AccountFactory(
        status=Account.Status.DEACTIVATED,
        deactivated_at=timezone.now() - settings.ACCOUNT_SILENT_PERIOD - timedelta(minutes=1),
    )
    response = action_post(as_role("manager"), "account", "reactivate_selected", [account.pk])
    account.refresh_from_db()
    assert account.status == Account.Status.DEACTIVATED
    assert any("LINK-2" in m and "silent period ended" in m for m in messages_of(response))


# --- DEL-3: deactivation (and so closure) of an account that still runs or owes -------------------


@pytest.mark.parametrize(
    "blocker",
    ["running_resources", "outstanding_flag", "open_bill", "partially_paid_bill", "overdue_bill"],
)
def test_del_3_account_with_resources_or_unpaid_bills_cannot_be_deactivated(blocker, now):
    flags = {"running_resources": {"has_running_resources": True}, "outstanding_flag": {"has_outstanding_bills": True}}
    account, card = account_with_card(**flags.get(blocker, {}))
    statuses = {"open_bill": Bill.Status.OPEN, "partially_paid_bill": Bill.Status.PARTIALLY_PAID,
                "overdue_bill": Bill.Status.OVERDUE}
    if blocker in statuses:
        open_bill(account, now=now, status=statuses[blocker])
    with pytest.raises(AccountInUse) as refused:
        account_deactivate(account_id=account.pk, now=now)
    assert (refused.value.rule, refused.value.http_status, refused.value.code) == ("DEL-3", 422, "account_in_use")
    account.refresh_from_db()
    assert (account.status, account.deactivated_at) == (Account.Status.ACTIVE, None)
    assert PaymentMethod.objects.get(pk=card.pk).status == Status.ACTIVE


def test_del_3_account_with_paid_bills_only_can_be_deactivated(now):
    account, _ = account_with_card()
    open_bill(account, now=now, status=Bill.Status.PAID)
    assert account_deactivate(account_id=account.pk, now=now).status == Account.Status.DEACTIVATED


def test_del_3_close_job_keeps_the_method_of_an_account_billed_during_its_silent_period(now):
    account, card = account_with_card()
    account_deactivate(account_id=account.pk, now=now)
    bill = open_bill(account, now=now + timedelta(days=3))  # e.g. last month's usage, billed later
    ends = now + settings.ACCOUNT_SILENT_PERIOD
    assert accounts_close_silent(now=ends) == 0
    assert Account.objects.get(pk=account.pk).status == Account.Status.DEACTIVATED
    assert PaymentMethod.objects.get(pk=card.pk).status == Status.ACTIVE
    Bill.objects.filter(pk=bill.pk).update(status=Bill.Status.PAID, amount_paid=bill.total, paid_at=ends)
    assert accounts_close_silent(now=ends + timedelta(hours=1)) == 1
    assert PaymentMethod.objects.get(pk=card.pk).status == Status.REMOVED


def test_del_3_admin_deactivation_of_an_account_with_running_resources_refused(as_role):
    account, card = account_with_card(has_running_resources=True)
    response = action_post(as_role("manager"), "account", "deactivate_selected", [account.pk])
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE
    assert any("DEL-3" in m and "running resources" in m for m in messages_of(response))

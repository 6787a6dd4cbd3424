"""SEC-3: one permission policy for every staff-facing service (billing_backoffice.permissions).

Each service that only the admin used to protect refuses, by itself, a staff member without the
permission, before it reads or changes anything; jobs pass ``SYSTEM``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission

from billing_backoffice.permissions import SYSTEM, StaffPermissionDenied, staff_require
from payments.gateways.simulated import PROCESSOR
from payments.models import Account, Bill, LedgerEntry, VerificationHold
from payments.services.bills import bill_pay_manual, settlement_switch
from payments.services.holds import hold_release
from remittances.models import BankStatement
from remittances.services.statements import statement_import
from tests.factories import AccountFactory, HoldFactory, UserFactory
from tests.payments.invariants import credit, make_bill

pytestmark = pytest.mark.django_db


def staff_with(*codenames: str, username: str = "clerk"):
    user = UserFactory(username=username)
    for codename in codenames:
        app_label, name = codename.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=name))
    return UserFactory._meta.model.objects.get(pk=user.pk)  # a fresh object: no cached permissions


@pytest.fixture
def nobody():
    """A staff member with no permission at all (logged in, is_staff, nothing else)."""
    return UserFactory(username="nobody")


def test_sec_3_policy_refuses_without_permission_passes_with_it_and_for_jobs():
    clerk = staff_with("payments.pay_bill")
    staff_require(clerk, permission="payments.pay_bill", action="pay bills")
    staff_require(clerk, permission=("payments.change_account", "payments.pay_bill"), action="switch")
    staff_require(SYSTEM, permission="payments.pay_bill", action="pay bills")
    with pytest.raises(StaffPermissionDenied) as refused:
        staff_require(clerk, permission="payments.change_account", action="change accounts")
    assert refused.value.as_dict()["rule"] == "SEC-3" and refused.value.http_status == 403
    assert "payments.change_account" in refused.value.detail
    with pytest.raises(StaffPermissionDenied):
        staff_require(SYSTEM, permission="payments.pay_bill", action="approve", system_allowed=False)
    clerk.is_active = False
    with pytest.raises(StaffPermissionDenied):
        staff_require(clerk, permission="payments.pay_bill", action="pay bills")


def test_sec_3_the_three_old_permission_errors_are_one():
    from remittances.services.accounts import PermissionRefused
    from remittances.services.claims import ClaimPermissionDenied
    from remittances.services.credit import CreditDecisionNotPermitted

    assert PermissionRefused is ClaimPermissionDenied is CreditDecisionNotPermitted is StaffPermissionDenied


def test_sec_3_set_3_manual_payment_refused_without_permission_changes_nothing(nobody, now):
    account = AccountFactory(auto_settlement_enabled=False)
    bill = make_bill(account, "40.00", issued_at=now - timedelta(days=2))
    credit(account, "100.00", now=now)
    with pytest.raises(StaffPermissionDenied) as refused:
        bill_pay_manual(bill_id=bill.pk, actor=nobody, now=now)
    assert "payments.pay_bill" in refused.value.detail
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BILL_PAYMENT).exists()
    paid = bill_pay_manual(bill_id=bill.pk, actor=staff_with("payments.pay_bill"), now=now)
    assert paid.status == Bill.Status.PAID


def test_sec_3_set_1_settlement_switch_refused_without_permission_changes_nothing(nobody, now):
    account = AccountFactory()
    with pytest.raises(StaffPermissionDenied):
        settlement_switch(account_id=account.pk, enabled=False, actor=nobody, now=now)
    assert Account.objects.get(pk=account.pk).auto_settlement_enabled is True
    assert not LogEntry.objects.exists()
    settlement_switch(account_id=account.pk, enabled=False, actor=staff_with("payments.change_account"), now=now)
    assert Account.objects.get(pk=account.pk).auto_settlement_enabled is False


def test_sec_3_rem_4_statement_import_refused_without_permission_before_reading_the_file(nobody, now):
    from remittances.parsers import StatementError

    with pytest.raises(StaffPermissionDenied) as refused:
        statement_import(data=b"not a statement", file_name="x.xml", actor=nobody, now=now)
    assert "remittances.import_bankstatement" in refused.value.detail
    assert not BankStatement.objects.exists()
    # With the permission the same bytes get as far as the parser, which refuses them.
    with pytest.raises(StatementError):
        statement_import(data=b"not a statement", file_name="x.xml",
                         actor=staff_with("remittances.import_bankstatement"), now=now)


def test_sec_3_hold_2_release_refused_without_permission_voids_nothing(nobody, now):
    hold = HoldFactory(placed_at=now - timedelta(hours=1))
    with pytest.raises(StaffPermissionDenied):
        hold_release(hold_id=hold.pk, now=now, actor=nobody)
    hold.refresh_from_db()
    assert (hold.status, hold.lease_token) == (VerificationHold.Status.PLACED, None)
    assert not PROCESSOR.void_calls
    released = hold_release(hold_id=hold.pk, now=now, actor=staff_with("payments.release_verificationhold"))
    assert released.status == VerificationHold.Status.RELEASED
    assert PROCESSOR.void_calls[hold.authorization_id] == 1

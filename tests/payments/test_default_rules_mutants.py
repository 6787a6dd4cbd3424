"""DEF-1, DEF-2 and DEL-1..4 edge by edge: the tests that kill the mutants of defaults and removal.

The services are called directly with the clock passed in; each test checks what the rule says
and also what must stay untouched (the other account, the other methods, the timestamps).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from payments.errors import DefaultSwitchRefused, PaymentMethodNotFound, RemovalRefused
from payments.models import Bill, PaymentMethod
from payments.services import payment_method_make_default, payment_method_remove
from payments.services.defaults import payment_method_activate
from payments.services.removal import account_blocks_removing_last_active_method
from tests.factories import AccountFactory, CardMethodFactory, PayPalMethodFactory

pytestmark = pytest.mark.django_db
Status = PaymentMethod.Status


def fresh(method: PaymentMethod) -> PaymentMethod:
    return PaymentMethod.objects.get(pk=method.pk)


def bill(account, status, now) -> Bill:
    return Bill.objects.create(
        account=account, kind=Bill.Kind.MONTHLY, reference=f"B-{account.pk}-{status}",
        amount_before_tax=Decimal("10.00"), total=Decimal("10.00"), currency="USD", status=status,
        issued_at=now, due_date=date(2026, 12, 31),
        amount_paid=Decimal("10.00") if status == Bill.Status.PAID else Decimal("0.00"),
        paid_at=now if status == Bill.Status.PAID else None,
    )


# --- DEF-1: activation --------------------------------------------------------------------------


def test_def_1_first_activation_is_default_and_stamped_with_the_clock(now):
    method = CardMethodFactory(status=Status.PENDING, activated_at=None)
    activated = payment_method_activate(method_id=method.pk, now=now)
    stored = fresh(method)
    assert (activated.status, activated.is_default) == (Status.ACTIVE, True)
    assert (stored.status, stored.is_default, stored.activated_at, stored.status_changed_at) == (
        Status.ACTIVE, True, now, now
    )


def test_def_1_second_activation_is_not_default(now):
    account = AccountFactory()
    first = CardMethodFactory(account=account, is_default=True)
    second = CardMethodFactory(account=account, status=Status.PENDING)
    payment_method_activate(method_id=second.pk, now=now)
    assert (fresh(second).status, fresh(second).is_default, fresh(first).is_default) == (Status.ACTIVE, False, True)


def test_def_1_another_accounts_default_does_not_count(now):
    CardMethodFactory(is_default=True)  # another account's default
    mine = CardMethodFactory(status=Status.PENDING)
    payment_method_activate(method_id=mine.pk, now=now)
    assert fresh(mine).is_default


def test_def_1_replayed_activation_changes_nothing(now):
    method = CardMethodFactory(status=Status.PENDING)
    payment_method_activate(method_id=method.pk, now=now)
    later = now + timedelta(hours=1)
    replay = payment_method_activate(method_id=method.pk, now=later)
    stored = fresh(method)
    assert (replay.status, stored.activated_at, stored.status_changed_at, stored.is_default) == (
        Status.ACTIVE, now, now, True
    )


@pytest.mark.parametrize("status", [Status.FAILED, Status.REMOVED, Status.EXPIRED])
def test_def_1_method_failed_or_removed_meanwhile_is_never_resurrected(status, now):
    method = CardMethodFactory(status=status, activated_at=None, status_changed_at=None)
    returned = payment_method_activate(method_id=method.pk, now=now)
    stored = fresh(method)
    assert (returned.status, stored.status, stored.is_default, stored.activated_at) == (status, status, False, None)


# --- DEF-2: switching the default ---------------------------------------------------------------


def test_def_2_switch_moves_the_default_and_leaves_other_accounts_alone():
    account = AccountFactory()
    old = CardMethodFactory(account=account, is_default=True)
    new = PayPalMethodFactory(account=account)
    elsewhere = CardMethodFactory(is_default=True)
    switched = payment_method_make_default(method_id=new.pk, account_id=account.pk)
    assert switched.is_default
    assert (fresh(new).is_default, fresh(old).is_default, fresh(elsewhere).is_default) == (True, False, True)


def test_def_2_switch_to_the_current_default_is_a_no_op():
    method = CardMethodFactory(is_default=True)
    assert payment_method_make_default(method_id=method.pk).is_default
    assert fresh(method).is_default


def test_def_2_unknown_method_is_not_found():
    with pytest.raises(PaymentMethodNotFound):
        payment_method_make_default(method_id=987654321)


def test_def_2_method_of_another_account_refused_and_nothing_moves():
    account = AccountFactory()
    current = CardMethodFactory(account=account, is_default=True)
    foreign = CardMethodFactory()
    with pytest.raises(DefaultSwitchRefused) as caught:
        payment_method_make_default(method_id=foreign.pk, account_id=account.pk)
    assert caught.value.rule == "DEF-2"
    assert caught.value.detail == "The default can only be switched to a method of the same account."
    assert (fresh(current).is_default, fresh(foreign).is_default) == (True, False)


def test_def_2_refusal_names_the_status_of_the_method():
    account = AccountFactory()
    CardMethodFactory(account=account, is_default=True)
    pending = CardMethodFactory(account=account, status=Status.PENDING)
    with pytest.raises(DefaultSwitchRefused) as caught:
        payment_method_make_default(method_id=pending.pk, account_id=account.pk)
    assert caught.value.rule == "DEF-2"
    assert caught.value.detail.startswith("Only an active method can become the default; this one is ")
    assert caught.value.detail.endswith(pending.get_status_display().lower() + ".")


# --- DEL-1..4: removal --------------------------------------------------------------------------


def test_del_1_removal_stamps_the_clock_and_clears_the_default_flag(now):
    account = AccountFactory()
    keep = CardMethodFactory(account=account, is_default=True)
    other = CardMethodFactory(account=account)
    removed = payment_method_remove(method_id=other.pk, now=now, account_id=account.pk)
    stored = fresh(other)
    assert (removed.status, stored.status, stored.removed_at, stored.status_changed_at) == (
        Status.REMOVED, Status.REMOVED, now, now
    )
    assert fresh(keep).is_default and fresh(keep).status == Status.ACTIVE


def test_del_1_unknown_method_or_another_accounts_is_not_found(now):
    method = CardMethodFactory()
    with pytest.raises(PaymentMethodNotFound):
        payment_method_remove(method_id=987654321, now=now)
    with pytest.raises(PaymentMethodNotFound):
        payment_method_remove(method_id=method.pk, now=now, account_id=AccountFactory().pk)
    assert fresh(method).status == Status.ACTIVE


def test_del_1_removing_a_removed_method_again_keeps_its_first_timestamps(now):
    method = CardMethodFactory()
    payment_method_remove(method_id=method.pk, now=now)
    again = payment_method_remove(method_id=method.pk, now=now + timedelta(days=1))
    assert (again.status, fresh(method).removed_at) == (Status.REMOVED, now)


def test_del_2_default_refused_with_its_code_while_others_exist(now):
    account = AccountFactory()
    default = CardMethodFactory(account=account, is_default=True)
    CardMethodFactory(account=account, status=Status.PENDING)
    with pytest.raises(RemovalRefused) as caught:
        payment_method_remove(method_id=default.pk, now=now)
    assert (caught.value.rule, caught.value.code) == ("DEL-2", "default_method_in_use")
    assert caught.value.detail == (
        "This is the default payment method and the account has other methods; "
        "switch the default to another active method first."
    )
    assert (fresh(default).status, fresh(default).is_default) == (Status.ACTIVE, True)


def test_del_2_expired_default_hands_the_default_to_an_active_method_only(now):
    account = AccountFactory()
    expired = CardMethodFactory(account=account, status=Status.EXPIRED, is_default=True)
    pending = CardMethodFactory(account=account, status=Status.PENDING)
    active = CardMethodFactory(account=account)
    payment_method_remove(method_id=expired.pk, now=now)
    assert (fresh(expired).status, fresh(expired).is_default) == (Status.REMOVED, False)
    assert (fresh(active).is_default, fresh(pending).is_default) == (True, False)


def test_del_2_expired_default_with_no_active_successor_leaves_no_default(now):
    account = AccountFactory()
    expired = CardMethodFactory(account=account, status=Status.EXPIRED, is_default=True)
    pending = CardMethodFactory(account=account, status=Status.PENDING)
    payment_method_remove(method_id=expired.pk, now=now)
    assert not PaymentMethod.objects.filter(account=account, is_default=True).exists()
    assert fresh(pending).status == Status.PENDING


def test_del_2_non_default_removal_hands_nothing_on(now):
    account = AccountFactory()
    default = CardMethodFactory(account=account, is_default=True)
    spare = CardMethodFactory(account=account)
    other = CardMethodFactory(account=account)
    payment_method_remove(method_id=other.pk, now=now)
    assert (fresh(default).is_default, fresh(spare).is_default) == (True, False)


@pytest.mark.parametrize(
    ("flags", "reason"),
    [({"has_running_resources": True}, "the account has running resources"),
     ({"has_outstanding_bills": True}, "the account has outstanding or overdue bills")],
)
def test_del_3_only_active_method_refusal_says_why(flags, reason, now):
    account = AccountFactory(**flags)
    only = CardMethodFactory(account=account, is_default=True)
    with pytest.raises(RemovalRefused) as caught:
        payment_method_remove(method_id=only.pk, now=now)
    assert (caught.value.rule, caught.value.code) == ("DEL-3", "only_active_method_in_use")
    assert caught.value.detail == f"This is the only active payment method and {reason}."
    assert fresh(only).status == Status.ACTIVE


@pytest.mark.parametrize("status", Bill.UNPAID_STATUSES)
def test_del_3_an_unpaid_bill_blocks_even_without_the_flag(status, now):
    account = AccountFactory()
    bill(account, status, now)
    assert account_blocks_removing_last_active_method(account) == "the account has outstanding or overdue bills"


def test_del_3_paid_bills_do_not_block(now):
    account = AccountFactory()
    bill(account, Bill.Status.PAID, now)
    bill(AccountFactory(), Bill.Status.OPEN, now)  # another account's open bill
    assert account_blocks_removing_last_active_method(account) is None


def test_del_3_running_resources_named_before_bills(now):
    account = AccountFactory(has_running_resources=True, has_outstanding_bills=True)
    assert account_blocks_removing_last_active_method(account) == "the account has running resources"


def test_del_3_another_active_method_lets_the_active_one_go_despite_resources(now):
    account = AccountFactory(has_running_resources=True)
    CardMethodFactory(account=account, is_default=True)
    second = CardMethodFactory(account=account)
    payment_method_remove(method_id=second.pk, now=now)
    assert fresh(second).status == Status.REMOVED


def test_del_3_a_pending_method_is_not_blocked_by_resources(now):
    account = AccountFactory(has_running_resources=True)
    pending = CardMethodFactory(account=account, status=Status.PENDING)
    payment_method_remove(method_id=pending.pk, now=now)
    assert fresh(pending).status == Status.REMOVED


def test_del_2_only_the_accounts_own_methods_count_and_inherit_the_default(now):
    """Another account's methods neither block removing this default nor receive it."""
    account = AccountFactory()
    only = CardMethodFactory(account=account, is_default=True)
    expired = CardMethodFactory(account=account, status=Status.EXPIRED)
    neighbour_default = CardMethodFactory(is_default=True)
    neighbour_spare = CardMethodFactory(account=neighbour_default.account)
    payment_method_remove(method_id=expired.pk, now=now)
    payment_method_remove(method_id=only.pk, now=now)
    assert fresh(only).status == Status.REMOVED
    assert (fresh(neighbour_default).is_default, fresh(neighbour_spare).is_default) == (True, False)

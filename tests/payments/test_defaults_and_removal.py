"""Switching the default (DEF-2) and deleting methods (DEL-1..4)."""

import pytest

from payments.errors import AlreadyLinked, DefaultSwitchRefused, RemovalRefused
from payments.models import Account, PaymentMethod
from payments.services import card_link, payment_method_make_default, payment_method_remove
from tests.helpers.cards import card_input
from tests.factories import AccountFactory, CardMethodFactory, PayPalMethodFactory

pytestmark = pytest.mark.django_db
Status = PaymentMethod.Status


def reload(*methods):
    for method in methods:
        method.refresh_from_db()


# --- DEF-2 -------------------------------------------------------------------------------------


def test_def_2_default_switches_to_another_active_method():
    account = AccountFactory()
    old = CardMethodFactory(account=account, is_default=True)
    new = PayPalMethodFactory(account=account)
    payment_method_make_default(method_id=new.pk)
    reload(old, new)
    assert (old.is_default, new.is_default) == (False, True)


@pytest.mark.parametrize("status", [Status.PENDING, Status.FAILED, Status.EXPIRED, Status.REMOVED])
def test_def_2_default_cannot_switch_to_a_method_that_is_not_active(status):
    account = AccountFactory()
    current = CardMethodFactory(account=account, is_default=True)
    other = CardMethodFactory(account=account, status=status)
    with pytest.raises(DefaultSwitchRefused) as caught:
        payment_method_make_default(method_id=other.pk)
    assert caught.value.rule == "DEF-2"
    reload(current, other)
    assert (current.is_default, other.is_default) == (True, False)


def test_def_2_default_cannot_switch_to_a_method_of_another_account():
    mine, theirs = AccountFactory(), AccountFactory()
    CardMethodFactory(account=mine, is_default=True)
    foreign = CardMethodFactory(account=theirs)
    with pytest.raises(DefaultSwitchRefused):
        payment_method_make_default(method_id=foreign.pk, account_id=mine.pk)
    reload(foreign)
    assert not foreign.is_default


def test_def_1_database_refuses_a_second_default():
    from django.db import IntegrityError, transaction

    account = AccountFactory()
    CardMethodFactory(account=account, is_default=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        CardMethodFactory(account=account, is_default=True)


# --- DEL ---------------------------------------------------------------------------------------


def test_del_1_non_default_method_deleted_when_account_has_several(now):
    account = AccountFactory()
    CardMethodFactory(account=account, is_default=True)
    extra = CardMethodFactory(account=account)
    payment_method_remove(method_id=extra.pk, now=now)
    reload(extra)
    assert (extra.status, extra.removed_at) == (Status.REMOVED, now)


def test_del_1_expired_default_deleted_and_default_handed_to_an_active_method(now):
    account = AccountFactory(has_running_resources=True)
    expired = CardMethodFactory(account=account, status=Status.EXPIRED, is_default=True)
    active = CardMethodFactory(account=account)
    payment_method_remove(method_id=expired.pk, now=now)
    reload(expired, active)
    assert expired.status == Status.REMOVED and not expired.is_default
    assert active.is_default


def test_del_2_default_not_deleted_while_other_methods_exist(now):
    account = AccountFactory()
    default = CardMethodFactory(account=account, is_default=True)
    CardMethodFactory(account=account)
    with pytest.raises(RemovalRefused) as caught:
        payment_method_remove(method_id=default.pk, now=now)
    assert caught.value.rule == "DEL-2"
    assert "switch the default" in caught.value.detail
    reload(default)
    assert (default.status, default.is_default) == (Status.ACTIVE, True)


@pytest.mark.parametrize(
    "flags", [{"has_running_resources": True}, {"has_outstanding_bills": True}]
)
def test_del_3_only_active_method_kept_while_resources_or_bills(flags, now):
    account = AccountFactory(**flags)
    only = CardMethodFactory(account=account, is_default=True)
    CardMethodFactory(account=account, status=Status.FAILED)
    with pytest.raises(RemovalRefused) as caught:
        payment_method_remove(method_id=only.pk, now=now)
    assert caught.value.rule == "DEL-3"
    reload(only)
    assert only.status == Status.ACTIVE


def test_del_3_only_active_method_deleted_when_nothing_runs(now):
    account = AccountFactory()
    only = CardMethodFactory(account=account, is_default=True)
    payment_method_remove(method_id=only.pk, now=now)
    reload(only)
    assert (only.status, only.is_default) == (Status.REMOVED, False)


def test_del_3_non_default_only_active_method_kept_when_default_expired(now):
    account = AccountFactory(has_running_resources=True)
    CardMethodFactory(account=account, status=Status.EXPIRED, is_default=True)
    only_active = CardMethodFactory(account=account)
    with pytest.raises(RemovalRefused) as caught:
        payment_method_remove(method_id=only_active.pk, now=now)
    assert caught.value.rule == "DEL-3"


def test_del_4_deleting_frees_the_card_for_another_account(now):
    first = Account.objects.create(name="First", kind="individual", country="US", region="US")
    second = Account.objects.create(name="Second", kind="individual", country="US", region="US")
    method = card_link(account_id=first.pk, card=card_input(), now=now).method
    with pytest.raises(AlreadyLinked):
        card_link(account_id=second.pk, card=card_input(), now=now)
    payment_method_remove(method_id=method.pk, now=now)
    relinked = card_link(account_id=second.pk, card=card_input(), now=now).method
    assert relinked.status == Status.ACTIVE and relinked.fingerprint == method.fingerprint


def test_del_4_removing_twice_is_a_no_op(now):
    account = AccountFactory()
    method = CardMethodFactory(account=account)
    payment_method_remove(method_id=method.pk, now=now)
    again = payment_method_remove(method_id=method.pk, now=now)
    assert again.status == Status.REMOVED and again.removed_at == now

"""Staff roles (SEC-3): the groups made by migration 0002 and what each role can reach.

The staff users per role are fixtures of ``tests/conftest.py``; the groups and admin requests come
from ``tests/helpers/roles.py``.
"""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.urls import reverse

from payments.models import Account, PaymentMethod, VerificationHold
from tests.factories import (
    AccountFactory,
    CardMethodFactory,
    ChallengeFactory,
    HoldFactory,
    LinkAttemptFactory,
    UserFactory,
)
from tests.helpers.roles import FINANCE, MANAGERS, action_post, changelist, role_group, staff_groups

pytestmark = pytest.mark.django_db

MODELS = ("account", "paymentmethod", "verificationhold", "linkattempt", "threedschallenge")


def action_names(response) -> set[str]:
    form = response.context["action_form"]
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


# --- the groups -------------------------------------------------------------------------------


def _codenames(name: str) -> set[str]:
    """The payments permissions of a role (other apps' migrations add their own)."""
    permissions = role_group(name).permissions.filter(content_type__app_label="payments")
    return set(permissions.values_list("codename", flat=True))


def _revoke_later_apps_roles() -> None:
    """Reversing payments 0002 happens after the later apps' role migrations are reversed."""
    from django.db.models import Q

    billing = importlib.import_module("payments.migrations.0007_billing_staff_permissions").ROLES
    credit_control = importlib.import_module("payments.migrations.0014_credit_control_staff_permissions").ROLES
    for group in Group.objects.filter(name__in=[MANAGERS, FINANCE]):
        group.permissions.remove(*group.permissions.filter(~Q(content_type__app_label="payments")))
        group.permissions.remove(*group.permissions.filter(codename__in=billing[group.name]))
        group.permissions.remove(*group.permissions.filter(codename__in=credit_control[group.name]))
        group.permissions.remove(*group.permissions.filter(codename="pause_reminderpause"))


def test_sec_3_account_managers_group_permissions():
    assert _codenames(MANAGERS) == {
        "view_account", "deactivate_account", "view_paymentmethod", "make_default_paymentmethod",
        "remove_paymentmethod", "view_linkattempt", "view_verificationhold",
        "release_verificationhold", "view_threedschallenge",
        "view_bill", "view_charge", "view_usagerecord", "view_ledgerentry",
        # CC-3, NOTIFY-2 (payments 0014)
        "view_reminder", "view_credithold", "view_reminderpause", "view_notification",
        "pause_reminderpause", "retry_notification",
    }


def test_sec_3_finance_staff_group_is_view_only():
    billing = {"view_bill", "view_charge", "view_usagerecord", "view_ledgerentry", "pay_bill"}
    billing |= {"view_reminder", "view_credithold", "view_reminderpause", "view_notification",
                "lift_credithold", "retry_notification"}  # CC-2, NOTIFY-2 (payments 0014)
    assert _codenames(FINANCE) == {f"view_{model}" for model in MODELS} | billing


def test_staff_groups_migration_is_reversible():
    role_group(MANAGERS), role_group(FINANCE)
    _revoke_later_apps_roles()
    staff_groups.remove_staff_groups(django_apps, None)
    assert not Group.objects.filter(name__in=[MANAGERS, FINANCE]).exists()
    staff_groups.create_staff_groups(django_apps, None)
    staff_groups.create_staff_groups(django_apps, None)  # idempotent, no duplicate group
    assert Group.objects.filter(name__in=[MANAGERS, FINANCE]).count() == 2
    assert "release_verificationhold" in _codenames(MANAGERS)


def test_staff_groups_reverse_keeps_a_group_other_apps_still_use():
    group = role_group(FINANCE)
    _revoke_later_apps_roles()
    other = django_apps.get_model("auth", "Permission").objects.get(codename="view_group")
    group.permissions.add(other)
    staff_groups.remove_staff_groups(django_apps, None)
    group.refresh_from_db()
    assert set(group.permissions.values_list("codename", flat=True)) == {"view_group"}


# --- what each role reaches -----------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("role", ["superuser", "manager", "finance"])
def test_sec_3_every_role_sees_every_changelist(as_role, role, model):
    assert as_role(role).get(changelist(model)).status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_sec_3_staff_without_a_role_sees_nothing(client, model):
    client.force_login(UserFactory(username="nobody"))
    assert client.get(changelist(model)).status_code == 403


def test_sec_3_non_staff_user_is_sent_to_login(client):
    client.force_login(UserFactory(username="customer", is_staff=False))
    response = client.get(changelist("account"))
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize(
    "role, model, expected",
    [
        ("superuser", "account", {"deactivate_selected", "reactivate_selected"}),
        ("manager", "account", {"deactivate_selected", "reactivate_selected"}),
        ("finance", "account", set()),
        ("superuser", "paymentmethod", {"make_default_selected", "remove_selected"}),
        ("manager", "paymentmethod", {"make_default_selected", "remove_selected"}),
        ("finance", "paymentmethod", set()),
        ("superuser", "verificationhold", {"release_selected"}),
        ("manager", "verificationhold", {"release_selected"}),
        ("finance", "verificationhold", set()),
        ("superuser", "linkattempt", set()),
        ("superuser", "threedschallenge", set()),
    ],
)
def test_sec_3_actions_offered_match_the_role(as_role, role, model, expected):
    CardMethodFactory()  # the action form only renders when there are rows
    HoldFactory()
    LinkAttemptFactory()
    ChallengeFactory()
    assert action_names(as_role(role).get(changelist(model))) == expected


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("role", ["superuser", "manager", "finance"])
def test_sec_3_nobody_adds_or_deletes_processor_records(as_role, role, model):
    client = as_role(role)
    assert client.get(reverse(f"admin:payments_{model}_add")).status_code == 403


@pytest.mark.parametrize("role", ["superuser", "manager", "finance"])
def test_sec_3_nobody_deletes_a_payment_method_through_the_admin(as_role, role):
    method = CardMethodFactory()
    client = as_role(role)
    url = reverse("admin:payments_paymentmethod_delete", args=[method.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    method.refresh_from_db()
    assert method.status == PaymentMethod.Status.ACTIVE


def test_sec_3_finance_crafted_remove_post_leaves_method_live(as_role):
    method = CardMethodFactory()
    other = CardMethodFactory(account=method.account)
    response = action_post(as_role("finance"), "paymentmethod", "remove_selected", [other.pk])
    assert response.status_code in (200, 302)
    other.refresh_from_db()
    assert other.status == PaymentMethod.Status.ACTIVE and other.removed_at is None


def test_sec_3_finance_crafted_make_default_post_changes_nothing(as_role):
    default = CardMethodFactory(is_default=True)
    other = CardMethodFactory(account=default.account)
    action_post(as_role("finance"), "paymentmethod", "make_default_selected", [other.pk])
    default.refresh_from_db(), other.refresh_from_db()
    assert default.is_default and not other.is_default


def test_sec_3_finance_crafted_deactivate_post_leaves_account_active(as_role):
    account = AccountFactory()
    action_post(as_role("finance"), "account", "deactivate_selected", [account.pk])
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE and account.deactivated_at is None


def test_sec_3_finance_crafted_release_post_leaves_hold_placed(as_role):
    hold = HoldFactory()
    action_post(as_role("finance"), "verificationhold", "release_selected", [hold.pk])
    hold.refresh_from_db()
    assert hold.status == VerificationHold.Status.PLACED and hold.released_at is None


def test_sec_3_crafted_delete_selected_is_refused_for_everyone(as_role):
    method = CardMethodFactory()
    response = action_post(as_role("superuser"), "paymentmethod", "delete_selected", [method.pk])
    assert response.status_code == 302  # "No action selected": the action does not exist
    assert PaymentMethod.objects.filter(pk=method.pk, status=PaymentMethod.Status.ACTIVE).exists()


@pytest.mark.parametrize("role", ["manager", "finance"])
def test_sec_3_roles_cannot_edit_an_account(as_role, role):
    account = AccountFactory(name="Before")
    url = reverse("admin:payments_account_change", args=[account.pk])
    client = as_role(role)
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="name"' not in page.content.decode()  # rendered read-only
    assert client.post(url, {"name": "After", "email": account.email}).status_code == 403
    account.refresh_from_db()
    assert account.name == "Before"

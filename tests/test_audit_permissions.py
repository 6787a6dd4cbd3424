"""Audit trail of permission changes (SEC-2, SEC-3) and of management commands (SEC-2).

Who may do what lives in two auth tables: a staff user's groups and a group's permissions.
A row added or removed there is recorded by triggers whatever the path (the admin's user page,
the ORM, raw SQL) and shown in the audit log in words. Commands that change money or state
name themselves as the actor (``command:<name>``).
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from billing_backoffice import audit_admin
from billing_backoffice.audit import audit_context, audited_models
from billing_backoffice.models import GroupPermissionGrant, UserGroupMembership
from remittances.models import BankStatement, BankTransaction, RemittanceAccount
from tests.factories import UserFactory
from tests.helpers.roles import FINANCE, role_group
from tests.remittances.samples import build
from tests.helpers.statements import SAMPLES, make_receiving_account

pytestmark = pytest.mark.django_db

AUDIT_LOG = "/admin/pghistory/events/"


def rows(model) -> list[audit_admin.AuditRow]:
    """The model's events, newest first, as the audit log reads them."""
    return audit_admin.audit_rows(models_=[model])


def test_sec_2_permission_link_tables_are_audited_models():
    assert {UserGroupMembership, GroupPermissionGrant} <= set(audited_models())


def test_sec_2_sec_3_adding_a_user_to_finance_staff_in_the_admin_names_the_superuser(client, superuser):  # noqa: F811
    finance = role_group(FINANCE)
    staff = UserFactory(username="clerk")
    client.force_login(superuser)
    page = client.get(reverse("admin:auth_user_change", args=[staff.pk]))
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(
        username="clerk", groups=[finance.pk], user_permissions=[], is_active="on", is_staff="on",
        date_joined_0=staff.date_joined.strftime("%Y-%m-%d"), date_joined_1=staff.date_joined.strftime("%H:%M:%S"),
    )
    data.pop("last_login", None)
    data.pop("password", None)
    data.pop("date_joined", None)
    data.pop("is_superuser", None)
    response = client.post(reverse("admin:auth_user_change", args=[staff.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert staff.groups.filter(pk=finance.pk).exists()

    (added,) = [row for row in rows(UserGroupMembership) if row.data["user_id"] == staff.pk]
    assert added.label == "insert"
    assert added.actor == "root" and added.context["user"] == superuser.pk
    assert added.context["url"] == reverse("admin:auth_user_change", args=[staff.pk])
    assert added.note == f"user clerk added to group {FINANCE}"


def test_sec_2_sec_3_removing_a_user_from_a_group_is_recorded_in_words():
    finance = role_group(FINANCE)
    staff = UserFactory(username="clerk")
    staff.groups.add(finance)
    staff.groups.remove(finance)
    removed, added = rows(UserGroupMembership)[:2]
    assert (added.label, removed.label) == ("insert", "delete")
    assert removed.note == f"user clerk removed from group {FINANCE}"
    assert removed.actor == ""  # no context: shown as a direct change, never dropped


def test_sec_2_sec_3_permission_removed_from_a_group_through_the_orm_is_recorded():
    finance = role_group(FINANCE)
    permission = finance.permissions.select_related("content_type").first()
    assert permission is not None, "the staff migrations give the finance group permissions"
    before = {row.event_id for row in rows(GroupPermissionGrant)}  # grants re-made by the staff migrations
    with audit_context(actor="security-review", reason="least privilege"):
        finance.permissions.remove(permission)
    (removed,) = [row for row in rows(GroupPermissionGrant) if row.label == "delete" and row.event_id not in before]
    assert removed.data["permission_id"] == permission.pk and removed.data["group_id"] == finance.pk
    assert removed.actor == "security-review" and removed.context["reason"] == "least privilege"
    codename = f"{permission.content_type.app_label}.{permission.codename}"
    assert removed.note == f"permission {codename} removed from group {FINANCE}"


def test_sec_2_sec_3_raw_sql_delete_on_group_permissions_is_recorded():
    finance = role_group(FINANCE)
    held = set(finance.permissions.values_list("pk", flat=True))
    assert held
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM auth_group_permissions WHERE group_id = %s", [finance.pk])
    assert not finance.permissions.exists()
    deleted = [row for row in rows(GroupPermissionGrant) if row.label == "delete"]
    assert {row.data["permission_id"] for row in deleted} == held
    assert all(row.actor == "" and row.note.endswith(f"removed from group {FINANCE}") for row in deleted)


def test_sec_2_sec_3_raw_sql_rewrite_of_a_membership_shows_before_and_after():
    finance, other = role_group(FINANCE), Group.objects.create(name="Interns")
    staff = UserFactory(username="clerk")
    staff.groups.add(other)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE auth_user_groups SET group_id = %s WHERE user_id = %s", [finance.pk, staff.pk])
    (moved,) = [row for row in rows(UserGroupMembership) if row.label == "update"]
    assert moved.note == f"now: user clerk in group {FINANCE}"
    assert [(c.field, c.before, c.after) for c in moved.changes] == [("group", "Interns", FINANCE)]


def test_sec_2_sec_3_audit_log_page_shows_permission_changes(client, superuser):  # noqa: F811
    finance = role_group(FINANCE)
    permission = finance.permissions.first()
    staff = UserFactory(username="clerk")
    staff.groups.add(finance)
    finance.permissions.remove(permission)
    client.force_login(superuser)
    page = client.get(AUDIT_LOG, {"model": "billing_backoffice.usergroupmembership"})
    assert page.status_code == 200
    assert f"user clerk added to group {FINANCE}" in page.content.decode()
    page = client.get(AUDIT_LOG, {"model": "billing_backoffice.grouppermissiongrant", "label": "delete"})
    assert f"permission {permission.content_type.app_label}.{permission.codename} removed from group" in (
        page.content.decode()
    )


def test_sec_2_audit_log_names_a_deleted_user_by_id():
    finance = role_group(FINANCE)
    staff = UserFactory(username="leaver")
    staff.groups.add(finance)
    staff_id = staff.pk
    staff.delete()  # the membership goes with the user: a delete event
    removed, added = rows(UserGroupMembership)[:2]
    assert removed.label == "delete" and removed.note == f"user #{staff_id} removed from group {FINANCE}"
    assert added.note == f"user #{staff_id} added to group {FINANCE}"


# --- management commands name themselves -------------------------------------------------------


def test_sec_2_register_receiving_account_command_is_the_actor():
    call_command(
        "register_receiving_account", "--number", "GB33 BUKB 2020 1555 5555 55", "--bank-name", "Shared Bank",
        "--bic", "BUKBGB22", "--currency", "GBP", stdout=StringIO(),
    )
    (created,) = audit_admin.object_history_rows(RemittanceAccount, RemittanceAccount.objects.get().pk)
    assert created.label == "insert"
    assert created.actor == "command:register_receiving_account"


def test_sec_2_import_bank_statement_command_is_the_actor(now):
    make_receiving_account(number=build.SHARED_IBAN, kind=RemittanceAccount.Kind.NON_DEDICATED, now=now)
    call_command("import_bank_statement", str(SAMPLES / "camt053_shared_v08.xml"), stdout=StringIO())
    statement = BankStatement.objects.get()
    assert BankTransaction.objects.exists()
    for model in (BankStatement, BankTransaction):
        recorded = audit_admin.audit_rows(models_=[model], actor="command:import_bank_statement")
        assert recorded, model
    history = audit_admin.object_history_rows(BankStatement, statement.pk)
    assert [row.label for row in history][-1] == "insert"
    assert {row.actor for row in history} == {"command:import_bank_statement"}
    assert {row.context["command"] for row in history} == {"import_bank_statement"}


def test_sec_2_command_actor_ends_with_the_command():
    """A later change in the same transaction (the test's) is not the command's."""
    call_command(
        "register_receiving_account", "--number", "GB33 BUKB 2020 1555 5555 55", "--bank-name", "Shared Bank",
        "--bic", "BUKBGB22", "--currency", "GBP", stdout=StringIO(),
    )
    staff = UserFactory(username="after")
    staff.groups.add(role_group(FINANCE))
    (added,) = [row for row in rows(UserGroupMembership) if row.data["user_id"] == staff.pk]
    assert added.actor == ""

"""Audit trail (SEC-2): who, when, what, before and after, for every money, status or
permission change, whatever the write path.

Changes are captured by PostgreSQL triggers (django-pghistory), so the tests write through
every path a change can take (ORM save, ``.update()``, ``bulk_create``, raw SQL, the admin, the
console API, a Celery task) and read the recorded events back through the same code the admin
pages use (``audit_rows``).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing_backoffice import audit_admin
from billing_backoffice.logging import card_numbers_in
from billing_backoffice.audit import audit_context, audited_models, event_model_for, insert_baseline_events
from tests.db_reset import truncation_allowed
from billing_backoffice.staff_roles import grant
from payments.models import Account, PaymentMethod, VerificationHold
from payments.tasks.lifecycle import close_silent_accounts
from remittances.models import BankStatement, BankTransaction, RemittanceAccount, RemittanceClaim
from remittances.services import claims as claim_services
from remittances.services.statements import statement_import
from tests.factories import AccountFactory, CardMethodFactory, HoldFactory, UserFactory
from tests.helpers.api import link_card, new_account
from tests.helpers.roles import action_post
from tests.remittances.samples import build
from tests.helpers.claims import finance_user, reviewed_claim
from tests.helpers.statements import make_receiving_account, sample

pytestmark = pytest.mark.django_db

AUDIT_LOG = "/admin/pghistory/events/"
CARD_NUMBER = "4242424242424242"


def events(obj) -> list[audit_admin.AuditRow]:
    """The object's events, oldest first, as the History page reads them."""
    return list(reversed(audit_admin.object_history_rows(type(obj), obj.pk)))


def changes(row: audit_admin.AuditRow) -> dict[str, tuple[str, str]]:
    return {change.field: (change.before, change.after) for change in row.changes}


def auditor():
    """A staff member of the "Auditors" group (payments migration 0005)."""
    if not Group.objects.filter(name="Auditors").exists():  # a transactional test flushed it
        grant(django_apps, "pghistory", {"Auditors": ["view_events"]})
    user = UserFactory(username="auditor")
    user.groups.add(Group.objects.get(name="Auditors"))
    return user


# --- every write path is recorded, with before and after -----------------------------------------


def test_sec_2_orm_save_is_recorded_with_before_and_after():
    account = AccountFactory(name="Ada Ltd")
    account.status = Account.Status.DEACTIVATED
    account.deactivated_at = timezone.now()
    account.save()

    created, updated = events(account)
    assert (created.label, created.note) == ("insert", "created")
    assert changes(created)["name"] == ("—", "Ada Ltd")
    assert updated.label == "update"
    assert changes(updated)["status"] == ("Active", "Deactivated (silent period)")
    assert changes(updated)["deactivated at"][0] == "—"
    assert set(changes(updated)) == {"status", "deactivated at"}


def test_sec_2_queryset_update_is_recorded_for_every_row():
    methods = [CardMethodFactory(), CardMethodFactory()]
    PaymentMethod.objects.filter(pk__in=[m.pk for m in methods]).update(status=PaymentMethod.Status.EXPIRED)

    for method in methods:
        last = events(method)[-1]
        assert last.label == "update"
        assert changes(last)["status"] == ("Active", "Expired")


def test_sec_2_update_that_changes_nothing_records_nothing():
    method = CardMethodFactory()
    PaymentMethod.objects.filter(pk=method.pk).update(status=method.status)
    assert [row.label for row in events(method)] == ["insert"]


def test_sec_2_bulk_create_records_one_insert_per_row():
    accounts = Account.objects.bulk_create(
        [Account(name=f"Bulk {i}", kind=Account.Kind.ENTERPRISE, country="DE", region="EU") for i in range(3)]
    )
    for account in accounts:
        (row,) = events(account)
        assert row.label == "insert" and changes(row)["name"] == ("—", account.name)


def test_sec_2_raw_sql_update_is_recorded_with_before_and_after(now):
    claim, _ = reviewed_claim(now=now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {RemittanceClaim._meta.db_table} SET status = 'rejected', note = 'raw' WHERE id = %s",
            [claim.pk],
        )
    last = events(claim)[-1]
    assert changes(last)["status"] == ("Reviewed", "Rejected")
    assert changes(last)["note"][1] == "raw"
    assert last.actor == ""  # no context: the page says "direct database change"


def test_sec_2_raw_sql_update_of_accounts_and_methods_is_recorded():
    method = CardMethodFactory()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Account._meta.db_table} SET credit_limit = 5000 WHERE id = %s", [method.account_id])
        cursor.execute(f"UPDATE {PaymentMethod._meta.db_table} SET is_default = TRUE WHERE id = %s", [method.pk])
    assert changes(events(method.account)[-1])["credit limit"] == ("0.00", "5000.00")  # exact amounts
    assert changes(events(method)[-1])["is default"] == ("no", "yes")


def test_sec_2_delete_is_recorded():
    account = AccountFactory()
    pk = account.pk
    account.delete()
    labels = [row.label for row in audit_admin.object_history_rows(Account, pk)]
    assert labels == ["delete", "insert"]


def test_sec_2_hold_lease_churn_is_not_an_event_but_the_release_is(now):
    hold = HoldFactory()
    VerificationHold.objects.filter(pk=hold.pk).update(lease_token="00000000-0000-0000-0000-000000000001")
    assert [row.label for row in events(hold)] == ["insert"]
    VerificationHold.objects.filter(pk=hold.pk).update(status=VerificationHold.Status.RELEASED, released_at=now)
    assert changes(events(hold)[-1])["status"] == ("Placed", "Released")


def test_sec_2_event_tables_are_append_only():
    account = AccountFactory()
    table = event_model_for(Account)._meta.db_table
    for sql in (f"UPDATE {table} SET pgh_label = 'forged'", f"DELETE FROM {table}"):
        with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql)
    assert [row.label for row in events(account)] == ["insert"]


def test_sec_2_baseline_gives_rows_older_than_the_trail_a_before():
    """Migration 0005's step: rows that existed before tracking get a baseline event."""
    account = AccountFactory(name="Before the trail")
    event_model = event_model_for(Account)
    with truncation_allowed(), connection.cursor() as cursor:  # as if the row predated the trail
        cursor.execute(f"TRUNCATE {event_model._meta.db_table}")
    with connection.schema_editor() as editor:
        insert_baseline_events(django_apps, editor, app_label="payments", event_models=["AccountEvent"])
    Account.objects.filter(pk=account.pk).update(kyc_status=Account.KycStatus.REQUIRED)

    baseline, updated = events(account)
    assert (baseline.label, baseline.actor) == ("baseline", "migration:audit baseline")
    assert changes(updated)["KYC status"] == ("Not required", "Required, not started")


# --- who: staff in the admin, the console API, tasks, helpers ----------------------------------------


def test_sec_2_admin_action_records_the_account_manager(as_role, manager):
    account = AccountFactory()
    response = action_post(as_role("manager"), "account", "deactivate_selected", [account.pk])
    assert response.status_code == 302

    last = events(account)[-1]
    assert changes(last)["status"] == ("Active", "Deactivated (silent period)")
    assert last.actor == "manager"
    assert last.context["user"] == manager.pk
    assert (last.context["method"], last.context["url"]) == ("POST", "/admin/payments/account/")


def test_sec_2_console_api_records_the_token_client(api):
    account_id = new_account(api, country="US")
    response = link_card(api, account_id)
    assert response.status_code == 201, response.content

    (created,) = events(Account.objects.get(pk=account_id))
    assert created.actor == "api-console-test"
    assert created.context["url"] == "/api/v1/accounts/"
    method = PaymentMethod.objects.get(account_id=account_id)
    assert {row.actor for row in events(method)} == {"api-console-test"}
    hold = VerificationHold.objects.get(payment_method=method)
    assert events(hold)[0].context["url"] == f"/api/v1/accounts/{account_id}/cards/"


def test_sec_2_celery_task_change_carries_the_task_name():
    account = AccountFactory(status=Account.Status.DEACTIVATED, deactivated_at=timezone.now() - timedelta(days=16))

    result = close_silent_accounts.apply()
    assert result.get() == 1

    last = events(account)[-1]
    assert changes(last)["status"] == ("Deactivated (silent period)", "Closed")
    assert last.actor == "task:payments.close_silent_accounts"
    assert last.context["task"] == "payments.close_silent_accounts" and last.context["task_id"]
    # The task's context ended with the task: later changes in this thread carry none.
    AccountFactory(name="After the task")
    assert events(Account.objects.get(name="After the task"))[0].actor == ""


def test_sec_2_audit_context_names_the_actor_and_the_reason_and_nests(now):
    staff = UserFactory(username="shell-user")
    account = AccountFactory()
    with audit_context(actor=staff, reason="customer asked by phone"):
        Account.objects.filter(pk=account.pk).update(kyc_status=Account.KycStatus.REQUIRED)
        with audit_context(actor="command:fix_kyc"):
            Account.objects.filter(pk=account.pk).update(kyc_status=Account.KycStatus.PENDING)
        Account.objects.filter(pk=account.pk).update(kyc_status=Account.KycStatus.VERIFIED)

    _, first, inner, after_inner = events(account)
    assert (first.actor, first.context["user"], first.context["reason"]) == (
        "shell-user", staff.pk, "customer asked by phone"
    )
    assert inner.actor == "command:fix_kyc"
    assert after_inner.actor == "shell-user"


def test_sec_2_claim_approval_names_the_approver(client, now):
    claim, txn = reviewed_claim(now=now)
    approver = finance_user("approver")
    client.force_login(approver)
    response = client.post(reverse("admin:remittances_remittanceclaim_approve", args=[claim.pk]), {"confirm": "on"})
    assert response.status_code == 302

    last = events(claim)[-1]
    assert last.actor == "approver" and last.context["user"] == approver.pk
    assert changes(last)["status"] == ("Reviewed", "Approved")
    assert changes(last)["decided by"] == ("—", "approver")  # a name, never "#<id>" (issue 10)
    txn_last = events(txn)[-1]
    assert txn_last.actor == "approver"
    assert changes(txn_last)["status"] == ("Claimed", "Credited")


def test_sec_2_claim_approval_through_the_service_with_the_helper(now):
    claim, _ = reviewed_claim(now=now)
    approver = finance_user("svc-approver")
    with audit_context(actor=approver, reason="approved from a shell"):
        claim_services.claim_approve(claim_id=claim.pk, actor=approver, now=now)
    last = events(claim)[-1]
    assert (last.actor, last.context["reason"]) == ("svc-approver", "approved from a shell")


def test_sec_2_statement_import_records_every_line_and_credit_with_the_importer(now):
    """The importer's set-based raw SQL (INSERT ... SELECT unnest, UPDATE ... FROM) is recorded."""
    customer = AccountFactory(kind="enterprise")
    make_receiving_account(number=build.DEDICATED_IBAN, kind=RemittanceAccount.Kind.DEDICATED, account=customer, now=now)
    importer = UserFactory(username="importer")
    with audit_context(actor=importer, reason="morning statement"):
        summary = statement_import(data=sample("camt053_v08.xml"), file_name="day.xml", now=now)
    assert summary.credited == build.STANDARD_CREDITABLE_LINES

    statement_events = events(BankStatement.objects.get())
    assert [row.label for row in statement_events] == ["insert", "update"]  # then its summary
    assert {(row.actor, row.context["reason"]) for row in statement_events} == {("importer", "morning statement")}
    for txn in BankTransaction.objects.all():
        rows = events(txn)
        assert {row.actor for row in rows} == {"importer"}
        if txn.status == BankTransaction.Status.CREDITED:
            assert changes(rows[-1])["status"] == ("Matched (dedicated account)", "Credited")
            assert changes(rows[-1])["ledger entry"] == ("—", str(txn.ledger_entry))


def test_sec_2_a_rolled_back_change_leaves_no_event():
    account = AccountFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        Account.objects.filter(pk=account.pk).update(status=Account.Status.CLOSED, closed_at=timezone.now())
        raise RuntimeError("the service failed after the update")
    assert [row.label for row in events(account)] == ["insert"]


# --- the admin pages --------------------------------------------------------------------------------


def test_sec_2_history_page_shows_who_and_before_and_after(as_role):
    account = AccountFactory(name="Grace & Co <script>x</script>")
    client = as_role("manager")
    action_post(client, "account", "deactivate_selected", [account.pk])

    page = client.get(reverse("admin:payments_account_history", args=[account.pk])).content.decode()
    assert "Audit trail (SEC-2)" in page
    assert "Active &rarr; Deactivated (silent period)" in page
    assert "<strong>manager</strong>" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    assert AUDIT_LOG not in page  # a manager cannot open the audit log: no link to it


def test_sec_2_audit_log_page_for_superuser_and_auditors_only(client, as_role, manager, finance):
    AccountFactory(name="Listed Ltd")
    assert as_role("superuser").get(AUDIT_LOG).status_code == 200
    for role in ("manager", "finance"):
        assert as_role(role).get(AUDIT_LOG).status_code == 403
    client.force_login(auditor())
    page = client.get(AUDIT_LOG)
    assert page.status_code == 200 and "Listed Ltd" in page.content.decode()
    # Read-only: no other URL than the list.
    assert client.get(AUDIT_LOG + "add/").status_code in (302, 404)


def test_sec_2_audit_log_filters_by_model_actor_date_and_object_id(client, as_role):
    """Event times are the database's own ``now()`` (the wall clock): no frozen ``now`` here, and
    the day filtered on is read from the database, so the test holds across a midnight too."""
    client = as_role("superuser")
    staff = UserFactory(username="filter-actor")
    a, b = AccountFactory(), AccountFactory()
    method = CardMethodFactory(account=a)
    with audit_context(actor=staff):
        Account.objects.filter(pk=b.pk).update(kyc_status=Account.KycStatus.REQUIRED)

    def listed(**params):
        response = client.get(AUDIT_LOG, params)
        assert response.status_code == 200
        return {(row.model, row.object_id, row.label) for row in response.context["rows"]}

    assert listed(model="payments.paymentmethod") == {(PaymentMethod, method.pk, "insert")}
    assert listed(actor="filter-actor") == {(Account, b.pk, "update")}
    assert listed(model="payments.account", q=str(b.pk)) == {(Account, b.pk, "insert"), (Account, b.pk, "update")}
    with connection.cursor() as cursor:  # the day of this test's transaction, when its events happened
        cursor.execute("SELECT (now() AT TIME ZONE 'UTC')::date")
        today = cursor.fetchone()[0]
    assert (Account, a.pk, "insert") in listed(since=today.isoformat(), until=today.isoformat())
    # Not this test's events before today or after it (the baseline events of the migrations are
    # from when the test database was made, which may be yesterday when the run crosses midnight).
    mine = {(Account, a.pk, "insert"), (Account, b.pk, "insert"), (Account, b.pk, "update"),
            (PaymentMethod, method.pk, "insert")}
    assert mine <= listed(since=today.isoformat())
    assert not listed(until=(today - timedelta(days=1)).isoformat()) & mine
    assert listed(since=(today + timedelta(days=1)).isoformat()) == set()
    response = client.get(AUDIT_LOG, {"q": "not-an-id"})
    assert response.status_code == 200 and not response.context["rows"]
    assert "Search by the object" in response.content.decode()


def test_sec_2_audit_log_pages_by_key_without_gaps_or_repeats(client, as_role, monkeypatch):
    monkeypatch.setattr(audit_admin, "PAGE_SIZE", 3)
    client = as_role("superuser")
    # Only this test's rows: the fixtures' group memberships are audited too (SEC-2).
    with audit_context(actor="pager"):
        accounts = [AccountFactory() for _ in range(4)]
        for account in accounts:
            CardMethodFactory(account=account)
    seen, url = [], AUDIT_LOG + "?actor=pager"
    for _ in range(10):
        response = client.get(url)
        seen += [(row.model, row.event_id) for row in response.context["rows"]]
        if not response.context["older_url"]:
            break
        url = AUDIT_LOG + response.context["older_url"]
    assert len(seen) == len(set(seen)) == 8  # 4 accounts + 4 methods


def test_sec_2_audit_log_query_count_does_not_grow_with_events(as_role):
    client = as_role("superuser")
    client.get(AUDIT_LOG)  # warm caches (content types, session)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(AUDIT_LOG).status_code == 200
        return len(captured)

    # One query for the page, plus one per related model its rows name (users, accounts ...),
    # never one per event: a page of 1 method and one of 31 cost the same.
    CardMethodFactory()
    few = queries()
    for _ in range(30):
        CardMethodFactory()
    assert queries() == few


# --- SEC-1 holds in the audit trail too --------------------------------------------------------------


def test_sec_1_sec_2_no_card_number_in_the_audit_tables_or_pages(api, as_role):
    account_id = new_account(api, country="US")
    assert link_card(api, account_id, CARD_NUMBER).status_code == 201
    method = PaymentMethod.objects.get(account_id=account_id)

    for model in audited_models():
        table = event_model_for(model)._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT row_to_json(e)::text FROM {table} e")
            dump = " ".join(row[0] for row in cursor.fetchall())
        assert CARD_NUMBER not in dump and not card_numbers_in(dump, grouped=False)

    client = as_role("superuser")
    pages = [
        client.get(AUDIT_LOG).content.decode(),
        client.get(reverse("admin:payments_paymentmethod_history", args=[method.pk])).content.decode(),
    ]
    for page in pages:
        # The icons' path data ("4 4 0 1 0 0 8 4 ...") is numbers, not text a person reads.
        text = re.sub(r"<svg.*?</svg>", "", page, flags=re.S)
        assert CARD_NUMBER not in page and not card_numbers_in(text)
        assert method.gateway_token not in page and method.fingerprint not in page  # shown as "(hidden)"
        assert "(hidden)" in page


def test_sec_2_history_names_related_objects_with_one_query_per_model(now):
    """Issue 10: History says who decided and which account, by name, never "#<id>"; the names
    cost one query per related model whatever the number of events."""
    from billing_backoffice.audit_admin import object_history_rows

    methods = [CardMethodFactory() for _ in range(3)]
    rows = object_history_rows(PaymentMethod, methods[0].pk)
    account_change = next(c for row in rows for c in row.changes if c.field == "account")
    assert account_change.after == str(methods[0].account)
    assert not account_change.after.startswith("#")

"""The ledger and the audit trail cannot be emptied, and every ledger insert is audited (I1, SEC-2).

Row triggers refuse UPDATE and DELETE of ledger and event rows; TRUNCATE fires no row trigger,
so a statement-level trigger refuses it on the ledger, the bank transaction keys and every
audit event table (also when reached through ``TRUNCATE ... CASCADE``). A ledger row inserted
by the services or by raw SQL outside them is copied into the audit trail by a trigger, with
the context of who made it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from billing_backoffice.audit import audit_context, audited_models, event_model_for
from payments.models import LedgerEntry
from payments.services.ledger import ledger_post
from remittances.models import BankTransactionKey
from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db


def truncate(sql: str) -> None:
    with pytest.raises(DatabaseError, match="Cannot truncate the append-only table"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql)


# Committed rows first (transaction=True): inside one open transaction PostgreSQL refuses a
# TRUNCATE of a table with pending trigger events for its own reason, which would prove nothing.
@pytest.mark.django_db(transaction=True)
def test_i1_truncate_of_the_ledger_is_refused(now):
    account = AccountFactory()
    ledger_post(account_id=account.pk, amount=Decimal("10.00"), currency="USD", kind=LedgerEntry.Kind.ADJUSTMENT,
                reference="adj-truncate-1", now=now)
    truncate(f"TRUNCATE {LedgerEntry._meta.db_table} CASCADE")
    truncate(f"TRUNCATE {account._meta.db_table} CASCADE")  # the cascade reaches the ledger
    assert LedgerEntry.objects.filter(reference="adj-truncate-1").exists()


@pytest.mark.parametrize(
    "table",
    sorted({event_model_for(model)._meta.db_table for model in audited_models()} | {BankTransactionKey._meta.db_table}),
)
@pytest.mark.django_db(transaction=True)
def test_sec_2_truncate_of_an_audit_table_is_refused(table):
    AccountFactory()  # at least one event row in the accounts' event table
    truncate(f"TRUNCATE {table} CASCADE")


def ledger_events(entry_id: int):
    return list(event_model_for(LedgerEntry).objects.filter(pgh_obj_id=entry_id).order_by("pgh_id"))


def test_sec_2_a_ledger_posting_through_the_service_records_who_made_it(now):
    account, clerk = AccountFactory(), UserFactory(username="fin-clerk")
    with audit_context(actor=clerk, reason="manual adjustment"):
        posting = ledger_post(account_id=account.pk, amount=Decimal("12.50"), currency="USD",
                              kind=LedgerEntry.Kind.ADJUSTMENT, reference="adj-audit-1", now=now, actor=clerk)
    [event] = ledger_events(posting.entry.pk)
    assert event.pgh_label == "insert"
    assert (event.pgh_context["actor"], event.pgh_context["reason"]) == ("fin-clerk", "manual adjustment")
    assert (event.amount, event.reference) == (Decimal("12.50"), "adj-audit-1")


def _raw_insert(account_id: int, reference: str, now) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {LedgerEntry._meta.db_table} (account_id, amount, currency, kind, reference, memo, created_at) "
            "VALUES (%s, 99.00, 'USD', 'adjustment', %s, 'outside the services', %s) RETURNING id",
            [account_id, reference, now],
        )
        return cursor.fetchone()[0]


def test_sec_2_a_raw_sql_ledger_insert_outside_the_services_is_audited_with_its_context(now):
    account = AccountFactory()
    with audit_context(actor="command:dbshell-fix"):
        entry_id = _raw_insert(account.pk, "raw-audit-1", now)
    [event] = ledger_events(entry_id)
    assert (event.pgh_label, event.pgh_context["actor"], event.amount) == ("insert", "command:dbshell-fix", Decimal("99.00"))


def test_sec_2_a_raw_sql_ledger_insert_with_no_context_is_still_recorded(now):
    """As from psql: the event is there, with no context, so the audit log shows it as such."""
    account = AccountFactory()
    entry_id = _raw_insert(account.pk, "raw-audit-2", now)
    [event] = ledger_events(entry_id)
    assert event.pgh_label == "insert" and not event.pgh_context

"""Billing invariants (QUALITY.md I1, I3, I5; SET-2, SET-4) checked after every settlement test,
race and state-machine step, plus small builders for bills and credits.

``assert_billing_invariants()`` reads the whole database (tests only):
- I3: every (account, currency) ledger sum stays at or above its floor: minus the approved
  credit limit in the credit currency, zero otherwise. (The balance *is* the sum of entries:
  nothing stores a balance, so "balance == sum(entries)" is checked by the tests that compute
  a balance through ``account_balance`` against their own arithmetic.)
- I5 / SET-4: every bill's ``amount_paid`` equals minus the sum of its ``bill_payment`` entries,
  is within its total, and its status matches (paid <=> amount_paid == total).
  A ``bill_payment`` reference names its bill in the second ``:``-separated field
  (``settle:<bill>:<paid before>``, the scheme shared by the settlement and manual payment).
- I5 / SET-2: no bill has received a payment from the balance (``settle:`` entries: the
  settlement and finance's manual payment) while an older bill (issued_at, id) of the same
  account and currency is still unpaid. A card or PayPal charge for one bill (PAY-1, its entries
  ``bill-payment:<bill>:charge:<charge>``) pays that bill with the charge's own money and is
  not bound by the order. This assumes bills are issued in
  ``issued_at`` order (a bill issued later with an earlier ``issued_at`` would be "older" than
  bills already paid).
- I1: the append-only trigger is installed on the ledger table.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import count

from django.db import connection

from payments.models import Bill, LedgerEntry
from payments.services.ledger import ledger_post

_sequence = count(1)
# The bill a ledger entry pays (NULL for every other entry); CASE keeps the cast off other rows.
BILL_OF_ENTRY = (
    "CASE WHEN e.kind = 'bill_payment' AND split_part(e.reference, ':', 2) ~ '^[0-9]+$' "
    "THEN split_part(e.reference, ':', 2)::bigint END"
)


def make_bill(
    account,
    total,
    *,
    issued_at: datetime,
    currency: str = "USD",
    due_date: date | None = None,
    status: str = Bill.Status.OPEN,
    amount_paid=Decimal("0.00"),
    kind: str = Bill.Kind.MONTHLY,
    paid_at: datetime | None = None,
) -> Bill:
    """A bill as the billing services would issue it (and the account flagged, DEL-3)."""
    total = Decimal(str(total))
    bill = Bill.objects.create(
        account=account, kind=kind, order_kind="purchase" if kind == Bill.Kind.ORDER else "",
        reference=f"bill-{next(_sequence)}-{account.pk}-{issued_at:%Y%m%d%H%M%S%f}",
        issued_at=issued_at, due_date=due_date or (issued_at + timedelta(days=30)).date(),
        amount_before_tax=total, tax=Decimal("0.00"), total=total, currency=currency,
        amount_paid=Decimal(str(amount_paid)), status=status,
        paid_at=paid_at or (issued_at if status == Bill.Status.PAID else None),
    )
    type(account).objects.filter(pk=account.pk).update(has_outstanding_bills=True)
    return bill


def credit(account, amount, *, now: datetime, currency: str = "USD", reference: str | None = None):
    """Money the customer sent (a dedicated transfer), through the ledger's only writer."""
    return ledger_post(
        account_id=account.pk, amount=Decimal(str(amount)), currency=currency,
        kind=LedgerEntry.Kind.REMITTANCE_CREDIT,
        reference=reference or f"test-credit:{next(_sequence)}", now=now,
    ).entry


def _rows(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def assert_billing_invariants() -> None:
    # I3: the floor of every balance.
    below = _rows(
        """
        SELECT e.account_id, e.currency, SUM(e.amount)
        FROM payments_ledgerentry e JOIN payments_account a ON a.id = e.account_id
        GROUP BY e.account_id, e.currency, a.credit_approved, a.credit_limit, a.credit_currency
        HAVING SUM(e.amount) < CASE WHEN a.credit_approved AND a.credit_currency = e.currency
                                    THEN -a.credit_limit ELSE 0 END
        """
    )
    assert not below, f"I3: balances below their floor: {below}"

    # I5 / SET-4: amount paid == what the ledger paid, per bill.
    unnamed = _rows(
        "SELECT reference FROM payments_ledgerentry WHERE kind = %s AND split_part(reference, ':', 2) !~ '^[0-9]+$'",
        [LedgerEntry.Kind.BILL_PAYMENT],
    )
    assert not unnamed, f"bill payments that name no bill: {unnamed}"
    mismatched = _rows(
        f"""
        SELECT b.id, b.amount_paid, COALESCE(-p.paid, 0), b.account_id, p.account_ids
        FROM payments_bill b
        LEFT JOIN (
            SELECT {BILL_OF_ENTRY} AS bill_id, SUM(e.amount) AS paid,
                   array_agg(DISTINCT e.account_id) AS account_ids
            FROM payments_ledgerentry e WHERE e.kind = %s GROUP BY 1
        ) p ON p.bill_id = b.id
        WHERE b.amount_paid <> COALESCE(-p.paid, 0)
           OR (p.account_ids IS NOT NULL AND p.account_ids <> ARRAY[b.account_id])
        """,
        [LedgerEntry.Kind.BILL_PAYMENT],
    )
    assert not mismatched, f"I5: amount_paid differs from the ledger (bill, paid, ledger, ...): {mismatched}"
    orphans = _rows(
        f"""
        SELECT e.reference FROM payments_ledgerentry e
        LEFT JOIN payments_bill b ON b.id = {BILL_OF_ENTRY}
        WHERE e.kind = %s AND b.id IS NULL
        """,
        [LedgerEntry.Kind.BILL_PAYMENT],
    )
    assert not orphans, f"bill payments of no bill: {orphans}"
    bad_status = _rows(
        """
        SELECT id, status, amount_paid, total FROM payments_bill
        WHERE amount_paid < 0 OR amount_paid > total
           OR (status = 'paid') <> (amount_paid = total)
           OR (status = 'open' AND amount_paid <> 0)
           OR (status = 'partially_paid' AND amount_paid = 0)
        """
    )
    assert not bad_status, f"bills whose status does not match what was paid: {bad_status}"

    # I5 / SET-2: nothing paid from the balance while an older bill is unpaid.
    out_of_order = _rows(
        f"""
        SELECT young.id, old.id FROM payments_bill young
        JOIN payments_bill old
          ON old.account_id = young.account_id AND old.currency = young.currency
         AND (old.issued_at, old.id) < (young.issued_at, young.id)
        WHERE old.status <> 'paid'
          AND EXISTS (
              SELECT 1 FROM payments_ledgerentry e
              WHERE e.kind = %s AND e.reference LIKE 'settle:%%' AND {BILL_OF_ENTRY} = young.id
          )
        """,
        [LedgerEntry.Kind.BILL_PAYMENT],
    )
    assert not out_of_order, f"SET-2: bills paid while an older one is unpaid (younger, older): {out_of_order}"

    # I1: the ledger refuses updates and deletes.
    triggers = _rows(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'payments_ledgerentry'::regclass AND NOT tgisinternal"
    )
    assert any("ledger_append_only" in name for (name,) in triggers), f"I1: no append-only trigger: {triggers}"

"""The ``Account.has_outstanding_bills`` flag (DEL-3) kept in step with the account's bills.

Every writer that moves a bill into or out of the unpaid statuses calls ``accounts_sync_outstanding``
in the same transaction: the settlement (``settlement``), paying a bill by hand (``bills``) and a
charge that pays its bill (``charge_execution``). Its own module so that all of them import it
and none imports another for it.
"""

from __future__ import annotations

from payments.models import Account, Bill

# The statuses of a bill that still waits for money (open, partially paid, overdue).
UNPAID = tuple(str(s) for s in Bill.UNPAID_STATUSES)

# DEL-3 reads this flag; it follows the bills of these accounts.
SYNC_OUTSTANDING_SQL = f"""
    UPDATE {Account._meta.db_table} a
    SET has_outstanding_bills = o.outstanding
    FROM (
        SELECT x.id, EXISTS (
            SELECT 1 FROM {Bill._meta.db_table} b
            WHERE b.account_id = x.id AND b.status = ANY(%(unpaid)s::varchar[])
        ) AS outstanding
        FROM unnest(%(ids)s::bigint[]) AS x(id)
    ) o
    WHERE a.id = o.id AND a.has_outstanding_bills IS DISTINCT FROM o.outstanding
"""


def accounts_sync_outstanding(cursor, *, account_ids: list[int]) -> int:
    """Set ``has_outstanding_bills`` of these accounts from their bills (one statement).

    Call it with the accounts' rows locked (or in the same transaction that changed their bills).
    """
    if not account_ids:
        return 0
    cursor.execute(SYNC_OUTSTANDING_SQL, {"ids": list(account_ids), "unpaid": list(UNPAID)})
    return cursor.rowcount

"""REM-4: how the statement import recognises a line it has recorded before.

Every bank reference a line carries (the entry's account servicer reference, its detail's) is a
key of the line in ``BankTransactionKey``, unique per receiving account. A line is a repeat when
any of its keys is known; its other keys are then added to the recorded line, so a third message
quoting only one of them is recognised too. A repeat that differs from the recorded line (amount,
direction, or a payer both name differently) is not dropped: the caller records it for review
under ``review_key``.

Imports of one receiving account are serialised by a transaction-level advisory lock taken
before any lookup (``lock_receiving_accounts``), so two messages of the same transfer imported
at the same moment cannot both miss each other's keys.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from django.db import connection

from remittances.models import BankTransaction, BankTransactionKey

# Keys per lookup. Larger: a lookup may scan the receiving account's keys once whatever their
# number, and a re-sent 100k-line statement looks every one of them up.
LOOKUP_CHUNK = 20_000
INSERT_CHUNK = 5000
_LOCK_CLASS = 4940  # first half of the advisory lock key: "statement import of a receiving account"
_SEPARATOR = "\x1f"


def lock_receiving_accounts(receiving_ids) -> None:
    """Serialise imports per receiving account until the transaction ends (ids sorted: no deadlock)."""
    with connection.cursor() as cursor:
        for receiving_id in sorted(set(receiving_ids)):
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, receiving_id % 2**31])


def line_print(amount: Decimal, entry_kind: str, payer_name: str) -> str:
    """What a repeat must agree on with the recorded line: amount, direction (kind) and payer."""
    return f"{amount:.2f}{_SEPARATOR}{entry_kind}{_SEPARATOR}{payer_name[:140]}"


def same_line(new: str, recorded: str) -> bool:
    """Whether two prints name the same transfer; a payer missing on either side is no difference
    (a statement may carry no details where the notification named the payer)."""
    if new == recorded:
        return True
    new_amount, new_kind, new_payer = new.split(_SEPARATOR)
    old_amount, old_kind, old_payer = recorded.split(_SEPARATOR)
    payers_agree = not new_payer or not old_payer or new_payer.casefold() == old_payer.casefold()
    return new_amount == old_amount and new_kind == old_kind and payers_agree


def review_key(primary: str, print_: str) -> str:
    """The key a differing repeat is recorded under: the same differing line imported again is a
    duplicate of its review record, never a second one."""
    return "rvw:" + hashlib.sha256(f"{primary}{_SEPARATOR}{print_}".encode()).hexdigest()[:40]


def known_keys(receiving_id: int, keys: list[str]) -> dict[str, tuple[int, str]]:
    """key -> (transaction id, its print) for the keys already recorded on the account."""
    key_table = BankTransactionKey._meta.db_table
    txn_table = BankTransaction._meta.db_table
    found: dict[str, tuple[int, str]] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(keys), LOOKUP_CHUNK):
            # Arrays in one row rather than a row per key (a re-sent statement finds them all).
            cursor.execute(
                f"""SELECT array_agg(k.key), array_agg(k.bank_transaction_id),
                       array_agg(t.amount::text || %s || t.entry_kind || %s || t.payer_name)
                FROM {key_table} k JOIN {txn_table} t ON t.id = k.bank_transaction_id
                WHERE k.receiving_account_id = %s AND k.key = ANY(%s)""",
                [_SEPARATOR, _SEPARATOR, receiving_id, keys[start:start + LOOKUP_CHUNK]],
            )
            found_keys, ids, prints = cursor.fetchone()
            if found_keys:
                found.update(zip(found_keys, zip(ids, prints)))
    return found


def insert_keys(receiving_id: int, pairs: list[tuple[str, int]]) -> None:
    """Record (key, transaction id) pairs; a key some line already has stays that line's."""
    sql = (
        f"INSERT INTO {BankTransactionKey._meta.db_table} (receiving_account_id, key, bank_transaction_id) "
        "SELECT %s, u.key, u.txn FROM unnest(%s::text[], %s::bigint[]) AS u(key, txn) "
        "ON CONFLICT (receiving_account_id, key) DO NOTHING"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(pairs), INSERT_CHUNK):
            chunk = pairs[start:start + INSERT_CHUNK]
            cursor.execute(sql, [receiving_id, [key for key, _ in chunk], [txn for _, txn in chunk]])

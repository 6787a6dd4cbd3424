"""Writing the new lines of a statement (REM-1, REM-2, REM-4): which of its lines are new, which
repeat a recorded line (or differ from it, for review), and one ``INSERT ... ON CONFLICT DO
NOTHING RETURNING`` per ``CHUNK`` lines, so that each line is recorded once even when two imports
of the same transfer run at once. Called by ``statement_import`` inside its transaction, after
the receiving accounts' advisory locks and the statement rows (the lock order of
``remittances.services.statements``).
"""

from __future__ import annotations

from collections import Counter

from django.db import connection

from remittances.models import BankStatement, BankTransaction, RemittanceAccount
from remittances.services.statement_keys import insert_keys, known_keys, review_key, same_line
from remittances.services.statement_lines import Line, Plan, kind_of

Status = BankTransaction.Status
Kind = BankTransaction.EntryKind

CHUNK = 5000  # lines per INSERT / UPDATE: bounded statement size, few round trips


def _status_for(line: Line, entry_kind: str, receiving: RemittanceAccount) -> str:
    if entry_kind != Kind.CREDIT:
        return Status.NOT_CREDITABLE
    if line.entry.currency != receiving.currency:
        return Status.REVIEW
    if receiving.kind == RemittanceAccount.Kind.DEDICATED:
        return Status.MATCHED
    return Status.UNMATCHED


_COUNTER_FOR = {
    Status.NOT_CREDITABLE.value: "rejected",
    Status.REVIEW.value: "review",
    Status.UNMATCHED.value: "unmatched",
    Status.MATCHED.value: None,  # counted as credited once the ledger posting is done
}


_INSERT = """
INSERT INTO {table} (
    statement_id, receiving_account_id, received_at, bank_reference, position, detail_index,
    entry_kind, status, amount, currency, booking_date, value_date, payer_name, payer_account,
    remittance_info, end_to_end_id, account_id, reversal_of
)
SELECT %s, %s, %s, u.* FROM unnest(
    %s::text[], %s::integer[], %s::integer[], %s::text[], %s::text[], %s::numeric[], %s::text[],
    %s::date[], %s::date[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[]
) AS u
ON CONFLICT (receiving_account_id, bank_reference) DO NOTHING
RETURNING id, bank_reference
"""


def _sort_lines(plan: Plan, known: dict[str, tuple[int, str]]):
    """REM-4: (indexes of new lines, indexes of differing repeats, keys to add to recorded lines).

    A line is a repeat when any of its keys is known; its keys not known yet are added to the
    recorded line. A repeat that differs from the recorded line is recorded for review.
    """
    new, differing, more_keys = set(), set(), []
    for index, key in enumerate(plan.keys):
        line_keys = (key, *plan.aliases.get(index, ()))
        hit = next((k for k in line_keys if k in known), None)
        if hit is None:
            new.add(index)
            continue
        txn_id, recorded = known[hit]
        if not same_line(plan.prints[index], recorded):
            differing.add(index)
            continue
        more_keys.extend((k, txn_id) for k in line_keys if k not in known)
    return new, differing, more_keys


def lines_insert_new(plan: Plan, row: BankStatement, *, now, counter: Counter):
    """Insert the lines not known yet; yield (id, line, status) for each one inserted here."""
    receiving = plan.receiving
    all_keys = plan.keys + [alias for aliases in plan.aliases.values() for alias in aliases]
    known = known_keys(receiving.pk, all_keys)
    new, differing, more_keys = _sort_lines(plan, known)
    insert_keys(receiving.pk, more_keys)
    lines = []
    for index, line in zip(sorted(new | differing), plan.lines_at(new | differing)):
        if index in differing:  # REM-4: recorded for review, under a key of its own
            line = line._replace(key=review_key(line.key, plan.prints[index]), aliases=())
        lines.append((line, index in differing))
    lines.sort(key=lambda item: item[0].key)
    counter["duplicates"] = len(plan.keys) - len(lines)
    sql = _INSERT.format(table=BankTransaction._meta.db_table)
    for start in range(0, len(lines), CHUNK):
        chunk = [line for line, _ in lines[start:start + CHUNK]]
        kinds = [str(kind_of(line.entry)) for line in chunk]
        statuses = [
            Status.REVIEW.value if for_review else str(_status_for(line, kind, receiving))
            for (line, for_review), kind in zip(lines[start:start + CHUNK], kinds)
        ]
        columns = [
            [line.key for line in chunk],
            [line.entry.position for line in chunk],
            [line.detail_index for line in chunk],
            kinds,
            statuses,
            [line.amount for line in chunk],
            [line.entry.currency for line in chunk],
            [line.entry.booking_date for line in chunk],
            [line.entry.value_date for line in chunk],
            [line.detail.payer_name[:140] for line in chunk],
            [line.detail.payer_account[:34] for line in chunk],
            [line.detail.remittance_info[:500] for line in chunk],
            [line.detail.end_to_end_id[:35] for line in chunk],
            [receiving.account_id if status == Status.MATCHED else None for status in statuses],
            [line.entry.reversal_of if kind == Kind.REVERSAL else "" for line, kind in zip(chunk, kinds)],
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, [row.pk, receiving.pk, now, *columns])
            inserted = dict((key, txn_id) for txn_id, key in cursor.fetchall())
        # A line already recorded under its primary key (the same file twice) is a duplicate too.
        counter["duplicates"] += len(chunk) - len(inserted)
        insert_keys(receiving.pk, [
            (key, inserted[line.key])
            for line, status in zip(chunk, statuses) if line.key in inserted and not line.key.startswith("rvw:")
            for key in (line.key, *line.aliases)
        ])
        for line, status in zip(chunk, statuses):
            txn_id = inserted.get(line.key)
            if txn_id is None:
                continue
            name = _COUNTER_FOR[status]
            if name:
                counter[name] += 1
            yield txn_id, line, status

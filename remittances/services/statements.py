"""Bank statement import: REM-1, REM-2, REM-4, REM-5, REM-6, REM-7.

``statement_import`` reads a camt.053 / camt.054 / MT940 file and records it all-or-nothing: one
database transaction for the whole file, so a file with several statements is imported whole or
not at all. Everything that can refuse the file is checked before the first write:

- REM-7: every statement's receiving account must be a ``RemittanceAccount`` we know.
- REM-5: for camt.053 and MT940, opening balance + booked entries must equal the closing balance
  (camt.054 carries no balances). The error says the figures.
- REM-6: a batch entry becomes one ``BankTransaction`` per detail, each with its own payer, amount
  and reference; details that do not add up to the entry refuse the file.
- The parsers refuse unsupported formats and versions, hostile or malformed XML and bad amounts.

Per line (an entry, or one detail of a batch entry):

- Only booked credits can be credited. Debits, reversals and pending entries are recorded with
  their ``entry_kind`` and status ``not_creditable``, never credited.
- A currency other than the receiving account's goes to ``review``, uncredited.
- Dedicated receiving account (REM-1): ``matched``, then credited at once through ``ledger_post``
  with the reference ``bank-txn:<id>`` and marked ``credited``. A *suspended* dedicated account
  is still credited: the money has arrived and belongs to that customer, and a shared-account
  claim cannot apply to it; the summary counts such lines (``credited_on_suspended``) and the
  ledger memo says so, so finance can follow up.
- Shared receiving account (REM-2): ``unmatched``, waiting for a claim.

REM-4, duplicates: a line is known by its receiving account and a bank reference: the detail's
account servicer reference, else the entry's (``<ref>#<n>`` for the n-th detail of a batch that
has no detail references); where the reference is missing or repeats within the file, the
statement's identity and the line's position (``pos:<identity>:<position>[.<detail>]``). A bank
reference that contains ``#`` or starts like a derived key is kept as ``ref:<reference>``, so
it can never equal a key derived for another line (``_plain_key``). A pending
entry's key is prefixed ``pdng:`` so that the booked entry the bank sends later under the same
reference is not mistaken for it. Every other bank reference the line carries (the entry's and
its detail's, where they differ) is a key of it too (``statement_keys``, ``BankTransactionKey``):
the same transfer in a camt.054 (detail reference) and the day's camt.053 or MT940 (entry
reference) is one line. A repeat that differs from the recorded line (amount, direction, payer:
e.g. two files whose position keys collide) is recorded for ``review``, never dropped. Known
keys are read in batches (no query per entry); imports of one receiving account take turns (an
advisory lock); new lines are inserted with ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, so
each line is recorded and credited once. A statement already imported (same account and
identity) is not recorded again; its lines are counted as duplicates (new lines of a re-sent
statement are added to it). A file whose exact bytes were imported before (SHA-256 of the file,
kept on the statements it created with its line count) is answered from that record without
parsing: every line is a duplicate. That is sound because imports are all-or-nothing and lines
are never deleted.

A single-detail entry is recorded at the entry's (booked) amount; only batches must add up.

Lock order (deadlock-free between concurrent imports and against claim approval): statement rows
(sorted by account and identity) -> transaction keys (sorted) -> account rows (sorted, before
the ledger postings).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from collections.abc import Iterator
from decimal import Decimal
from typing import NamedTuple

from django.db import IntegrityError, connection, transaction

from billing_backoffice.permissions import staff_require

from payments.services.customer_events import transfers_credited_notify
from payments.models import LedgerEntry
from payments.services.ledger import Credit, ledger_credit_many
from payments.services.settlement import settlement_request_many
from remittances.models import BankStatement, BankTransaction, RemittanceAccount, bank_transaction_ledger_reference
from remittances.parsers import (
    AUTO,
    ParsedDetail,
    ParsedEntry,
    ParsedStatement,
    StatementError,
    check_size,
    parse_statement_file,
)
from remittances.services.receiving import UnknownReceivingAccount, receiving_accounts  # noqa: F401 (re-exported)
from remittances.services.statement_keys import (
    insert_keys,
    known_keys,
    line_print,
    lock_receiving_accounts,
    review_key,
    same_line,
)

Status = BankTransaction.Status
Kind = BankTransaction.EntryKind

CHUNK = 5000  # lines per INSERT / UPDATE: bounded statement size, few round trips
KEY_MAX = 200  # BankTransaction.bank_reference max_length


class UnreconciledStatement(StatementError):
    code = "statement_unreconciled"
    rule = "REM-5"


class BatchMismatch(StatementError):
    code = "statement_batch_mismatch"
    rule = "REM-6"


@dataclass
class ImportSummary:
    """What one import did. ``entries`` counts lines (a batch entry counts once per detail) and
    equals credited + unmatched + duplicates + rejected + review."""

    entries: int = 0
    credited: int = 0
    unmatched: int = 0
    duplicates: int = 0
    rejected: int = 0  # recorded, never credited: debits, reversals, pending entries
    review: int = 0  # currency differs from the receiving account's
    credited_on_suspended: int = 0
    statement_id: int | None = None  # the first statement of the file
    statement_ids: list[int] = field(default_factory=list)
    statements: int = 0
    new_statements: int = 0
    format: str = ""
    file_sha256: str = ""
    credited_amounts: dict[str, str] = field(default_factory=dict)  # currency -> total credited

    def as_dict(self) -> dict:
        return asdict(self)

    def add(self, other: dict) -> None:
        for name in ("entries", "credited", "unmatched", "duplicates", "rejected", "review", "credited_on_suspended"):
            setattr(self, name, getattr(self, name) + other.get(name, 0))


class _Line(NamedTuple):
    """One line of a statement not recorded yet: a future BankTransaction."""

    key: str
    entry: ParsedEntry
    detail_index: int
    detail: ParsedDetail
    amount: Decimal
    aliases: tuple[str, ...] = ()  # the line's other bank references, as keys (REM-4)


# --- validation (no writes) -----------------------------------------------------------------------


def _reconcile(statement: ParsedStatement) -> None:
    """REM-5: opening + booked entries == closing (statements with balances only)."""
    if not statement.has_balances:
        return
    booked = sum((e.signed_amount for e in statement.entries if e.booked), Decimal("0.00"))
    expected = statement.opening_balance + booked
    if expected != statement.closing_balance:
        raise UnreconciledStatement(
            f"Statement {statement.identity or '(no id)'} does not reconcile: opening balance "
            f"{statement.opening_balance} + booked entries {booked} = {expected}, but the closing "
            f"balance is {statement.closing_balance}; nothing was imported."
        )


def _entry_kind(entry: ParsedEntry) -> str:
    if not entry.booked:
        return Kind.PENDING
    if entry.reversal:
        return Kind.REVERSAL
    return Kind.CREDIT if entry.credit else Kind.DEBIT


_NO_DETAIL = ParsedDetail(amount=None, currency=None)


def _split(entry: ParsedEntry, identity: str) -> list[tuple[int, ParsedDetail, Decimal]]:
    """REM-6: (detail index, detail, amount) per transaction of the entry."""
    details = entry.details
    if len(details) <= 1:
        # One transfer: the entry's amount is what was booked (a detail may show the amount
        # before the bank's charges, or in the instructed currency).
        return [(0, details[0] if details else _NO_DETAIL, entry.amount)]
    where = f"Statement {identity} entry {entry.position}"
    if any(d.amount is None or d.currency != entry.currency for d in details):
        raise BatchMismatch(
            f"{where}: a batch of {len(details)} details where not every detail has an amount in "
            f"{entry.currency}, so it cannot be split; nothing was imported."
        )
    total = sum((d.amount for d in details), Decimal("0.00"))
    if total != entry.amount:
        raise BatchMismatch(
            f"{where}: its {len(details)} details add up to {total} {entry.currency} but the entry is "
            f"{entry.amount} {entry.currency}; nothing was imported."
        )
    return [(index, detail, detail.amount) for index, detail in enumerate(details, start=1)]


def _fit(key: str) -> str:
    return key if len(key) <= KEY_MAX else "h:" + hashlib.sha256(key.encode()).hexdigest()


# Keys this module derives: ``<ref>#<n>`` and these prefixes. A bank reference that could be
# mistaken for one of them is stored escaped, so no bank's reference ever equals a derived key.
_DERIVED_PREFIXES = ("pos:", "pdng:", "h:", "ref:", "rvw:")


def _plain_key(reference: str) -> str:
    """A bank reference as a REM-4 key: itself, or ``ref:<reference>`` when it contains ``#`` or
    starts like a derived key. Without this, a batch entry ``E1`` split into ``E1#1`` and ``E1#2``
    and another entry whose own reference is ``E1#1`` would share a key, and one of the two
    transfers would be taken for a duplicate and never recorded."""
    if "#" in reference or reference.startswith(_DERIVED_PREFIXES):
        return "ref:" + reference
    return reference


def _each_line(statement: ParsedStatement, identity: str, reference_counts: Counter) -> Iterator[_Line]:
    """The statement's lines in order, with their REM-4 keys (REM-6: batches split and checked)."""
    for entry in statement.entries:
        parts = _split(entry, identity)
        batch = len(parts) > 1
        for index, detail, amount in parts:
            # ``<ref>#<n>`` only for a reference that is its own plain key: for one escaped as
            # ``ref:...`` the derived key could equal another reference's escaped key.
            derivable = entry.reference and _plain_key(entry.reference) == entry.reference
            if detail.reference and reference_counts[detail.reference] == 1:
                key = _plain_key(detail.reference)
            elif entry.reference and reference_counts[entry.reference] == 1 and (derivable or not batch):
                key = f"{entry.reference}#{index}" if batch else _plain_key(entry.reference)
            else:
                key = f"pos:{identity}:{entry.position}" + (f".{index}" if batch else "")
            # Every bank reference the line carries names it (REM-4): a notification may quote
            # the detail's reference and the day's statement only the entry's, or the reverse.
            aliases = ()
            if not batch:
                references = (detail.reference, entry.reference)
                aliases = tuple(dict.fromkeys(
                    _plain_key(r) for r in references if r and reference_counts[r] == 1 and _plain_key(r) != key
                ))
            if not entry.booked:
                key = "pdng:" + key
                aliases = tuple("pdng:" + alias for alias in aliases)
            yield _Line(_fit(key), entry, index, detail, amount, tuple(_fit(a) for a in aliases))


def _count_references(statements, accounts) -> dict[int, Counter]:
    """How often each bank reference occurs per receiving account in this file (REM-4)."""
    counts: dict[int, Counter] = {}
    for statement, account in zip(statements, accounts):
        references = []  # counted at once: a file has up to 100k entries
        for entry in statement.entries:
            own = entry.reference
            repeated_on_detail = False
            for detail in entry.details:
                if detail.reference:
                    references.append(detail.reference)
                    repeated_on_detail = repeated_on_detail or detail.reference == own
            # Banks often repeat the entry's reference on its (single) detail: that is one use.
            if own and not repeated_on_detail:
                references.append(own)
        counts.setdefault(account.pk, Counter()).update(references)
    return counts


# --- the import -----------------------------------------------------------------------------------


@dataclass
class _Plan:
    statement: ParsedStatement
    receiving: RemittanceAccount
    identity: str
    reference_counts: Counter
    # Only the key (a plain string) is kept for every line: most lines of a re-sent statement
    # are known, and an object kept per line (100k of them) has the garbage collector walk them
    # all again and again. The new lines are made again from the statement once the keys say
    # which they are.
    keys: list[str]
    prints: list[str]  # statement_keys.line_print of each line: what a repeat must agree on
    aliases: dict[int, tuple[str, ...]]  # line index -> its other keys (few lines have any)

    def lines_at(self, indexes: set[int]) -> list[_Line]:
        lines = _each_line(self.statement, self.identity, self.reference_counts)
        return [line for index, line in enumerate(lines) if index in indexes]


def statement_import(
    *, data: bytes, file_name: str = "", fmt: str = AUTO, actor=None, now: datetime
) -> ImportSummary:
    """Import one statement file all-or-nothing (REM-1, REM-2, REM-4..7); see the module docstring.

    Raises a ``StatementError`` subclass (nothing recorded) when the file is refused.
    SEC-3: a staff ``actor`` needs ``remittances.import_bankstatement``; the inbox task and the
    command import as ``SYSTEM`` (``None``).
    """
    staff_require(actor, permission="remittances.import_bankstatement", action="import bank statements")
    check_size(data)
    sha = hashlib.sha256(data).hexdigest()
    known = _already_imported(sha, fmt=fmt)
    if known is not None:
        return known
    statements = parse_statement_file(data, fmt=fmt)
    accounts = receiving_accounts(statements)
    counts = _count_references(statements, accounts)
    plans = []
    for index, (statement, receiving) in enumerate(zip(statements, accounts), start=1):
        _reconcile(statement)
        # A statement without an id is known by the file's content and its place in the file.
        identity = (statement.identity or f"sha256:{sha[:40]}:{index}")[:140]
        references = counts[receiving.pk]
        keys, prints, aliases = [], [], {}
        for line in _each_line(statement, identity, references):
            if line.aliases:
                aliases[len(keys)] = line.aliases
            keys.append(line.key)
            prints.append(line_print(line.amount, _entry_kind(line.entry), line.detail.payer_name))
        plans.append(_Plan(statement, receiving, identity, references, keys, prints, aliases))
    summary = ImportSummary(format=statements[0].format, file_sha256=sha, statements=len(plans))
    with transaction.atomic():
        _record(plans, summary=summary, file_name=file_name, sha=sha, actor=actor, now=now)
    return summary


def _already_imported(sha: str, *, fmt: str) -> ImportSummary | None:
    """REM-4 fast path: these exact bytes were imported before, so every line is a duplicate.

    Sound because an import is all-or-nothing and recorded lines are never deleted; the lines
    of the file were counted (``file_entries``) on the statements it created. Without such a
    record (e.g. every statement of the file came from other files) the normal path decides.
    """
    rows = list(BankStatement.objects.filter(file_sha256=sha).order_by("pk").values("pk", "format", "summary"))
    if not rows or "file_entries" not in (rows[0]["summary"] or {}):
        return None
    if fmt != AUTO and rows[0]["format"] != fmt:
        return None  # let the parser refuse the contradicting format, as on the first import
    figures = rows[0]["summary"]
    entries = figures["file_entries"]
    ids = [row["pk"] for row in rows]
    return ImportSummary(
        entries=entries, duplicates=entries, statement_id=ids[0], statement_ids=ids,
        statements=figures.get("file_statements", len(rows)), new_statements=0, format=rows[0]["format"],
        file_sha256=sha,
    )


def _record(plans: list[_Plan], *, summary: ImportSummary, file_name, sha, actor, now) -> None:
    # One import at a time per receiving account (REM-4: the keys looked up below stay true).
    lock_receiving_accounts(plan.receiving.pk for plan in plans)
    # Statement rows first, in a fixed order: a concurrent import of the same file waits here.
    ordered = sorted(enumerate(plans), key=lambda p: (p[1].receiving.pk, p[1].identity))
    rows: dict[int, tuple[BankStatement, bool]] = {}
    for position, plan in ordered:
        rows[position] = _statement_row(plan, file_name=file_name, sha=sha, actor=actor, now=now)
    to_credit: list[tuple[int, _Plan, _Line]] = []
    per_statement: dict[int, Counter] = {}
    for position, plan in ordered:
        row, _ = rows[position]
        counter = per_statement[position] = Counter(entries=len(plan.keys))
        for txn_id, line, status in _insert_new_lines(plan, row, now=now, counter=counter):
            if status == Status.MATCHED:
                to_credit.append((txn_id, plan, line))
    credited = _credit(to_credit, actor=actor, now=now)
    for position, plan in ordered:
        counter = per_statement[position]
        counter["credited"] = sum(1 for txn_id, p, _ in to_credit if p is plan and txn_id in credited)
        counter["credited_on_suspended"] = counter["credited"] if plan.receiving.status == "suspended" else 0
        summary.add(counter)
    for position, _plan in ordered:
        row, created = rows[position]
        _store_summary(row, created, per_statement[position], file_entries=summary.entries, file_statements=len(plans))
    for txn_id, plan, line in to_credit:
        if txn_id in credited:
            currency = line.entry.currency
            total = Decimal(summary.credited_amounts.get(currency, "0.00")) + line.amount
            summary.credited_amounts[currency] = str(total)
    summary.statement_ids = [rows[i][0].pk for i in range(len(plans))]
    summary.statement_id = summary.statement_ids[0]
    summary.new_statements = sum(1 for row, created in rows.values() if created)
    if summary.unmatched:
        transaction.on_commit(lambda: _match_waiting_claims(now=now))


def _statement_row(plan: _Plan, *, file_name, sha, actor, now) -> tuple[BankStatement, bool]:
    """The statement's row, created once (REM-4); a re-import finds the existing one."""
    statement = plan.statement
    try:
        with transaction.atomic():
            return (
                BankStatement.objects.create(
                    receiving_account=plan.receiving,
                    format=statement.format,
                    identity=plan.identity,
                    currency=statement.currency or plan.receiving.currency,
                    opening_balance=statement.opening_balance,
                    closing_balance=statement.closing_balance,
                    period_start=statement.period_start,
                    period_end=statement.period_end,
                    file_name=(file_name or "")[:255],
                    file_sha256=sha,
                    imported_by=actor,
                    imported_at=now,
                ),
                True,
            )
    except IntegrityError:
        # Imported before (or by a concurrent import that has just committed).
        return BankStatement.objects.get(receiving_account=plan.receiving, identity=plan.identity), False


def _status_for(line: _Line, entry_kind: str, receiving: RemittanceAccount) -> str:
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
    remittance_info, end_to_end_id, account_id
)
SELECT %s, %s, %s, u.* FROM unnest(
    %s::text[], %s::integer[], %s::integer[], %s::text[], %s::text[], %s::numeric[], %s::text[],
    %s::date[], %s::date[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[]
) AS u
ON CONFLICT (receiving_account_id, bank_reference) DO NOTHING
RETURNING id, bank_reference
"""


def _sort_lines(plan: _Plan, known: dict[str, tuple[int, str]]):
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


def _insert_new_lines(plan: _Plan, row: BankStatement, *, now, counter: Counter):
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
        kinds = [str(_entry_kind(line.entry)) for line in chunk]
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


def _credit(to_credit: list[tuple[int, _Plan, _Line]], *, actor, now) -> set[int]:
    """REM-1: post each matched line to its account's ledger and mark it credited.

    One bulk posting (a few statements per 5,000 lines) instead of a ``ledger_post`` per line;
    the ledger reference ``bank-txn:<id>`` still makes each line credit at most once (CLM-2).
    """
    if not to_credit:
        return set()
    credits = []
    for txn_id, plan, line in to_credit:
        receiving = plan.receiving
        memo = f"Bank transfer {line.key} to dedicated account {receiving.number}"
        if receiving.status == RemittanceAccount.Status.SUSPENDED:
            memo += " (received while the account was suspended)"
        credits.append(Credit(
            account_id=receiving.account_id,
            amount=line.amount,
            currency=line.entry.currency,
            kind=LedgerEntry.Kind.REMITTANCE_CREDIT,
            reference=bank_transaction_ledger_reference(txn_id),
            memo=memo,
        ))
    entry_ids = ledger_credit_many(credits=credits, now=now, actor=actor)
    done = [(txn_id, entry_ids[bank_transaction_ledger_reference(txn_id)]) for txn_id, _, _ in to_credit]
    table = BankTransaction._meta.db_table
    credited: set[int] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(done), CHUNK):
            chunk = done[start:start + CHUNK]
            cursor.execute(
                f"""UPDATE {table} AS t SET status = %s, ledger_entry_id = u.entry_id, credited_at = %s
                FROM unnest(%s::bigint[], %s::bigint[]) AS u(id, entry_id)
                WHERE t.id = u.id AND t.status = %s RETURNING t.id""",
                [Status.CREDITED.value, now, [d[0] for d in chunk], [d[1] for d in chunk], Status.MATCHED.value],
            )
            credited.update(row[0] for row in cursor.fetchall())
    # NOTIFY-1: each credited transfer is told to its customer, in the import's transaction.
    transfers_credited_notify(now=now, credits=[
        (plan.receiving.account_id, bank_transaction_ledger_reference(txn_id), line.amount, line.entry.currency)
        for txn_id, plan, line in to_credit if txn_id in credited
    ])
    # SET-2 / REM-1: the credited accounts pay their open bills once the import commits.
    settlement_request_many(account_ids={plan.receiving.account_id for _, plan, _ in to_credit})
    return credited


def _store_summary(row: BankStatement, created: bool, counter: Counter, *, file_entries: int, file_statements: int) -> None:
    figures = {name: counter.get(name, 0) for name in (
        "entries", "credited", "unmatched", "duplicates", "rejected", "review", "credited_on_suspended",
    )}
    if created:
        # file_*: the whole file's lines, for recognising a re-import of the same bytes.
        row.summary = {**figures, "file_entries": file_entries, "file_statements": file_statements}
        row.save(update_fields=["summary"])
        return
    new_lines = figures["entries"] - figures["duplicates"]
    if new_lines:
        # A re-sent statement with lines we had not seen: add them to its figures.
        merged = dict(row.summary or {})
        for name, value in figures.items():
            if name not in ("entries", "duplicates"):
                merged[name] = merged.get(name, 0) + value
        merged["entries"] = merged.get("entries", 0) + new_lines
        row.summary = merged
        row.save(update_fields=["summary"])


def _match_waiting_claims(*, now: datetime) -> None:
    """CLM-1: claims sent before their transfer arrived are attached once the import commits."""
    from remittances.services.claims import claims_match_pending  # claims import nothing from here

    claims_match_pending(now=now)

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
statement's identity and the line's position (``pos:<identity>:<position>[.<detail>]``). A pending
entry's key is prefixed ``pdng:`` so that the booked entry the bank sends later under the same
reference is not mistaken for it. Known keys are read in batches (no query per entry); new lines
are inserted with ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, so when the same file is
imported twice at once, the second import waits on the first one's rows and finds them
duplicates: each line is credited once. A statement already imported (same account and
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
from decimal import Decimal

from django.db import IntegrityError, connection, transaction

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

Status = BankTransaction.Status
Kind = BankTransaction.EntryKind

CHUNK = 5000  # lines per INSERT / key lookup: bounded statement size, few round trips
KEY_MAX = 200  # BankTransaction.bank_reference max_length


class UnknownReceivingAccount(StatementError):
    code = "statement_unknown_account"
    rule = "REM-7"


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


@dataclass(slots=True)
class _Line:
    """One future BankTransaction."""

    key: str
    position: int
    detail_index: int
    entry_kind: str
    amount: Decimal
    currency: str
    booking_date: object
    value_date: object
    detail: ParsedDetail


# --- validation (no writes) -----------------------------------------------------------------------


def _receiving_accounts(statements: list[ParsedStatement]) -> list[RemittanceAccount]:
    """REM-7: the receiving account of each statement, in one query."""
    numbers = {n for s in statements for n in (s.account_number, *s.account_candidates) if n}
    known = {a.number: a for a in RemittanceAccount.objects.filter(number__in=numbers).select_related("account")}
    accounts = []
    for statement in statements:
        match = next((known[n] for n in (statement.account_number, *statement.account_candidates) if n in known), None)
        if match is None:
            raise UnknownReceivingAccount(
                f"Statement {statement.identity or '(no id)'} is for account {statement.account_number}, "
                "which is not a receiving account of the back office; nothing was imported."
            )
        accounts.append(match)
    return accounts


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


def _split(entry: ParsedEntry, *, where: str) -> list[tuple[int, ParsedDetail, Decimal]]:
    """REM-6: (detail index, detail, amount) per transaction of the entry."""
    details = entry.details or [ParsedDetail(amount=None, currency=None)]
    if len(details) == 1:
        # One transfer: the entry's amount is what was booked (a detail may show the amount
        # before the bank's charges, or in the instructed currency).
        return [(0, details[0], entry.amount)]
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


def _lines(statement: ParsedStatement, identity: str, reference_counts: Counter) -> list[_Line]:
    """The statement's lines with their REM-4 keys."""
    lines = []
    for entry in statement.entries:
        where = f"Statement {identity} entry {entry.position}"
        parts = _split(entry, where=where)
        batch = len(parts) > 1
        for index, detail, amount in parts:
            if detail.reference and reference_counts[detail.reference] == 1:
                key = detail.reference
            elif entry.reference and reference_counts[entry.reference] == 1:
                key = f"{entry.reference}#{index}" if batch else entry.reference
            else:
                key = f"pos:{identity}:{entry.position}" + (f".{index}" if batch else "")
            if not entry.booked:
                key = "pdng:" + key
            lines.append(
                _Line(
                    key=_fit(key), position=entry.position, detail_index=index, entry_kind=_entry_kind(entry),
                    amount=amount, currency=entry.currency, booking_date=entry.booking_date,
                    value_date=entry.value_date, detail=detail,
                )
            )
    return lines


def _count_references(statements, accounts) -> dict[int, Counter]:
    """How often each bank reference occurs per receiving account in this file (REM-4)."""
    counts: dict[int, Counter] = {}
    for statement, account in zip(statements, accounts):
        counter = counts.setdefault(account.pk, Counter())
        for entry in statement.entries:
            detail_refs = [d.reference for d in entry.details if d.reference]
            counter.update(detail_refs)
            # Banks often repeat the entry's reference on its (single) detail: that is one use.
            if entry.reference and entry.reference not in detail_refs:
                counter[entry.reference] += 1
    return counts


# --- the import -----------------------------------------------------------------------------------


@dataclass
class _Plan:
    statement: ParsedStatement
    receiving: RemittanceAccount
    identity: str
    lines: list[_Line]


def statement_import(
    *, data: bytes, file_name: str = "", fmt: str = AUTO, actor=None, now: datetime
) -> ImportSummary:
    """Import one statement file all-or-nothing (REM-1, REM-2, REM-4..7); see the module docstring.

    Raises a ``StatementError`` subclass (nothing recorded) when the file is refused.
    """
    check_size(data)
    sha = hashlib.sha256(data).hexdigest()
    known = _already_imported(sha, fmt=fmt)
    if known is not None:
        return known
    statements = parse_statement_file(data, fmt=fmt)
    accounts = _receiving_accounts(statements)
    counts = _count_references(statements, accounts)
    plans = []
    for index, (statement, receiving) in enumerate(zip(statements, accounts), start=1):
        _reconcile(statement)
        # A statement without an id is known by the file's content and its place in the file.
        identity = (statement.identity or f"sha256:{sha[:40]}:{index}")[:140]
        plans.append(_Plan(statement, receiving, identity, _lines(statement, identity, counts[receiving.pk])))
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
    # Statement rows first, in a fixed order: a concurrent import of the same file waits here.
    ordered = sorted(enumerate(plans), key=lambda p: (p[1].receiving.pk, p[1].identity))
    rows: dict[int, tuple[BankStatement, bool]] = {}
    for position, plan in ordered:
        rows[position] = _statement_row(plan, file_name=file_name, sha=sha, actor=actor, now=now)
    to_credit: list[tuple[int, _Plan, _Line]] = []
    per_statement: dict[int, Counter] = {}
    for position, plan in ordered:
        row, _ = rows[position]
        counter = per_statement[position] = Counter(entries=len(plan.lines))
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
            total = Decimal(summary.credited_amounts.get(line.currency, "0.00")) + line.amount
            summary.credited_amounts[line.currency] = str(total)
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


def _status_for(line: _Line, receiving: RemittanceAccount) -> str:
    if line.entry_kind != Kind.CREDIT:
        return Status.NOT_CREDITABLE
    if line.currency != receiving.currency:
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


def _existing_keys(receiving_id: int, keys: list[str]) -> set[str]:
    table = BankTransaction._meta.db_table
    found: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(keys), CHUNK):
            cursor.execute(
                f"SELECT bank_reference FROM {table} WHERE receiving_account_id = %s AND bank_reference = ANY(%s)",
                [receiving_id, keys[start:start + CHUNK]],
            )
            found.update(row[0] for row in cursor.fetchall())
    return found


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


def _insert_new_lines(plan: _Plan, row: BankStatement, *, now, counter: Counter):
    """Insert the lines not known yet; yield (id, line, status) for each one inserted here."""
    receiving = plan.receiving
    known = _existing_keys(receiving.pk, [line.key for line in plan.lines])
    new = sorted((line for line in plan.lines if line.key not in known), key=lambda line: line.key)
    counter["duplicates"] = len(plan.lines) - len(new)
    sql = _INSERT.format(table=BankTransaction._meta.db_table)
    for start in range(0, len(new), CHUNK):
        chunk = new[start:start + CHUNK]
        statuses = [str(_status_for(line, receiving)) for line in chunk]
        columns = [
            [line.key for line in chunk],
            [line.position for line in chunk],
            [line.detail_index for line in chunk],
            [str(line.entry_kind) for line in chunk],
            statuses,
            [line.amount for line in chunk],
            [line.currency for line in chunk],
            [line.booking_date for line in chunk],
            [line.value_date for line in chunk],
            [line.detail.payer_name[:140] for line in chunk],
            [line.detail.payer_account[:34] for line in chunk],
            [line.detail.remittance_info[:500] for line in chunk],
            [line.detail.end_to_end_id[:35] for line in chunk],
            [receiving.account_id if status == Status.MATCHED else None for status in statuses],
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, [row.pk, receiving.pk, now, *columns])
            inserted = dict((key, txn_id) for txn_id, key in cursor.fetchall())
        # Lines another import inserted between our lookup and our insert are duplicates too.
        counter["duplicates"] += len(chunk) - len(inserted)
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
            currency=line.currency,
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

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
it can never equal a key derived for another line (``statement_lines.plain_key``). A pending
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
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connection, transaction

from billing_backoffice.permissions import staff_require

from payments.services.customer_events import transfers_credited_notify
from payments.models import LedgerEntry
from payments.services.ledger import Credit, ledger_credit_many
from payments.services.settlement import settlement_request_many
from remittances.models import BankStatement, BankTransaction, RemittanceAccount, bank_transaction_ledger_reference
from remittances.parsers import AUTO, check_size, parse_statement_file
from remittances.services.receiving import receiving_accounts
from remittances.services.reversals import reversals_apply
from remittances.services.statement_keys import line_print, lock_receiving_accounts
from remittances.services.statement_lines import Line, Plan, count_references, each_line, kind_of, statement_reconcile
from remittances.services.statement_recording import CHUNK, lines_insert_new

Status = BankTransaction.Status
logger = logging.getLogger(__name__)


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


def statement_import(
    *, data: bytes, file_name: str = "", fmt: str = AUTO, actor=None, now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import one statement file all-or-nothing (REM-1, REM-2, REM-4..7); see the module docstring.

    Raises a ``StatementError`` subclass (nothing recorded) when the file is refused.
    SEC-3: a staff ``actor`` needs ``remittances.import_bankstatement``; the inbox task and the
    command import as ``SYSTEM`` (``None``). ``progress(done, total)``, if given, is told the
    file's line count once it is parsed and checked, before the import's transaction opens (a
    staff job's progress bar, ``statement_uploads.py``), and again when every line is recorded.
    """
    staff_require(actor, permission="remittances.import_bankstatement", action="import bank statements")
    check_size(data)
    sha = hashlib.sha256(data).hexdigest()
    known = _already_imported(sha, fmt=fmt)
    if known is not None:
        return known
    statements = parse_statement_file(data, fmt=fmt)
    accounts = receiving_accounts(statements)
    counts = count_references(statements, accounts)
    plans = []
    for index, (statement, receiving) in enumerate(zip(statements, accounts), start=1):
        statement_reconcile(statement)
        # A statement without an id is known by the file's content and its place in the file.
        identity = (statement.identity or f"sha256:{sha[:40]}:{index}")[:140]
        references = counts[receiving.pk]
        keys, prints, aliases = [], [], {}
        for line in each_line(statement, identity, references):
            if line.aliases:
                aliases[len(keys)] = line.aliases
            keys.append(line.key)
            prints.append(line_print(line.amount, kind_of(line.entry), line.detail.payer_name))
        plans.append(Plan(statement, receiving, identity, references, keys, prints, aliases))
    summary = ImportSummary(format=statements[0].format, file_sha256=sha, statements=len(plans))
    lines = sum(len(plan.keys) for plan in plans)
    if progress:
        progress(0, lines)
    with transaction.atomic():
        _record(plans, summary=summary, file_name=file_name, sha=sha, actor=actor, now=now)
    if progress:
        progress(lines, lines)
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


def _record(plans: list[Plan], *, summary: ImportSummary, file_name, sha, actor, now) -> None:
    # One import at a time per receiving account (REM-4: the keys looked up below stay true).
    lock_receiving_accounts(plan.receiving.pk for plan in plans)
    # Statement rows first, in a fixed order: a concurrent import of the same file waits here.
    ordered = sorted(enumerate(plans), key=lambda p: (p[1].receiving.pk, p[1].identity))
    rows: dict[int, tuple[BankStatement, bool]] = {}
    for position, plan in ordered:
        rows[position] = _statement_row(plan, file_name=file_name, sha=sha, actor=actor, now=now)
    to_credit: list[tuple[int, Plan, Line]] = []
    per_statement: dict[int, Counter] = {}
    for position, plan in ordered:
        row, _ = rows[position]
        counter = per_statement[position] = Counter(entries=len(plan.keys))
        for txn_id, line, status in lines_insert_new(plan, row, now=now, counter=counter):
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
    # RVS-1/RVS-2: reversal lines this import recorded and nothing has handled yet.
    reversal_statements = list(summary.statement_ids) if summary.rejected and BankTransaction.objects.filter(
        statement_id__in=summary.statement_ids, entry_kind=BankTransaction.EntryKind.REVERSAL,
        reversal_record__isnull=True).exists() else []
    if summary.unmatched or reversal_statements:
        match = bool(summary.unmatched)
        transaction.on_commit(lambda: _after_commit(now=now, match_claims=match, reversal_statements=reversal_statements))


def _statement_row(plan: Plan, *, file_name, sha, actor, now) -> tuple[BankStatement, bool]:
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
                    sequence_number=statement.sequence_number,
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


def _credit(to_credit: list[tuple[int, Plan, Line]], *, actor, now) -> set[int]:
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


def _after_commit(*, now: datetime, match_claims: bool, reversal_statements: list[int]) -> None:
    """Once the lines are visible: waiting claims (CLM-1), then the reversals (RVS-1/RVS-2).

    The reversals run in their own transaction, so their locks (claim -> transaction -> account)
    never nest inside the import's account locks. One that fails is logged and left to the daily
    proof's sweep (``reversals_apply`` with no statements), never lost and never blocking claims.
    """
    if match_claims:
        _match_waiting_claims(now=now)
    if reversal_statements:
        try:
            reversals_apply(statement_ids=reversal_statements, now=now)
        except Exception:  # noqa: BLE001 - retried by the daily sweep; the import has committed
            logger.exception("reversals of statements %s left to the daily sweep", reversal_statements)


def _match_waiting_claims(*, now: datetime) -> None:
    """CLM-1: claims sent before their transfer arrived are attached once the import commits."""
    from remittances.services.claims import claims_match_pending  # claims import nothing from here

    claims_match_pending(now=now)

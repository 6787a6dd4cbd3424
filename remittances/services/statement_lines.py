"""The lines of a parsed bank statement and their REM-4 keys; the checks that refuse a file
before anything is written (REM-5 balances, REM-6 batches). No query, no write.

A line is an entry, or one detail of a batch entry (REM-6). How its key is chosen, and why a bank
reference is sometimes kept as ``ref:<reference>``, is told in ``remittances.services.statements``
(the import) and at ``plain_key`` below.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from remittances.models import BankTransaction, RemittanceAccount
from remittances.parsers import ParsedDetail, ParsedEntry, ParsedStatement
from remittances.errors import BatchMismatch, UnreconciledStatement  # noqa: F401 (raised here)

Kind = BankTransaction.EntryKind

KEY_MAX = 200  # BankTransaction.bank_reference max_length


class Line(NamedTuple):
    """One line of a statement not recorded yet: a future BankTransaction."""

    key: str
    entry: ParsedEntry
    detail_index: int
    detail: ParsedDetail
    amount: Decimal
    aliases: tuple[str, ...] = ()  # the line's other bank references, as keys (REM-4)


def statement_reconcile(statement: ParsedStatement) -> None:
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


def kind_of(entry: ParsedEntry) -> str:
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


# Keys the import derives: ``<ref>#<n>`` and these prefixes. A bank reference that could be
# mistaken for one of them is stored escaped, so no bank's reference ever equals a derived key.
_DERIVED_PREFIXES = ("pos:", "pdng:", "h:", "ref:", "rvw:")


def plain_key(reference: str) -> str:
    """A bank reference as a REM-4 key: itself, or ``ref:<reference>`` when it contains ``#`` or
    starts like a derived key. Without this, a batch entry ``E1`` split into ``E1#1`` and ``E1#2``
    and another entry whose own reference is ``E1#1`` would share a key, and one of the two
    transfers would be taken for a duplicate and never recorded."""
    if "#" in reference or reference.startswith(_DERIVED_PREFIXES):
        return "ref:" + reference
    return reference


def each_line(statement: ParsedStatement, identity: str, reference_counts: Counter) -> Iterator[Line]:
    """The statement's lines in order, with their REM-4 keys (REM-6: batches split and checked)."""
    for entry in statement.entries:
        parts = _split(entry, identity)
        batch = len(parts) > 1
        for index, detail, amount in parts:
            # ``<ref>#<n>`` only for a reference that is its own plain key: for one escaped as
            # ``ref:...`` the derived key could equal another reference's escaped key.
            derivable = entry.reference and plain_key(entry.reference) == entry.reference
            if detail.reference and reference_counts[detail.reference] == 1:
                key = plain_key(detail.reference)
            elif entry.reference and reference_counts[entry.reference] == 1 and (derivable or not batch):
                key = f"{entry.reference}#{index}" if batch else plain_key(entry.reference)
            else:
                key = f"pos:{identity}:{entry.position}" + (f".{index}" if batch else "")
            # Every bank reference the line carries names it (REM-4): a notification may quote
            # the detail's reference and the day's statement only the entry's, or the reverse.
            aliases = ()
            if not batch:
                references = (detail.reference, entry.reference)
                aliases = tuple(dict.fromkeys(
                    plain_key(r) for r in references if r and reference_counts[r] == 1 and plain_key(r) != key
                ))
            if not entry.booked:
                key = "pdng:" + key
                aliases = tuple("pdng:" + alias for alias in aliases)
            yield Line(_fit(key), entry, index, detail, amount, tuple(_fit(a) for a in aliases))


def count_references(statements, accounts) -> dict[int, Counter]:
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


@dataclass
class Plan:
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

    def lines_at(self, indexes: set[int]) -> list[Line]:
        lines = each_line(self.statement, self.identity, self.reference_counts)
        return [line for index, line in enumerate(lines) if index in indexes]

"""Reversed and returned bank entries: RVS-1, RVS-2.

The statement import records a reversal (camt ``RvslInd``, an MT940 ``RC``/``RD`` mark) as a
``BankTransaction`` of kind ``reversal``, never credited. ``reversals_apply`` then decides,
once per reversal line (``BankReversal.reversal`` is unique), what it takes back. The original
is the one credit line on the same receiving account, same currency and amount, not reversed
yet, that the reversal names: by the end-to-end id both carry, or by the original's bank
reference quoted in the reversal's remittance information (a return that references it).

- RVS-1, the original was credited: one reversing ledger entry of its credit
  (``ledger_reverse``: reference ``reversal:bank-txn:<id>``, ``reverses`` the credit). Bills
  already paid stay paid. If the debit would take the balance below the floor that I3 keeps,
  nothing is posted: the reversal is recorded ``owing`` and shows in finance's queue, with the
  entries involved, until a person resolves it.
- RVS-2, the original was never credited (unmatched, matched, claimed, review): it becomes
  ``reversed`` (it can no longer be claimed) and a pending claim on it is rejected with the reason.
- No single original: ``unknown``; it waits in the review queue (unresolved ``unknown`` rows)
  for a person.
- The direction is the line's ``reversal_of`` (kept on the ``BankReversal``): only a reversal of
  a credit (camt ``RvslInd`` with ``DBIT``, MT940 ``RC``) is matched against a credit and takes
  money from a customer. A reversal of a debit (``CRDT`` + ``RvslInd``, MT940 ``RD``) puts money
  back into our bank account: when it names one of our refund payments (end-to-end id or
  remittance information ``RFD-<id>``, same amount, currency and debtor account, the refund in a
  file) the bank returned that payment and the refund's money is credited back once
  (``refund_return``, outcome ``returned``); any other waits for review (``unknown``).

The import calls ``reversals_apply`` after it commits (``on_commit``, robust): the reversal runs
in its own transaction, so its locks (claim -> transaction -> account) never nest inside the
import's account locks; one that failed is picked up by the daily proof's sweep
(``reversals_apply()`` with no statements: every reversal line not handled yet).

Locks, in the claims' order so neither side can deadlock the other: claim row -> original
transaction row -> account row (``ledger_post``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from billing_backoffice.free_text import free_text_check
from billing_backoffice.permissions import SYSTEM, staff_require
from payments.services.ledger import InsufficientBalance, ledger_reverse
from remittances.models import BankReversal, BankTransaction, RefundRequest, RemittanceClaim
from remittances.services.refunds import refund_return
from remittances.errors import ReversalState  # noqa: F401 (raised here)

Status = BankTransaction.Status
Kind = BankTransaction.EntryKind
Outcome = BankReversal.Outcome
PERM_RESOLVE = "remittances.resolve_bankreversal"
UNCREDITED = (Status.UNMATCHED, Status.MATCHED, Status.CLAIMED, Status.REVIEW)


def _original_of(reversal: BankTransaction) -> BankTransaction | None:
    """The one not-yet-reversed credit line this reversal names, or None."""
    named = Q()
    if reversal.end_to_end_id and reversal.end_to_end_id.upper() not in ("NOTPROVIDED", "NONREF"):
        named |= Q(end_to_end_id=reversal.end_to_end_id)
    quoted = [word.strip(".,;:()") for word in (reversal.remittance_info or "").split() if len(word) >= 6]
    if quoted:
        named |= Q(bank_reference__in=quoted) | Q(keys__key__in=quoted)
    if not named:
        return None
    candidates = list(
        BankTransaction.objects.filter(
            named, receiving_account_id=reversal.receiving_account_id, entry_kind=Kind.CREDIT,
            amount=reversal.amount, currency=reversal.currency, reversed_by__isnull=True,
        ).exclude(status=Status.REVERSED).exclude(pk=reversal.pk).distinct().values_list("pk", flat=True)[:2]
    )
    return BankTransaction.objects.get(pk=candidates[0]) if len(candidates) == 1 else None


def _reject_live_claim(original_id: int, *, reason: str, now: datetime) -> None:
    """RVS-2: a pending claim on a reversed entry is rejected with the reason (claim row first)."""
    claim = (
        RemittanceClaim.objects.select_for_update()
        .filter(bank_transaction_id=original_id, status__in=RemittanceClaim.OPEN_STATUSES).first()
    )
    if claim is not None:
        claim.status = RemittanceClaim.Status.REJECTED
        claim.decided_at = now
        claim.note = f"{reason}\n\n{claim.note}".strip()
        claim.save(update_fields=["status", "decided_at", "note"])


_REFUND_NAMED = re.compile(r"\bRFD-(\d{1,18})\b", re.IGNORECASE)


def _returned_refund(reversal: BankTransaction, record: dict, now: datetime) -> BankReversal:
    """A reversal of a debit: the refund payment it names came back (money back once), or review."""
    named = {int(n) for text in (reversal.end_to_end_id, reversal.remittance_info) for n in _REFUND_NAMED.findall(text or "")}
    refund = RefundRequest.objects.filter(
        pk__in=named, debtor_account_id=reversal.receiving_account_id, amount=reversal.amount,
        currency=reversal.currency, status__in=(RefundRequest.Status.IN_FILE, RefundRequest.Status.SENT),
    ).first() if len(named) == 1 else None
    if refund is None:
        return BankReversal.objects.create(
            **record, outcome=Outcome.UNKNOWN,
            note="A reversal of a debit (money back in) that names none of our refund payments in a file.",
        )
    returned = refund_return(refund_id=refund.pk, actor=SYSTEM, now=now,
                             reason=f"Returned by the bank (statement entry {reversal.bank_reference})")
    return BankReversal.objects.create(
        **record, outcome=Outcome.RETURNED, account_id=refund.account_id, ledger_entry_id=returned.return_entry_id,
        note=f"Refund #{refund.pk} returned by the bank: its money was credited back.",
    )


@transaction.atomic
def reversal_apply(*, reversal_id: int, now: datetime) -> BankReversal:
    """RVS-1/RVS-2 for one reversal line; a second call returns the first outcome."""
    done = BankReversal.objects.filter(reversal_id=reversal_id).first()
    if done is not None:
        return done
    reversal = BankTransaction.objects.get(pk=reversal_id, entry_kind=Kind.REVERSAL)
    direction = reversal.reversal_of or BankReversal.ReversalOf.CREDIT
    record = dict(reversal=reversal, amount=reversal.amount, currency=reversal.currency, created_at=now,
                  reversal_of=direction)
    if direction == BankReversal.ReversalOf.DEBIT:
        return _returned_refund(reversal, record, now)
    found = _original_of(reversal)
    if found is None:
        return BankReversal.objects.create(
            **record, outcome=Outcome.UNKNOWN, note="No single original entry found for this reversal."
        )
    reason = f"RVS-2: the bank reversed this transfer (entry {reversal.bank_reference})."
    _reject_live_claim(found.pk, reason=reason, now=now)  # claim lock before the transaction's
    original = BankTransaction.objects.select_for_update().get(pk=found.pk)
    if BankReversal.objects.filter(original=original).exists() or original.status == Status.REVERSED:
        return BankReversal.objects.create(**record, outcome=Outcome.UNKNOWN, note="The original is already reversed.")
    if original.status in (Status.CREDITED, Status.REFUNDED):
        # Reversed whatever the ledger can take: its money is no longer there to refund or move
        # (RFD-3 only lets credited money leave) and RCN-3 counts it reversed. A refunded credit
        # the bank also takes back was paid out twice: the account owes what its balance lacks.
        original.status = Status.REVERSED
        original.save(update_fields=["status"])
        try:
            with transaction.atomic():
                posting = ledger_reverse(
                    entry_id=original.ledger_entry_id, now=now,
                    memo=f"RVS-1: bank reversal {reversal.bank_reference} of {original.bank_reference}",
                )
        except InsufficientBalance:
            return BankReversal.objects.create(
                **record, original=original, account_id=original.account_id, outcome=Outcome.OWING,
                note="The balance cannot take the debit (I3): the account owes it.",
            )
        return BankReversal.objects.create(
            **record, original=original, account_id=original.account_id, outcome=Outcome.DEBITED,
            ledger_entry=posting.entry,
        )
    if original.status in UNCREDITED:
        original.status = Status.REVERSED
        original.save(update_fields=["status"])
        return BankReversal.objects.create(
            **record, original=original, account_id=original.account_id, outcome=Outcome.CLOSED, note=reason[:300]
        )
    return BankReversal.objects.create(
        **record, outcome=Outcome.UNKNOWN, note=f"The original is {original.get_status_display().lower()}."
    )


def reversals_apply(*, now: datetime, statement_ids: Iterable[int] | None = None) -> list[BankReversal]:
    """RVS-1/RVS-2 for every reversal line not handled yet: of these statements (the import's
    hook), or of all of them (``None``: the daily sweep)."""
    pending = BankTransaction.objects.filter(entry_kind=Kind.REVERSAL, reversal_record__isnull=True)
    if statement_ids is not None:
        pending = pending.filter(statement_id__in=list(statement_ids))
    pending = pending.order_by("pk").values_list("pk", flat=True)
    return [reversal_apply(reversal_id=pk, now=now) for pk in pending]


@transaction.atomic
def reversal_resolve(*, reversal_record_id: int, actor, resolution: str, now: datetime) -> BankReversal:
    """A person records how an ``owing`` or ``unknown`` reversal was resolved (who, when, what)."""
    staff_require(actor, permission=PERM_RESOLVE, action="resolve reversals", rule="RVS-1", system_allowed=False)
    free_text_check(resolution=resolution)
    resolution = (resolution or "").strip()
    if not resolution:
        raise ReversalState("A resolution says what was done.")
    row = BankReversal.objects.select_for_update().get(pk=reversal_record_id)
    if row.resolved_at is not None:
        return row
    if row.outcome not in (Outcome.OWING, Outcome.UNKNOWN):
        raise ReversalState(f"Reversal #{row.pk} needs no resolution ({row.get_outcome_display().lower()}).")
    row.resolved_by, row.resolved_at, row.resolution = actor, now, resolution
    row.save(update_fields=["resolved_by", "resolved_at", "resolution"])
    return row

"""The ledger's writers and its balance (SEC-4, I1..I3, I6).

``LedgerEntry`` has three writers, each keeping the invariants in its own way:

- ``ledger_post`` (and ``ledger_reverse``, which posts through it): one entry per business event.
  I6: a non-zero Decimal of at most two places in an accepted ISO 4217 currency. I2: idempotent by
  reference: the first posting of an event wins, a replay with the same figures returns it
  unchanged, a replay with other figures is refused (``ReferenceReused``). I3: it locks the
  account row, so postings for one account are serialised, and refuses a debit that would take
  the balance below zero, or below minus the approved credit limit in that currency.
- ``ledger_credit_many``: the statement import's bulk credits (``remittances.services.statements``),
  one ``INSERT ... ON CONFLICT (reference) DO NOTHING`` per chunk. I6 as above, credits only
  (amount > 0), so I3's floor is never involved; I2: a reference already posted with the same
  figures is answered with its entry, with other figures the whole call is refused and rolls
  back. It locks the credited accounts in id order first, the lock ``ledger_post`` takes.
- The settlement sweep's ``INSERT ... SELECT`` (``services/settlement.py``): one ``bill_payment``
  debit per allocation, under ``SELECT ... FOR UPDATE ORDER BY id`` of the accounts. I2: the
  reference ``settle:<bill id>:<amount paid before>`` is deterministic, ``ON CONFLICT DO
  NOTHING``. I3: it spends only the positive part of the balance (never the credit line), so the
  balance never drops below zero through it.

Whoever writes, the database keeps I1 and the rest: triggers refuse UPDATE, DELETE and TRUNCATE
and copy every insert into the audit trail (SEC-2); the reference is unique; CheckConstraints
refuse a zero amount, a currency that is not an accepted ISO 4217 code (``billing_backoffice.money``) and a reversal without its original
(``payments/models/ledger.py``). A new writer must keep all of this; prefer ``ledger_post``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from billing_backoffice.money import InvalidAmount, currency_validate  # noqa: F401 - one I6 error for the project
from payments.errors import AccountNotFound
from payments.models import Account, LedgerEntry
from payments.errors import InsufficientBalance, ReferenceReused  # noqa: F401 (raised here)

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Posting:
    entry: LedgerEntry
    created: bool


def money(amount) -> Decimal:
    """I6: a Decimal with at most two places; floats and anything finer are refused."""
    if isinstance(amount, float):
        raise InvalidAmount("Amounts must be decimals, never floating point numbers.")
    try:
        value = Decimal(str(amount))
    except Exception:  # decimal.InvalidOperation and friends
        raise InvalidAmount(f"{amount!r} is not an amount.") from None
    if not value.is_finite() or value != value.quantize(CENT):
        raise InvalidAmount(f"{amount} has more than two decimal places.")
    return value.quantize(CENT)


def account_balance(*, account_id: int, currency: str) -> Decimal:
    """SEC-4: the balance is the sum of the account's entries in that currency."""
    total = LedgerEntry.objects.filter(account_id=account_id, currency=currency).aggregate(s=Sum("amount"))["s"]
    return total or Decimal("0.00")


def _same_event(entry: LedgerEntry, *, account_id, amount, currency, kind) -> bool:
    return (entry.account_id, entry.amount, entry.currency, entry.kind) == (account_id, amount, currency, kind)


@transaction.atomic
def ledger_post(
    *,
    account_id: int,
    amount,
    currency: str,
    kind: str,
    reference: str,
    now: datetime,
    actor=None,
    memo: str = "",
    reverses: LedgerEntry | None = None,
) -> Posting:
    """Post one entry for one business event, at most once (I2); debits respect I3."""
    amount = money(amount)
    if amount == 0:
        raise InvalidAmount("A ledger entry cannot be zero.")
    currency = currency_validate(currency)  # I6: the project's one currency check
    existing = LedgerEntry.objects.filter(reference=reference).first()
    if existing is not None:
        if not _same_event(existing, account_id=account_id, amount=amount, currency=currency, kind=kind):
            raise ReferenceReused(f"Reference {reference} was already posted with other figures.")
        return Posting(existing, created=False)
    try:
        account = Account.objects.select_for_update().get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound() from None
    if amount < 0:
        floor = -account.credit_limit if account.credit_approved and account.credit_currency == currency else Decimal("0.00")
        balance = account_balance(account_id=account_id, currency=currency)
        if balance + amount < floor:
            raise InsufficientBalance(
                f"Posting {amount} {currency} would take the balance of {balance} below {floor}."
            )
    try:
        with transaction.atomic():
            entry = LedgerEntry.objects.create(
                account_id=account_id, amount=amount, currency=currency, kind=kind,
                reference=reference, reverses=reverses, memo=memo[:300], created_by=actor, created_at=now,
            )
    except IntegrityError:
        # A concurrent posting of the same event won between our check and our insert.
        existing = LedgerEntry.objects.get(reference=reference)
        if not _same_event(existing, account_id=account_id, amount=amount, currency=currency, kind=kind):
            raise ReferenceReused(f"Reference {reference} was already posted with other figures.") from None
        return Posting(existing, created=False)
    return Posting(entry, created=True)


def ledger_reverse(*, entry_id: int, now: datetime, actor=None, memo: str = "") -> Posting:
    """I1: a correction is a new entry of the opposite sign that names the original."""
    original = LedgerEntry.objects.get(pk=entry_id)
    return ledger_post(
        account_id=original.account_id, amount=-original.amount, currency=original.currency,
        kind=LedgerEntry.Kind.REVERSAL, reference=f"reversal:{original.reference}", now=now,
        actor=actor, memo=memo or f"Reversal of {original.reference}", reverses=original,
    )


@dataclass(frozen=True)
class Credit:
    """One credit for ``ledger_credit_many``: money in, for one business event."""

    account_id: int
    amount: Decimal
    currency: str
    kind: str
    reference: str
    memo: str = ""


BULK_CHUNK = 5000


@transaction.atomic
def ledger_credit_many(*, credits: list[Credit], now: datetime, actor=None) -> dict[str, int]:
    """Post many credits in a few statements, each at most once (I2); returns reference -> entry id.

    For imports that credit thousands of bank entries: one INSERT ... ON CONFLICT DO NOTHING per
    chunk instead of one ``ledger_post`` each. Only credits (amount > 0), so no balance floor is
    involved (I3 concerns debits). The accounts are locked in id order first, like ``ledger_post``
    does one by one, so settlement and other postings for these accounts serialise with it.
    A reference already posted with other figures is refused (``ReferenceReused``) and the whole
    call rolls back.
    """
    if not credits:
        return {}
    rows = []
    for credit in credits:
        amount = money(credit.amount)
        if amount <= 0:
            raise InvalidAmount(f"ledger_credit_many posts credits only; got {amount} for {credit.reference}.")
        rows.append((credit.account_id, amount, currency_validate(credit.currency), credit.kind, credit.reference, credit.memo[:300]))
    account_ids = sorted({row[0] for row in rows})
    locked = list(Account.objects.select_for_update().filter(pk__in=account_ids).order_by("pk").values_list("pk", flat=True))
    if len(locked) != len(account_ids):
        raise AccountNotFound()
    table = LedgerEntry._meta.db_table
    posted: dict[str, int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BULK_CHUNK):
            chunk = rows[start:start + BULK_CHUNK]
            cursor.execute(
                f"""INSERT INTO {table} (account_id, amount, currency, kind, reference, memo, created_by_id, created_at)
                SELECT u.account_id, u.amount, u.currency, u.kind, u.reference, u.memo, %s, %s
                FROM unnest(%s::bigint[], %s::numeric[], %s::text[], %s::text[], %s::text[], %s::text[])
                    AS u(account_id, amount, currency, kind, reference, memo)
                ON CONFLICT (reference) DO NOTHING
                RETURNING reference, id""",
                [getattr(actor, "pk", None), now, *[list(column) for column in zip(*chunk)]],
            )
            posted.update(cursor.fetchall())
    replays = {row[4]: row for row in rows if row[4] not in posted}
    if replays:
        for entry in LedgerEntry.objects.filter(reference__in=list(replays)):
            account_id, amount, currency, kind, _, _ = replays[entry.reference]
            if not _same_event(entry, account_id=account_id, amount=amount, currency=currency, kind=kind):
                raise ReferenceReused(f"Reference {entry.reference} was already posted with other figures.")
            posted[entry.reference] = entry.pk
    return posted

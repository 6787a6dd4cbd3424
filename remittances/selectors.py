"""Reads of the remittances app that are more than one filter.

Claim suggestions (CLM-1): for an unmatched transfer on the shared account, which cloud accounts
is it most likely from? Shown to the account manager who initiates or reviews a claim; never used
to move money by itself.

Signals, strongest first:
- the remittance text or a reference contains an account UID (exact lookup on the unique index);
- the payer name is like the account name. With the ``pg_trgm`` extension (payments migration
  0003 creates it, with a trigram index on ``UPPER(name)``) the database finds and ranks the
  candidates by trigram word similarity; without it, candidates come from a bounded
  ``icontains`` query per name token. Either way at most ``NAME_CANDIDATES`` accounts are read,
  and each is scored in Python with one trigram measure over normalised names;
- an amount equal to an open bill is not a signal: bills exist (``payments.Bill``) but the
  suggestions do not read them; adding it means one indexed query on open bills by amount.

Claimable transfers (CLM-1, CLM-2): ``claimable_transactions`` is the one definition of a transfer
a claim may take (an unmatched booked credit on a shared account, with the claim's amount and
currency). The admin lists them to attach to a waiting claim (``attach_candidates``); the services
match a claim to one of them by its reference (``claim_matching_transactions``).

Accounts left owing by a reversal (RVS-1): ``accounts_left_owing_by_reversal`` is finance's work
queue of reversals whose debit the balance could not take, with the entries involved.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.postgres.search import TrigramWordSimilarity
from django.db import connection
from django.db.models import CharField, Exists, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Concat, Upper

from payments.models import Account
from remittances.models import BankReversal, BankTransaction, RemittanceAccount, RemittanceClaim

TOP = 5
NAME_CANDIDATES = 50  # accounts read per transaction for the name signal, whatever the table size
MIN_NAME_SIMILARITY = 0.3  # pg_trgm's own default threshold
UID_SCORE = Decimal("100")
NAME_SCORE = Decimal("60")  # times the similarity (0..1)

# Words that say what kind of company it is, not which one.
LEGAL_WORDS = frozenset(
    "ltd limited llc inc incorporated corp corporation co company gmbh ag sa sas sarl bv nv plc pte pty "
    "kg ohg ug spa srl oy ab as kk the and of".split()
)
_UID_CHUNKS = re.compile(r"\d[\d \-./]{4,60}\d")
_ALNUM = re.compile(r"[A-Za-z0-9]{6,32}")


@dataclass
class Suggestion:
    account: Account
    score: Decimal
    reasons: list[str] = field(default_factory=list)


def normalise_name(name: str) -> list[str]:
    """Lower-case ASCII tokens without punctuation, accents or legal-form words."""
    text = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode().lower()
    tokens = re.split(r"[^a-z0-9]+", text)
    return [t for t in tokens if t and t not in LEGAL_WORDS]


def _trigrams(tokens: list[str]) -> set[str]:
    # pg_trgm's way: each word padded with two spaces in front and one behind.
    grams: set[str] = set()
    for token in tokens:
        padded = f"  {token} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def name_similarity(a: str, b: str) -> float:
    """Trigram similarity (shared / all trigrams) of two names after ``normalise_name``; 0..1."""
    ga, gb = _trigrams(normalise_name(a)), _trigrams(normalise_name(b))
    if not ga or not gb:
        return 0.0
    return len(ga & gb) / len(ga | gb)


def uid_candidates(*texts: str) -> set[str]:
    """Strings in the texts that could be an account UID: digit runs (spaces, dashes and dots
    inside them removed, as people type ``1234 5678 9012 3456``) and alphanumeric words."""
    found: set[str] = set()
    for text in texts:
        if not text:
            continue
        for chunk in _UID_CHUNKS.findall(text):
            digits = re.sub(r"\D", "", chunk)
            if 6 <= len(digits) <= 32:
                found.add(digits)
            found.update(run for run in re.findall(r"\d{6,32}", chunk))
        found.update(_ALNUM.findall(text))
    return set(sorted(found)[:100])  # bounded: a pasted novel stays one cheap query


def _pg_trgm_installed() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        return cursor.fetchone() is not None


def _name_candidates(payer_name: str) -> list[Account]:
    """At most ``NAME_CANDIDATES`` accounts whose name could be the payer's."""
    tokens = normalise_name(payer_name)
    if not any(len(t) >= 3 for t in tokens):
        return []
    if _pg_trgm_installed():
        # ``UPPER(name) <% ...`` is answered by the trigram GIN index on UPPER(name) (payments
        # migration 0003); the payer's legal-form words are left out so "ACME LTD" finds "Acme".
        wanted = " ".join(tokens).upper()
        return list(
            Account.objects.annotate(upper_name=Upper("name"))
            .filter(upper_name__trigram_word_similar=wanted)
            .annotate(similarity=TrigramWordSimilarity(wanted, "upper_name"))
            .order_by("-similarity", "pk")[:NAME_CANDIDATES]
        )
    # No pg_trgm: accounts with every significant token first, then with any of them, each
    # query bounded (a sequential scan, but never more than NAME_CANDIDATES rows come back).
    significant = sorted({t for t in tokens if len(t) >= 3}, key=len, reverse=True)[:3]
    every = Q()
    for token in significant:
        every &= Q(name__icontains=token)
    found = list(Account.objects.filter(every).order_by("pk")[:NAME_CANDIDATES])
    if len(found) < NAME_CANDIDATES:
        anyq = Q()
        for token in significant:
            anyq |= Q(name__icontains=token)
        seen = {a.pk for a in found}
        more = Account.objects.filter(anyq).exclude(pk__in=seen).order_by("pk")[: NAME_CANDIDATES - len(found)]
        found.extend(more)
    return found


def claim_suggestions(*, transaction: BankTransaction, limit: int = TOP) -> list[Suggestion]:
    """The ``limit`` most likely accounts for an unmatched transfer, best first, with reasons."""
    by_account: dict[int, Suggestion] = {}

    def add(account: Account, points: Decimal, reason: str) -> None:
        suggestion = by_account.setdefault(account.pk, Suggestion(account=account, score=Decimal("0")))
        suggestion.score += points
        suggestion.reasons.append(reason)

    texts = (transaction.remittance_info, transaction.end_to_end_id, transaction.bank_reference)
    uids = uid_candidates(*texts)
    if uids:
        for account in Account.objects.filter(uid__in=uids).order_by("pk")[:TOP]:
            add(account, UID_SCORE, f"account UID {account.uid} in the remittance text or reference")

    if transaction.payer_name:
        for account in _name_candidates(transaction.payer_name):
            similarity = name_similarity(transaction.payer_name, account.name)
            if similarity >= MIN_NAME_SIMILARITY:
                points = (NAME_SCORE * Decimal(str(round(similarity, 2)))).quantize(Decimal("0.1"))
                add(account, points, f"payer name {transaction.payer_name!r} is {similarity:.0%} like {account.name!r}")

    ranked = sorted(by_account.values(), key=lambda s: (-s.score, s.account.pk))
    return ranked[:limit]


# --- claimable transfers (CLM-1, CLM-2) ----------------------------------------------------------

ATTACH_CANDIDATES = 10


def claimable_transactions(*, amount, currency) -> QuerySet[BankTransaction]:
    """Unmatched booked credits on a shared account for exactly ``amount`` in ``currency``: the
    transfers a claim with these figures may take. ``amount`` and ``currency`` may be expressions
    (``OuterRef``)."""
    return BankTransaction.objects.filter(
        status=BankTransaction.Status.UNMATCHED,
        entry_kind=BankTransaction.EntryKind.CREDIT,
        receiving_account__kind=RemittanceAccount.Kind.NON_DEDICATED,
        amount=amount,
        currency=currency,
    )


def attach_candidates(*, claim: RemittanceClaim, limit: int = ATTACH_CANDIDATES) -> list[BankTransaction]:
    """The newest transfers a person may attach to ``claim`` (any reference: they judge it)."""
    return list(
        claimable_transactions(amount=claim.amount, currency=claim.currency).order_by("-received_at", "-pk")[:limit]
    )


def claim_matching_transactions(*, account_id, amount, currency: str, bank_reference: str) -> QuerySet[BankTransaction]:
    """Claimable transfers with exactly this reference: the ones a claim is matched to automatically.

    The customer knows their transfer by the reference they typed (end-to-end id) or the one the
    bank gave back; both are compared exactly, never by similarity (money follows this match).
    CLM-4: a transaction that a claim of this account was rejected for is never matched to the
    account automatically again (only a person can claim it for the account once more), so
    automatic matching never undoes a decision. Every argument may be an ``OuterRef``.
    """
    rejected_here = RemittanceClaim.objects.filter(
        bank_transaction=OuterRef("pk"),
        status=RemittanceClaim.Status.REJECTED,
        account_id=OuterRef(account_id) if isinstance(account_id, OuterRef) else account_id,
    )
    # A bank reference with "#" (or one that looks like a derived key) is stored as
    # "ref:<reference>" (statement_lines.plain_key): compare with that form too.
    if isinstance(bank_reference, str):
        escaped = "ref:" + bank_reference
    else:
        escaped = Concat(Value("ref:"), bank_reference, output_field=CharField())
    return (
        claimable_transactions(amount=amount, currency=currency)
        .filter(Q(bank_reference=bank_reference) | Q(bank_reference=escaped) | Q(end_to_end_id=bank_reference))
        .exclude(Exists(rejected_here))
    )


def accounts_left_owing_by_reversal() -> QuerySet[BankReversal]:
    """RVS-1: the reversals that left an account owing and no person has resolved yet, oldest first.

    Each row names the account (``account``), what it owes (``amount``/``currency``) and the
    entries involved: the reversal line (``reversal``), the original credit (``original``) and the
    ledger entry that credited it (``original.ledger_entry``), all read in the same query."""
    return (
        BankReversal.objects.filter(outcome=BankReversal.Outcome.OWING, resolved_at__isnull=True)
        .select_related("account", "reversal", "original", "original__ledger_entry")
        .order_by("created_at", "pk")
    )

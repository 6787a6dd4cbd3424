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
- an amount equal to an open bill: bills do not exist yet (issue 4), so this signal is skipped.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.postgres.search import TrigramWordSimilarity
from django.db import connection
from django.db.models import Q
from django.db.models.functions import Upper

from payments.models import Account
from remittances.models import BankTransaction

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

    # Amount equal to an open bill: bills arrive with issue 4; add the signal here then.

    ranked = sorted(by_account.values(), key=lambda s: (-s.score, s.account.pk))
    return ranked[:limit]

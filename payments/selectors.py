"""Reads of the payments app that are more than one filter (STYLE.md: selectors)."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import F, Q, Prefetch, QuerySet, Sum, Window

from billing_backoffice.url_converters import MAX_ID
from payments.models import Account, LedgerEntry, PaymentMethod, ThreeDSChallenge


def account_balances(*, account_id: int) -> dict[str, Decimal]:
    """SEC-4: the account's balance in every currency its ledger holds, in one query.

    ``{currency: sum of its entries}``, currencies in alphabetical order. A currency whose
    entries cancel out is kept (``0.00``): the account did hold it.
    """
    rows = (
        LedgerEntry.objects.filter(account_id=account_id)
        .values("currency")
        .annotate(total=Sum("amount"))
        .order_by("currency")
    )
    return {row["currency"]: row["total"] for row in rows}


def account_uid_or_pk(term: str) -> Q:
    """Digits name an account by UID (unique index) or by id (primary key, when in bigint range)."""
    by_pk = Q(pk=int(term)) if int(term) <= MAX_ID else Q(pk__in=[])
    return Q(uid=term) | by_pk


def account_ids_named_by(term: str) -> list[int]:
    """The accounts (at most two: one by UID, one by id) a digits search names.

    Looked up first, in one indexed query, so that a big table is then filtered on its own
    indexed ``account_id`` instead of an OR across a join to accounts (which PostgreSQL answers
    with a sequential scan or a hash join of both tables, benchmarks/bench_admin.py).
    """
    return list(Account.objects.filter(account_uid_or_pk(term)).values_list("pk", flat=True)[:2])


def account_find(term: str) -> Account | None:
    """An account by UID (unique index) or, for digits, by id; None for an empty term."""
    term = (term or "").strip()
    if not term:
        return None
    q = Q(uid=term)
    if term.isdigit() and int(term) <= MAX_ID:
        q |= Q(pk=int(term))
    return Account.objects.filter(q).order_by("pk").first()


def account_ledger(*, account_id: int) -> QuerySet[LedgerEntry]:
    """SEC-4: an account's entries, newest first, each with ``running_balance``: the balance in
    its currency after it (a window over the account's entries in posting order)."""
    return (
        LedgerEntry.objects.filter(account_id=account_id)
        .select_related("created_by")
        .annotate(
            running_balance=Window(
                Sum("amount"), partition_by=[F("currency")], order_by=[F("created_at").asc(), F("id").asc()]
            )
        )
        .order_by("-created_at", "-id")
    )


def settlement_switch_history(*, account_id: int, limit: int = 20) -> list[LogEntry]:
    """SET-1: the last switches of an account (newest first), as ``services.bills.settlement_switch``
    records them: an admin ``LogEntry`` on the account whose message starts "Automatic settlement
    switched"."""
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Account), object_id=str(account_id),
            change_message__startswith="Automatic settlement switched",
        )
        .select_related("user")
        .order_by("-action_time", "-pk")[:limit]
    )


def account_payment_methods(*, account_id: int) -> QuerySet[PaymentMethod]:
    """An account's payment methods for the console list, default first then newest, with their
    pending 3-D Secure challenges (``pending_challenges``) prefetched: one query for the whole
    page, not one per card."""
    pending = ThreeDSChallenge.objects.for_linking().filter(status=ThreeDSChallenge.Status.PENDING)
    return (
        PaymentMethod.objects.filter(account_id=account_id)
        .prefetch_related(Prefetch("three_ds_challenges", queryset=pending, to_attr="pending_challenges"))
        .order_by("-is_default", "-id")
    )

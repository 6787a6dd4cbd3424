"""The daily reconciliation proof: RCN-1, RCN-2, RCN-3, set-based over every receiving account.

``reconciliation_run(day=...)`` records one ``ReconciliationDay`` per receiving account that
has none for that day yet (so a second run, concurrent or later, records nothing again: the
unique (account, day) constraint and ``INSERT ... ON CONFLICT DO NOTHING``). A fixed number of
grouped queries answer every account at once; nothing is read per account.

- RCN-1 (accounts with balance statements): the day's statement (camt.053 / MT940 ending that
  day) opens at the previous statement's closing balance, and its closing balance equals that
  previous closing plus the booked lines recorded since (credits +, debits and reversals -,
  pending lines and lines recorded only for review of a repeat left out). A weekday with no
  statement between the previous one and this day is flagged as a missing statement day, and a
  gap in the bank's statement numbers (``BankStatement.sequence_number``: the previous
  statement's number, then this day's in order; a repeat is another page of one statement, a
  restart at 1 is a new year's numbering) as missing statement numbers. A reversal line counts
  by its direction (``reversal_of``): a reversed credit is money out, a reversed debit money in.
- RCN-2 (dedicated accounts): for the lines booked that day, what the ledger credited from
  them (their credits, less the reversing entries of their reversals) equals the creditable
  lines (booked credits in the account's currency) less the reversals of credited lines.
- RCN-3 (shared accounts): every booked credit up to that day is unmatched, claimed, credited,
  refunded (credited, then paid back in full by refunds whose payment file was sent: the stored
  ``refunded`` status) or reversed; the totals per state and age are kept
  on the day; a credit in any other state is an exception.
Each difference is a ``ReconciliationException`` with the statements and lines involved; a
person records its resolution, and a day whose exceptions are all resolved is ``resolved``.
Statements without a number (camt.054, files that give none) are checked by day only.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Case, CharField, Count, DecimalField, F, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce

from billing_backoffice.errors import NotFound
from billing_backoffice.free_text import free_text_check
from billing_backoffice.permissions import staff_require
from remittances.services.reversals import reversals_apply
from remittances.models import (
    BankReversal,
    BankStatement,
    BankTransaction,
    ReconciliationDay,
    ReconciliationException,
    RemittanceAccount,
)
from remittances.errors import ResolutionRequired  # noqa: F401 (raised here)

ZERO = Decimal("0.00")
Status = BankTransaction.Status
Kind = BankTransaction.EntryKind
Verdict = ReconciliationDay.Verdict
PERM_RESOLVE = "remittances.resolve_reconciliationday"
RCN3_STATES = ("unmatched", "claimed", "credited", "refunded", "reversed")
AGES = ((7, "0-7 days"), (30, "8-30 days"), (None, "over 30 days"))
MONEY = DecimalField(max_digits=18, decimal_places=2)


def _weekdays_between(after: date, before: date) -> list[date]:
    """The weekdays strictly between two statement days (a bank books no statement at weekends)."""
    days, current = [], after + timedelta(days=1)
    while current < before:
        if current.weekday() < 5:
            days.append(current)
        current += timedelta(days=1)
    return days


def _statement_figures(account_ids: list[int], day: date) -> dict[int, dict]:
    """RCN-1 inputs per account, in three grouped queries."""
    with_balances = BankStatement.objects.filter(closing_balance__isnull=False, opening_balance__isnull=False)
    todays = defaultdict(list)
    for row in with_balances.filter(receiving_account_id__in=account_ids, period_end=day).order_by("pk").values(
            "pk", "receiving_account_id", "opening_balance", "closing_balance", "sequence_number"):
        todays[row["receiving_account_id"]].append(row)
    previous = with_balances.filter(receiving_account_id=OuterRef("pk"), period_end__lt=day).order_by(
        "-period_end", F("sequence_number").desc(nulls_last=True), "-pk")
    # Booked lines since the previous statement day (or on this day when there is none), signed:
    # credits and reversed debits in, debits and reversed credits out.
    money_in = Q(entry_kind=Kind.CREDIT) | Q(entry_kind=Kind.REVERSAL, reversal_of=BankTransaction.ReversalOf.DEBIT)
    signed = Case(When(money_in, then=F("amount")), default=-F("amount"), output_field=MONEY)
    booked_since = (
        BankTransaction.objects.filter(
            receiving_account_id=OuterRef("pk"), booking_date__lte=day, booking_date__gt=OuterRef("since"),
            entry_kind__in=[Kind.CREDIT, Kind.DEBIT, Kind.REVERSAL],
        ).exclude(bank_reference__startswith="rvw:").order_by().values("receiving_account_id")
        .annotate(total=Sum(signed)).values("total")[:1]
    )
    earlier = {
        row["pk"]: row for row in RemittanceAccount.objects.filter(pk__in=account_ids).annotate(
            prev_id=Subquery(previous.values("pk")[:1]),
            prev_end=Subquery(previous.values("period_end")[:1]),
            prev_closing=Subquery(previous.values("closing_balance")[:1]),
            prev_number=Subquery(previous.values("sequence_number")[:1]),
            since=Coalesce(Subquery(previous.values("period_end")[:1]), Value(day - timedelta(days=1))),
        ).annotate(
            booked=Coalesce(Subquery(booked_since), Value(ZERO), output_field=MONEY),
        ).values("pk", "prev_id", "prev_end", "prev_closing", "prev_number", "booked")
    }
    return {pk: {"today": todays.get(pk, []), **earlier[pk]} for pk in account_ids}


def _number_gaps(previous: int | None, numbers: list[int | None]) -> list[str]:
    """RCN-1: what is wrong with the statement numbers from ``previous`` on (none: nothing)."""
    faults, last = [], previous
    for number in sorted(n for n in numbers if n is not None):
        if last is not None and number > last + 1:
            missing = f"{last + 1}" if number == last + 2 else f"{last + 1}..{number - 1}"
            faults.append(f"missing statement number(s) {missing}")
        elif last is not None and number < last and number != 1:
            faults.append(f"statement number {number} comes after {last}")
        last = number
    return faults


def _rcn1(figures: dict, day: date) -> tuple[dict, list[dict]]:
    today, exceptions = figures["today"], []
    fields = {"booked_total": figures["booked"]}
    if not today:
        if figures["prev_id"] is not None and day.weekday() < 5:
            exceptions.append({"rule": "RCN-1", "detail": f"No statement for {day} (a missing statement day).",
                               "statement_ids": [figures["prev_id"]]})
        return fields, exceptions
    opening, closing = today[0]["opening_balance"], today[-1]["closing_balance"]
    fields.update(opening_balance=opening, closing_balance=closing)
    ids = [row["pk"] for row in today]
    start = opening
    if figures["prev_id"] is not None:
        ids = [figures["prev_id"], *ids]
        start = figures["prev_closing"]
        if figures["prev_closing"] != opening:
            exceptions.append({"rule": "RCN-1", "statement_ids": ids, "amount": opening - figures["prev_closing"],
                               "detail": f"The opening balance {opening} does not continue the previous closing "
                                         f"balance {figures['prev_closing']}."})
        missing = _weekdays_between(figures["prev_end"], day)
        if missing:
            exceptions.append({"rule": "RCN-1", "statement_ids": ids,
                               "detail": "Missing statement day(s): " + ", ".join(map(str, missing[:10]))})
    gaps = _number_gaps(figures["prev_number"], [row["sequence_number"] for row in today])
    if gaps:
        exceptions.append({"rule": "RCN-1", "statement_ids": ids,
                           "detail": "Statement sequence: " + "; ".join(gaps[:10]) + "."})
    if start + figures["booked"] != closing:
        exceptions.append({"rule": "RCN-1", "statement_ids": ids, "amount": closing - start - figures["booked"],
                           "detail": f"{start} + booked entries {figures['booked']} = {start + figures['booked']}, "
                                     f"but the bank's closing balance is {closing}."})
    return fields, exceptions


def _rcn2(dedicated: list[int], day: date) -> dict[int, dict]:
    """RCN-2 per dedicated account: (ledger credited, bank creditable less reversals, lines at fault)."""
    lines = BankTransaction.objects.filter(receiving_account_id__in=dedicated, booking_date=day)
    creditable = lines.filter(entry_kind=Kind.CREDIT, currency=F("receiving_account__currency"))
    out: dict[int, dict] = {pk: {"ledger": ZERO, "bank": ZERO, "faults": []} for pk in dedicated}
    for row in creditable.values("receiving_account_id").annotate(
            bank=Sum("amount"), ledger=Coalesce(Sum("ledger_entry__amount"), Value(ZERO), output_field=MONEY)):
        out[row["receiving_account_id"]].update(bank=row["bank"], ledger=row["ledger"])
    # What the bank took back that day, from a credited line (debited, or owing) or a closed one.
    reversals = BankReversal.objects.filter(
        reversal__in=lines, outcome__in=[BankReversal.Outcome.DEBITED, BankReversal.Outcome.OWING,
                                         BankReversal.Outcome.CLOSED])
    for row in reversals.values("reversal__receiving_account_id").annotate(
            taken=Sum("amount"), posted=Coalesce(Sum("ledger_entry__amount"), Value(ZERO), output_field=MONEY)):
        figures = out[row["reversal__receiving_account_id"]]
        figures["bank"] -= row["taken"]
        figures["ledger"] += row["posted"]
    uncredited = creditable.exclude(status__in=[Status.CREDITED, Status.REFUNDED, Status.REVERSED])
    for pk, account_id in uncredited.values_list("pk", "receiving_account_id")[:10000]:
        out[account_id]["faults"].append(pk)
    for pk, account_id in reversals.filter(outcome=BankReversal.Outcome.OWING).values_list(
            "reversal_id", "reversal__receiving_account_id")[:10000]:
        out[account_id]["faults"].append(pk)
    return out


def _rcn3(account_ids: list[int], day: date) -> tuple[dict[int, dict], dict[int, list[int]]]:
    """RCN-3 per account: booked credits up to ``day`` by state and age, and those in no state."""
    credits = BankTransaction.objects.filter(receiving_account_id__in=account_ids, entry_kind=Kind.CREDIT,
                                             booking_date__lte=day)
    state = Case(
        # A transfer paid back whole to its payer (a payer return: never credited) is refunded.
        When(status=Status.RETURNED, then=Value("refunded")),
        When(status__in=RCN3_STATES, then=F("status")), default=Value("none"), output_field=CharField(),
    )
    age = Case(
        When(booking_date__gte=day - timedelta(days=7), then=Value(AGES[0][1])),
        When(booking_date__gte=day - timedelta(days=30), then=Value(AGES[1][1])),
        default=Value(AGES[2][1]), output_field=CharField(),
    )
    totals: dict[int, dict] = defaultdict(dict)
    rows = credits.annotate(state=state, age=age).values(
        "receiving_account_id", "state", "age").annotate(n=Count("pk"), total=Sum("amount")).order_by()
    for row in rows:
        bucket = totals[row["receiving_account_id"]].setdefault(row["state"], {"count": 0, "amount": "0.00", "by_age": {}})
        bucket["count"] += row["n"]
        bucket["amount"] = str(Decimal(bucket["amount"]) + row["total"])
        bucket["by_age"][row["age"]] = {"count": row["n"], "amount": str(row["total"])}
    strays: dict[int, list[int]] = defaultdict(list)
    outside = credits.exclude(status__in=[*RCN3_STATES, Status.RETURNED])
    for pk, account_id in outside.values_list("pk", "receiving_account_id")[:10000]:
        strays[account_id].append(pk)
    return totals, strays


@transaction.atomic
def reconciliation_run(*, day: date, now: datetime) -> int:
    """RCN-1..3 for ``day`` over every receiving account without a record for it; returns how many.

    First the sweep of reversal lines an import left unhandled (RVS-1/RVS-2), so the proof
    counts what they took back."""
    reversals_apply(now=now)
    accounts = list(
        RemittanceAccount.objects.exclude(reconciliation_days__day=day).values_list("pk", "kind", "currency")
    )
    if not accounts:
        return 0
    ids = [pk for pk, _, _ in accounts]
    statements = _statement_figures(ids, day)
    dedicated = _rcn2([pk for pk, kind, _ in accounts if kind == RemittanceAccount.Kind.DEDICATED], day)
    totals, strays = _rcn3(ids, day)
    run_id = str(uuid.uuid4())
    days, exceptions = [], {}
    for pk, kind, currency in accounts:
        fields, found = _rcn1(statements[pk], day)
        if pk in dedicated:
            figures = dedicated[pk]
            fields.update(ledger_credited=figures["ledger"], bank_creditable=figures["bank"])
            if figures["ledger"] != figures["bank"] or figures["faults"]:
                found.append({"rule": "RCN-2", "amount": figures["bank"] - figures["ledger"],
                              "transaction_ids": figures["faults"],
                              "detail": f"The ledger credited {figures['ledger']} {currency} from this day's lines; "
                                        f"the bank's creditable lines less reversals are {figures['bank']}."})
        if kind == RemittanceAccount.Kind.NON_DEDICATED and strays.get(pk):  # RCN-3: shared accounts
            found.append({"rule": "RCN-3", "transaction_ids": strays[pk],
                          "detail": f"{len(strays[pk])} booked credit(s) in none of the states {', '.join(RCN3_STATES)}."})
        exceptions[pk] = [dict(item, currency=currency) for item in found]
        days.append(ReconciliationDay(
            receiving_account_id=pk, day=day, currency=currency, verdict=Verdict.DIFFERENCE if found else Verdict.AGREED,
            totals_per_state=totals.get(pk, {}), computed_at=now, run_id=run_id, **fields,
        ))
    ReconciliationDay.objects.bulk_create(days, ignore_conflicts=True, batch_size=1000)
    created = dict(ReconciliationDay.objects.filter(run_id=run_id).values_list("receiving_account_id", "pk"))
    ReconciliationException.objects.bulk_create([
        ReconciliationException(
            day_id=created[pk], rule=item["rule"], detail=item["detail"][:500], amount=item.get("amount"),
            currency=item["currency"], statement_ids=item.get("statement_ids", []), transaction_ids=item.get("transaction_ids", []),
        )
        for pk, found in exceptions.items() if pk in created for item in found
    ], batch_size=1000)
    return len(created)


@transaction.atomic
def reconciliation_exception_resolve(*, exception_id: int, actor, resolution: str, now: datetime) -> ReconciliationException:
    """A person records how a difference was resolved; the day is resolved with its last one."""
    staff_require(actor, permission=PERM_RESOLVE, action="resolve reconciliation differences", rule="RCN-2",
                  system_allowed=False)
    free_text_check(resolution=resolution)
    resolution = (resolution or "").strip()
    if not resolution:
        raise ResolutionRequired("A resolution says what was found and done.")
    item = ReconciliationException.objects.select_for_update().filter(pk=exception_id).first()
    if item is None:
        raise NotFound("No such reconciliation exception.")
    if item.resolved_at is None:
        item.resolved_by, item.resolved_at, item.resolution = actor, now, resolution
        item.save(update_fields=["resolved_by", "resolved_at", "resolution"])
    day = ReconciliationDay.objects.select_for_update().get(pk=item.day_id)
    if day.verdict == Verdict.DIFFERENCE and not day.exceptions.filter(resolved_at__isnull=True).exists():
        day.verdict = Verdict.RESOLVED
        day.save(update_fields=["verdict"])
    return item

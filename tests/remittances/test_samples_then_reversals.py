"""Issue 13 "done means": importing each real sample statement of the suite and then the bank's
reversal of every credit in it leaves every invariant and the daily proof green (RVS-1, RVS-2,
RCN-1..3).

For each sample: import it (the dedicated and shared receiving accounts it names exist), then a
camt.053 of the next day from the same bank that reverses each booked credit line it recorded
(the reversal names the line's end-to-end id and bank reference, as banks do), opening at the
previous statement's closing balance. Every credited line is debited back once (RVS-1) and
every uncredited one closed (RVS-2); nothing is left in review or unknown; the ledger, claim and
amount invariants hold; the proof of both days records no difference on any receiving account.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum

from payments.models import LedgerEntry
from remittances.models import BankReversal, BankStatement, BankTransaction, ReconciliationException
from remittances.services.reconciliation import reconciliation_run
from tests.helpers.statements import do_import, sample
from tests.payments.invariants import assert_amount_invariants, assert_claim_invariants, assert_ledger_invariants
from tests.remittances.samples import build
from tests.remittances.samples.build import Entry, Tx

pytestmark = pytest.mark.django_db

Status = BankTransaction.Status
Kind = BankTransaction.EntryKind

# The sample files that import whole into the two receiving accounts of the fixtures (the others
# are refused on purpose: unreconciled, truncated, hostile XML, an unknown account or version).
IMPORTABLE = [
    "camt053_v02.xml", "camt053_v04.xml", "camt053_v08.xml", "camt053_v13.xml", "camt053_shared_v08.xml",
    "camt054_v02.xml", "camt054_v08.xml", "mt940_day.sta", "mt940_shared.sta",
]


def reversal_statement(receiving, lines, *, day: date) -> bytes:
    """The bank's next statement for ``receiving``: one reversal entry per credit line."""
    previous = BankStatement.objects.filter(receiving_account=receiving, closing_balance__isnull=False).order_by(
        "-period_end", "-pk").first()
    opening = previous.closing_balance if previous else Decimal("0.00")
    entries = [
        Entry(str(line.amount), credit=False, reversal=True, ref=f"RVSL-{line.pk}", currency=line.currency,
              txs=[Tx(str(line.amount), line.payer_name or "Payer", "", f"Return of {line.bank_reference}",
                      line.end_to_end_id)])
        for line in lines
    ]
    closing = opening - sum((line.amount for line in lines), Decimal("0.00"))
    return build.camt(statement_id=f"RVSL-{receiving.pk}-{day}", date=day.isoformat(), entries=entries,
                      opening=opening, closing=closing, iban=receiving.number, currency=receiving.currency).encode()


@pytest.mark.parametrize("name", IMPORTABLE)
def test_rvs_1_rvs_2_rcn_each_sample_then_its_reversals_keep_every_invariant_and_the_proof_green(
        name, dedicated, shared, now, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        do_import(sample(name), now, file_name=name)
    credits = list(BankTransaction.objects.filter(entry_kind=Kind.CREDIT).exclude(status=Status.REVIEW)
                   .select_related("receiving_account").order_by("pk"))
    assert credits, f"{name} recorded no credit"
    credited = {t.pk for t in credits if t.status == Status.CREDITED}
    sample_days = set(BankStatement.objects.values_list("period_end", flat=True)) - {None}
    next_day = max(sample_days or {date(2026, 11, 25)}) + timedelta(days=1)
    for receiving in {t.receiving_account for t in credits}:
        lines = [t for t in credits if t.receiving_account_id == receiving.pk]
        with django_capture_on_commit_callbacks(execute=True):
            do_import(reversal_statement(receiving, lines, day=next_day), now, file_name=f"reversals-{receiving.pk}")

    outcomes = dict(BankReversal.objects.filter(original__isnull=False).values_list("original_id", "outcome"))
    assert set(outcomes) == {t.pk for t in credits}, "every credit line was found by its reversal"
    # (a sample's own return of an unknown transfer waits for review, as it should; ours never do)
    assert not BankReversal.objects.filter(outcome=BankReversal.Outcome.UNKNOWN,
                                           reversal__statement__identity__startswith="RVSL-").exists()
    for txn in credits:
        assert outcomes[txn.pk] == (BankReversal.Outcome.DEBITED if txn.pk in credited else BankReversal.Outcome.CLOSED)
    assert set(BankTransaction.objects.filter(pk__in=[t.pk for t in credits]).values_list("status", flat=True)) == {
        Status.REVERSED}
    # RVS-1: each credit debited back once: the customer's balance is what it was before the sample.
    assert (LedgerEntry.objects.aggregate(s=Sum("amount"))["s"] or 0) == 0
    assert LedgerEntry.objects.filter(reverses__isnull=False).count() == len(credited)
    assert_ledger_invariants()
    assert_claim_invariants()
    assert_amount_invariants()

    for day in sorted(sample_days | {next_day}):
        reconciliation_run(day=day, now=now)
    differences = list(ReconciliationException.objects.filter(rule__in=["RCN-2", "RCN-3"]).values_list("rule", "detail"))
    assert differences == [], differences
    balance_gaps = [d for r, d in ReconciliationException.objects.filter(rule="RCN-1").values_list("rule", "detail")
                    if "closing" in d.lower() and "previous" not in d.lower()]
    assert balance_gaps == [], balance_gaps

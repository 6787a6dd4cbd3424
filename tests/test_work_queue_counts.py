"""Work-queue counts stay cheap on big tables (issue 10, QUALITY.md admin budgets): a queue is
counted exactly up to ``work_queues.COUNT_LIMIT`` rows and shown as "N+" past it, so the index
never reads 700,000 unmatched transfers to print one number; and the index's ageing chart sums
the unpaid bills without the report's sales query.

``COUNT_LIMIT`` is patched down to 3 so the bound can be crossed with a handful of rows.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from billing_backoffice import work_queues
from payments.models import Bill
from payments.receivables import receivables_ageing
from remittances.models import BankTransaction
from tests.factories.billing import BillFactory
from tests.factories.remittances import BankTransactionFactory

pytestmark = pytest.mark.django_db

FIGURE = "banktransaction-review"  # finance's currency mismatches to resolve


def figure_cell(page: str, figure: str) -> tuple[int, str]:
    """(data-count, the number shown beside it) of one work-queue figure."""
    match = re.search(rf'data-figure="{figure}" data-count="(\d+)">[^<]*</a></th>\s*<td[^>]*>([^<]+)</td>', page)
    assert match, f"figure {figure} not on the index"
    return int(match.group(1)), match.group(2).strip()


@pytest.mark.parametrize(("rows", "shown"), [(3, "3"), (5, "3+")])
def test_a_queue_is_counted_exactly_up_to_the_limit_and_shown_as_more_past_it(
        client, finance, now, monkeypatch, rows, shown):
    monkeypatch.setattr(work_queues, "COUNT_LIMIT", 3)
    BankTransactionFactory.create_batch(rows, status=BankTransaction.Status.REVIEW, currency="EUR")
    client.force_login(finance)
    page = client.get(reverse("admin:index")).content.decode()
    count, text = figure_cell(page, FIGURE)
    assert count == min(rows, 4)  # the bounded subquery reads at most COUNT_LIMIT + 1 rows
    assert text == shown


def test_count_queues_reads_at_most_the_limit_plus_one_rows(finance, now, monkeypatch):
    monkeypatch.setattr(work_queues, "COUNT_LIMIT", 2)
    BankTransactionFactory.create_batch(6, status=BankTransaction.Status.REVIEW, currency="EUR")
    from remittances.work_queues import TRANSACTION_QUEUES

    review = next(q for q in TRANSACTION_QUEUES if q.name == "review")
    counts = work_queues.count_queues([review], user=finance, now=now)
    assert counts == {work_queues.key(BankTransaction, "review"): 3}


def test_count_text_uses_thousands_separators():
    assert work_queues.count_text(9_999) == "9,999"
    assert work_queues.count_text(work_queues.COUNT_LIMIT) == f"{work_queues.COUNT_LIMIT:,}"
    assert work_queues.count_text(work_queues.COUNT_LIMIT + 1) == f"{work_queues.COUNT_LIMIT:,}+"


def test_cc_4_ageing_without_sales_has_the_same_buckets_and_no_dso(now, django_assert_num_queries):
    """CC-4: the index's chart reads the report's buckets; skipping the sales query changes none."""
    today = now.date()
    BillFactory(status=Bill.Status.OVERDUE, total=Decimal("100.00"), due_date=today - timedelta(days=40),
                issued_at=now - timedelta(days=50))
    BillFactory(status=Bill.Status.OPEN, total=Decimal("30.00"), due_date=today + timedelta(days=5),
                issued_at=now - timedelta(days=2))
    full = receivables_ageing(now=now)
    with django_assert_num_queries(1):
        buckets = receivables_ageing(now=now, with_sales=False)
    assert [(r.currency, r.days_31_60, r.not_due, r.total, r.bills) for r in buckets] == [
        (r.currency, r.days_31_60, r.not_due, r.total, r.bills) for r in full
    ]
    assert full[0].dso is not None
    assert (buckets[0].sales, buckets[0].dso) == (Decimal("0.00"), None)

"""Issue 10: the index's charts (billing_backoffice/index_charts.py, charts.py): credited funds
per day (30 days), the overdue ageing (CC-4) and link and charge failures by reason (PAY-5, 7
days); each an SVG with an accessible name and its numbers as a table; per currency, never
summed across currencies; only for those who may view the list behind it; a fixed number of
queries."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing_backoffice.charts import Bar, Chart
from billing_backoffice.index_charts import index_charts
from payments.models import Bill, Charge, LedgerEntry, LinkAttempt
from tests.factories import AccountFactory, BillFactory, ChargeFactory, LedgerEntryFactory, UserFactory

pytestmark = pytest.mark.django_db


def charts_by_key(user, now) -> dict[str, Chart]:
    return {chart.key: chart for chart in index_charts(user=user, now=now)}


def test_credited_funds_per_day_per_currency_over_30_days(finance):
    now = timezone.now()
    account = AccountFactory()
    LedgerEntryFactory(account=account, amount=Decimal("100.00"), kind=LedgerEntry.Kind.CLAIM_CREDIT)
    LedgerEntryFactory(account=account, amount=Decimal("50.00"), kind=LedgerEntry.Kind.REMITTANCE_CREDIT)
    LedgerEntryFactory(account=account, amount=Decimal("7.00"), currency="EUR", kind=LedgerEntry.Kind.CLAIM_CREDIT)
    LedgerEntryFactory(account=account, amount=Decimal("999.00"), kind=LedgerEntry.Kind.ADJUSTMENT)  # not a credit
    charts = charts_by_key(finance, now)
    usd, eur = charts["credited-usd"], charts["credited-eur"]
    assert len(usd.bars) == 30 and usd.bars[-1].label == f"{timezone.localdate(now):%m-%d}"
    assert usd.bars[-1].value == Decimal("150.00") and usd.bars[-1].text == "150.00 USD"
    assert sum(bar.value for bar in usd.bars[:-1]) == 0
    assert eur.bars[-1].text == "7.00 EUR"  # its own chart: currencies are never added up


def test_cc_4_overdue_ageing_chart_equals_the_report_buckets(finance):
    now = timezone.now()
    today = timezone.localdate(now)
    BillFactory(total=Decimal("40.00"), due_date=today - timedelta(days=5), status=Bill.Status.OVERDUE)
    BillFactory(total=Decimal("60.00"), due_date=today - timedelta(days=45), status=Bill.Status.OVERDUE)
    BillFactory(total=Decimal("500.00"), due_date=today + timedelta(days=5))  # not due: not in the chart
    chart = charts_by_key(finance, now)["ageing-usd"]
    assert [(bar.label, bar.value) for bar in chart.bars] == [
        ("1-30 days", Decimal("40.00")), ("31-60 days", Decimal("60.00")), ("61-90 days", 0), ("over 90 days", 0)]


def test_pay_5_failures_by_reason_in_words_over_7_days(superuser):
    now = timezone.now()
    ChargeFactory.create_batch(2, status=Charge.Status.FAILED, failure_reason="three_ds_not_completed")
    ChargeFactory(status=Charge.Status.FAILED, failure_reason="insufficient_funds")
    old = ChargeFactory(status=Charge.Status.FAILED, failure_reason="insufficient_funds")
    Charge.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=8))
    account = AccountFactory()
    LinkAttempt.objects.create(account=account, kind="card", outcome=LinkAttempt.Outcome.REJECTED,
                               reason=LinkAttempt.Reason.choices[0][0], created_at=now)
    charts = charts_by_key(superuser, now)
    assert [(bar.label, bar.value) for bar in charts["charge-failures"].bars] == [
        ("3-D Secure not completed", 2), ("Insufficient funds", 1)]
    assert [bar.value for bar in charts["link-failures"].bars] == [1]


def test_charts_are_shown_only_to_those_who_may_view_the_list_behind_them(manager):
    LedgerEntryFactory(amount=Decimal("100.00"), kind=LedgerEntry.Kind.CLAIM_CREDIT)
    assert index_charts(user=UserFactory(username="nobody-charts", is_staff=True), now=timezone.now()) == []
    keys = set(charts_by_key(manager, timezone.now()))
    assert keys == {key for key in keys if manager.has_perm("payments.view_ledgerentry") or not key.startswith("credited")}


def test_a_chart_is_an_svg_with_its_name_and_its_numbers_as_a_table():
    chart = Chart("t", "Funds <credited>", [Bar("11-30", Decimal("5.00"), "5.00 USD"), Bar("12-01", 0)],
                  column="Credited", label_column="Day")
    svg, table = str(chart.svg()), str(chart.table())
    assert 'role="img"' in svg and '<title id="chart-t-title">Funds &lt;credited&gt;</title>' in svg
    assert svg.count("<rect") == 2 and "<title>11-30: 5.00 USD</title>" in svg
    assert '<th scope="row">11-30</th><td>5.00 USD</td>' in table and "<details>" in table


def test_the_index_with_charts_costs_the_same_queries_with_more_rows(client, finance):
    client.force_login(finance)
    client.get("/admin/")
    with CaptureQueriesContext(connection) as few:
        assert client.get("/admin/").status_code == 200
    for n in range(5):
        LedgerEntryFactory(amount=Decimal("10.00") + n, kind=LedgerEntry.Kind.CLAIM_CREDIT)
        ChargeFactory(status=Charge.Status.FAILED, failure_reason="insufficient_funds")
    with CaptureQueriesContext(connection) as many:
        page = client.get("/admin/")
    assert len(many) == len(few)
    assert 'id="chart-credited-usd"' in page.content.decode() and "as a table</summary>" in page.content.decode()

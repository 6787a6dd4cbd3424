"""Admin searches are routed to indexed lookups (QUALITY.md: no Seq Scan on big tables).

With sequential scans disabled, the planner must find an index for each search the admin runs;
if an index is missing it falls back to a Seq Scan anyway, which these tests catch.
"""

import pytest
from django.db import connection

from payments.models import Account, Bill, PaymentMethod
from remittances.models import RemittanceClaim

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_tables():
    """Enough rows, analysed, that the planner prefers a selective index over a full index walk."""
    accounts = Account.objects.bulk_create(
        Account(uid=f"9{i:015d}", name=f"Customer {i}", email=f"c{i}@example.com", kind="individual",
                country="US", region="US")
        for i in range(3000)
    )
    PaymentMethod.objects.bulk_create(
        PaymentMethod(account=a, kind="paypal", status="removed", paypal_payer_id=f"P{a.pk}",
                      paypal_email=f"p{a.pk}@example.com")
        for a in accounts
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE payments_account; ANALYZE payments_paymentmethod;")


def plan(queryset) -> str:
    # The question is whether an index serves the predicate, so the default ordering is dropped.
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("queryset", "index"),
    [
        (lambda: Account.objects.filter(name__icontains="acme"), "account_name_trgm"),
        (lambda: Account.objects.filter(email__iexact="a@example.com"), "account_email_upper"),
        (lambda: Account.objects.filter(uid="1234567890123456"), "uid"),
        (lambda: PaymentMethod.objects.filter(last4="4242"), "last4"),
        (lambda: PaymentMethod.objects.filter(kind="paypal", paypal_email__iexact="p@example.com"), "pm_paypal_email_upper"),
        (lambda: PaymentMethod.objects.filter(paypal_payer_id="PAYER1"), "pm_paypal_payer"),
    ],
)
def test_admin_search_uses_an_index(queryset, index, big_tables):
    from django.db import transaction

    with transaction.atomic():
        text = plan(queryset())
    assert "Seq Scan" not in text, text
    assert index in text, text


def test_admin_paypal_email_search_uses_the_partial_index(big_tables):
    """The admin's e-mail search names ``kind`` too: the e-mail index only covers PayPal rows."""
    from django.contrib import admin
    from django.db import transaction

    model_admin = admin.site._registry[PaymentMethod]
    queryset, _ = model_admin.get_search_results(None, PaymentMethod.objects.all(), "P1@example.com")
    with transaction.atomic():
        text = plan(queryset)
    assert "Seq Scan" not in text, text
    assert "pm_paypal_email_upper" in text, text


@pytest.mark.parametrize(
    ("queryset", "index"),
    [
        # The bills admin's amount filter (the top band matches few of a million bills).
        (lambda: Bill.objects.filter(total__gte=10000), "bill_total"),
        # The claims admin's exact search by the customer's bank reference.
        (lambda: RemittanceClaim.objects.filter(
            bank_reference="INV-77"), "claim_bank_reference"),
    ],
)
def test_admin_bill_amount_filter_and_claim_reference_search_use_an_index(queryset, index):
    from django.db import transaction

    with transaction.atomic():
        text = plan(queryset())
    assert "Seq Scan" not in text, text
    assert index in text, text

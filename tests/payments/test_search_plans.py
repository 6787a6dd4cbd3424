"""Admin searches are routed to indexed lookups (QUALITY.md: no Seq Scan on big tables).

With sequential scans disabled, the planner must find an index for each search the admin runs;
if an index is missing it falls back to a Seq Scan anyway, which these tests catch.
"""

import pytest
from django.db import connection

from payments.models import Account, PaymentMethod

pytestmark = pytest.mark.django_db


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
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
def test_admin_search_uses_an_index(queryset, index):
    from django.db import transaction

    with transaction.atomic():
        text = plan(queryset())
    assert "Seq Scan" not in text, text
    assert index in text, text

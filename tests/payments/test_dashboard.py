"""Today's billing figures on the admin index (``billing_backoffice/dashboard.py``): the right
numbers per currency, only for staff who may see them, at a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing_backoffice.dashboard import Figure, billing_dashboard
from payments.models import Bill
from tests.factories import AccountFactory, UserFactory
from tests.helpers.dashboard_day import build_day
from tests.payments.invariants import make_bill

pytestmark = pytest.mark.django_db
D = Decimal
Status = Bill.Status


def staff_with(*codenames, username="dash"):
    user = UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="payments", codename__in=codenames))
    return type(user).objects.get(pk=user.pk)




def test_cred_3_dashboard_figures_of_the_day(now):
    build_day(now)
    board = billing_dashboard(user=UserFactory(username="root", is_superuser=True), now=now)
    assert board.overdue == [Figure("EUR", 1, D("70.00")), Figure("USD", 2, D("120.00"))]
    assert board.due_this_week == [Figure("USD", 2, D("30.00"))]
    assert board.failed_charges == [Figure("EUR", 1, D("11.00")), Figure("USD", 1, D("9.00"))]
    assert board.credited_today == [Figure("EUR", 1, D("7.00")), Figure("USD", 2, D("215.00"))]


def test_dashboard_costs_four_queries_whatever_the_data(now):
    user = UserFactory(username="root", is_superuser=True)
    with CaptureQueriesContext(connection) as empty:
        billing_dashboard(user=user, now=now)
    build_day(now)
    build_day(now + timedelta(seconds=1))
    with CaptureQueriesContext(connection) as full:
        billing_dashboard(user=user, now=now)
    assert len(empty) == len(full) == 4


def test_sec_3_dashboard_shows_only_what_the_user_may_see(now):
    build_day(now)
    assert billing_dashboard(user=UserFactory(username="nobody"), now=now) is None
    ledger_only = billing_dashboard(user=staff_with("view_ledgerentry", username="ledger"), now=now)
    assert ledger_only.overdue is None and ledger_only.failed_charges is None
    assert ledger_only.credited_today is not None
    bills_only = staff_with("view_bill", username="bills")
    with CaptureQueriesContext(connection) as queries:
        board = billing_dashboard(user=bills_only, now=now)
    assert board.overdue and board.credited_today is None
    assert not any("payments_charge" in q["sql"] or "payments_ledgerentry" in q["sql"] for q in queries)


def test_admin_index_renders_the_figures_for_billing_staff(client):
    now = timezone.now()
    account = AccountFactory()
    make_bill(account, "123.45", issued_at=now - timedelta(days=40), due_date=timezone.localdate() - timedelta(days=3),
              status=Status.OVERDUE)
    client.force_login(staff_with("view_bill", "view_charge", "view_ledgerentry", username="fin"))
    page = client.get(reverse("admin:index"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="billing-dashboard"' in html and 'id="dashboard-overdue"' in html
    assert "123.45" in html and reverse("admin:payments_bill_changelist") + "?due=overdue" in html
    assert 'class="model-bill"' in html  # the app list is still there


def test_admin_index_without_billing_permissions_has_no_figures(client):
    client.force_login(staff_with("view_account", username="acct-viewer"))
    page = client.get(reverse("admin:index"))
    assert page.status_code == 200 and b"billing-dashboard" not in page.content
    assert b"Accounts" in page.content

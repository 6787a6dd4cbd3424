"""One day's billing figures for the admin index tests (tests/payments/test_dashboard.py,
tests/test_work_queues.py): rows inside and just outside every window of the dashboard."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from payments.models import Bill, Charge, LedgerEntry
from payments.services.ledger import ledger_post
from tests.factories import AccountFactory
from tests.payments.invariants import credit, make_bill

D = Decimal
Status = Bill.Status


def add_charge(account, *, amount, status, created_at, currency="USD", reason="issuer_declined"):
    return Charge.objects.create(
        account=account, kind=Charge.Kind.ORDER, amount=D(amount), currency=currency,
        idempotency_key=f"dash-{account.pk}-{Charge.objects.count()}", status=status,
        failure_reason=reason if status == Charge.Status.FAILED else "", created_at=created_at,
    )


def build_day(now):
    """Figures of one day, with rows just outside every window."""
    today = now.date()
    a, b = AccountFactory(), AccountFactory()
    make_bill(a, "100.00", issued_at=now - timedelta(days=40), due_date=today - timedelta(days=5), status=Status.OVERDUE)
    make_bill(b, "30.00", issued_at=now - timedelta(days=40), due_date=today - timedelta(days=5), status=Status.OVERDUE,
              amount_paid="10.00")
    make_bill(b, "70.00", issued_at=now - timedelta(days=40), due_date=today - timedelta(days=5), status=Status.OVERDUE,
              currency="EUR")
    make_bill(a, "5.00", issued_at=now - timedelta(days=40), due_date=today - timedelta(days=5))  # past due, not marked
    make_bill(a, "10.00", issued_at=now - timedelta(days=10), due_date=today)  # due today: in the week
    make_bill(b, "20.00", issued_at=now - timedelta(days=10), due_date=today + timedelta(days=6))  # last day
    make_bill(b, "40.00", issued_at=now - timedelta(days=10), due_date=today + timedelta(days=7))  # outside
    add_charge(a, amount="9.00", status=Charge.Status.FAILED, created_at=now - timedelta(hours=23))
    add_charge(b, amount="11.00", status=Charge.Status.FAILED, created_at=now - timedelta(hours=1), currency="EUR")
    add_charge(a, amount="50.00", status=Charge.Status.FAILED, created_at=now - timedelta(hours=25))  # too old
    add_charge(a, amount="60.00", status=Charge.Status.SUCCEEDED, created_at=now - timedelta(hours=1))
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    credit(a, "200.00", now=start)  # first second of the day
    ledger_post(account_id=b.pk, amount=D("15.00"), currency="USD", kind=LedgerEntry.Kind.CLAIM_CREDIT,
                reference=f"claim:{b.pk}", now=now)
    credit(b, "7.00", now=now, currency="EUR")
    credit(a, "999.00", now=start - timedelta(seconds=1))  # yesterday
    ledger_post(account_id=a.pk, amount=D("1.00"), currency="USD", kind=LedgerEntry.Kind.ADJUSTMENT,
                reference=f"adj:{a.pk}", now=now)  # not a credit of funds

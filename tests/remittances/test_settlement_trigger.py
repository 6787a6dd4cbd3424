"""REM-1 / CLM-1 -> SET-2: money that reaches an account pays its open bills, with no manual step."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from payments.models import Bill
from payments.tasks.settlement import settle_account, settle_chunk
from remittances.services import claims as svc
from tests.factories import AccountFactory
from tests.helpers.claims import finance_user, reviewed_claim
from tests.helpers.statements import do_import, sample

pytestmark = pytest.mark.django_db


def open_bill(account, now, total):
    return Bill.objects.create(
        account=account, kind=Bill.Kind.ORDER, order_kind=Bill.OrderKind.PURCHASE,
        reference=f"order:{account.pk}:{total}", issued_at=now - timedelta(days=3), due_date=date(2026, 12, 1),
        amount_before_tax=Decimal(total), total=Decimal(total), currency="USD",
    )


def test_set_2_rem_1_dedicated_transfer_settles_the_bill_once_the_import_commits(
    customer, dedicated, now, django_capture_on_commit_callbacks, monkeypatch  # noqa: F811
):
    bill = open_bill(customer, now, "80.00")
    queued = []
    monkeypatch.setattr(settle_chunk, "delay", lambda **kwargs: queued.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        do_import(sample("camt053_v08.xml"), now)
    assert queued == [{"account_ids": [customer.pk]}]
    settle_chunk(**queued[0])
    bill.refresh_from_db()
    assert (bill.status, bill.amount_paid) == (Bill.Status.PAID, Decimal("80.00"))


def test_set_2_clm_1_approved_claim_settles_its_accounts_bill(now, django_capture_on_commit_callbacks, monkeypatch):
    account = AccountFactory()
    claim, txn = reviewed_claim(now=now, account=account)
    bill = open_bill(account, now, str(txn.amount))
    queued = []
    monkeypatch.setattr(settle_account, "delay", lambda **kwargs: queued.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        svc.claim_approve(claim_id=claim.pk, actor=finance_user("fin-settle"), now=now)
    assert queued == [{"account_id": account.pk}]
    settle_account(**queued[0])
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID


def test_set_2_nothing_enqueued_when_the_approval_rolls_back(now, django_capture_on_commit_callbacks, monkeypatch):
    from django.db import transaction

    account = AccountFactory()
    claim, _ = reviewed_claim(now=now, account=account)
    queued = []
    monkeypatch.setattr(settle_account, "delay", lambda **kwargs: queued.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            svc.claim_approve(claim_id=claim.pk, actor=finance_user("fin-rollback"), now=now)
            raise RuntimeError("crash before commit")
    assert queued == []

"""Builders for the charging and billing tests: accounts with a default method, orders, usage,
and what the workers would do with enqueued charges. The ``enqueued`` fixture that records the
tasks is in ``tests/payments/conftest.py``."""

from __future__ import annotations

from decimal import Decimal

from payments.models import Account, Charge, LedgerEntry, PaymentMethod
from payments.services.charge_execution import charge_execute
from payments.services.orders import order_place
from payments.services.usage import usage_record
from tests.factories import AccountFactory, CardMethodFactory, PayPalMethodFactory


def card_account(scenario: str = "approve", **account_fields) -> tuple[Account, PaymentMethod]:
    """An account whose default is an active card of the given sandbox scenario."""
    account = AccountFactory(**account_fields)
    method = CardMethodFactory(
        account=account, is_default=True, gateway_token=f"tok_{scenario}_{account.pk:024x}"
    )
    return account, method


def paypal_account(scenario: str = "approve", **account_fields) -> tuple[Account, PaymentMethod]:
    account = AccountFactory(**account_fields)
    method = PayPalMethodFactory(account=account, is_default=True, agreement_id=f"ba_{scenario}_{account.pk:08d}")
    return account, method


def report_usage(account, amount, *, reference, now, period="2026-11", currency="USD"):
    return usage_record(
        account_id=account.pk, amount=amount, currency=currency, period=period, reference=reference, now=now
    )


def place(account, amount="100.00", *, reference="ord-1", now, kind="purchase", currency="USD"):
    return order_place(account_id=account.pk, kind=kind, amount=amount, currency=currency, reference=reference, now=now)


def ledger(account) -> list[tuple[str, Decimal, str]]:
    return sorted(
        (e.kind, e.amount, e.reference) for e in LedgerEntry.objects.filter(account=account)
    )


class Enqueued(list):
    """The tasks that would have reached the broker, as (name, kwargs), in order."""

    def __init__(self, capture):
        super().__init__()
        self.capture = capture

    def commit(self, service, **kwargs):
        """Call a service and run its on-commit callbacks, as a real commit would."""
        with self.capture(execute=True):
            return service(**kwargs)


def run_enqueued_charges(enqueued, now) -> list[Charge]:
    """What the workers would do with the enqueued execute_charge messages."""
    ids = [kw["charge_id"] for name, kw in enqueued if name == "payments.execute_charge"]
    enqueued.clear()
    return [charge_execute(charge_id=charge_id, now=now) for charge_id in ids]

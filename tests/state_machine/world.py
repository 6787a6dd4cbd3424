"""What the state machine runs against: a clean database per example, staff users, a fake broker
that keeps the Celery messages the services send, sandbox cards, and camt.053 files.

Nothing here writes business rows with the ORM: the machine's rules call the services. The
only direct writes are the per-example reset (TRUNCATE) and the staff users with their
permissions, which are fixtures, not business events.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from stdnum import luhn

from payments.services.cards import CardInput
from tests.remittances.samples import build

UTC = timezone.utc
# A Tuesday near a month end: a few clock advances cross into the next billing month.
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SHARED_IBAN = build.SHARED_IBAN

# Tables emptied between examples. CASCADE follows every foreign key to them (methods, holds,
# challenges, attempts, ledger, bills, charges, usage, credit requests, remittance accounts,
# statements, transactions, claims and the audit event tables), so nothing of the previous
# example survives; staff users and permissions are kept.
RESET_TABLES = ("payments_account", "remittances_remittanceaccount")


class Crash(Exception):
    """A simulated worker crash (not a BillingError: nothing may catch it by accident)."""


class UnexpectedTask(AssertionError):
    pass


def reset_database() -> None:
    from tests.db_reset import truncation_allowed  # the ledger and audit tables refuse TRUNCATE

    with truncation_allowed(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(RESET_TABLES)} CASCADE")


# --- staff ---------------------------------------------------------------------------------------

MANAGER_PERMS = (
    "add_creditlimitrequest", "approve_creditlimitrequest", "view_creditlimitrequest",
    "issue_remittanceaccount", "view_remittanceclaim", "add_remittanceclaim", "review_remittanceclaim",
)
FINANCE_PERMS = ("view_remittanceclaim", "approve_remittanceclaim", "import_bankstatement")


@dataclass(frozen=True)
class Staff:
    """Two account managers and two finance staff, so four-eyes rules always leave someone."""

    manager_a: object
    manager_b: object
    finance_a: object
    finance_b: object


def make_staff() -> Staff:
    def user(username: str, codenames: tuple[str, ...]):
        model = get_user_model()
        person, _ = model.objects.get_or_create(username=username, defaults={"is_staff": True})
        perms = Permission.objects.filter(content_type__app_label="remittances", codename__in=codenames)
        assert perms.count() == len(codenames), codenames
        person.user_permissions.set(perms)
        return model.objects.get(pk=person.pk)  # fresh: no cached permissions

    return Staff(
        manager_a=user("fsm-manager-a", MANAGER_PERMS),
        manager_b=user("fsm-manager-b", MANAGER_PERMS),
        finance_a=user("fsm-finance-a", FINANCE_PERMS),
        finance_b=user("fsm-finance-b", FINANCE_PERMS),
    )


# --- the broker ------------------------------------------------------------------------------------


@dataclass
class Message:
    task: str
    kwargs: dict


@dataclass
class Broker:
    """The Celery messages the services enqueued (on commit), waiting for a "worker" rule."""

    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sender(self, task_name: str):
        def delay(**kwargs):
            with self.lock:
                self.messages.append(Message(task_name, kwargs))

        return delay

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def take(self, index: int) -> Message:
        with self.lock:
            return self.messages.pop(index % len(self.messages))

    def __len__(self) -> int:
        return len(self.messages)


def patch_tasks(monkeypatch, broker: Broker) -> None:
    """Every task a service enqueues goes to ``broker``; any other send fails the test."""
    from celery.app.task import Task

    from payments.tasks import billing as billing_tasks, charging as charging_tasks, settlement as settlement_tasks

    for task in (
        charging_tasks.execute_charge,
        charging_tasks.place_paypal_preauth,
        billing_tasks.generate_monthly_bills_chunk,
        settlement_tasks.settle_account,
        settlement_tasks.settle_chunk,
    ):
        monkeypatch.setattr(task, "delay", broker.sender(task.name))

    def unexpected(self, *args, **kwargs):
        raise UnexpectedTask(f"{self.name} was sent to the real broker")

    monkeypatch.setattr(Task, "apply_async", unexpected)


# --- cards -------------------------------------------------------------------------------------

# Sandbox numbers (payments/gateways/simulated.py) whose scenarios the machine exercises; each can
# be linked to one account at a time (LINK-1), so fresh approving numbers are generated as well.
SPECIAL_CARDS = (
    "4000000000000002",  # issuer declines the hold (LINK-4)
    "4000000000000127",  # not enabled online (LINK-4)
    "4000000000009953",  # insufficient funds for the hold (HOLD-1)
    "4000000000003204",  # risk check asks for 3DS (LINK-5, PAY-1)
    "4000000000007700",  # the first void of its hold fails (HOLD-2)
    "4000000000001190",  # gateway unavailable
    "4000000000000341",  # links; charges declined (PAY-5)
    "4000000000000358",  # links; charges lack funds (PAY-5)
    "4000000000000366",  # links; the first answer of each charge is lost (timeout)
    "4000000000002206",  # prepaid (ELIG-4)
    "4000000000005506",  # issued in the Chinese mainland (ELIG-5)
    "5555555555554444",  # Mastercard
    "378282246310005",  # American Express
    "3530111333300000",  # JCB (ELIG-2: only "other" regions)
)
_card_numbers = itertools.count(1)


def fresh_card_number() -> str:
    """A Luhn-valid Visa number the sandbox approves, never used before in this process."""
    body = f"4111{next(_card_numbers):011d}"
    return body + luhn.calc_check_digit(body)


def card(number: str, *, exp_month: int = 12, exp_year: int = 2029) -> CardInput:
    return CardInput(
        number=number, exp_month=exp_month, exp_year=exp_year,
        cvv="1234" if number.startswith(("34", "37")) else "123",
        cardholder_name="Ada Lovelace", billing_line1="1 Main St", billing_city="Springfield",
        billing_postal_code="12345", billing_country="US",
    )


# --- statements ----------------------------------------------------------------------------------


def camt053(*, iban: str, statement_id: str, credits: list[tuple[str, Decimal]], day: datetime,
            debit: Decimal | None = None) -> bytes:
    """A camt.053 day on ``iban``: one booked credit per (reference, amount), optionally a debit.

    Opening 0, closing = credits - debit, so the file reconciles (REM-5).
    """
    entries = [
        build.Entry(f"{amount:.2f}", ref=reference, txs=[build.Tx(f"{amount:.2f}", "Payer Ltd", "", "transfer", "", ref=reference)])
        for reference, amount in credits
    ]
    closing = sum((amount for _, amount in credits), Decimal("0.00"))
    if debit is not None:
        entries.append(build.Entry(f"{debit:.2f}", credit=False, ref=f"{statement_id}-DBIT",
                                   txs=[build.Tx(f"{debit:.2f}", "Bank", "", "fees")]))
        closing -= debit
    return build.camt(
        iban=iban, statement_id=statement_id, entries=entries, opening=Decimal("0.00"), closing=closing,
        date=day.strftime("%Y-%m-%d"),
    ).encode()


def previous_period(now: datetime) -> str:
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def current_period(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"

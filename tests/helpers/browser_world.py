"""What the browser tests' pages show: a few rows of every main list, built with the factories
(committed: the live server reads them), and the two roles' users."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from payments.models import Account, PaymentMethod
from tests.factories import (
    AccountFactory,
    BillFactory,
    CardMethodFactory,
    ChallengeFactory,
    ChargeFactory,
    CreditLimitRequestFactory,
    LedgerEntryFactory,
)
from tests.helpers.claims import bank_txn, console_claim
from tests.helpers.roles import FINANCE, MANAGERS, in_group

# The main lists (issue 10): the admin changelists people work from.
MAIN_LISTS = {
    "accounts": "/admin/payments/account/",
    "methods": "/admin/payments/paymentmethod/",
    "bills": "/admin/payments/bill/",
    "charges": "/admin/payments/charge/",
    "ledger": "/admin/payments/ledgerentry/",
    "transactions": "/admin/remittances/banktransaction/",
    "claims": "/admin/remittances/remittanceclaim/",
    "credit applications": "/admin/remittances/creditlimitrequest/",
}


def lists_for(user) -> dict[str, str]:
    """The main lists this user's role may view (the others answer 403, as they should)."""
    return {
        name: path for name, path in MAIN_LISTS.items()
        if user.has_perm("{}.view_{}".format(*path.strip("/").split("/")[1:3]))
    }


def manager(username: str = "ann.manager"):
    return in_group(MANAGERS, username)


def finance(username: str = "fred.finance"):
    return in_group(FINANCE, username)


@dataclass
class World:
    account: Account
    eu_account: Account
    card: PaymentMethod
    pending_card: PaymentMethod


def world() -> World:
    """One customer of each region with a card, a bill, charges, ledger entries, a shared-account
    transfer waiting for its claim, and a credit application."""
    now = timezone.now()
    account = AccountFactory(name="Northwind Traders International Holdings", kind="enterprise", country="US")
    eu = AccountFactory(name="Lindqvist Konsult AB", kind="individual", country="SE")
    card = CardMethodFactory(account=account)
    pending = CardMethodFactory(account=eu, status=PaymentMethod.Status.PENDING, billing_country="SE",
                                issuing_country="SE")
    ChallengeFactory(payment_method=pending, created_at=now - timedelta(hours=2),
                     expires_at=now + timedelta(hours=22))
    bill = BillFactory(account=account, total=Decimal("12500.00"), issued_at=now - timedelta(days=40))
    ChargeFactory(account=account, payment_method=card, bill=bill, amount=Decimal("12500.00"), failed=True)
    ChargeFactory(account=account, payment_method=card, amount=Decimal("75.50"))
    LedgerEntryFactory(account=account, amount=Decimal("1500.00"))
    bank_txn(now=now, amount="1200.00", payer_name="NORTHWIND TRADERS", remittance_info="INV 2026-11")
    console_claim(eu, now=now, amount="300.00", reference="REF-EU-300")
    CreditLimitRequestFactory(account=account)
    return World(account=account, eu_account=eu, card=card, pending_card=pending)

"""What the browser tests' pages show: a few rows of every main list, built with the factories
(committed: the live server reads them), and the two roles' users."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RunPython
from django.utils import timezone

from billing_backoffice import staff_roles

from payments.models import Account, PaymentMethod
from tests.factories import (
    AccountFactory,
    BillFactory,
    CardMethodFactory,
    ChallengeFactory,
    ChargeFactory,
    CreditLimitRequestFactory,
    LedgerEntryFactory,
    UserFactory,
)
from tests.helpers.claims import bank_txn, console_claim
from tests.helpers.roles import FINANCE, MANAGERS

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


@functools.cache
def role_grants() -> tuple:
    """The forward steps of every migration that grants or revokes role permissions (those that
    use ``billing_backoffice.staff_roles``), in migration order."""
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    plan = []
    for leaf in sorted(loader.graph.leaf_nodes()):
        plan += [node for node in loader.graph.forwards_plan(leaf) if node not in plan]
    steps = []
    for node in plan:
        migration = loader.graph.nodes[node]
        module = sys.modules[type(migration).__module__]
        if getattr(module, "grant", None) is staff_roles.grant:
            steps += [(module, op.code) for op in migration.operations if isinstance(op, RunPython)]
    return tuple(steps)


def _grant_existing(apps, app_label: str, roles: dict) -> None:
    """``staff_roles.grant`` of the codenames that still exist (a later migration renamed the others)."""
    staff_roles._ensure_permissions(apps, app_label)
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in roles.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))


def real_role(name: str, username: str):
    """A member of the role group with exactly what the migrations grant it. The browser tests'
    database is flushed after each test (groups included), so the grants are replayed first."""
    with connection.schema_editor(atomic=False) as editor:
        for module, step in role_grants():
            module.grant = _grant_existing
            try:
                step(django_apps, editor)
            finally:
                module.grant = staff_roles.grant
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=name))
    return type(user).objects.get(pk=user.pk)  # fresh: no cached permissions


def both_roles(username: str = "mia.both"):
    """A staff member who holds both roles (a small team): still never decides a claim she took part in."""
    user = real_role(MANAGERS, username)
    user.groups.add(Group.objects.get(name=FINANCE))
    return type(user).objects.get(pk=user.pk)


def manager(username: str = "ann.manager"):
    return real_role(MANAGERS, username)


def finance(username: str = "fred.finance"):
    return real_role(FINANCE, username)


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

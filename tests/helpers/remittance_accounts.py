"""Builders for the remittance account tests (REM-1..3, CRED-1): a credit-approved customer and
staff with the remittance account permissions. The ``am``, ``fin`` and ``nobody`` staff fixtures
are in ``tests/remittances/conftest.py``."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import Permission

from payments.models import Account
from tests.factories import AccountFactory, UserFactory

SHARED_IBAN = "GB33BUKB20201555555555"  # a textbook valid IBAN (check digits 33)

# What each role needs in this area (the remittances group migration grants the same).
MANAGER_PERMS = ("view_remittanceaccount", "issue_remittanceaccount", "suspend_remittanceaccount")
FINANCE_PERMS = ("view_remittanceaccount",)


def staff_with(username: str, *codenames: str):
    user = UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="remittances", codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # fresh object: no stale permission cache


def credit_account(**fields) -> Account:
    """An enterprise approved for credit (50,000 USD): it may get a dedicated account (CRED-1)."""
    defaults = dict(
        name="Acme Industries", kind=Account.Kind.ENTERPRISE, country="DE", credit_approved=True,
        credit_limit=Decimal("50000.00"), credit_currency="USD",
    )
    return AccountFactory(**{**defaults, **fields})

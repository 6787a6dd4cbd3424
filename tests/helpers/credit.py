"""Builders for the credit application tests (CRED-1..3): staff with the credit permissions and
requests submitted and approved through the services."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from payments.models import Account
from remittances.models import CreditLimitRequest
from remittances.services.credit import credit_request_approve, credit_request_submit
from tests.factories import UserFactory

MANAGER_PERMS = ("view_creditlimitrequest", "add_creditlimitrequest", "approve_creditlimitrequest")
FINANCE_PERMS = ("view_creditlimitrequest",)


def staff_user(username: str, *codenames: str):
    """A staff user holding exactly these remittances permissions (loaded fresh: no perm cache)."""
    user = UserFactory(username=username)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="remittances", codename__in=codenames)
    )
    return get_user_model().objects.get(pk=user.pk)


def submit(account, now, *, limit="5000.00", currency="USD", recorded_by=None, justification="Monthly invoices"):
    Source = CreditLimitRequest.Source
    return credit_request_submit(
        account_id=account.pk, requested_limit=limit, currency=currency, justification=justification,
        source=Source.STAFF if recorded_by else Source.CONSOLE, recorded_by=recorded_by, now=now,
    )


def approve(request, actor, now, note=""):
    return credit_request_approve(request_id=request.pk, actor=actor, note=note, now=now)


def credit_of(account) -> tuple:
    account = Account.objects.get(pk=account.pk)
    return account.credit_approved, account.credit_limit, account.credit_currency

"""Creating accounts (ELIG-1) and their life cycle: deactivation, silent period, closure (LINK-2)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction

from payments.eligibility import region_for_country
from payments.errors import AccountNotFound, AccountStateError
from payments.models import Account, PaymentMethod


def account_create(
    *, name: str, kind: str, country: str, email: str = "", account_manager=None, kyc_status: str = ""
) -> Account:
    """ELIG-1 / ELIG-7: any kind of account; its region is derived from the registration country."""
    country = country.upper()
    return Account.objects.create(
        name=name.strip(),
        kind=kind,
        country=country,
        region=region_for_country(country),
        email=email,
        account_manager=account_manager,
        kyc_status=kyc_status or Account.KycStatus.NOT_REQUIRED,
    )


def _locked_account(account_id: int) -> Account:
    try:
        return Account.objects.select_for_update().get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound() from None


@transaction.atomic
def account_deactivate(*, account_id: int, now: datetime) -> Account:
    """LINK-2: the silent period starts; methods stay linked until the account closes."""
    account = _locked_account(account_id)
    if account.status == Account.Status.DEACTIVATED:
        return account
    if account.status != Account.Status.ACTIVE:
        raise AccountStateError("Only an active account can be deactivated.", rule="LINK-2")
    account.status = Account.Status.DEACTIVATED
    account.deactivated_at = now
    account.save(update_fields=["status", "deactivated_at"])
    return account


@transaction.atomic
def account_reactivate(*, account_id: int, now: datetime) -> Account:
    """LINK-2: within the silent period the account can come back with its methods."""
    account = _locked_account(account_id)
    if account.status == Account.Status.ACTIVE:
        return account
    if account.status != Account.Status.DEACTIVATED:
        raise AccountStateError("A closed account cannot be reactivated.", rule="LINK-2")
    account.status = Account.Status.ACTIVE
    account.deactivated_at = None
    account.save(update_fields=["status", "deactivated_at"])
    return account


def silent_period_ends_at(account: Account) -> datetime | None:
    if account.deactivated_at is None:
        return None
    return account.deactivated_at + settings.ACCOUNT_SILENT_PERIOD


@transaction.atomic
def account_close(*, account_id: int, now: datetime) -> bool:
    """LINK-2: after the silent period, close the account and release (remove) its methods.

    Conditional on the account still being deactivated with its period over, so a second run,
    or a reactivation that won the race, leaves it alone. Returns whether it closed.
    """
    account = _locked_account(account_id)
    ends = silent_period_ends_at(account)
    if account.status != Account.Status.DEACTIVATED or ends is None or ends > now:
        return False
    account.status = Account.Status.CLOSED
    account.closed_at = now
    account.save(update_fields=["status", "closed_at"])
    PaymentMethod.objects.filter(account_id=account.pk).exclude(status=PaymentMethod.Status.REMOVED).update(
        status=PaymentMethod.Status.REMOVED, is_default=False, removed_at=now, status_changed_at=now
    )
    return True

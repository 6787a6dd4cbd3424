"""Creating accounts (ELIG-1) and their life cycle: deactivation, silent period, closure (LINK-2)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction

from billing_backoffice.errors import BillingError
from billing_backoffice.free_text import free_text_check
from payments.eligibility import region_for_country
from payments.errors import AccountInUse, AccountNotFound, AccountStateError
from payments.models import Account, PaymentMethod
from payments.services.removal import account_blocks_removing_last_active_method

logger = logging.getLogger(__name__)


def account_create(
    *, name: str, kind: str, country: str, email: str = "", account_manager=None, kyc_status: str = ""
) -> Account:
    """ELIG-1 / ELIG-7: any kind of account; its region is derived from the registration country.
    SEC-1: a name or e-mail holding a card number is refused before the row (and its audit) exists."""
    free_text_check(name=name, email=email)
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


def deactivation_refusal(account: Account) -> BillingError | None:
    """LINK-2/DEL-3: why ``account`` may not be deactivated now (the error ``account_deactivate``
    raises), or None; read without writes, so the admin's confirmation page shows it too."""
    if account.status == Account.Status.DEACTIVATED:
        return None
    if account.status != Account.Status.ACTIVE:
        return AccountStateError("Only an active account can be deactivated.", rule="LINK-2")
    blocker = account_blocks_removing_last_active_method(account)
    if blocker:
        return AccountInUse(
            f"The account cannot be deactivated: {blocker}; closing it would remove its payment methods."
        )
    return None


def reactivation_refusal(account: Account, *, now: datetime) -> BillingError | None:
    """LINK-2: why ``account`` may not be reactivated at ``now`` (the error ``account_reactivate``
    raises), or None."""
    if account.status == Account.Status.ACTIVE:
        return None
    if account.status != Account.Status.DEACTIVATED:
        return AccountStateError("A closed account cannot be reactivated.", rule="LINK-2")
    ends = silent_period_ends_at(account)
    if ends is not None and ends <= now:
        return AccountStateError(
            f"The silent period ended on {ends:%Y-%m-%d %H:%M} UTC; the account is being closed "
            "and cannot be reactivated.",
            rule="LINK-2",
        )
    return None


@transaction.atomic
def account_deactivate(*, account_id: int, now: datetime) -> Account:
    """LINK-2: the silent period starts; methods stay linked until the account closes.

    DEL-3 decision: an account with running resources or open, partially paid or overdue bills
    is not deactivated (``AccountInUse``, 422 naming DEL-3). Closing it 15 days later would
    remove its methods, the only active one included, which DEL-3 forbids while it still runs
    resources or owes money. The customer stops the resources and the bills get paid first.
    ``account_close`` checks again, for bills issued during the silent period.
    """
    account = _locked_account(account_id)
    if account.status == Account.Status.DEACTIVATED:
        return account
    refusal = deactivation_refusal(account)
    if refusal is not None:
        raise refusal
    account.status = Account.Status.DEACTIVATED
    account.deactivated_at = now
    account.save(update_fields=["status", "deactivated_at"])
    return account


@transaction.atomic
def account_reactivate(*, account_id: int, now: datetime) -> Account:
    """LINK-2: within the silent period the account can come back with its methods.

    The clock decides, not the close job: once ``deactivated_at + ACCOUNT_SILENT_PERIOD`` has
    passed the account is refused even if the hourly job has not closed it yet.
    """
    account = _locked_account(account_id)
    if account.status == Account.Status.ACTIVE:
        return account
    refusal = reactivation_refusal(account, now=now)
    if refusal is not None:
        raise refusal
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

    DEL-3: an account that has running resources or unpaid bills again (a monthly bill issued
    during the silent period) is not closed: it stays deactivated, its methods stay linked, and
    a later run closes it once nothing blocks it.
    """
    account = _locked_account(account_id)
    ends = silent_period_ends_at(account)
    if account.status != Account.Status.DEACTIVATED or ends is None or ends > now:
        return False
    blocker = account_blocks_removing_last_active_method(account)
    if blocker:
        logger.warning("DEL-3: account %s not closed after its silent period: %s.", account.pk, blocker)
        return False
    account.status = Account.Status.CLOSED
    account.closed_at = now
    account.save(update_fields=["status", "closed_at"])
    PaymentMethod.objects.filter(account_id=account.pk).exclude(status=PaymentMethod.Status.REMOVED).update(
        status=PaymentMethod.Status.REMOVED, is_default=False, removed_at=now, status_changed_at=now
    )
    return True

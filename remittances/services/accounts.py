"""Remittance accounts: issuing dedicated accounts, suspending them, registering shared ones.

Rules:
- REM-1 a dedicated account belongs to one cloud account for ever: one per cloud account
  (``rem_one_dedicated_per_account``), a unique number (``number`` unique) that is never
  reassigned (trigger ``rem_never_reassigned``) and never reused: suspending keeps the row and
  its number, so no later issue can draw it again.
- CRED-1 only credit-approved accounts pay by bank transfer, so only they get (or get back) a
  dedicated account.
- REM-2 shared (non-dedicated) receiving accounts belong to no cloud account.
- REM-3 an account manager issues the dedicated account (``issue_remittanceaccount``).
The auto-credit of money received on a dedicated account belongs to the statement import.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from billing_backoffice import money
from billing_backoffice.errors import BillingError
from billing_backoffice.free_text import contains_card_number
from billing_backoffice.permissions import staff_require
from payments.errors import AccountNotFound, AccountStateError
from payments.models import Account
from remittances import numbering
from remittances.models import RemittanceAccount
from remittances.errors import (  # noqa: F401 (raised here, importable from here)
    CreditNotApproved,
    DedicatedAccountExists,
    InvalidBankDetails,
    NumberUnavailable,
    PermissionRefused,
    ReceivingAccountConflict,
    RemittanceAccountNotFound,
    RemittanceAccountStateError,
)

logger = logging.getLogger(__name__)

Kind = RemittanceAccount.Kind
Status = RemittanceAccount.Status

# A collision needs two random 10-digit account parts to meet; ten misses in a row means the
# generator or the configuration is broken, not bad luck, and must not loop for ever.
MAX_NUMBER_ATTEMPTS = 10


# --- helpers ----------------------------------------------------------------------------------


def _require(actor, codename: str, what: str) -> None:
    staff_require(actor, permission=f"remittances.{codename}", action=what, system_allowed=False)


def _locked_remittance_account(remittance_account_id: int) -> RemittanceAccount:
    try:
        return RemittanceAccount.objects.select_for_update().get(pk=remittance_account_id)
    except RemittanceAccount.DoesNotExist:
        raise RemittanceAccountNotFound() from None


def _existing_dedicated_message(existing: RemittanceAccount, account: Account) -> str:
    state = ""
    if existing.status != Status.ACTIVE:
        state = f" ({existing.get_status_display().lower()}; resume it instead)"
    return (
        f"Account {account.uid} already has dedicated remittance account "
        f"{numbering.format_number(existing.number)}{state}; a cloud account has one dedicated "
        "account for ever and its number is never reassigned."
    )


# --- dedicated accounts (REM-1, REM-3) ------------------------------------------------------


def _check_may_issue(account: Account) -> None:
    """REM-1 / CRED-1: one dedicated account per cloud account, credit-approved and active only."""
    existing = RemittanceAccount.objects.filter(account_id=account.pk, kind=Kind.DEDICATED).first()
    if existing is not None:
        raise DedicatedAccountExists(_existing_dedicated_message(existing, account))
    if not account.credit_approved:
        raise CreditNotApproved(
            f"Account {account.uid} is not credit-approved; only credit-approved accounts pay by bank "
            "transfer and get a dedicated remittance account (REM-1)."
        )
    if account.status != Account.Status.ACTIVE:
        raise AccountStateError(
            f"Account {account.uid} is {account.get_status_display().lower()}; "
            "dedicated remittance accounts are issued to active accounts only."
        )


def dedicated_issue_refusal(account: Account) -> BillingError | None:
    """REM-1 / CRED-1: why ``account`` gets no dedicated account now (what the issue raises), or
    None; read without writes for the admin's confirmation page."""
    try:
        _check_may_issue(account)
    except BillingError as error:
        return error
    return None


def dedicated_number_preview() -> str:
    """A number the next issue may use (REM-1), drawn without writing anything: no number is
    consumed or reserved (numbers are random, never a counter). The confirmation page shows it
    and hands it back to ``dedicated_account_issue(number=...)``, which takes it only if it is
    still free and valid for the bank, and draws another otherwise."""
    return numbering.new_dedicated_number(settings.REMITTANCE_BANK)


def _candidate_numbers(bank, proposed: str | None):
    """The confirmed number first (when it is a valid number of this bank), then fresh draws."""
    proposed = numbering.normalise(proposed or "")
    if proposed and numbering.is_valid_dedicated_number(proposed, country=bank["country"]):
        yield proposed
    for _ in range(MAX_NUMBER_ATTEMPTS):
        yield numbering.new_dedicated_number(bank)


@transaction.atomic
def dedicated_account_issue(*, account_id: int, actor, now: datetime, number: str | None = None) -> RemittanceAccount:
    """REM-1 / REM-3 / CRED-1: issue the cloud account's dedicated remittance account.

    Refused (nothing written) when the actor lacks ``issue_remittanceaccount``, the account is
    not credit-approved or not active, or it already has a dedicated account (the message names
    the existing number). The account row is locked first so two managers issuing at once get
    one account and one refusal; the database constraints are the last word either way.
    A generated number that is already taken (by any remittance account, live or suspended) is
    drawn again, at most ``MAX_NUMBER_ATTEMPTS`` times. ``number``: the one the confirmation page
    showed (``dedicated_number_preview``), used when still free and valid for the bank.
    """
    _require(actor, "issue_remittanceaccount", "issue dedicated remittance accounts")
    try:
        account = Account.objects.select_for_update().get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound() from None
    _check_may_issue(account)
    bank = settings.REMITTANCE_BANK
    for number in _candidate_numbers(bank, number):
        try:
            with transaction.atomic():  # a savepoint: a collision leaves the outer transaction usable
                remittance_account = RemittanceAccount.objects.create(
                    kind=Kind.DEDICATED,
                    status=Status.ACTIVE,
                    account=account,
                    number=number,
                    bank_name=bank["name"],
                    bic=bank["bic"].upper(),
                    bank_country=bank["country"].upper(),
                    currency=bank["currency"].upper(),
                    beneficiary_name=bank["beneficiary"],
                    issued_by=actor,
                    issued_at=now,
                )
        except IntegrityError:
            if RemittanceAccount.objects.filter(number=number).exists():
                logger.warning("Generated remittance number collided with an existing one; drawing again.")
                continue
            raise  # not a number collision: a constraint we did not expect, let it surface
        logger.info(
            "Dedicated remittance account %s issued for account %s by %s",
            remittance_account.pk, account.uid, actor.pk,
        )
        return remittance_account
    raise NumberUnavailable(
        f"No free account number found in {MAX_NUMBER_ATTEMPTS} attempts; nothing was issued. "
        "Check REMITTANCE_BANK (country and bank code)."
    )


@transaction.atomic
def remittance_account_suspend(*, remittance_account_id: int, actor, now: datetime) -> RemittanceAccount:
    """REM-1: stop using a remittance account; it keeps its number (and owner) for ever.

    Suspending an already suspended account changes nothing. Needs ``suspend_remittanceaccount``.
    """
    _require(actor, "suspend_remittanceaccount", "suspend remittance accounts")
    remittance_account = _locked_remittance_account(remittance_account_id)
    if remittance_account.status == Status.SUSPENDED:
        return remittance_account
    remittance_account.status = Status.SUSPENDED
    remittance_account.suspended_at = now
    remittance_account.save(update_fields=["status", "suspended_at"])
    logger.info("Remittance account %s suspended by %s", remittance_account.pk, actor.pk)
    return remittance_account


@transaction.atomic
def remittance_account_resume(*, remittance_account_id: int, actor, now: datetime) -> RemittanceAccount:
    """REM-1 / CRED-1: take a suspended account back into use, with the same number.

    A dedicated account comes back only while its cloud account is still credit-approved.
    Resuming an active account changes nothing. Needs ``suspend_remittanceaccount``.
    """
    _require(actor, "suspend_remittanceaccount", "resume remittance accounts")
    remittance_account = _locked_remittance_account(remittance_account_id)
    if remittance_account.status == Status.ACTIVE:
        return remittance_account
    refusal = resume_refusal(remittance_account)
    if refusal is not None:
        raise refusal
    remittance_account.status = Status.ACTIVE
    remittance_account.suspended_at = None
    remittance_account.save(update_fields=["status", "suspended_at"])
    logger.info("Remittance account %s resumed by %s", remittance_account.pk, actor.pk)
    return remittance_account


def resume_refusal(remittance_account: RemittanceAccount) -> CreditNotApproved | None:
    """CRED-1: why ``remittance_account`` may not be resumed (the error ``remittance_account_resume``
    raises), or None; read without writes, so the admin's confirmation page shows it too."""
    if remittance_account.kind != Kind.DEDICATED or remittance_account.status == Status.ACTIVE:
        return None
    account = Account.objects.only("uid", "credit_approved").get(pk=remittance_account.account_id)
    if account.credit_approved:
        return None
    return CreditNotApproved(
        f"Account {account.uid} is no longer credit-approved; its dedicated remittance account stays suspended."
    )


# --- shared receiving accounts (REM-2) --------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    account: RemittanceAccount
    created: bool


@dataclass(frozen=True)
class BankDetails:
    number: str
    bank_name: str
    bic: str
    bank_country: str
    currency: str


def _same_bic(a: str, b: str) -> bool:
    # "EXBKDEFF" and "EXBKDEFFXXX" name the same (primary) office.
    def full(bic):
        return bic if len(bic) == 11 else bic + "XXX"

    return full(a) == full(b)


def bank_details_clean(*, number: str, bank_name: str, bic: str, currency: str) -> BankDetails:
    """Validate and normalise a receiving account's details, or raise ``InvalidBankDetails``.

    An IBAN (two letters and two digits first) must pass schwifty's checks; any other number is
    4 to 34 letters or digits. The BIC must be well formed with a real country code; the
    currency must be an ISO 4217 code.
    """
    problems = []
    number = numbering.normalise(number)
    if numbering.looks_like_iban(number):
        try:
            IBAN(number)
        except SchwiftyException as error:
            problems.append(f"{number!r} is not a valid IBAN: {error}.")
    elif not re.fullmatch(r"[A-Z0-9]{4,34}", number):  # ASCII only: str.isalnum() takes any script
        problems.append(f"{number!r} is not an account number (4 to 34 letters or digits).")
    bank_name = " ".join((bank_name or "").split())
    if not bank_name or len(bank_name) > 140:
        problems.append("The bank name is required (at most 140 characters).")
    bic = (bic or "").strip().upper()
    bank_country = ""
    try:
        bank_country = BIC(bic).country_code
    except SchwiftyException as error:
        problems.append(f"{bic!r} is not a valid SWIFT/BIC code: {error}.")
    currency = (currency or "").strip().upper()
    if currency not in money.CURRENCIES:  # I6: the one list of accepted ISO 4217 currencies
        problems.append(f"{currency!r} is not an ISO 4217 currency code accepted here.")
    if contains_card_number(bank_name):  # SEC-1: never kept, never repeated in the message
        problems.append("The bank name looks like a card number (SEC-1).")
    if problems:
        raise InvalidBankDetails(" ".join(problems))
    return BankDetails(number=number, bank_name=bank_name, bic=bic, bank_country=bank_country, currency=currency)


def _check_same_registration(existing: RemittanceAccount, details: BankDetails) -> None:
    if existing.kind == Kind.DEDICATED:
        raise ReceivingAccountConflict(
            f"{numbering.format_number(existing.number)} is a dedicated remittance account; it can "
            "never become a shared receiving account (REM-1).",
            rule="REM-1",
        )
    differs = [
        name
        for name, same in (
            ("bank name", existing.bank_name == details.bank_name),
            ("BIC", _same_bic(existing.bic, details.bic)),
            ("currency", existing.currency == details.currency),
        )
        if not same
    ]
    if differs:
        raise ReceivingAccountConflict(
            f"{numbering.format_number(existing.number)} is already registered with another "
            f"{', '.join(differs)} ({existing.bank_name}, {existing.bic}, {existing.currency}); nothing changed."
        )


@transaction.atomic
def receiving_account_register(
    *, number: str, bank_name: str, bic: str, currency: str, bank_code: str = "", actor=None, now: datetime
) -> Registration:
    """REM-2: register a shared (non-dedicated) receiving account; it belongs to no cloud account.

    Idempotent: registering the same number again with the same details returns the existing
    account (``created=False``); other details, or a dedicated account's number, are refused.
    ``actor`` is None for the command line (an operator on the server); a staff member needs
    ``add_remittanceaccount``.
    """
    if actor is not None:
        _require(actor, "add_remittanceaccount", "register receiving accounts")
    details = bank_details_clean(number=number, bank_name=bank_name, bic=bic, currency=currency)
    existing = RemittanceAccount.objects.filter(number=details.number).first()
    if existing is not None:
        _check_same_registration(existing, details)
        return Registration(account=existing, created=False)
    try:
        with transaction.atomic():
            created = RemittanceAccount.objects.create(
                kind=Kind.NON_DEDICATED,
                status=Status.ACTIVE,
                account=None,
                number=details.number,
                bank_name=details.bank_name,
                bic=details.bic,
                bank_code=numbering.normalise(bank_code)[:15],  # REM-7: MT940 ":25:" may name the bank so
                bank_country=details.bank_country,
                currency=details.currency,
                beneficiary_name=settings.REMITTANCE_BANK["beneficiary"],
                issued_by=actor,
                issued_at=now,
            )
    except IntegrityError:
        # Registered (or issued) by someone else a moment ago: judge it like any existing one.
        existing = RemittanceAccount.objects.get(number=details.number)
        _check_same_registration(existing, details)
        return Registration(account=existing, created=False)
    logger.info("Shared receiving account %s registered", created.pk)
    return Registration(account=created, created=True)

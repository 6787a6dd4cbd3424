"""Credit limit applications: submit, approve, reject (CRED-1, CRED-2, CRED-3; SEC-2, SEC-3).

- CRED-1: a limit takes effect only when an account manager approves the application; approval
  sets ``Account.credit_approved/credit_limit/credit_currency`` in the same transaction. A later
  approved application raises, lowers, or with 0 revokes the limit.
- CRED-2: whoever recorded an application never decides it (checked here, and by the database
  constraint ``credit_decider_is_not_recorder``).
- CRED-3: the limit is what the account may owe, so it is never lowered (or moved to another
  currency, or revoked) below what the account owes right now.
- SEC-2: every decision keeps who (``decided_by``), when (``decided_at``) and why
  (``decision_note``); the limit before and after is written to the ``remittances.credit`` log.

Lock order: the application row, then the account row. ``ledger_post`` locks the same account
row before it checks the credit floor, so a debit and a lowering of the limit never interleave.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction

from billing_backoffice import money
from billing_backoffice.permissions import staff_require
from billing_backoffice.free_text import free_text_check
from billing_backoffice.money import InvalidAmount, InvalidCurrency  # noqa: F401 - re-exported
from payments.services.customer_events import credit_application_decided_notify
from payments.errors import AccountNotFound
from payments.models import Account
from payments.services.ledger import account_balance
from remittances.models import CreditLimitRequest
from remittances.errors import (  # noqa: F401 (raised here, importable from here)
    CreditDecisionNotPermitted,
    CreditLimitBelowOwed,
    CreditRequestDecided,
    CreditRequestNotFound,
    CreditRequestOpen,
    CreditRequestRefused,
    CreditSelfDecision,
)

logger = logging.getLogger("remittances.credit")

Status = CreditLimitRequest.Status
Source = CreditLimitRequest.Source

APPROVE_PERMISSION = "remittances.approve_creditlimitrequest"
RECORD_PERMISSION = "remittances.add_creditlimitrequest"
OPEN_REQUEST_CONSTRAINT = "credit_one_open_request_per_account"
ELIGIBLE_KINDS = (Account.Kind.ENTERPRISE, Account.Kind.INDIVIDUAL)
# CreditLimitRequest.requested_limit is max_digits=14, decimal_places=2.
MAX_LIMIT = money.COLUMN_MAX


# --- input helpers (also used by the API and admin forms to check the shape) -----------------


def currency_code(value) -> str:
    """I6: an accepted ISO 4217 code, upper-cased (``eur`` -> ``EUR``); see ``billing_backoffice.money``."""
    return money.currency_validate(value)


def credit_limit_amount(value, currency: str | None = None) -> Decimal:
    """I6: a Decimal >= 0 that fits the column, with no more decimals than ``currency`` has."""
    return money.amount_validate(value, currency, allow_zero=True, maximum=MAX_LIMIT)


# --- submit -----------------------------------------------------------------------------------


def _check_source(source: str, *, recorded_by) -> None:
    """CRED-1/CRED-2: a console application has no recorder; a staff one names who recorded it,
    and that person may record applications (SEC-3)."""
    if source == Source.CONSOLE and recorded_by is not None:
        raise CreditRequestRefused("An application sent by the console has no staff recorder.", code="invalid_source")
    if source == Source.STAFF:
        # CRED-2 needs to know who recorded it; SEC-3: only staff allowed to record may.
        if recorded_by is None:
            raise CreditRequestRefused("A staff-recorded application names who recorded it.", code="invalid_source")
        staff_require(recorded_by, permission=RECORD_PERMISSION, action="record credit applications",
                      system_allowed=False)
    elif source != Source.CONSOLE:
        raise CreditRequestRefused(f"Unknown source {source!r}.", code="invalid_source")


@transaction.atomic
def credit_request_submit(
    *,
    account_id: int,
    requested_limit,
    currency: str,
    justification: str,
    source: str,
    recorded_by=None,
    now: datetime,
) -> CreditLimitRequest:
    """CRED-1: file an application; it changes nothing on the account until it is approved.

    ``source`` console: sent by the customer's console, ``recorded_by`` None. ``source`` staff:
    recorded by ``recorded_by`` (who then never decides it, CRED-2). Only active enterprise or
    individual accounts apply, and an account has at most one open application.
    """
    currency = currency_code(currency)
    amount = credit_limit_amount(requested_limit, currency)
    free_text_check(justification=justification)  # SEC-1, before anything is stored or logged
    justification = (justification or "").strip()
    if not justification:
        raise CreditRequestRefused("A credit application needs a justification.", code="justification_required")
    _check_source(source, recorded_by=recorded_by)
    try:
        account = Account.objects.select_for_update().get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound() from None
    if account.kind not in ELIGIBLE_KINDS:
        raise CreditRequestRefused(f"{account.get_kind_display()} accounts cannot apply for credit.")
    if account.status != Account.Status.ACTIVE:
        raise CreditRequestRefused(f"Account {account.uid} is {account.get_status_display().lower()}; only active accounts apply for credit.")
    if amount == 0 and not account.credit_approved:
        raise CreditRequestRefused(f"A limit of 0 revokes credit, and account {account.uid} has no credit approval to revoke.")
    open_request = _open_request(account_id)
    if open_request is not None:
        raise _open_conflict(open_request)
    try:
        # A savepoint: a concurrent submission that won the unique index leaves this
        # transaction usable, so the caller gets the clear 409 rather than a broken connection.
        with transaction.atomic():
            request = CreditLimitRequest.objects.create(
                account=account, requested_limit=amount, currency=currency, justification=justification,
                source=source, recorded_by=recorded_by, submitted_at=now,
            )
    except IntegrityError as error:
        if OPEN_REQUEST_CONSTRAINT not in str(error):
            raise
        raise _open_conflict(_open_request(account_id)) from None
    logger.info(
        "credit application %s submitted: account=%s limit=%s %s source=%s recorded_by=%s",
        request.pk, account.pk, amount, currency, source, getattr(recorded_by, "pk", None),
    )
    return request


def _open_request(account_id: int) -> CreditLimitRequest | None:
    return CreditLimitRequest.objects.filter(account_id=account_id, status=Status.SUBMITTED).first()


def _open_conflict(open_request: CreditLimitRequest | None) -> CreditRequestOpen:
    which = f" (#{open_request.pk}, {open_request.requested_limit} {open_request.currency})" if open_request else ""
    return CreditRequestOpen(
        f"This account already has an open credit application{which}; it must be decided before another is filed."
    )


# --- decide -----------------------------------------------------------------------------------


@transaction.atomic
def credit_request_approve(*, request_id: int, actor, note: str = "", now: datetime) -> CreditLimitRequest:
    """CRED-1/2/3: approve and apply the limit to the account, in one transaction.

    A limit > 0 makes the account credit-approved with that limit and currency; 0 revokes the
    approval. Refused for the recorder (CRED-2) and below what the account owes (CRED-3).
    Replaying the same approval by the same actor returns it unchanged.
    """
    free_text_check(note=note)  # SEC-1
    request = _locked_for_decision(request_id=request_id, actor=actor, decision=Status.APPROVED)
    if request.status == Status.APPROVED:
        return request  # the same decision replayed: nothing changes
    account = Account.objects.select_for_update().get(pk=request.account_id)
    limit, currency = request.requested_limit, request.currency
    if limit > 0 and account.status != Account.Status.ACTIVE:
        raise CreditRequestRefused(
            f"Account {account.uid} is {account.get_status_display().lower()}; credit is granted only to active accounts."
        )
    _check_not_below_owed(account=account, limit=limit, currency=currency)

    before = (account.credit_approved, account.credit_limit, account.credit_currency)
    account.credit_approved = limit > 0
    account.credit_limit = limit
    account.credit_currency = currency
    account.save(update_fields=["credit_approved", "credit_limit", "credit_currency"])
    _decide(request, status=Status.APPROVED, actor=actor, note=note, now=now)
    credit_application_decided_notify(  # NOTIFY-1, same transaction
        account_id=request.account_id, application_id=request.pk, approved=True, limit=limit, currency=currency,
        note=note, now=now,
    )
    logger.info(
        "credit application %s approved by user %s: account %s credit %s -> %s",
        request.pk, actor.pk, account.pk, _credit_text(*before),
        _credit_text(account.credit_approved, account.credit_limit, account.credit_currency),
    )
    return request


@transaction.atomic
def credit_request_reject(*, request_id: int, actor, note: str, now: datetime) -> CreditLimitRequest:
    """CRED-1/2: reject with a reason (required); the account's credit is left as it was."""
    free_text_check(note=note)  # SEC-1
    if not (note or "").strip():
        raise CreditRequestRefused("A rejection needs a note saying why.", code="note_required")
    request = _locked_for_decision(request_id=request_id, actor=actor, decision=Status.REJECTED)
    if request.status == Status.REJECTED:
        return request
    _decide(request, status=Status.REJECTED, actor=actor, note=note, now=now)
    credit_application_decided_notify(  # NOTIFY-1, same transaction
        account_id=request.account_id, application_id=request.pk, approved=False, limit=request.requested_limit,
        currency=request.currency, note=note, now=now,
    )
    logger.info("credit application %s rejected by user %s", request.pk, actor.pk)
    return request


def _locked_for_decision(*, request_id: int, actor, decision: str) -> CreditLimitRequest:
    """Lock the application and run the checks every decision shares.

    Returns it still ``submitted``, or already carrying ``decision`` by ``actor`` (a replay).
    """
    staff_require(actor, permission=APPROVE_PERMISSION, action="decide credit applications", system_allowed=False)
    try:
        request = CreditLimitRequest.objects.select_for_update().get(pk=request_id)
    except CreditLimitRequest.DoesNotExist:
        raise CreditRequestNotFound() from None
    if request.status != Status.SUBMITTED:
        if request.status == decision and request.decided_by_id == actor.pk:
            return request
        raise CreditRequestDecided(
            f"Credit application #{request.pk} was already {request.get_status_display().lower()}"
            f" by user {request.decided_by_id} at {request.decided_at:%Y-%m-%d %H:%M}."
        )
    if request.recorded_by_id is not None and request.recorded_by_id == actor.pk:
        raise CreditSelfDecision(
            f"You recorded credit application #{request.pk}; another account manager must decide it."
        )
    return request


def _check_not_below_owed(*, account: Account, limit: Decimal, currency: str) -> None:
    """CRED-3: after the change, every currency's balance stays at or above minus its limit.

    What the account owes is the negative part of its ledger balance. The currencies that can be
    owed are the one of the current approval (which a change of currency or a revocation takes
    to a limit of 0) and the requested one. The account row is locked, so no debit runs now.
    """
    currencies = {currency}
    if account.credit_approved:
        currencies.add(account.credit_currency)
    for each in sorted(currencies):
        owed = -min(account_balance(account_id=account.pk, currency=each), Decimal("0.00"))
        new_limit = limit if each == currency else Decimal("0.00")
        if owed > new_limit:
            raise CreditLimitBelowOwed(
                f"Account {account.uid} owes {owed} {each}; a credit limit of {new_limit} {each} would be below "
                f"what it owes. It must pay first, or the limit must be at least {owed} {each}."
            )


def _decide(request: CreditLimitRequest, *, status: str, actor, note: str, now: datetime) -> None:
    """SEC-2: who, when and why, on the application itself."""
    request.status = status
    request.decided_by = actor
    request.decided_at = now
    request.decision_note = (note or "").strip()
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])


def _credit_text(approved: bool, limit: Decimal, currency: str) -> str:
    return f"{limit} {currency}" if approved else "not approved"

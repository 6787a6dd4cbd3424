"""Verification holds, their one home: placing (HOLD-1) and releasing (HOLD-2, invariant I4).

Placing: ``hold_amount_for`` (USD 1.00 or the local amount), ``hold_authorize`` at the gateway
(with a saved idempotency key, never inside a transaction), ``hold_record`` (one row per
authorization). Linking (``verification``), the PayPal pre-authorization (charging) and the
recovery of unrecorded authorizations (``hold_recovery``) place holds through these.

Releasing: every hold is voided, never captured, within 24 hours of being placed, exactly once even when
two job runs overlap or a run crashes midway. Three mechanisms together give "exactly once":

1. Claiming: a run leases a batch in one short transaction (``FOR UPDATE SKIP LOCKED``), so two
   runs never work on the same hold while the lease is live. No row lock survives the claim, so
   the gateway call below never runs under a lock (QUALITY.md: hold release).
2. The gateway void carries the hold's own idempotency key (``hold.void_idempotency_key``): a
   run that re-does the void of a crashed run (after its lease expired) gets the first answer
   back and the processor voids once.
3. The transition to ``released`` is a conditional update on the expected state and lease, so
   the row changes once whatever order the runs finish in.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from billing_backoffice.permissions import SYSTEM, staff_require
from billing_backoffice.item_failures import JobItems, open_failures_q
from billing_backoffice.models import JobItemFailure
from payments import eligibility
from payments.gateways import GatewayError, card_gateway, paypal_gateway
from payments.models import Account, PaymentMethod, VerificationHold
from payments.errors import HoldNotFound, HoldReleaseInProgress  # noqa: F401 (raised here)

logger = logging.getLogger(__name__)

Status = VerificationHold.Status
DUE_STATUSES = (Status.PLACED, Status.RELEASE_FAILED)
# A lease outlives the worker's hard time limit (CELERY_TASK_TIME_LIMIT, 300 s): every lease of
# a run is counted from the run's start (``now``), yet a run that is still alive always owns its
# batches, and a crashed (or killed) run's batch is free again after this.
DEFAULT_LEASE = timedelta(minutes=10)


# --- placing (HOLD-1) -------------------------------------------------------------------------

# HOLD-1: USD 1.00, or the local-currency equivalent where the account's country has one.
LOCAL_HOLD_AMOUNTS = {
    "GB": ("GBP", Decimal("1.00")),
    "MY": ("MYR", Decimal("5.00")),
    "JP": ("JPY", Decimal("150")),
}
# The EU territories with their own codes (ELIG-1) all use the euro, Aland and Saint-Martin too.
EURO_COUNTRIES = eligibility.EU_COUNTRY_CODES - {"BG", "CZ", "DK", "HU", "PL", "RO", "SE"}


def hold_amount_for(account: Account) -> tuple[Decimal, str]:
    """HOLD-1: the amount and currency of the verification hold for this account."""
    country = str(account.country)
    if country in LOCAL_HOLD_AMOUNTS:
        currency, amount = LOCAL_HOLD_AMOUNTS[country]
        return amount, currency
    if country in EURO_COUNTRIES:
        return Decimal("1.00"), "EUR"
    return Decimal("1.00"), "USD"


def hold_authorize(method: PaymentMethod, *, amount: Decimal, currency: str, idempotency_key: str):
    """HOLD-1: the gateway authorization of the verification hold (card or PayPal agreement)."""
    if method.kind == PaymentMethod.Kind.CARD:
        return card_gateway().authorize_hold(
            token=method.gateway_token, amount=amount, currency=currency,
            descriptor=VerificationHold.DESCRIPTOR, idempotency_key=idempotency_key,
        )
    return paypal_gateway().authorize_hold(
        agreement_id=method.agreement_id, amount=amount, currency=currency,
        descriptor=VerificationHold.DESCRIPTOR, idempotency_key=idempotency_key,
    )


def hold_auth_answered(*, method_id: int, idempotency_key: str) -> None:
    """HOLD-2: the answer to the authorization sent with this key is recorded; forget the key."""
    PaymentMethod.objects.filter(pk=method_id, hold_auth_key=idempotency_key).update(
        hold_auth_key="", hold_auth_sent_at=None
    )


@transaction.atomic
def hold_record(
    *, method: PaymentMethod, authorization_id: str, amount: Decimal, currency: str, now: datetime,
    idempotency_key: str = "", placed_at: datetime | None = None,
) -> VerificationHold:
    """HOLD-1/HOLD-2: one row per gateway authorization (unique), due for release later.

    ``idempotency_key``: the saved key of the authorization, cleared in the same transaction.
    ``placed_at``: when the processor placed it, if earlier than ``now`` (a recovered one); the
    24-hour deadline counts from then, so a hold recovered late is due for release at once.
    """
    placed_at = placed_at or now
    hold, _ = VerificationHold.objects.get_or_create(
        authorization_id=authorization_id,
        defaults={
            "payment_method": method,
            "account_id": method.account_id,
            "amount": amount,
            "currency": currency,
            "placed_at": placed_at,
            "release_after": placed_at + settings.HOLD_RELEASE_AFTER,
            "release_deadline": placed_at + settings.HOLD_RELEASE_DEADLINE,
        },
    )
    if idempotency_key:
        hold_auth_answered(method_id=method.pk, idempotency_key=idempotency_key)
    return hold


# --- releasing (HOLD-2) ------------------------------------------------------------------------


def hold_lease() -> timedelta:
    return getattr(settings, "HOLD_RELEASE_LEASE", DEFAULT_LEASE)


def _lease_free(now: datetime) -> Q:
    return Q(lease_token__isnull=True) | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)


def holds_claim_due(
    *, now: datetime, batch_size: int, lease: timedelta, exclude_ids: frozenset[int] | set[int] = frozenset()
) -> tuple[uuid.UUID, list[int]]:
    """HOLD-2: lease up to ``batch_size`` due holds to one run; returns ``(token, ids)``.

    Ordered by ``release_after``: every hold's deadline is ``release_after`` plus the same fixed
    margin, so the holds closest to (or past) their 24 h deadline are always claimed first. The
    row locks last only for this transaction; the lease is what keeps other runs away.
    ``exclude_ids`` lets one run skip holds whose void already failed during that run; holds
    whose release raised and waits for its retry are skipped too (billing_backoffice/item_failures.py).
    """
    token = uuid.uuid4()
    with transaction.atomic():
        due = (
            VerificationHold.objects.select_for_update(skip_locked=True)
            .filter(status__in=DUE_STATUSES, release_after__lte=now)
            .filter(_lease_free(now))
            .exclude(pk__in=_waiting_failures(now).values("object_id"))
            .order_by("release_after", "id")
        )
        if exclude_ids:
            due = due.exclude(pk__in=exclude_ids)
        ids = list(due.values_list("pk", flat=True)[:batch_size])
        if ids:
            VerificationHold.objects.filter(pk__in=ids).update(lease_token=token, lease_expires_at=now + lease)
    return token, ids


RELEASE_JOB = "payments.release_due_holds"


def _waiting_failures(now: datetime):
    return JobItemFailure.objects.filter(open_failures_q(job=RELEASE_JOB, item_kind="payments.verificationhold", now=now))


def _void(hold: VerificationHold):
    gateway = paypal_gateway() if hold.payment_method.kind == PaymentMethod.Kind.PAYPAL else card_gateway()
    return gateway.void(authorization_id=hold.authorization_id, idempotency_key=hold.void_idempotency_key)


def _take_lease(hold: VerificationHold, *, now: datetime) -> uuid.UUID | None:
    """The admin's "release now": lease the hold like a job run would, or refuse politely."""
    token = uuid.uuid4()
    taken = (
        VerificationHold.objects.filter(pk=hold.pk, status__in=DUE_STATUSES)
        .filter(_lease_free(now))
        .update(lease_token=token, lease_expires_at=now + hold_lease())
    )
    if not taken:
        hold.refresh_from_db()
        if hold.status == Status.RELEASED:
            return None
        raise HoldReleaseInProgress()
    return token


def hold_release(
    *, hold_id: int, now: datetime, lease_token: uuid.UUID | None = None, actor=SYSTEM
) -> VerificationHold:
    """HOLD-2 / I4: void one hold at the gateway, then mark it released, exactly once.

    The release job passes the ``lease_token`` of its claim; the admin passes none and this
    takes the lease itself (refusing with ``HoldReleaseInProgress`` while a job holds it).
    Must be called outside a transaction: the gateway call runs with no row lock held.
    A transient gateway failure leaves the hold ``release_failed`` with its lease cleared, so
    the next run retries it with the same idempotency key. An already released hold is
    returned as is, with no gateway call.

    SEC-3: a staff member (the admin's "release now") passes ``actor`` and needs
    ``payments.release_verificationhold``; the release job and its task are ``SYSTEM``.
    """
    staff_require(actor, permission="payments.release_verificationhold", action="release verification holds")
    try:
        hold = VerificationHold.objects.select_related("payment_method").get(pk=hold_id)
    except VerificationHold.DoesNotExist:
        raise HoldNotFound() from None
    if hold.status == Status.RELEASED:
        return hold  # a replay changes nothing and calls no gateway
    if lease_token is None:
        lease_token = _take_lease(hold, now=now)
        if lease_token is None:
            return hold  # released meanwhile by someone else
    elif hold.lease_token != lease_token:
        return hold  # our lease expired and another run claimed the hold: it is theirs now
    error = _void_once(hold, now=now)
    if error:
        _record_failure(hold, lease_token=lease_token, error=error)
    else:
        _mark_released([hold.pk], lease_token=lease_token, now=now)
    hold.refresh_from_db()
    return hold


def _void_once(hold: VerificationHold, *, now: datetime) -> str:
    """Void at the gateway with the hold's saved key; returns an error text, "" on success.

    I4: "already voided" or "expired" at the gateway is a success (``voided`` is True).
    """
    if hold.release_deadline <= now:
        logger.warning(
            "HOLD-2: hold %s is past its release deadline %s; releasing it now.",
            hold.pk, hold.release_deadline.isoformat(),
        )
    try:
        result = _void(hold)
    except GatewayError as error:
        return f"gateway error: {error}"
    return "" if result.voided else f"void refused: {result.error or 'no reason given'}"


def _mark_released(ids: list[int], *, lease_token: uuid.UUID, now: datetime) -> int:
    # Conditional on the lease: a run whose lease expired and was taken over changes nothing;
    # the run that owns the hold now records the (same, idempotent) void.
    if not ids:
        return 0
    return VerificationHold.objects.filter(pk__in=ids, status__in=DUE_STATUSES, lease_token=lease_token).update(
        status=Status.RELEASED, released_at=now, last_error="", lease_token=None, lease_expires_at=None
    )


def _record_failure(hold: VerificationHold, *, lease_token: uuid.UUID, error: str) -> None:
    logger.warning("HOLD-2: void of hold %s failed (%s); the next run retries it.", hold.pk, error)
    VerificationHold.objects.filter(pk=hold.pk, status__in=DUE_STATUSES, lease_token=lease_token).update(
        status=Status.RELEASE_FAILED,
        release_attempts=F("release_attempts") + 1,
        last_error=error[:300],
        lease_token=None,
        lease_expires_at=None,
    )


def _open_failure_of_hold():
    return JobItemFailure.objects.filter(
        job=RELEASE_JOB, item_kind="payments.verificationhold", object_id=OuterRef("pk"), resolved_at__isnull=True
    )


def holds_release_due(*, now: datetime, batch_size: int | None = None) -> int:
    """HOLD-2: the scheduled job. Claims and releases batches until nothing is due.

    Per batch: one claim, one read, the gateway voids (no transaction, no lock), then one
    conditional UPDATE for every hold voided, so a large backlog costs O(holds / batch)
    queries. A crash between the voids and that UPDATE leaves the batch leased; once the lease
    expires the next run voids again with the same keys and the processor voids nothing twice.

    Bounded: holds whose void failed in this run are not claimed again by it (the next run
    retries them), a batch with no success stops the run (the gateway is likely down), and the
    number of batches is capped by the backlog seen at the start. Returns how many it released.

    A hold whose release raises (not a gateway error: a bug, a malformed authorization) is marked
    ``release_failed`` like a failed void, recorded, and retried by later runs with a backoff,
    until given up for staff (billing_backoffice/item_failures.py); the rest of the batch goes on.
    """
    items = JobItems(job=RELEASE_JOB, item_kind="payments.verificationhold", now=now)
    batch_size = batch_size or settings.HOLD_RELEASE_BATCH_SIZE
    lease = hold_lease()
    backlog = VerificationHold.objects.filter(status__in=DUE_STATUSES, release_after__lte=now).count()
    failed: set[int] = set()
    released = 0
    for _ in range(backlog // batch_size + 2):
        token, ids = holds_claim_due(now=now, batch_size=batch_size, lease=lease, exclude_ids=failed)
        if not ids:
            break
        holds = (
            VerificationHold.objects.filter(pk__in=ids, lease_token=token)
            .select_related("payment_method")
            .only("id", "authorization_id", "release_deadline", "payment_method__kind")
            .annotate(had_failed=Exists(_open_failure_of_hold()))
            .order_by("release_after", "id")
        )
        voided, recovered = [], []
        for hold in holds:
            # Outside any transaction (the gateway call holds no lock); it commits its own writes.
            outcome = items.run(hold.pk, lambda: _void_once(hold, now=now), atomic=False, resolve=False)
            error = outcome.value if outcome.ok else f"unexpected error ({type(outcome.error).__name__})"
            if error:
                _record_failure(hold, lease_token=token, error=error)
                failed.add(hold.pk)
            else:
                voided.append(hold.pk)
                if hold.had_failed:
                    recovered.append(hold.pk)
        released_in_batch = _mark_released(voided, lease_token=token, now=now)
        items.resolve_objects(recovered)  # no query unless a hold that had raised was voided
        released += released_in_batch
        if released_in_batch == 0:
            break
    return released

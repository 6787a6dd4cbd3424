"""Scheduled life-cycle jobs of payment methods and accounts: DEL-5, LINK-5, LINK-6, LINK-2.

Each job is safe to run twice or concurrently: every change is a conditional update (or a locked
re-check) on the state it expects, and a LinkAttempt is recorded only by the run that made the
change. Scans walk ids in ascending batches (keyset), so a row that cannot be handled now
(gateway down) never makes a run loop.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from billing_backoffice.errors import BillingError
from billing_backoffice.item_failures import NOT_ISOLATED, JobItems, open_failures_q
from billing_backoffice.models import JobItemFailure
from payments import eligibility
from payments.gateways import GatewayError, card_gateway
from payments.models import Account, Charge, LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold
from payments.services.accounts import account_close
from payments.services.attempts import link_attempt_record
from payments.services.hold_recovery import holds_recover_unrecorded
from payments.services.verification import payment_method_fail, payment_method_verify_with_hold

logger = logging.getLogger(__name__)

Status = PaymentMethod.Status
Kind = PaymentMethod.Kind
Reason = LinkAttempt.Reason
Outcome = LinkAttempt.Outcome
BATCH_SIZE = 500


def _batches(queryset, batch_size: int = BATCH_SIZE):
    """Yield lists of ids in ascending order, each batch after the last id of the previous one."""
    last_id = 0
    while True:
        ids = list(queryset.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        yield ids
        last_id = ids[-1]


# --- DEL-5 ------------------------------------------------------------------------------------


EXPIRY_JOB = "payments.expire_cards"


def cards_expire(*, now: datetime) -> int:
    """DEL-5: an active card passes to ``expired`` after the last day of its expiry month.

    One set-based UPDATE on the ``pm_expiry_scan`` index. A card expiring 11/2026 is still
    active on 2026-11-30 and expired from 2026-12-01 00:00 UTC. ``is_default`` is kept: an
    expired default stays the default until the customer switches it (DEL-1/DEL-2).

    If the UPDATE fails (a card row the database refuses), the cards are expired again in
    batches, a failing batch card by card: the poison card is recorded and retried by later
    runs, bounded, and left out meanwhile (billing_backoffice/item_failures.py).
    """
    today = now.astimezone(timezone.utc)
    before_this_month = Q(exp_year__lt=today.year) | Q(exp_year=today.year, exp_month__lt=today.month)
    waiting = JobItemFailure.objects.filter(open_failures_q(job=EXPIRY_JOB, item_kind="payments.paymentmethod", now=now))
    due = (
        PaymentMethod.objects.filter(kind=Kind.CARD, status=Status.ACTIVE)
        .filter(before_this_month)
        .exclude(pk__in=waiting.values("object_id"))
    )

    def expire(queryset) -> int:
        return queryset.update(status=Status.EXPIRED, status_changed_at=now)

    try:
        with transaction.atomic():
            expired = expire(due)
    except NOT_ISOLATED:
        raise
    except Exception as error:  # noqa: BLE001  (a poison card: found batch by batch below)
        logger.warning("DEL-5: card expiry failed (%s); expiring card by card", type(error).__name__)
        items = JobItems(job=EXPIRY_JOB, item_kind="payments.paymentmethod", now=now)
        return sum(
            items.run_chunk(ids, lambda chunk: expire(due.filter(pk__in=chunk)), combine=sum) for ids in _batches(due)
        )
    # Cards that had failed and are expired now: their failures are resolved.
    JobItemFailure.objects.filter(
        job=EXPIRY_JOB, item_kind="payments.paymentmethod", resolved_at__isnull=True,
        object_id__in=PaymentMethod.objects.filter(status=Status.EXPIRED).values("pk"),
    ).update(resolved_at=now, next_retry_at=None)
    return expired


# --- LINK-5 / LINK-6 ----------------------------------------------------------------------------


def _pending_since_before(cutoff: datetime) -> Q:
    # status_changed_at is the services' clock when the method became pending; created_at is
    # the wall clock, used for rows written without it.
    return Q(status_changed_at__lte=cutoff) | Q(status_changed_at__isnull=True, created_at__lte=cutoff)


def verifications_fail_abandoned(*, now: datetime) -> int:
    """LINK-5 / LINK-6: fail verifications nobody finished, and recover crashed ones.

    - a pending 3DS challenge past ``expires_at`` expires; its method fails with
      ``three_ds_not_completed`` (LINK-5);
    - a PayPal method whose agreement is still not approved after ``VERIFICATION_TIMEOUT``
      fails with ``agreement_not_approved`` (LINK-6);
    - a method still pending after the timeout with nothing left to wait for (the process
      crashed, or the gateway failed, between the customer's step and our write) gets its hold
      authorization replayed with the same key, so the processor returns the first one.

    - an authorization sent for a method that is no longer pending (unlinked or failed after
      a crash left its answer unrecorded) gets its hold recorded for release (HOLD-2,
      ``hold_recovery``).

    Returns the number of methods whose state this run changed (failed or activated) plus the
    holds it recovered.
    """
    return (
        _expire_challenges(now=now) + _fail_unapproved_agreements(now=now) + _recover_orphans(now=now)
        + holds_recover_unrecorded(now=now)
    )


def _expire_challenges(*, now: datetime) -> int:
    changed = 0
    due = ThreeDSChallenge.objects.filter(status=ThreeDSChallenge.Status.PENDING, expires_at__lte=now)
    for ids in _batches(due):
        for challenge_id in ids:
            changed += _expire_challenge(challenge_id=challenge_id, now=now)
    return changed


@transaction.atomic
def _expire_challenge(*, challenge_id: int, now: datetime) -> bool:
    # Same lock order as three_ds_complete (challenge, then method): a completion racing the
    # timeout either wins (we then see it no longer pending) or waits and sees it expired.
    challenge = (
        ThreeDSChallenge.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(pk=challenge_id, status=ThreeDSChallenge.Status.PENDING, expires_at__lte=now)
        .select_related("payment_method__account")
        .first()
    )
    if challenge is None:
        return False
    challenge.status = ThreeDSChallenge.Status.EXPIRED
    challenge.save(update_fields=["status"])
    if challenge.charge_id is not None:
        # An order's challenge (PAY-1): the card stays as it is; the order's charge says why
        # nothing was charged, and the bill stays open (PAY-5).
        Charge.objects.filter(pk=challenge.charge_id).update(
            failure_detail="The 3-D Secure challenge for this order was abandoned and timed out; nothing was charged."
        )
        return False
    method = challenge.payment_method
    if not payment_method_fail(method_id=method.pk, reason=Reason.THREE_DS_NOT_COMPLETED, now=now):
        return False
    link_attempt_record(
        account=method.account, kind=method.kind, outcome=Outcome.REJECTED, method=method,
        reason=Reason.THREE_DS_NOT_COMPLETED, rule="LINK-5", now=now,
        detail="The 3-D Secure challenge was abandoned and timed out; the card is not linked.",
    )
    return True


def _fail_unapproved_agreements(*, now: datetime) -> int:
    cutoff = now - settings.VERIFICATION_TIMEOUT
    due = PaymentMethod.objects.filter(
        _pending_since_before(cutoff),
        kind=Kind.PAYPAL,
        status=Status.PENDING,
        agreement_state=PaymentMethod.AgreementState.NOT_APPROVED,
    )
    changed = 0
    for ids in _batches(due):
        for method_id in ids:
            changed += _fail_unapproved_agreement(method_id=method_id, now=now)
    return changed


@transaction.atomic
def _fail_unapproved_agreement(*, method_id: int, now: datetime) -> bool:
    # Conditional on the agreement still being unanswered: paypal_agreement_complete locks the
    # row, so whichever commits first decides and the other changes nothing.
    failed = PaymentMethod.objects.filter(
        pk=method_id, status=Status.PENDING, agreement_state=PaymentMethod.AgreementState.NOT_APPROVED
    ).update(status=Status.FAILED, failure_reason=Reason.AGREEMENT_NOT_APPROVED, status_changed_at=now)
    if not failed:
        return False
    method = PaymentMethod.objects.select_related("account").get(pk=method_id)
    link_attempt_record(
        account=method.account, kind=method.kind, outcome=Outcome.REJECTED, method=method,
        reason=Reason.AGREEMENT_NOT_APPROVED, rule="LINK-6", now=now,
        detail="The billing agreement was never approved on PayPal; the account is not linked.",
    )
    return True


def _recover_orphans(*, now: datetime) -> int:
    cutoff = now - settings.VERIFICATION_TIMEOUT
    pending_challenge = ThreeDSChallenge.objects.for_linking().filter(
        payment_method=OuterRef("pk"), status=ThreeDSChallenge.Status.PENDING
    )
    orphans = (
        PaymentMethod.objects.filter(_pending_since_before(cutoff), status=Status.PENDING)
        .filter(Q(kind=Kind.CARD) | Q(kind=Kind.PAYPAL, agreement_state=PaymentMethod.AgreementState.APPROVED))
        .filter(~Exists(pending_challenge))
    )
    changed = 0
    for ids in _batches(orphans):
        for method_id in ids:
            changed += _recover_orphan(method_id=method_id, now=now)
    return changed


def _recover_orphan(*, method_id: int, now: datetime) -> bool:
    method = PaymentMethod.objects.select_related("account").get(pk=method_id)
    if method.status != Status.PENDING:
        return False
    try:
        if not _verification_passed(method):
            # LINK-5: 3DS was needed and never completed (the challenge was never created
            # because of a crash); never place the hold, and never activate, without it.
            if not payment_method_fail(method_id=method.pk, reason=Reason.THREE_DS_NOT_COMPLETED, now=now):
                return False
            link_attempt_record(
                account=method.account, kind=method.kind, outcome=Outcome.REJECTED, method=method,
                reason=Reason.THREE_DS_NOT_COMPLETED, rule="LINK-5", now=now,
                detail="3-D Secure was required and not completed in time; the card is not linked.",
            )
            return True
        # Same key (hold-auth-<id>) as the first try: the processor answers with the first
        # authorization, and hold_record/activate are replay-safe.
        method = payment_method_verify_with_hold(method_id=method.pk, now=now)
    except GatewayError:
        logger.warning("LINK-5: risk check unavailable for pending method %s; retried next run.", method.pk)
        return False
    except BillingError as error:
        # LinkRefused (a decline: the method is failed and recorded) or GatewayUnavailable
        # (still pending, retried next run). One bad method never stops the batch.
        logger.info("Pending method %s not recovered: %s", method.pk, error.code)
        method.refresh_from_db()
        return method.status != Status.PENDING
    return method.status != Status.PENDING


def _verification_passed(method: PaymentMethod) -> bool:
    """Whether the steps before the hold are done: 3DS succeeded, or was never required.

    A hold already recorded means they were. Otherwise a card needs a succeeded challenge when
    its region mandates 3DS or the risk check (replayed with its original key) asks for it.
    """
    if method.kind != Kind.CARD or VerificationHold.objects.filter(payment_method=method).exists():
        return True
    if method.three_ds_challenges.for_linking().filter(status=ThreeDSChallenge.Status.SUCCEEDED).exists():
        return True
    if method.account.region in eligibility.THREE_DS_MANDATORY_REGIONS:
        return False
    return not card_gateway().risk_requires_3ds(token=method.gateway_token, idempotency_key=f"risk-{method.pk}")


# --- LINK-2 --------------------------------------------------------------------------------------


CLOSE_JOB = "payments.close_silent_accounts"


def accounts_close_silent(*, now: datetime) -> int:
    """LINK-2: close every deactivated account whose 15-day silent period is over.

    ``account_close`` re-checks under the account's row lock, so a reactivation that wins the
    race, or a second run, leaves the account alone. Returns how many accounts closed.
    Each account runs in its own savepoint: one that fails is recorded and retried by later
    runs, bounded, and the others close (billing_backoffice/item_failures.py).
    """
    due = Account.objects.filter(
        status=Account.Status.DEACTIVATED, deactivated_at__lte=now - settings.ACCOUNT_SILENT_PERIOD
    )
    items = JobItems(job=CLOSE_JOB, item_kind="payments.account", now=now)
    closed = 0
    for ids in _batches(due):
        for account_id in ids:
            if items.skips(account_id):
                continue
            outcome = items.run(account_id, lambda: account_close(account_id=account_id, now=now))
            closed += outcome.ok and bool(outcome.value)
    return closed

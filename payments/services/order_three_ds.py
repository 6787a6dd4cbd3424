"""3-D Secure for subscription orders (PAY-1, PAY-5).

When the processor's risk check asks for 3DS on an order charge, ``charging`` fails that charge
(``three_ds_not_completed``, nothing charged) and opens a ``ThreeDSChallenge`` tied to it. The
console shows the challenge to the cardholder and reports the outcome here, through the same
``POST /three-ds/{id}/complete/`` as a card link's challenge.

- success: the challenge succeeds and the bill gets a new charge, keyed by the challenge
  (``charge-{bill}-3ds-{challenge}``) and carrying the processor's authentication, so the risk
  check does not ask again. It is created in the transaction that closes the challenge, so a
  challenge replays at most one charge however often or concurrently it is completed; the
  gateway is called after the commit, outside any lock, and a crash there leaves the charge
  pending for ``charges_retry_failed``, which replays the same key with the same authentication.
- failure: the challenge fails; the bill stays open for another payment (PAY-5).
- a challenge nobody completes expires with the abandoned-verification job (``lifecycle``).

The replay charges what the bill still owes then: settlement may have paid part or all of it
from the balance meanwhile (SET-2); a bill already paid gets no new charge.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from payments.errors import ChallengeNotFound, VerificationNotPending
from payments.models import Bill, Charge, ThreeDSChallenge
from payments.services.charge_execution import bill_locked_for_new_charge, charge_execute
from payments.services.orders import OrderResult

Status = ThreeDSChallenge.Status


def order_three_ds_complete(*, challenge_id: int, outcome: str, now: datetime) -> OrderResult:
    """PAY-1: the cardholder finished the 3DS challenge of an order; success charges the bill.

    Returns the order as it now stands: its bill and the latest charge (the replay, or the
    charge that asked for 3DS when nothing was replayed). A challenge that is not pending or has
    timed out is refused (409) and changes nothing.
    """
    with transaction.atomic():
        challenge = _challenge_locked(challenge_id, now=now)
        succeeded = outcome == "success"
        challenge.status = Status.SUCCEEDED if succeeded else Status.FAILED
        challenge.completed_at = now
        challenge.save(update_fields=["status", "completed_at"])
        asking = challenge.charge
        bill = bill_locked_for_new_charge(asking)
        replay = _replay_create(challenge, bill, now=now) if succeeded else None
        if not succeeded:
            Charge.objects.filter(pk=asking.pk).update(
                failure_detail="The cardholder did not pass the 3-D Secure challenge for this order; nothing was charged."
            )
    if replay is not None:
        replay = charge_execute(charge_id=replay.pk, now=now)
    bill.refresh_from_db()
    latest = replay or Charge.objects.get(pk=asking.pk)
    return OrderResult(bill=bill, charge=latest, created=False)


def _challenge_locked(challenge_id: int, *, now: datetime) -> ThreeDSChallenge:
    try:
        challenge = (
            ThreeDSChallenge.objects.for_orders()
            .select_for_update(of=("self",))
            .select_related("charge")
            .get(pk=challenge_id)
        )
    except ThreeDSChallenge.DoesNotExist:
        raise ChallengeNotFound("No such 3-D Secure challenge for an order.") from None
    if challenge.status != Status.PENDING:
        raise VerificationNotPending(
            f"This 3-D Secure challenge is already {challenge.get_status_display().lower()}; "
            "the order was not charged again.",
            rule="PAY-1",
        )
    if challenge.expires_at <= now:
        raise VerificationNotPending(
            "This 3-D Secure challenge timed out; nothing was charged and the bill stays open.", rule="PAY-1"
        )
    return challenge


def _replay_create(challenge: ThreeDSChallenge, bill: Bill, *, now: datetime) -> Charge | None:
    """The bill's charge again, to the card that passed 3DS, for what the bill still owes."""
    if bill.status not in Bill.UNPAID_STATUSES:
        return None
    asking = challenge.charge
    return Charge.objects.create(
        account_id=bill.account_id, bill=bill, payment_method_id=challenge.payment_method_id, kind=asking.kind,
        amount=bill.outstanding, currency=bill.currency, idempotency_key=f"charge-{bill.pk}-3ds-{challenge.pk}",
        authenticated_by=challenge, created_at=now,
    )

"""HOLD-2: verification-hold authorizations whose answer was never recorded.

``payment_method_verify_with_hold`` saves the authorization's idempotency key on the method
(``hold_auth_key``) before calling the gateway and clears it in the transaction that records the
answer (the hold row, or the decline). A key still set long after it was sent means the process
died in between: the processor may hold USD 1.00 on the customer's card with no hold row here,
so the release job would never void it.

A method still ``pending`` is recovered by ``lifecycle._recover_orphans`` (it replays the whole
verification). Every other method (unlinked, failed meanwhile) is handled here: the
authorization is replayed with its saved key, so the processor answers with the first one and
places nothing new, and its hold row is written with the time it was sent, already due. The
release job then voids it, exactly once (HOLD-2, I4). A decline on replay means nothing was
held: the key is just forgotten.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings

from payments.gateways import GatewayError, IdempotencyKeyReused
from payments.models import PaymentMethod
from payments.services.verification import hold_amount_for, hold_auth_answered, hold_authorize, hold_record

logger = logging.getLogger(__name__)

BATCH_SIZE = 500


def holds_recover_unrecorded(*, now: datetime) -> int:
    """HOLD-2: record the hold of every unanswered authorization of a non-pending method.

    Only keys sent before ``now - VERIFICATION_TIMEOUT`` count, so a request still waiting for
    the gateway is left alone. Returns how many holds it recorded (each then released by the
    release job). One method the gateway cannot answer for is retried on the next run and never
    stops the others.
    """
    cutoff = now - settings.VERIFICATION_TIMEOUT
    due = (
        PaymentMethod.objects.exclude(hold_auth_key="")
        .filter(hold_auth_sent_at__lte=cutoff)
        .exclude(status=PaymentMethod.Status.PENDING)
        .order_by("pk")
    )
    recorded = 0
    last_id = 0
    while True:
        ids = list(due.filter(pk__gt=last_id).values_list("pk", flat=True)[:BATCH_SIZE])
        if not ids:
            return recorded
        for method_id in ids:
            recorded += _recover_one(method_id=method_id, now=now)
        last_id = ids[-1]


def _recover_one(*, method_id: int, now: datetime) -> bool:
    method = PaymentMethod.objects.select_related("account").get(pk=method_id)
    key = method.hold_auth_key
    if not key or method.status == PaymentMethod.Status.PENDING:
        return False  # answered meanwhile, or the pending-method recovery owns it
    amount, currency = hold_amount_for(method.account)
    try:
        auth = hold_authorize(method, amount=amount, currency=currency, idempotency_key=key)
    except (GatewayError, IdempotencyKeyReused) as error:
        logger.warning("HOLD-2: authorization %s of method %s not recovered (%s); retried next run.",
                       key, method.pk, type(error).__name__)
        return False
    if not auth.approved:
        hold_auth_answered(method_id=method.pk, idempotency_key=key)  # declined: nothing is held
        return False
    hold_record(
        method=method, authorization_id=auth.authorization_id, amount=amount, currency=currency, now=now,
        idempotency_key=key, placed_at=method.hold_auth_sent_at,
    )
    logger.info("HOLD-2: recovered authorization %s of %s method %s; due for release.",
                auth.authorization_id, method.status, method.pk)
    return True

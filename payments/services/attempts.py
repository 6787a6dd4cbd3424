"""LINK-7: recording every link attempt with its outcome and reason code."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from payments.models import Account, LinkAttempt, PaymentMethod
from payments.services.customer_events import link_attempt_notify


def link_attempt_record(
    *,
    account: Account,
    kind: str,
    outcome: str,
    now: datetime,
    reason: str = "",
    rule: str = "",
    detail: str = "",
    method: PaymentMethod | None = None,
    network: str = "",
    last4: str = "",
) -> LinkAttempt:
    """Write one attempt in its own transaction, so a refusal that follows is still recorded;
    a refused card link is told to the customer in that transaction (NOTIFY-1)."""
    with transaction.atomic():
        attempt = LinkAttempt.objects.create(
            account=account,
            payment_method=method,
            kind=kind,
            outcome=outcome,
            reason=reason,
            rule=rule,
            detail=detail[:300],
            network=network or (method.network if method else ""),
            last4=last4 or (method.last4 if method else ""),
            created_at=now,
        )
        link_attempt_notify(attempt=attempt, now=now)
        return attempt

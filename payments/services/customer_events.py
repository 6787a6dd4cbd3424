"""The customer events of NOTIFY-1, one function each, called by the service of the event inside
its transaction (the outbox row commits or rolls back with the event, NOTIFY-2).

Each event has a key that names it once (an attempt id, a challenge id, a charge id, a card and
its expiry, a decision id), so a replay of the event notifies nobody again. Texts carry the
reason in words and at most a card's network and last four digits. Remittance events (claim
decided, transfer credited, credit application decided) are called from ``remittances``;
``payments`` never imports ``remittances``.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments.models import Charge, LinkAttempt, PaymentMethod, ThreeDSChallenge
from payments.services.notifications import Event, notify, notify_many

EXPIRY_NOTICE = timedelta(days=30)
DEFAULT_THREE_DS_URL = "https://console.example.com/payment-methods/3ds/{challenge_id}"


def three_ds_link(challenge_id: int) -> str:
    """The console page where the cardholder completes the challenge (then retries the payment)."""
    return getattr(settings, "THREE_DS_VERIFY_URL", DEFAULT_THREE_DS_URL).format(challenge_id=challenge_id)


def link_attempt_notify(*, attempt: LinkAttempt, now: datetime) -> None:
    """NOTIFY-1: a card link failed, with the reason in words."""
    if attempt.outcome != LinkAttempt.Outcome.REJECTED or attempt.kind != PaymentMethod.Kind.CARD:
        return
    notify(
        account_id=attempt.account_id, kind="card_link_failed", event_key=f"link-attempt:{attempt.pk}", now=now,
        params={"last4": attempt.last4 or "----", "network": attempt.network or "card",
                "reason": attempt.detail or "the card was refused."},
    )


def three_ds_waiting_notify(*, challenge: ThreeDSChallenge, now: datetime) -> None:
    """NOTIFY-1: a 3-D Secure challenge waits (a card link or an order), with its link."""
    method = PaymentMethod.objects.only("account_id", "last4").get(pk=challenge.payment_method_id)
    purpose = "the payment of your order" if challenge.charge_id else "linking your card"
    notify(
        account_id=method.account_id, kind="three_ds_waiting", event_key=f"3ds:{challenge.pk}", now=now,
        params={"last4": method.last4, "purpose": purpose}, link=three_ds_link(challenge.pk),
    )


def charge_failed_notify(*, charge_id: int, now: datetime) -> None:
    """NOTIFY-1: a charge failed, with the reason (a 3-D Secure demand has its own message)."""
    charge = Charge.objects.select_related("bill").get(pk=charge_id)
    if charge.status != Charge.Status.FAILED or charge.failure_reason == "three_ds_not_completed":
        return
    notify(
        account_id=charge.account_id, kind="charge_failed", event_key=f"charge-failed:{charge.pk}", now=now,
        params={"amount": charge.amount, "currency": charge.currency,
                "bill": charge.bill.reference if charge.bill else "-",
                "reason": charge.failure_detail or charge.get_status_display()},
    )


def _expiry_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


@transaction.atomic
def cards_expiring_notify(*, now: datetime) -> int:
    """NOTIFY-1 (daily): active cards whose expiry month ends within 30 days; once per card and
    expiry (a card updated to a new expiry is told again when that one comes near)."""
    today = timezone.localdate(now)
    horizon = today + EXPIRY_NOTICE
    months = {(today.year, today.month), (horizon.year, horizon.month)}
    cards = PaymentMethod.objects.filter(
        kind=PaymentMethod.Kind.CARD, status=PaymentMethod.Status.ACTIVE,
        exp_year__in={y for y, _ in months}, exp_month__in={m for _, m in months},
    ).only("pk", "account_id", "last4", "network", "exp_month", "exp_year")
    events = []
    for card in cards:
        if (card.exp_year, card.exp_month) not in months:
            continue
        end = _expiry_end(card.exp_year, card.exp_month)
        if not today <= end <= horizon:
            continue
        expiry = f"{card.exp_month:02d}/{card.exp_year}"
        events.append(Event(card.account_id, "card_expiring", f"card-expiring:{card.pk}:{expiry}",
                            {"last4": card.last4, "network": card.get_network_display() or "card", "expiry": expiry}))
    notify_many(events=events, now=now)
    return len(events)


# -- remittance events (called from remittances) ------------------------------------------------


def credit_application_decided_notify(
    *, account_id: int, application_id: int, approved: bool, limit: Decimal, currency: str, note: str, now: datetime
) -> None:
    decision = "approved" if approved else "rejected"
    notify(account_id=account_id, kind="credit_application_decided", event_key=f"credit-application:{application_id}",
           params={"decision": decision, "limit": limit, "currency": currency, "note": f" {note}" if note else ""},
           now=now)


def claim_decided_notify(
    *, account_id: int, claim_id: int, approved: bool, amount: Decimal, currency: str, reference: str,
    note: str, now: datetime,
) -> None:
    decision = "approved" if approved else "rejected"
    notify(account_id=account_id, kind="claim_decided", event_key=f"claim:{claim_id}",
           params={"decision": decision, "amount": amount, "currency": currency, "reference": reference,
                   "note": f" {note}" if note else ""}, now=now)


def transfer_credited_notify(*, account_id: int, credit_key: str, amount: Decimal, currency: str, now: datetime) -> None:
    """``credit_key`` names the credit once (the ledger entry's reference)."""
    notify(account_id=account_id, kind="transfer_credited", event_key=f"transfer-credited:{credit_key}",
           params={"amount": amount, "currency": currency}, now=now)


def transfers_credited_notify(*, credits: list[tuple[int, str, Decimal, str]], now: datetime) -> None:
    """Many credited transfers at once (a statement import): (account id, credit key, amount, currency)."""
    notify_many(now=now, events=[
        Event(account_id, "transfer_credited", f"transfer-credited:{key}", {"amount": amount, "currency": currency})
        for account_id, key, amount, currency in credits
    ])

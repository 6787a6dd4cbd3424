"""Linking PayPal (ELIG-2, ELIG-5, LINK-1, LINK-6; then HOLD-1 in ``verification``): a pending
method and a billing agreement the customer approves on PayPal.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import IntegrityError, transaction

from billing_backoffice.free_text import free_text_check
from payments import eligibility
from payments.errors import AlreadyLinked, LinkRefused, PaymentMethodNotFound, VerificationNotPending
from payments.gateways import GatewayError, paypal_gateway
from payments.models import LinkAttempt, PaymentMethod
from payments.services.attempts import link_attempt_record
from payments.services.linking import (
    LinkResult,
    link_account_get,
    link_account_refusal,
    link_gateway_unavailable_record,
    linked_elsewhere_refusal,
)
from payments.services.verification import (
    GatewayUnavailable,
    link_refuse,
    payment_method_fail,
    payment_method_verify_with_hold,
)

Reason = LinkAttempt.Reason
Outcome = LinkAttempt.Outcome
Status = PaymentMethod.Status


def paypal_identity(*, payer_id: str, email: str) -> tuple[str, str]:
    """LINK-1: the payer id upper-cased (PayPal issues them so) and the e-mail lower-cased."""
    return (payer_id or "").strip().upper(), (email or "").strip().lower()


def paypal_link(*, account_id: int, email: str, payer_id: str, country: str, now: datetime) -> LinkResult:
    """ELIG-2 (PayPal by region), ELIG-5 (not registered in the Chinese mainland), LINK-1, LINK-6.

    Creates a pending method and a billing agreement the customer approves on PayPal; the method
    links only when ``paypal_agreement_complete`` reports an approved agreement with funding.
    SEC-1: an e-mail or payer id holding a card number is refused before anything is recorded.
    """
    free_text_check(paypal_email=email, payer_id=payer_id)
    account = link_account_get(account_id)
    kind = PaymentMethod.Kind.PAYPAL
    # LINK-1: PayPal identifies an account by payer id and e-mail without regard to case, so
    # both are stored normalised and looked up case-insensitively (UPPER index, see the model).
    payer_id, email = paypal_identity(payer_id=payer_id, email=email)
    refusal = link_account_refusal(account)
    if refusal:
        raise link_refuse(account, kind, refusal, now)
    if not eligibility.paypal_allowed(account.region):
        error = LinkRefused(
            f"PayPal is not available for accounts registered in {account.get_region_display()}.",
            rule="ELIG-2", reason=Reason.UNSUPPORTED_REGION,
        )
        raise link_refuse(account, kind, error, now)
    if country.upper() == eligibility.CHINESE_MAINLAND:
        error = LinkRefused(
            "PayPal accounts registered in the Chinese mainland cannot be linked.",
            rule="ELIG-5", reason=Reason.ISSUED_IN_CHINESE_MAINLAND,
        )
        raise link_refuse(account, kind, error, now)
    conflict = linked_elsewhere_refusal(account, kind=kind, paypal_payer_id__iexact=payer_id)
    if conflict:
        raise link_refuse(account, kind, conflict, now)
    try:
        agreement = paypal_gateway().create_agreement(
            payer_id=payer_id, email=email, idempotency_key=f"agreement-{uuid.uuid4()}"
        )
    except GatewayError:
        link_gateway_unavailable_record(account, kind, now)
        raise GatewayUnavailable() from None
    try:
        with transaction.atomic():
            method = PaymentMethod.objects.create(
                account=account, kind=kind, status=Status.PENDING, status_changed_at=now,
                paypal_payer_id=payer_id, paypal_email=email, paypal_country=country.upper(),
                agreement_id=agreement.agreement_id,
                agreement_state=PaymentMethod.AgreementState.NOT_APPROVED,
            )
    except IntegrityError:
        conflict = linked_elsewhere_refusal(account, kind=kind, paypal_payer_id__iexact=payer_id) or AlreadyLinked(
            "This PayPal account is linked to another cloud account; it must be unlinked there first."
        )
        raise link_refuse(account, kind, conflict, now) from None
    link_attempt_record(
        account=account, kind=kind, outcome=Outcome.PENDING, method=method, rule="LINK-6",
        detail="Waiting for the customer to approve the billing agreement on PayPal.", now=now,
    )
    return LinkResult(method=method, approval_url=agreement.approval_url)


def paypal_agreement_complete(*, method_id: int, approved: bool, has_funding_source: bool, now: datetime) -> PaymentMethod:
    """LINK-6: only an approved agreement with a funding source links (then HOLD-1 applies)."""
    with transaction.atomic():
        try:
            method = PaymentMethod.objects.select_for_update().get(pk=method_id, kind=PaymentMethod.Kind.PAYPAL)
        except PaymentMethod.DoesNotExist:
            raise PaymentMethodNotFound() from None
        if method.status != Status.PENDING or method.agreement_state != PaymentMethod.AgreementState.NOT_APPROVED:
            raise VerificationNotPending(
                f"This PayPal method is {method.get_status_display().lower()}; its agreement is already settled.",
                rule="LINK-6",
            )
        if not approved:
            method.agreement_state = PaymentMethod.AgreementState.CANCELLED
            reason = Reason.AGREEMENT_NOT_APPROVED
        else:
            method.agreement_state = PaymentMethod.AgreementState.APPROVED
            method.has_funding_source = has_funding_source
            reason = None if has_funding_source else Reason.NO_FUNDING_SOURCE
        method.save(update_fields=["agreement_state", "has_funding_source"])
        if reason:
            payment_method_fail(method_id=method.pk, reason=reason, now=now)
    if reason:
        detail = (
            "The billing agreement was not approved on PayPal."
            if reason == Reason.AGREEMENT_NOT_APPROVED
            else "The PayPal account has no funding source."
        )
        raise link_refuse(method.account, method.kind, LinkRefused(detail, rule="LINK-6", reason=reason), now, method=method)
    return payment_method_verify_with_hold(method_id=method.pk, now=now)

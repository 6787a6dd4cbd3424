"""Payment methods and their verification records: link attempts, holds, 3-D Secure.

Card data follows SEC-1: a gateway token, a keyed fingerprint (HMAC), last four digits, network,
funding type, issuing country and expiry; never the number or CVV.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django_countries.fields import CountryField

from billing_backoffice import audit
from billing_backoffice.money import money_text
from payments.eligibility import Network

from .accounts import Account


# The hold-authorization intent columns are bookkeeping of one gateway call, not a state change.
@audit.track("pm", exclude=("hold_auth_key", "hold_auth_sent_at"))
class PaymentMethod(models.Model):
    class Kind(models.TextChoices):
        CARD = "card", "Card"
        PAYPAL = "paypal", "PayPal"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending verification"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"
        REMOVED = "removed", "Removed"

    class Funding(models.TextChoices):
        CREDIT = "credit", "Credit"
        DEBIT = "debit", "Debit"
        PREPAID = "prepaid", "Prepaid"
        VIRTUAL = "virtual", "Virtual"
        GIFT = "gift", "Gift"
        UNKNOWN = "unknown", "Unknown"

    class AgreementState(models.TextChoices):
        NOT_APPROVED = "not_approved", "Agreement not approved"
        APPROVED = "approved", "Approved"
        CANCELLED = "cancelled", "Cancelled"

    # pending -> active | failed; active -> expired; any -> removed.
    TRANSITIONS = {
        Status.PENDING: {Status.ACTIVE, Status.FAILED, Status.REMOVED},
        Status.ACTIVE: {Status.EXPIRED, Status.REMOVED},
        Status.EXPIRED: {Status.REMOVED},
        Status.FAILED: {Status.REMOVED},
        Status.REMOVED: set(),
    }
    # LINK-1 / LINK-2: a method in one of these states holds its card or PayPal account.
    LIVE_STATUSES = (Status.PENDING, Status.ACTIVE, Status.EXPIRED)

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="payment_methods")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    is_default = models.BooleanField(default=False)
    failure_reason = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    # Card (SEC-1: nothing that can rebuild the number).
    gateway_token = models.CharField(max_length=64, blank=True)
    fingerprint = models.CharField(
        max_length=64, blank=True, help_text="HMAC-SHA256 of the card number, keyed (SEC-1)."
    )
    last4 = models.CharField(max_length=4, blank=True)
    network = models.CharField(max_length=12, choices=Network.choices, blank=True)
    funding = models.CharField(max_length=8, choices=Funding.choices, blank=True)
    issuing_country = CountryField(blank=True)
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    cardholder_name = models.CharField(max_length=100, blank=True)
    company_name = models.CharField(max_length=200, blank=True)
    billing_line1 = models.CharField("billing street", max_length=200, blank=True)
    billing_city = models.CharField(max_length=100, blank=True)
    billing_postal_code = models.CharField(max_length=20, blank=True)
    billing_country = CountryField(blank=True)

    # PayPal.
    paypal_payer_id = models.CharField("PayPal payer id", max_length=32, blank=True)
    paypal_email = models.EmailField("PayPal e-mail", blank=True)
    paypal_country = CountryField("PayPal registered country", blank=True)
    agreement_id = models.CharField("billing agreement id", max_length=64, blank=True)
    agreement_state = models.CharField(max_length=16, choices=AgreementState.choices, blank=True)
    has_funding_source = models.BooleanField(null=True, blank=True)

    # HOLD-2: the idempotency key of a verification-hold authorization sent to the gateway whose
    # answer is not recorded yet (set before the call, cleared with the hold row or the decline).
    # A crash in between leaves it set, so recovery finds the authorization by this saved key
    # and has it voided, whatever became of the method meanwhile (unlinked, failed).
    hold_auth_key = models.CharField(max_length=64, blank=True, editable=False)
    hold_auth_sent_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("make_default_paymentmethod", "Can make a payment method the default"),
            ("remove_paymentmethod", "Can remove (unlink) a payment method"),
        ]
        indexes = [
            models.Index(fields=["account", "status"]),
            models.Index(fields=["status", "exp_year", "exp_month"], name="pm_expiry_scan"),
            models.Index(fields=["last4"]),
            models.Index(fields=["paypal_payer_id"], name="pm_paypal_payer"),
            models.Index(Upper("paypal_email"), condition=Q(kind="paypal"), name="pm_paypal_email_upper"),
            # HOLD-2 recovery scan: only authorizations whose answer was never recorded (a few rows).
            models.Index(fields=["hold_auth_sent_at"], condition=~Q(hold_auth_key=""), name="pm_hold_auth_unrecorded"),
        ]
        constraints = [
            # DEF-1: at most one default per account.
            models.UniqueConstraint(
                fields=["account"], condition=Q(is_default=True), name="pm_one_default_per_account"
            ),
            # LINK-1 / LINK-2: a card is linked to at most one live method across all accounts.
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=Q(kind="card", status__in=["pending", "active", "expired"]),
                name="pm_card_linked_once",
            ),
            # LINK-1: PayPal payer ids are compared without case (``casepayer1`` is ``CASEPAYER1``);
            # the services store them upper-cased, the index also covers rows written before.
            models.UniqueConstraint(
                Upper("paypal_payer_id"),
                condition=Q(kind="paypal", status__in=["pending", "active", "expired"]),
                name="pm_paypal_linked_once",
            ),
            # DEF-2: only an active (or since expired) method can be the default.
            models.CheckConstraint(
                name="pm_default_is_usable",
                condition=Q(is_default=False) | Q(status__in=["active", "expired"]),
            ),
            models.CheckConstraint(
                name="pm_card_fields",
                condition=~Q(kind="card")
                | (~Q(fingerprint="") & Q(last4__regex=r"^[0-9]{4}$") & Q(exp_month__range=(1, 12))),
            ),
            models.CheckConstraint(
                name="pm_paypal_fields", condition=~Q(kind="paypal") | ~Q(paypal_payer_id="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.masked}"

    @property
    def masked(self) -> str:
        """SEC-1: at most the last four digits, ``•••• 4242``; PayPal shows the e-mail."""
        if self.kind == self.Kind.CARD:
            return f"•••• {self.last4}"
        return self.paypal_email or self.paypal_payer_id

    @property
    def expiry(self) -> str:
        if self.exp_month and self.exp_year:
            return f"{self.exp_month:02d}/{self.exp_year % 100:02d}"
        return ""

    def can_transition(self, to: str) -> bool:
        return to in self.TRANSITIONS[self.Status(self.status)]


class LinkAttempt(models.Model):
    """LINK-7: every attempt to link a method, successful or not, with its reason code."""

    class Outcome(models.TextChoices):
        LINKED = "linked", "Linked"
        PENDING = "pending", "Pending verification"
        REJECTED = "rejected", "Rejected"

    class Reason(models.TextChoices):
        UNSUPPORTED_NETWORK = "unsupported_network", "Unsupported network (ELIG-3)"
        UNSUPPORTED_CARD_TYPE = "unsupported_card_type", "Prepaid, virtual or gift card (ELIG-4)"
        UNSUPPORTED_REGION = "unsupported_region", "Not available in the account's region (ELIG-2)"
        ISSUED_IN_CHINESE_MAINLAND = "issued_in_chinese_mainland", "Issued in the Chinese mainland (ELIG-5)"
        WALLET_NOT_SUPPORTED = "wallet_not_supported", "Third-party wallet (ELIG-6)"
        INVALID_CARD_DETAILS = "invalid_card_details", "Invalid card details (LINK-3)"
        EXPIRES_TOO_SOON = "expires_too_soon", "Expires this month or earlier (LINK-3)"
        ALREADY_LINKED = "already_linked", "Already linked to another account (LINK-1)"
        ALREADY_LINKED_HERE = "already_linked_here", "Already linked to this account (LINK-1)"
        ISSUER_DECLINED = "issuer_declined", "Issuer declined (LINK-4)"
        NOT_ENABLED_ONLINE = "not_enabled_online", "Not enabled for online/international use (LINK-4)"
        INSUFFICIENT_FUNDS = "insufficient_funds", "Insufficient funds for pre-authorization (HOLD-1)"
        THREE_DS_NOT_COMPLETED = "three_ds_not_completed", "3-D Secure not completed (LINK-5)"
        AGREEMENT_NOT_APPROVED = "agreement_not_approved", "Agreement not approved (LINK-6)"
        NO_FUNDING_SOURCE = "no_funding_source", "PayPal account has no funding source (LINK-6)"
        KYC_REQUIRED = "kyc_required", "KYC verification required"
        ACCOUNT_NOT_ACTIVE = "account_not_active", "Account is deactivated or closed"
        GATEWAY_ERROR = "gateway_error", "Gateway unavailable"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="link_attempts")
    payment_method = models.ForeignKey(
        PaymentMethod, null=True, blank=True, on_delete=models.PROTECT, related_name="link_attempts"
    )
    kind = models.CharField(max_length=16)  # card, paypal, or the refused wallet's name
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=40, choices=Reason.choices, blank=True)
    rule = models.CharField(max_length=10, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    network = models.CharField(max_length=12, blank=True)
    last4 = models.CharField(max_length=4, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        words = f"{self.kind} link {self.get_outcome_display().lower()}"
        return f"{words}: {self.get_reason_display()}" if self.reason else words


# The lease columns churn on every release run; the status change is what is audited.
@audit.track("hold", exclude=("lease_token", "lease_expires_at"))
class VerificationHold(models.Model):
    """HOLD-1: the USD 1.00 (or local equivalent) pre-authorization placed when linking."""

    DESCRIPTOR = "ALIBABACLOUD.COM"

    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        RELEASED = "released", "Released"
        RELEASE_FAILED = "release_failed", "Release failed (retried)"

    payment_method = models.ForeignKey(PaymentMethod, on_delete=models.PROTECT, related_name="holds")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holds")
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    descriptor = models.CharField(max_length=22, default=DESCRIPTOR)
    authorization_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLACED)
    placed_at = models.DateTimeField()
    release_after = models.DateTimeField(help_text="The release job voids the hold from this time on.")
    release_deadline = models.DateTimeField(help_text="HOLD-2: voided by this time (placed + 24 h).")
    released_at = models.DateTimeField(null=True, blank=True)
    release_attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    # A release run leases a batch; a run that crashes leaves a lease that expires (HOLD-2).
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        permissions = [("release_verificationhold", "Can release a verification hold now")]
        indexes = [
            models.Index(
                fields=["release_after"],
                condition=Q(status__in=["placed", "release_failed"]),
                name="hold_due_scan",
            )
        ]
        constraints = [
            models.CheckConstraint(name="hold_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="hold_released_has_time",
                condition=~Q(status="released") | Q(released_at__isnull=False),
            ),
            models.CheckConstraint(
                name="hold_deadline_after_placed", condition=Q(release_deadline__gt=F("placed_at"))
            ),
        ]

    def __str__(self) -> str:
        return f"Hold of {money_text(self.amount, self.currency)} ({self.authorization_id})"

    @property
    def void_idempotency_key(self) -> str:
        # Saved implicitly: derived from the row, identical on every retry (QUALITY.md Celery matrix).
        return f"hold-void-{self.pk}"


class ThreeDSChallengeQuerySet(models.QuerySet):
    def for_linking(self) -> ThreeDSChallengeQuerySet:
        """Challenges that gate a card link (LINK-5), not an order's charge (PAY-1)."""
        return self.filter(charge__isnull=True)

    def for_orders(self) -> ThreeDSChallengeQuerySet:
        return self.filter(charge__isnull=False)


@audit.track("tds")
class ThreeDSChallenge(models.Model):
    """A 3-D Secure challenge the cardholder must complete.

    Two purposes, told apart by ``charge``:
    - linking (LINK-5, ``charge`` empty): the card is not usable until the challenge succeeds;
    - an order (PAY-1, ``charge`` set): the processor's risk check asked for 3DS before charging
      that order charge, which failed with ``three_ds_not_completed`` (PAY-5); success replays
      the bill's charge with ``gateway_reference`` (the processor's authentication) and a new key.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Abandoned (timed out)"

    class Trigger(models.TextChoices):
        REGION = "region", "Required in the region (EU, Malaysia)"
        RISK = "risk", "Required by the risk check"

    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.PROTECT, related_name="three_ds_challenges"
    )
    trigger = models.CharField(max_length=8, choices=Trigger.choices)
    charge = models.OneToOneField(
        "Charge", null=True, blank=True, on_delete=models.PROTECT, related_name="three_ds_challenge",
        help_text="The order charge whose risk check asked for this challenge (PAY-1); empty when linking.",
    )
    gateway_reference = models.CharField(
        max_length=64, blank=True, help_text="The processor's authentication id, sent again with the replayed charge."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = ThreeDSChallengeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "3-D Secure challenge"
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="pending"), name="threeds_pending_scan"
            )
        ]
        constraints = [
            # LINK-5: one pending link challenge per method; a card may have several orders
            # waiting for 3DS at once (one challenge per order charge, by the one-to-one).
            models.UniqueConstraint(
                fields=["payment_method"],
                condition=Q(status="pending", charge__isnull=True),
                name="threeds_one_pending_per_method",
            )
        ]

    def __str__(self) -> str:
        return f"3-D Secure challenge {self.pk} ({self.get_status_display()})"

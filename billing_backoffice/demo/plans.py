"""What the builder plans for one account, before anything is saved."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from payments.models import Account, LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold


@dataclass
class MethodPlan:
    method: PaymentMethod
    created_at: datetime  # bulk_create overwrites auto_now_add; restored by a bulk_update
    hold: VerificationHold | None = None
    challenge: ThreeDSChallenge | None = None
    attempts: list[LinkAttempt] = field(default_factory=list)


@dataclass
class AccountPlan:
    account: Account
    created_at: datetime
    methods: list[MethodPlan] = field(default_factory=list)
    attempts: list[LinkAttempt] = field(default_factory=list)  # refusals with no method

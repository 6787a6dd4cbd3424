"""Plans one demo account and everything under it from its own seeded generator.

Times: an account is created 400-1500 days before ``now``; its methods are linked while it was
active (before ``deactivated_at`` for a deactivated or closed one); only an active account has
recent events (pending verifications, holds not yet released).
"""

from __future__ import annotations

import random
import string
from datetime import datetime, timedelta

from django.conf import settings
from stdnum import luhn

from payments import eligibility
from payments.eligibility import Network
from payments.models import Account, LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold
from payments.services.holds import hold_amount_for
from payments.services.cards import card_fingerprint

from .failures import failed_method, refusal
from .plans import AccountPlan, MethodPlan
from .profiles import Profile, billing_profile, shape_for_billing, story_kyc
from .tables import (
    CARD_PREFIX, CITIES, COMPANY_SUFFIX, COMPANY_WORDS, COUNTRIES, FIRST_NAMES, LAST_NAMES,
    LIVE_SCENARIOS, NETWORK_WEIGHT, REGION_ORDER, SEED, STREETS, demo_uid,
)

Status = PaymentMethod.Status
Kind = PaymentMethod.Kind
Reason = LinkAttempt.Reason
Outcome = LinkAttempt.Outcome


def luhn_number(prefix: str, length: int, rng: random.Random) -> str:
    """A Luhn-valid number (LINK-3); it only ever lives in memory, long enough to fingerprint."""
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


class AccountBuilder:
    """Plans one demo account and everything under it from its own seeded generator."""

    def __init__(self, index: int, *, now: datetime, manager, history_start: datetime):
        self.rng = random.Random(f"{SEED}-{index}")
        self.index = index
        self.now = now
        self.manager = manager
        self.history_start = history_start  # the billing story's first event (billing_backoffice.demo.clock)
        self.slot = 0  # per-account method counter; part of every generated identifier

    # --- small helpers -----------------------------------------------------------------------

    def between(self, start: datetime, end: datetime) -> datetime:
        if end <= start:
            return start
        return (start + (end - start) * self.rng.random()).replace(microsecond=0)

    def ident(self) -> str:
        # No underscore: the simulated gateway reads the scenario between the first two. Letters,
        # not hex, after the counters: no long digit run that a card-number scan would flag (SEC-1).
        letters = "".join(self.rng.choice(string.ascii_lowercase) for _ in range(16))
        return f"demo{self.index:06d}s{self.slot:02d}{letters}"

    def attempt(self, at: datetime, outcome: str, *, kind: str, method: PaymentMethod | None = None,
                reason: str = "", rule: str = "", detail: str = "", network: str = "", last4: str = "") -> LinkAttempt:
        """LINK-7: one attempt row, as ``link_attempt_record`` writes it."""
        return LinkAttempt(
            account=self.account, payment_method=method, kind=kind, outcome=outcome, reason=reason,
            rule=rule, detail=detail[:300], network=network or (method.network if method else ""),
            last4=last4 or (method.last4 if method else ""), created_at=at,
        )

    def challenge_sent(self, method: PaymentMethod, at: datetime) -> LinkAttempt:
        return self.attempt(at, Outcome.PENDING, kind=Kind.CARD, method=method, rule="LINK-5",
                            detail="3-D Secure challenge sent to the cardholder.")

    def agreement_sent(self, method: PaymentMethod, at: datetime) -> LinkAttempt:
        return self.attempt(at, Outcome.PENDING, kind=Kind.PAYPAL, method=method, rule="LINK-6",
                            detail="Waiting for the customer to approve the billing agreement on PayPal.")

    def hold(self, method: PaymentMethod, placed: datetime, state: str) -> VerificationHold:
        """HOLD-1/HOLD-2: the hold of a verified method, in the state its age implies."""
        amount, currency = hold_amount_for(self.account)
        scenario = "voidfailsonce" if state == "release_failed" else "approve"
        prefix = "auth" if method.kind == Kind.CARD else "ppauth"
        hold = VerificationHold(
            payment_method=method, account=self.account, amount=amount, currency=currency,
            authorization_id=f"{prefix}_{scenario}_{self.ident()}", placed_at=placed,
            release_after=placed + settings.HOLD_RELEASE_AFTER,
            release_deadline=placed + settings.HOLD_RELEASE_DEADLINE,
        )
        if state == "released":
            hold.status = VerificationHold.Status.RELEASED
            hold.released_at = hold.release_after + timedelta(minutes=self.rng.randint(0, 10))
            hold.release_attempts = 1
        elif state == "release_failed":
            hold.status = VerificationHold.Status.RELEASE_FAILED
            hold.release_attempts = self.rng.randint(1, 3)
            hold.last_error = "simulated processor timeout while voiding"
        return hold

    def hold_placed_at(self, state: str) -> datetime:
        """Placement time for a recent hold: due (release_after passed) or not yet due."""
        after = settings.HOLD_RELEASE_AFTER
        if state == "not_due":
            return self.now - min(timedelta(minutes=self.rng.randint(1, 10)), after / 2)
        latest_due = self.now - after - timedelta(minutes=5)
        earliest = self.now - settings.HOLD_RELEASE_DEADLINE + timedelta(hours=2)  # still inside HOLD-2
        return self.between(min(earliest, latest_due), latest_due)

    # --- the account -------------------------------------------------------------------------

    def build(self) -> AccountPlan:
        rng, now = self.rng, self.now
        region = REGION_ORDER[self.index % len(REGION_ORDER)]
        country = rng.choice(COUNTRIES[region])
        kind = Account.Kind.ENTERPRISE if rng.random() < 0.4 else Account.Kind.INDIVIDUAL
        person = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        if kind == Account.Kind.ENTERPRISE:
            words = f"{rng.choice(COMPANY_WORDS[0])} {rng.choice(COMPANY_WORDS[1])}"
            name = f"{words} {COMPANY_SUFFIX.get(country, 'Ltd')}"
            email = f"billing@{words.lower().replace(' ', '-')}.example"
        else:
            name = person
            email = f"{person.lower().replace(' ', '.')}{self.index}@mail.example"
        created = now - timedelta(days=rng.randint(400, 1500), minutes=rng.randint(0, 1439))
        self.person = person
        self.account = Account(
            uid=demo_uid(self.index), name=name, email=email, kind=kind, country=country,
            region=eligibility.region_for_country(country), account_manager=self.manager,
            kyc_status=self.kyc(kind),
        )
        plan = AccountPlan(account=self.account, created_at=created)
        self.created, self.end = created, now  # methods are linked while the account was active
        account = self.account
        # An account with a billing story (billing_backoffice.demo.profiles) is active, with the KYC status
        # its story needs; the others live their own life cycle.
        profile = billing_profile(self.index)
        if profile == Profile.NONE:
            self.life_cycle()
        else:
            account.kyc_status = story_kyc(profile, account.kyc_status)

        kyc_blocked = account.kyc_status in (Account.KycStatus.REQUIRED, Account.KycStatus.PENDING)
        # A billing story's account asked for KYC (KYC_BLOCKED) was asked after it linked its card.
        if kyc_blocked and account.status == Account.Status.ACTIVE and profile == Profile.NONE:
            for _ in range(rng.randint(1, 2)):
                kind_ = Kind.PAYPAL if eligibility.paypal_allowed(region) and rng.random() < 0.3 else Kind.CARD
                plan.attempts.append(self.attempt(
                    self.between(created, now), Outcome.REJECTED, kind=kind_, reason=Reason.KYC_REQUIRED,
                    rule="LINK-7", detail="KYC verification is required and not complete for this account.",
                    network=Network.VISA if kind_ == Kind.CARD else "", last4=self.last4() if kind_ == Kind.CARD else "",
                ))
        else:
            self.plan_methods(plan)
        if account.status != Account.Status.ACTIVE and rng.random() < 0.6:
            stop = account.closed_at or now
            plan.attempts.append(self.attempt(
                self.between(account.deactivated_at, stop), Outcome.REJECTED, kind=Kind.CARD,
                reason=Reason.ACCOUNT_NOT_ACTIVE, rule="LINK-2", network=Network.VISA, last4=self.last4(),
                detail=f"The account is {account.get_status_display().lower()}; no method can be linked to it.",
            ))
        if profile != Profile.NONE:
            shape_for_billing(self, plan, profile, start=self.history_start)
        account.has_running_resources = account.status == Account.Status.ACTIVE and any(
            m.method.status == Status.ACTIVE for m in plan.methods) and (profile != Profile.NONE or rng.random() < 0.6)
        # DEL-3: set by the billing services when a bill is issued, cleared when all are paid.
        account.has_outstanding_bills = False
        return plan

    def kyc(self, kind: str) -> str:
        K = Account.KycStatus
        if kind == Account.Kind.ENTERPRISE:
            return self.rng.choices([K.VERIFIED, K.NOT_REQUIRED, K.REQUIRED, K.PENDING], [50, 40, 5, 5])[0]
        return self.rng.choices([K.NOT_REQUIRED, K.VERIFIED, K.REQUIRED, K.PENDING], [85, 8, 4, 3])[0]

    def life_cycle(self) -> None:
        """Active, deactivated inside or past its silent period (LINK-2), or closed."""
        rng, now, account = self.rng, self.now, self.account
        silent = settings.ACCOUNT_SILENT_PERIOD
        roll = rng.random()
        if roll < 0.84:
            return
        if roll < 0.90:
            account.deactivated_at = now - timedelta(days=rng.randint(1, 13), hours=rng.randint(0, 23))
        elif roll < 0.94:  # the close job has not run yet: still deactivated, period over
            account.deactivated_at = now - silent - timedelta(hours=rng.randint(1, 240))
        else:
            account.deactivated_at = now - timedelta(days=rng.randint(20, 200))
            account.closed_at = account.deactivated_at + silent + timedelta(minutes=rng.randint(5, 60))
        account.status = Account.Status.CLOSED if account.closed_at else Account.Status.DEACTIVATED
        self.end = account.deactivated_at

    # --- methods -----------------------------------------------------------------------------

    def plan_methods(self, plan: AccountPlan) -> None:
        rng = self.rng
        active_account = self.account.status == Account.Status.ACTIVE
        live = rng.choices([0, 1, 2, 3], [6, 46, 34, 14])[0]
        for _ in range(live):
            if active_account:
                scenario = rng.choices(list(LIVE_SCENARIOS), list(LIVE_SCENARIOS.values()))[0]
            else:  # nothing recent happens on a deactivated account
                scenario = rng.choices(["active", "expired"], [85, 15])[0]
            plan.methods.append(self.live_method(scenario))
        if rng.random() < 0.3:
            plan.methods.append(self.removed_method())
        for _ in range(rng.choices([0, 1, 2], [70, 22, 8])[0]):
            plan.methods.append(failed_method(self))
        for _ in range(rng.choices([0, 1, 2], [60, 28, 12])[0]):
            refused = refusal(self, plan)
            if refused is not None:
                plan.attempts.append(refused)
        self.choose_default(plan)
        if self.account.status == Account.Status.CLOSED:
            # LINK-2: closing released every method.
            for mp in plan.methods:
                m = mp.method
                if m.status not in (Status.REMOVED, Status.FAILED):
                    m.status, m.is_default = Status.REMOVED, False
                    m.removed_at = m.status_changed_at = self.account.closed_at

    def choose_default(self, plan: AccountPlan) -> None:
        """DEF-1: the first method to become active is the default; it stays default once expired,
        unless (DEF-2) the customer switched to another active method."""
        usable = sorted((mp.method for mp in plan.methods if mp.method.status in (Status.ACTIVE, Status.EXPIRED)),
                        key=lambda m: m.activated_at)
        if not usable:
            return
        default = usable[0]
        active = [m for m in usable if m.status == Status.ACTIVE]
        if default.status == Status.EXPIRED and active and self.rng.random() < 0.5:
            default = active[0]
        default.is_default = True

    def network(self) -> str:
        allowed = [n for n in NETWORK_WEIGHT if eligibility.card_network_allowed(self.account.region, n)]
        return self.rng.choices(allowed, [NETWORK_WEIGHT[n] for n in allowed])[0]

    def last4(self) -> str:
        return f"{self.rng.randrange(10000):04d}"

    def pick_kind(self) -> str:
        if eligibility.paypal_allowed(self.account.region) and self.rng.random() < 0.25:
            return Kind.PAYPAL
        return Kind.CARD

    def new_card(self, *, status: str, created: datetime, expiry: tuple[int, int] | None = None,
                 token: str = "approve") -> PaymentMethod:
        rng = self.rng
        self.slot += 1
        network = self.network()
        prefix, length = CARD_PREFIX[network]
        number = luhn_number(f"{prefix}{self.index:06d}{self.slot:02d}", length, rng)
        if expiry is None:
            expiry = (self.now.year + rng.randint(1, 5), rng.randint(1, 12))
        country = str(self.account.country)
        city, postal = CITIES[country]
        company = self.account.name if self.account.kind == Account.Kind.ENTERPRISE and rng.random() < 0.5 else ""
        method = PaymentMethod(
            account=self.account, kind=Kind.CARD, status=status, status_changed_at=created,
            gateway_token=f"tok_{token}_{self.ident()}", fingerprint=card_fingerprint(number),
            last4=number[-4:], network=network,
            funding=rng.choices([PaymentMethod.Funding.CREDIT, PaymentMethod.Funding.DEBIT], [75, 25])[0],
            issuing_country=country if rng.random() < 0.9 else rng.choice(["US", "GB", "SG", "DE"]),
            exp_year=expiry[0], exp_month=expiry[1], cardholder_name=self.person, company_name=company,
            billing_line1=f"{rng.randint(1, 250)} {rng.choice(STREETS)}", billing_city=city,
            billing_postal_code=postal, billing_country=country,
        )
        del number  # SEC-1: only the fingerprint and last4 leave this function
        return method

    def new_paypal(self, *, status: str, created: datetime, agreement: str, token: str = "approve") -> PaymentMethod:
        self.slot += 1
        local = self.account.email.split("@")[0]
        return PaymentMethod(
            account=self.account, kind=Kind.PAYPAL, status=status, status_changed_at=created,
            paypal_payer_id=f"DEMOPP{self.index:06d}{self.slot:02d}", paypal_email=f"{local}+pp{self.slot}@paypal.example",
            paypal_country=str(self.account.country), agreement_id=f"ba_{token}_{self.ident()}",
            agreement_state=agreement,
        )

    def three_ds_trigger(self) -> str | None:
        """LINK-5: always in the EU and Malaysia; elsewhere when the risk check asks."""
        if self.account.region in eligibility.THREE_DS_MANDATORY_REGIONS:
            return ThreeDSChallenge.Trigger.REGION
        return ThreeDSChallenge.Trigger.RISK if self.rng.random() < 0.12 else None

    def verified(self, kind: str, placed: datetime, hold_state: str, *, status: str = Status.ACTIVE,
                 expiry: tuple[int, int] | None = None) -> MethodPlan:
        """A method that passed 3DS (where asked) and its hold, activated at ``placed`` (HOLD-3)."""
        rng = self.rng
        if kind == Kind.PAYPAL:
            created = placed - timedelta(minutes=rng.randint(1, 10))
            m = self.new_paypal(status=status, created=created, agreement=PaymentMethod.AgreementState.APPROVED)
            m.has_funding_source = True
            plan = MethodPlan(method=m, created_at=created)
            plan.attempts.append(self.agreement_sent(m, created))
        else:
            trigger = self.three_ds_trigger()
            created = placed - (timedelta(minutes=rng.randint(1, 5)) if trigger else timedelta(seconds=rng.randint(2, 20)))
            m = self.new_card(status=status, created=created, expiry=expiry)
            plan = MethodPlan(method=m, created_at=created)
            if trigger:
                plan.challenge = ThreeDSChallenge(
                    payment_method=m, trigger=trigger, status=ThreeDSChallenge.Status.SUCCEEDED, created_at=created,
                    expires_at=created + settings.VERIFICATION_TIMEOUT, completed_at=placed - timedelta(seconds=3),
                )
                plan.attempts.append(self.challenge_sent(m, created))
        m.activated_at = placed
        m.status_changed_at = placed
        plan.hold = self.hold(m, placed, hold_state)
        plan.attempts.append(self.attempt(placed, Outcome.LINKED, kind=kind, method=m))
        return plan

    def live_method(self, scenario: str) -> MethodPlan:
        rng, now = self.rng, self.now
        if scenario == "pending_paypal" and not eligibility.paypal_allowed(self.account.region):
            scenario = "pending_3ds"
        old = lambda: self.between(self.created + timedelta(days=1), self.end - timedelta(days=2))  # noqa: E731
        if scenario == "active":
            return self.verified(self.pick_kind(), old(), "released")
        if scenario in ("active_hold_due", "active_release_failed", "active_hold_not_due"):
            placed = self.hold_placed_at("not_due" if scenario == "active_hold_not_due" else "due")
            hold_state = "release_failed" if scenario == "active_release_failed" else "placed"
            return self.verified(self.pick_kind(), placed, hold_state)
        if scenario == "expired":
            return self.expired_card()
        created = now - timedelta(minutes=rng.randint(1, 20))
        if scenario == "pending_3ds":
            trigger = self.three_ds_trigger() or ThreeDSChallenge.Trigger.RISK
            token = "risk3ds" if trigger == ThreeDSChallenge.Trigger.RISK else "approve"
            m = self.new_card(status=Status.PENDING, created=created, token=token)
            plan = MethodPlan(method=m, created_at=created)
            plan.challenge = ThreeDSChallenge(payment_method=m, trigger=trigger, created_at=created,
                                              expires_at=created + settings.VERIFICATION_TIMEOUT)
            plan.attempts.append(self.challenge_sent(m, created))
            return plan
        # pending_paypal: LINK-6, shown to the account manager as "agreement not approved".
        m = self.new_paypal(status=Status.PENDING, created=created, agreement=PaymentMethod.AgreementState.NOT_APPROVED)
        plan = MethodPlan(method=m, created_at=created)
        plan.attempts.append(self.agreement_sent(m, created))
        return plan

    def expired_card(self, *, expired_before: datetime | None = None) -> MethodPlan:
        """DEL-5: a card linked while valid, expired after the last day of its expiry month
        (and, with ``expired_before``, marked expired before that moment)."""
        placed = self.between(self.created + timedelta(days=1), self.created + timedelta(days=30))
        first = (placed.year * 12 + placed.month) + 2          # at least two months after linking
        last = (self.end.year * 12 + self.end.month) - 2       # expired (job ran) before the end
        if expired_before is not None:
            last = min(last, expired_before.year * 12 + expired_before.month - 2)
        if last < first:
            return self.verified(Kind.CARD, placed, "released")
        month_index = self.rng.randint(first, last)
        year, month = divmod(month_index - 1, 12)
        plan = self.verified(Kind.CARD, placed, "released", status=Status.EXPIRED, expiry=(year, month + 1))
        next_year, next_month = divmod(month_index, 12)
        plan.method.status_changed_at = plan.method.activated_at.replace(
            year=next_year, month=next_month + 1, day=1, hour=0, minute=5, second=0)
        return plan

    def removed_method(self) -> MethodPlan:
        """DEL-4: unlinked by the customer; its hold was released long before."""
        placed = self.between(self.created + timedelta(days=1), self.end - timedelta(days=3))
        plan = self.verified(self.pick_kind(), placed, "released")
        removed = self.between(placed + timedelta(days=1), self.end - timedelta(hours=1))
        plan.method.status, plan.method.removed_at, plan.method.status_changed_at = Status.REMOVED, removed, removed
        return plan


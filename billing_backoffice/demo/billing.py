"""One demo account's billing story, told through the services (the ledger's only writers).

A story schedules its events on the shared ``Timeline``; each event calls a service at its own
moment in the past:

- usage reported through the month (``usage_record``), a threshold charge when the unbilled usage
  reaches the method's threshold (PAY-2, as the 15-minute scan would), the PayPal
  pre-authorization before the first usage and its release (HOLD-4, HOLD-2);
- the month end: the monthly bill (``monthly_bills_generate_chunk`` for this account alone), the
  settlement from the balance, and the month-end charge of the default method (PAY-3);
- orders (``order_place``, PAY-1, CRED-3), failed charges retried a day later (``charge_retry``),
  bills marked overdue the day after their due date (CRED-3);
- credit applications, the dedicated remittance account, the settlement switch, finance's manual
  payment and how much the customer sends by bank transfer (``billing_backoffice.demo.credit``); the
  transfers themselves are the bank's part (``billing_backoffice.demo.bank``).

The month-end charge row is written here, as the deduction job writes it (one pending
``month_end`` charge per unpaid monthly bill, key ``charge-<bill>-1``), because
``month_end_deduction_run`` works on every account's bills of a month and the seed touches only
its own; the charge itself is run by ``charge_execute``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from django.conf import settings

from payments.eligibility import Region
from payments.models import Account, Bill, Charge, PaymentMethod, VerificationHold
from payments.services import (
    OrderRefused,
    charge_execute,
    charge_retry,
    hold_release,
    order_place,
    paypal_preauth_place,
    settle_accounts,
    usage_record,
    usage_threshold_charge,
)
from payments.services.billing import AccountChunk, monthly_bills_generate_chunk
from payments.services.scheduled_charging import FAILED_RETRY_AFTER, RETRYABLE_REASONS, usage_threshold
from remittances.services.credit import credit_request_approve

from .clock import Clock, Period
from .credit import PAYMENT_HABITS, CreditSide
from .profiles import CREDIT_PROFILES, STORY_EVERY, Profile, billing_rng
from .timeline import Timeline

CENT = Decimal("0.01")
# Indicative units per USD, to keep amounts in each currency of a similar size (PAY-2 uses its own).
RATES = {"USD": Decimal("1"), "EUR": Decimal("0.90"), "GBP": Decimal("0.78"), "MYR": Decimal("4.40")}
ORDER_KINDS = (Bill.OrderKind.PURCHASE, Bill.OrderKind.UPGRADE, Bill.OrderKind.RENEWAL)
DEBTOR_PROFILES = (Profile.PAYG_DECLINED, Profile.PAYG_NO_METHOD, Profile.KYC_BLOCKED)
# Months of usage before the current one, where fewer than all billed months (``clock.past``)
# tell the story: the card that fails started failing recently (and the seed stays fast).
MONTHS = {
    Profile.PAYG_DECLINED: 1, Profile.PAYG_3DS: 1, Profile.CREDIT_PENDING: 1,
    Profile.PAYG_NO_METHOD: 2, Profile.KYC_BLOCKED: 2, Profile.CREDIT_REJECTED: 2,
}


@dataclass(frozen=True)
class Staff:
    manager: object
    manager2: object
    finance: object


def currency_for(account: Account) -> str:
    """Pay-as-you-go accounts are billed in their region's currency (credit accounts in the
    remittance bank's, so transfers to their dedicated account pay them)."""
    if account.region == Region.EU:
        return "EUR"
    if account.region == Region.EUROPE_NON_EU:
        return "GBP" if str(account.country) == "GB" else "EUR"
    if account.region == Region.MY:
        return "MYR"
    return "USD"


def at_time(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.utc)


class Story(CreditSide):
    """One account's billing history (see the module docstring)."""

    def __init__(self, *, index: int, account: Account, default: PaymentMethod | None, profile: str,
                 clock: Clock, timeline: Timeline, staff: Staff):
        self.rng = billing_rng(index, "-story")
        self.index, self.account, self.default, self.profile = index, account, default, profile
        self.clock, self.timeline, self.staff = clock, timeline, staff
        self.credit_from_start = profile in (Profile.CREDIT, Profile.CREDIT_SETTLEMENT_OFF)
        self.credit_line = profile in CREDIT_PROFILES
        self.currency = settings.REMITTANCE_BANK["currency"].upper() if self.credit_line else currency_for(account)
        self.credit_approved = False
        self.unbilled = Decimal("0.00")  # unbilled usage in self.currency, for the PAY-2 threshold
        self.has_money = False  # a credit arrived: the settlement may pay bills from the balance
        self.orders = 0
        self.paid_by_hand = False
        self.pending_request = None  # CREDIT_AFTER_THRESHOLD: the application waiting for its decision
        # How this customer sends money by bank transfer (``billing_backoffice.demo.bank``): to its
        # dedicated account, to the shared account (then claimed), or not at all.
        self.route = None
        self.dedicated = None
        self.habit = PAYMENT_HABITS[(index // STORY_EVERY) % len(PAYMENT_HABITS)]
        if self.credit_line:
            self.route = "dedicated" if profile != Profile.CREDIT or self.rng.random() < 0.75 else "shared"
        elif profile in DEBTOR_PROFILES and self.currency in ("USD", "EUR") and self.rng.random() < 0.6:
            self.route, self.habit = "shared", "prompt"
        if profile == Profile.CREDIT_SETTLEMENT_OFF:
            self.habit = "prompt"

    # --- helpers ---------------------------------------------------------------------------------

    def later(self, when: datetime, action, *, minutes: tuple[int, int] = (1, 1)) -> None:
        self.timeline.add(when + timedelta(minutes=self.rng.randint(*minutes)), action)

    def amount(self, low: int, high: int) -> Decimal:
        """A random amount between ``low`` and ``high`` USD, in this story's currency."""
        usd = Decimal(self.rng.randint(low * 100, high * 100)) / 100
        return (usd * RATES.get(self.currency, Decimal("1"))).quantize(CENT)

    @property
    def charged_by_card(self) -> bool:
        """Charged at thresholds and at month end (PAY-2, PAY-3): not credit-approved (PAY-6)."""
        return not self.credit_approved

    @property
    def threshold_watch(self) -> bool:
        return self.charged_by_card and self.default is not None and self.default.status == PaymentMethod.Status.ACTIVE

    def settle(self, when: datetime) -> None:
        settle_accounts(account_ids=[self.account.pk], now=when)

    def settle_soon(self, when: datetime, *, minutes: tuple[int, int] = (5, 14)) -> None:
        """A new bill of an account that holds money is paid by the next settlement sweep
        (every 15 minutes, SET-2); without money there is nothing to sweep. Always before ``now``:
        the history ends where the sweep would have left it, even for a step seconds ago."""
        if self.has_money:
            self.timeline.add(self.clock.before_now(when + timedelta(minutes=self.rng.randint(*minutes)), after=when),
                              self.settle)

    def watch_overdue(self, bill: Bill) -> None:
        """CRED-3: the day after its due date an unpaid bill is overdue (``bills_mark_overdue``
        runs hourly over every bill; this is its update for this one bill)."""

        def mark(when: datetime) -> None:
            Bill.objects.filter(pk=bill.pk, status__in=(Bill.Status.OPEN, Bill.Status.PARTIALLY_PAID)).update(
                status=Bill.Status.OVERDUE
            )

        self.timeline.add(at_time(bill.due_date + timedelta(days=1), 0, 1), mark)

    # --- the schedule ----------------------------------------------------------------------------

    def schedule(self) -> None:
        clock, rng = self.clock, self.rng
        if self.credit_from_start:
            self.schedule_credit(clock.history_start + timedelta(days=rng.randint(0, 12), hours=rng.randint(9, 16)))
        if self.profile == Profile.CREDIT_AFTER_THRESHOLD:
            # Applied for on the 1st of the heavy month; decided when the threshold is crossed.
            self.timeline.add(clock.past[1].day(1) + timedelta(hours=12), lambda t: setattr(
                self, "pending_request", self.apply(t, self.limit(), "Switching to monthly invoicing.", source="console")))
        periods = clock.past[-MONTHS.get(self.profile, len(clock.past)):]
        first_usage = periods[0].start + timedelta(days=1, hours=rng.randint(8, 20))
        if self.default is not None and self.default.kind == PaymentMethod.Kind.PAYPAL and not self.credit_from_start \
                and self.default.status == PaymentMethod.Status.ACTIVE:
            self.timeline.add(first_usage - timedelta(minutes=5), self.preauthorize)
        for period in periods:
            self.schedule_usage(period, clock.past[0])
            self.timeline.add(clock.month_end_run(period), lambda when, p=period: self.month_end(when, p))
        self.schedule_current_usage()
        self.schedule_orders()
        self.schedule_applications()

    def monthly_usage(self, period: Period, first: Period) -> tuple[Decimal, int]:
        """The month's usage and in how many reports it comes: two when a threshold may be
        crossed in between (PAY-2), else one (the console's monthly usage report)."""
        if self.profile == Profile.CREDIT_AFTER_THRESHOLD:
            if period == first:
                return self.amount(200, 600), 1
            if period == first.next:
                return self.amount(1300, 1800), 2  # crosses the USD 1,000 card threshold mid-month
        if self.credit_line:
            return self.amount(900, 4000), 1
        if self.default is not None and self.default.kind == PaymentMethod.Kind.PAYPAL:
            return self.amount(40, 500), 2  # PayPal thresholds are USD 8..500 (PAY-2)
        if self.default is not None and self.rng.random() < 0.15:
            return self.amount(1100, 2200), 2  # a heavy month: charged at the card threshold (PAY-2)
        return self.amount(40, 600), 1

    def schedule_usage(self, period: Period, first: Period) -> None:
        total, reports = self.monthly_usage(period, first)
        days = sorted(self.rng.sample(range(2, 28), reports))
        shares = [Decimal(self.rng.randint(20, 50)) for _ in days]
        parts = [(total * share / sum(shares)).quantize(CENT) for share in shares]
        parts[-1] = total - sum(parts[:-1])
        for n, (day, part) in enumerate(zip(days, parts), start=1):
            if part > 0:
                when = period.day(day) + timedelta(hours=self.rng.randint(6, 22), minutes=self.rng.randint(0, 59))
                self.timeline.add(when, lambda t, p=period, n=n, a=part: self.report_usage(t, p, n, a))

    def schedule_current_usage(self) -> None:
        """This month's usage so far: reported, not billed until the month ends (PAY-3)."""
        clock = self.clock
        month_end_run = clock.month_end_run(clock.past[-1])
        start = max(clock.current.start + timedelta(days=1), month_end_run + timedelta(hours=1))
        end = clock.now - timedelta(minutes=30)
        monthly = self.amount(30, 400) if not self.credit_line else self.amount(400, 2500)
        # At least a cent: on the 1st the month has barely begun, yet it has usage (PAY-3 waits).
        share = max(Decimal("0.01"), Decimal(str(round(min(1.0, (clock.now - clock.current.start) / timedelta(days=30)), 2))))
        part = (monthly * share).quantize(CENT)
        if end - start < timedelta(hours=2):
            # The first hours of a month (the 1st, or the 2nd before the window opens): reported
            # just now, after the month-end run that billed last month.
            when = clock.before_now(clock.now, after=month_end_run)
        else:
            when = (start + (end - start) * self.rng.uniform(0.3, 0.9)).replace(microsecond=0)
        self.timeline.add(when, lambda t: self.report_usage(t, clock.current, 1, part))

    def schedule_orders(self) -> None:
        clock, rng = self.clock, self.rng
        if self.profile == Profile.PAYG_DECLINED:
            # Today: the issuer declines (PAY-1, PAY-5).
            self.timeline.add(clock.minutes_ago(rng.randint(10, 50)), self.order)
        if self.profile == Profile.PAYG_3DS:
            # Minutes ago: the risk check asked for 3-D Secure; the challenge is still open (PAY-1).
            self.timeline.add(clock.minutes_ago(rng.randint(4, 15)), self.order)
        if self.profile in (Profile.PAYG, Profile.CREDIT) and rng.random() < 0.4:
            period = rng.choice(clock.past)
            self.timeline.add(period.day(rng.randint(3, 26)) + timedelta(hours=rng.randint(8, 20)), self.order)
        if self.profile == Profile.CREDIT and rng.random() < 0.35:
            # Bought on credit 26 days ago: due in a few days (CRED-3 terms).
            self.timeline.add(clock.now - timedelta(days=26, hours=rng.randint(1, 5)), self.order)
        if self.profile == Profile.PAYG and rng.random() < 0.1:
            self.timeline.add(clock.minutes_ago(rng.randint(60, 1200)), self.order)

    # --- usage, thresholds and the PayPal pre-authorization (PAY-2, HOLD-4) ----------------------

    def preauthorize(self, when: datetime) -> None:
        charge = paypal_preauth_place(account_id=self.account.pk, now=when)
        if charge is None or charge.status != Charge.Status.SUCCEEDED:
            return
        hold = VerificationHold.objects.get(authorization_id=charge.gateway_reference)
        self.timeline.add(hold.release_after + timedelta(minutes=self.rng.randint(1, 4)),
                          lambda t: hold_release(hold_id=hold.pk, now=t))

    def report_usage(self, when: datetime, period: Period, n: int, amount: Decimal) -> None:
        reference = f"demo-{self.account.uid}-{period.code}-{n}"
        usage_record(account_id=self.account.pk, amount=amount, currency=self.currency, period=period.code,
                     reference=reference, now=when)
        if not self.threshold_watch:
            return
        self.unbilled += amount
        threshold = usage_threshold(account=self.account, method=self.default, currency=self.currency)
        if threshold is None or self.unbilled < threshold:
            return
        charge = usage_threshold_charge(account_id=self.account.pk, currency=self.currency, now=when)
        self.unbilled = Decimal("0.00")
        if charge is None:
            return
        self.watch_overdue(charge.bill)
        self.settle_soon(when)
        if self.pending_request is not None and not self.credit_approved:
            # PAY-6: credit is approved while the threshold charge waits for its worker, which then
            # refuses it (credit_account); from now on the account pays by transfer.
            request, decider = self.pending_request

            def approve(t: datetime) -> None:
                credit_request_approve(request_id=request.pk, actor=decider, note="Approved on request.", now=t)
                self.approved(t)

            self.timeline.add(when + timedelta(minutes=2), approve)
        self.later(when, lambda t: self.run_charge(charge.pk, t), minutes=(3, 6))

    # --- month end (PAY-3) -----------------------------------------------------------------------

    def month_end(self, when: datetime, period: Period) -> None:
        bill_ids = monthly_bills_generate_chunk(
            period=period.code, now=when, chunk=AccountChunk(self.account.pk, self.account.pk)
        )
        self.unbilled = Decimal("0.00")
        for bill in Bill.objects.filter(pk__in=bill_ids):
            self.watch_overdue(bill)
            if self.charged_by_card:
                self.later(when, lambda t, b=bill.pk: self.month_end_charge(b, t), minutes=(20, 50))
        if bill_ids:
            self.settle_soon(when)

    def month_end_charge(self, bill_id: int, when: datetime) -> None:
        bill = Bill.objects.get(pk=bill_id)
        if bill.status == Bill.Status.PAID:
            return
        method = PaymentMethod.objects.filter(account_id=self.account.pk, is_default=True).first()
        charge, _ = Charge.objects.get_or_create(
            idempotency_key=f"charge-{bill.pk}-1",
            defaults=dict(account_id=self.account.pk, bill=bill, payment_method=method, kind=Charge.Kind.MONTH_END,
                          amount=bill.outstanding, currency=bill.currency, created_at=when),
        )
        self.run_charge(charge.pk, when)

    def run_charge(self, charge_id: int, when: datetime) -> None:
        self.after_charge(charge_execute(charge_id=charge_id, now=when), when)

    def after_charge(self, charge: Charge, when: datetime) -> None:
        """A charge that failed for a reason that may pass is tried again a day later, at most
        three times per bill (``charges_retry_failed``)."""
        if charge.status == Charge.Status.FAILED and charge.failure_reason in RETRYABLE_REASONS \
                and charge.kind != Charge.Kind.PAYPAL_PREAUTH and not self.credit_approved:
            due = charge.completed_at + FAILED_RETRY_AFTER
            later = due + timedelta(minutes=self.rng.randint(5, 25))  # the job runs every 30 minutes
            self.timeline.add(later if later < self.clock.now else due, lambda t: self.retry(charge.pk, t))

    def retry(self, charge_id: int, when: datetime) -> None:
        charge = charge_retry(charge_id=charge_id, now=when)
        if charge is not None:
            self.after_charge(charge, when)

    # --- orders (PAY-1, CRED-3) ------------------------------------------------------------------

    def order(self, when: datetime) -> None:
        self.orders += 1
        kind = self.rng.choice(ORDER_KINDS)
        amount = self.amount(200, 900) if self.credit_approved else self.amount(15, 250)
        try:
            result = order_place(account_id=self.account.pk, kind=kind, amount=amount, currency=self.currency,
                                 reference=f"demo-{self.account.uid}-order-{self.orders}", now=when)
        except OrderRefused:
            return  # refused whole (credit limit): nothing was created
        self.watch_overdue(result.bill)
        if result.charge is not None:
            self.after_charge(result.charge, when)
        self.settle_soon(when)

"""The credit side of a demo account's story: applications, approval, the dedicated remittance
account, the settlement switch, and the money the customer sends by bank transfer.

- CRED-1 / CRED-2: an application is sent by the console (nobody records it) or recorded by the
  account manager ``manager``; it is decided by a manager who did not record it: ``manager2``
  decides what ``manager`` recorded, ``manager`` decides the console's. Approved, rejected with a
  note, or still waiting.
- REM-1 / REM-3: a credit-approved customer who pays to its own account gets its dedicated
  remittance account from ``manager`` the day after the approval.
- SET-1 / SET-3: some credit customers have automatic settlement switched off by ``finance``, who
  then pays their oldest bill by hand once money has arrived; the next one waits in the admin.
- How much a customer sends on a statement day follows its habit (``PAYMENT_HABITS``): what it
  owes, 60 % of it, only once in a while, or a round amount above it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_UP, Decimal

from billing_backoffice.errors import BillingError
from payments.models import Bill
from payments.services import bill_pay_manual, settlement_switch
from payments.services.billing import account_unpaid_total
from payments.services.ledger import account_balance
from remittances.services.accounts import dedicated_account_issue
from remittances.services.credit import credit_request_approve, credit_request_reject, credit_request_submit

from .profiles import Profile

CENT = Decimal("0.01")
PAYMENT_HABITS = ("prompt", "partial", "late", "prompt", "overpays")  # taken in turn by the stories


class CreditSide:
    """Mixed into ``billing_backoffice.demo.billing.Story``, whose state and helpers it uses."""

    # --- applications (CRED-1, CRED-2) and what approval brings (REM-1, REM-3, SET-1) ----------

    def schedule_applications(self) -> None:
        """CRED-1 / CRED-2 applications besides the approval a credit story starts with."""
        clock, rng = self.clock, self.rng
        if self.profile == Profile.CREDIT_PENDING:
            self.timeline.add(clock.now - timedelta(days=rng.randint(1, 6), hours=rng.randint(1, 8)),
                              lambda t: self.apply(t, self.limit(), "Moving to monthly invoicing."))
        elif self.profile == Profile.CREDIT_REJECTED:
            when = clock.past[1].day(rng.randint(3, 20)) + timedelta(hours=10)
            self.timeline.add(when, lambda t: self.apply(
                t, self.limit() * 3, "Expected growth next quarter.",
                reject="Usage history too short for this limit; apply again after three months of payments."))
        elif self.profile == Profile.KYC_BLOCKED and rng.random() < 0.5:
            when = clock.past[2].day(rng.randint(3, 20)) + timedelta(hours=11)
            self.timeline.add(when, lambda t: self.apply(
                t, self.limit(), "Please invoice us monthly.", source="console",
                reject="KYC verification is not complete; credit is decided after it is."))
        elif self.profile == Profile.CREDIT and rng.random() < 0.35:
            raise_to = self.limit() * 2
            if rng.random() < 0.5:
                self.timeline.add(clock.now - timedelta(days=rng.randint(1, 4), hours=3),
                                  lambda t: self.apply(t, raise_to, "New project; higher monthly usage."))
            else:
                self.timeline.add(clock.past[2].day(rng.randint(5, 20)) + timedelta(hours=14), lambda t: self.apply(
                    t, raise_to, "Seasonal peak.", reject="The account pays late; keep the current limit."))

    def limit(self) -> Decimal:
        """A round credit limit a few times the expected monthly bill."""
        return Decimal(self.rng.choice((10000, 15000, 20000, 25000)))

    def apply(self, when: datetime, limit: Decimal, why: str, *, reject: str = "", source: str = ""):
        """An application sent by the console (nobody records it) or recorded by ``manager``;
        decided by a manager who did not record it (CRED-2): ``manager2`` decides what ``manager``
        recorded."""
        source = source or self.rng.choice(("console", "staff"))
        recorder = self.staff.manager if source == "staff" else None
        decider = self.staff.manager2 if recorder is not None else self.staff.manager
        request = credit_request_submit(
            account_id=self.account.pk, requested_limit=limit, currency=self.currency, justification=why,
            source=source, recorded_by=recorder, now=when,
        )
        if reject:
            self.later(when, lambda t: credit_request_reject(request_id=request.pk, actor=decider, note=reject, now=t),
                       minutes=(60 * 20, 60 * 50))
        return request, decider

    def schedule_credit(self, approve_at: datetime) -> None:
        submitted_at = approve_at - timedelta(days=self.rng.randint(1, 5), hours=self.rng.randint(0, 5))
        self.timeline.add(submitted_at, lambda t: self.apply_and_approve(t, approve_at))

    def apply_and_approve(self, when: datetime, approve_at: datetime) -> None:
        request, decider = self.apply(when, self.limit(), "Enterprise agreement: monthly invoice, paid by transfer.")

        def approve(t: datetime) -> None:
            credit_request_approve(request_id=request.pk, actor=decider, note="Payment history checked.", now=t)
            self.approved(t)

        self.timeline.add(approve_at, approve)

    def approved(self, when: datetime) -> None:
        self.credit_approved = True
        self.account.refresh_from_db(fields=["credit_approved", "credit_limit", "credit_currency"])
        if self.route == "dedicated":
            self.later(when, self.issue_dedicated, minutes=(60 * 20, 60 * 30))
        if self.profile == Profile.CREDIT_SETTLEMENT_OFF:
            self.later(when, lambda t: settlement_switch(
                account_id=self.account.pk, enabled=False, actor=self.staff.finance, now=t), minutes=(60 * 40, 60 * 50))

    def issue_dedicated(self, when: datetime) -> None:
        self.dedicated = dedicated_account_issue(account_id=self.account.pk, actor=self.staff.manager, now=when)

    # --- money by bank transfer (asked by billing_backoffice.demo.bank) -------------------------------------

    def owed(self) -> Decimal:
        """What the account still owes beyond the money it already holds."""
        unpaid = account_unpaid_total(account_id=self.account.pk, currency=self.currency)
        held = max(account_balance(account_id=self.account.pk, currency=self.currency), Decimal("0.00"))
        return unpaid - held

    def transfer(self, day: int, *, last_day: int) -> Decimal | None:
        """How much this customer sends on statement day ``day`` (0 = the oldest), by habit."""
        if self.habit == "late" and day != 1:
            return None
        owed = self.owed()
        if owed <= 0:
            return None
        if self.habit == "partial":
            owed = (owed * Decimal("0.6")).quantize(Decimal("10"), rounding=ROUND_UP)
        elif self.habit == "overpays":
            owed = (owed / 500).quantize(Decimal("1"), rounding=ROUND_UP) * 500 + 500
        elif day == last_day and self.credit_line and self.rng.random() < 0.3:
            return None  # this month's bill is not due yet: it waits
        return owed.quantize(CENT)

    def credited(self, when: datetime) -> None:
        """Money arrived (a transfer or an approved claim): the settlement pays the bills (SET-2);
        with settlement off, finance pays the oldest bill by hand a day later (SET-3), once."""
        self.has_money = True
        self.settle_soon(when, minutes=(1, 3))
        if self.profile == Profile.CREDIT_SETTLEMENT_OFF and not self.paid_by_hand:
            self.paid_by_hand = True
            self.later(when, self.pay_oldest_by_hand, minutes=(60 * 24, 60 * 26))

    def pay_oldest_by_hand(self, when: datetime) -> None:
        oldest = Bill.objects.filter(account_id=self.account.pk, status__in=Bill.UNPAID_STATUSES) \
            .order_by("issued_at", "pk").first()
        if oldest is None:
            return
        try:
            bill_pay_manual(bill_id=oldest.pk, actor=self.staff.finance, now=when)
        except BillingError:
            pass  # the balance does not cover it yet: it stays for finance to pay

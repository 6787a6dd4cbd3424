"""The billing domain as a Hypothesis ``RuleBasedStateMachine`` (QUALITY.md I1..I6, issues 4 and 5).

Every rule calls the real services on PostgreSQL, in autocommit like a worker or a request:
accounts and credit approval, card and PayPal linking with sandbox declines and 3DS, hold
release, usage and orders, threshold charges, monthly bills and the month-end deduction, bank
statements on a dedicated or the shared account, claims with four-eyes approval, ledger credits
and debits, settlement, manual bill payment, the settlement switch and the scheduled jobs, while
a clock (``self.now``) moves forward by a rule.

Faults are rule options: duplicate delivery (the same usage, order, credit event, statement file,
approval, settlement, release run or Celery message twice), lost messages, worker crashes at the
worst moment (after the gateway voided or charged but before the database knew; between the
settlement's ledger insert and its bill update) followed by redelivery, and a rule that runs a
service inside ``transaction.atomic`` and dies right after it, which must leave nothing behind
(rows or messages).

A ``BillingError`` is an expected refusal and must leave the invariants intact; any other
exception fails the run. After every step ``tests.payments.invariants.assert_all_invariants``
checks the whole database and the simulated gateway, and the ledger is compared with the previous
step's (I1: no row changed or vanished). Rules also assert what they promise (postconditions: a
replay returns the first result, a second run changes nothing, money left after a settlement...).

The Celery messages the services send on commit are kept in ``world.Broker``; the ``deliver``
rule plays the worker and calls the service each task wraps, with the machine's clock.

Related actions share a rule with an ``action``/``mode`` option, so that with the few steps of
a short run each example still reaches deep states (a claim approved, a bill settled) instead of
spreading its steps over forty rules; an ``initialize`` step starts every example with accounts.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from unittest import mock

from django.db import connection, transaction
from hypothesis import event, note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from billing_backoffice.errors import BillingError
from payments.gateways import simulated
from payments.models import Account, Bill, Charge, LedgerEntry, PaymentMethod, ThreeDSChallenge, VerificationHold
from payments.services import accounts as account_services
from payments.services import bills as bill_services
from payments.services import (
    cards,
    charge_execution,
    holds,
    lifecycle,
    order_three_ds,
    orders,
    paypal,
    scheduled_charging,
    settlement,
    usage,
)
from payments.services.billing import AccountChunk, monthly_bills_generate, monthly_bills_generate_chunk
from payments.services.defaults import payment_method_make_default
from payments.services.ledger import account_balance, ledger_post
from payments.services.removal import payment_method_remove
from remittances.models import BankTransaction, CreditLimitRequest, RemittanceAccount, RemittanceClaim
from remittances.services import claims as claim_services
from remittances.services import credit as credit_services
from remittances.services.accounts import dedicated_account_issue, receiving_account_register
from remittances.services.statements import statement_import
from tests.payments.invariants import assert_all_invariants, assert_ledger_append_only, ledger_snapshot

from . import world
from .credit_control_rules import CreditControlRules
from .money_back_rules import MoneyBackRules
from .world import Crash

D = Decimal
# Clock steps: past a hold's 15 min, a charge's 10 min grace and a lease's 10 min; a day (holds
# come due, bills go overdue); more than 15 days (silent periods end, months turn).
CLOCK_STEPS = (timedelta(days=1), timedelta(minutes=11), timedelta(hours=2), timedelta(days=4), timedelta(days=16))
COUNTRIES = ("US", "US", "DE", "GB", "MY", "JP", "SG", "CN")
PAYERS = ("fresh", "fresh", "DECLINEPAYER", "NOFUNDSPAYER", "CHARGEDECLINEPAYER", "CHARGENOFUNDSPAYER")
CURRENCIES = ("USD", "USD", "USD", "EUR")
MAX_ACCOUNTS = 4
# What beat fires as time passes (HOLD-2, SET-2, PAY-2/3, CRED-3, LINK-2/5/6, DEL-5).
BEAT_JOBS = (
    "none", "retry", "release_holds", "settlement_sweep", "overdue", "threshold", "month_end_and_deduction",
    "abandoned", "close_silent", "expire_cards",
)
# Sandbox cards by how often a "special" link picks them: the charging scenarios most.
SPECIAL_WEIGHTED = (
    "4000000000000366", "4000000000000366", "4000000000000366", "4000000000000341", "4000000000000358",
    "4000000000003204", "4000000000007700", *world.SPECIAL_CARDS,
)

index = st.integers(min_value=0, max_value=10_000)
# Hypothesis draws small integers far more often than large ones, so amounts come mostly from a
# list around the thresholds that matter (PayPal's USD 8..500, 100 by default; USD 1,000 for
# cards; the credit limits), with arbitrary cents mixed in.
AMOUNTS = tuple(D(a) for a in ("7.99", "8.00", "40.00", "99.99", "100.00", "250.25", "500.00", "799.99",
                               "999.99", "1000.00", "1000.01", "1200.50", "4999.99"))
cents = st.one_of(st.sampled_from(AMOUNTS), st.integers(min_value=1, max_value=150_000).map(lambda c: D(c) / 100))
small_cents = st.one_of(st.sampled_from(AMOUNTS[:7]), st.integers(min_value=1, max_value=30_000).map(lambda c: D(c) / 100))
replay = st.sampled_from(("new", "new", "new", "same", "other"))
delivery = st.sampled_from(("once", "once", "once", "twice", "drop"))
account_spec = st.fixed_dictionaries({
    "country": st.sampled_from(COUNTRIES),
    "kind": st.sampled_from(("individual", "enterprise")),
    "kyc_required": st.sampled_from((False, False, False, True)),
    "credit_limit": st.sampled_from((None, None, D("800.00"), D("5000.00"))),
    "method": st.sampled_from(("card", "special", "special", "paypal", "none")),
    "special": index,
})

# The tables whose rows a rolled-back "crash" must leave exactly as they were.
DIGEST_TABLES = (
    "payments_account", "payments_paymentmethod", "payments_verificationhold", "payments_threedschallenge",
    "payments_ledgerentry", "payments_bill", "payments_charge", "payments_usagerecord",
    "remittances_creditlimitrequest", "remittances_remittanceaccount", "remittances_bankstatement",
    "remittances_banktransaction", "remittances_remittanceclaim",
)

# What the rules did over a whole run (service outcomes, refusals by code, crashes): printed by
# the test (``pytest -s``) to show that the runs reach deep states, not only refusals.
STATS: Counter[str] = Counter()


def pick(ids, i: int):
    return ids[i % len(ids)] if ids else None


def database_digest() -> tuple:
    sql = " UNION ALL ".join(
        f"SELECT '{table}', md5(COALESCE(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {table} t"
        for table in DIGEST_TABLES
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchall())


def record(what: str) -> None:
    STATS[what] += 1
    event(what)


class BillingMachine(CreditControlRules, MoneyBackRules, RuleBasedStateMachine):
    # Set by the test before the run: the staff users and the broker the tasks are patched to.
    staff: world.Staff
    broker: world.Broker

    def __init__(self) -> None:
        super().__init__()
        world.reset_database()
        simulated.reset()
        self.broker.clear()
        self.now = world.START
        self.seq = 0
        self.accounts: list[int] = []
        self.usage_refs: dict[str, dict] = {}
        self.order_refs: dict[str, dict] = {}
        self.event_refs: dict[str, dict] = {}
        self.files: list[bytes] = []
        self.shared = receiving_account_register(
            number=world.SHARED_IBAN, bank_name="Example Bank", bic="EXBKDEFFXXX", currency="USD", now=self.now
        ).account
        self.ledger = ledger_snapshot()
        self.steps = 0
        self.focus: int | None = None
        self.cc_started = False  # credit_control_rules: set by its initialize step

    def teardown(self) -> None:
        STATS[f"examples of {5 * (self.steps // 5):02d}-{5 * (self.steps // 5) + 4:02d} steps"] += 1

    # -- helpers -------------------------------------------------------------------------------

    def next_ref(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seq}"

    def call(self, service, **kwargs):
        """Run one service call; a BillingError is an expected refusal (returned, not raised)."""
        try:
            result = service(**kwargs)
        except BillingError as error:
            record(f"refused {service.__name__}: {error.code}")
            note(f"{self.now:%m-%d %H:%M} {service.__name__}({_short(kwargs)}) refused: {error.code} ({error.rule})")
            return None, error
        record(f"done {service.__name__}")
        if isinstance(result, int) and not isinstance(result, bool) and result > 0:
            STATS[f"done {service.__name__}: changed something"] += 1
        note(f"{self.now:%m-%d %H:%M} {service.__name__}({_short(kwargs)}) -> {_short_result(result)}")
        return result, None

    def ids(self, queryset) -> list[int]:
        return list(queryset.order_by("pk").values_list("pk", flat=True))

    def account(self, i: int) -> int | None:
        """An account for a rule: often the one the previous rules worked on (``i`` a multiple
        of 3, and Hypothesis favours 0), so that sequences build up on one account (an order,
        then money for it, then its settlement, then a retry) instead of scattering."""
        if self.focus is not None and i % 3 == 0:
            return self.focus
        self.focus = pick(self.accounts, i)
        return self.focus

    @contextmanager
    def crashing(self, target, name: str):
        """Make ``target.name`` kill the worker: calling it raises Crash, which ends the block."""
        def crash(*args, **kwargs):
            raise Crash(f"worker killed in {name}")

        with mock.patch.object(target, name, crash):
            try:
                yield
            except Crash as crashed:
                note(f"{self.now:%m-%d %H:%M} {crashed}")
                record(f"crash in {name}")

    # -- accounts, credit and methods -------------------------------------------------------------

    def open_account(self, *, country, kind, kyc_required, credit_limit, method, special) -> None:
        """ELIG-1 account, optionally credit-approved (CRED-1/2) with a dedicated receiving
        account (REM-1/3), and optionally its first method linked (onboarding in one step)."""
        account, _ = self.call(
            account_services.account_create, name=f"Customer {self.seq}", kind=kind, country=country,
            kyc_status=Account.KycStatus.REQUIRED if kyc_required else "",
        )
        self.accounts.append(account.pk)
        self.focus = account.pk
        if credit_limit is not None:
            request, _ = self.call(
                credit_services.credit_request_submit, account_id=account.pk, requested_limit=credit_limit,
                currency="USD", justification="Monthly invoicing", source=CreditLimitRequest.Source.STAFF,
                recorded_by=self.staff.manager_a, now=self.now,
            )
            if request is not None:
                self.call(credit_services.credit_request_approve, request_id=request.pk, actor=self.staff.manager_b,
                          now=self.now)
                self.call(dedicated_account_issue, account_id=account.pk, actor=self.staff.manager_a, now=self.now)
        if method == "card":
            self.call(cards.card_link, account_id=account.pk, card=world.card(world.fresh_card_number()), now=self.now)
        elif method == "special":
            number = pick(SPECIAL_WEIGHTED, special)
            self.call(cards.card_link, account_id=account.pk, card=world.card(number), now=self.now)
        elif method == "paypal":
            result, _ = self.call(
                paypal.paypal_link, account_id=account.pk, email=f"payer{self.seq}@example.com",
                payer_id=self.next_ref("PAYER"), country=country, now=self.now,
            )
            if result is not None:
                self.call(paypal.paypal_agreement_complete, method_id=result.method.pk, approved=True,
                          has_funding_source=True, now=self.now)

    @initialize(specs=st.lists(account_spec, min_size=1, max_size=2))
    def open_accounts(self, specs):
        for spec in specs:
            self.open_account(**spec)

    # Few accounts per example, so that the steps pile up on the same accounts (deep states:
    # bills, charges, money and claims of one account) instead of spreading over many.
    @precondition(lambda self: len(self.accounts) < MAX_ACCOUNTS)
    @rule(spec=account_spec)
    def create_account(self, spec):
        self.open_account(**spec)

    @precondition(lambda self: self.accounts)
    @rule(i=index, limit=st.sampled_from((D("0.00"), D("300.00"), D("2000.00"))),
          decider=st.sampled_from(("other", "other", "recorder", "reject")))
    def change_credit_limit(self, i, limit, decider):
        """CRED-1/2/3: a new limit, decided by another manager (refused for the recorder), never
        below what the account owes."""
        request, _ = self.call(
            credit_services.credit_request_submit, account_id=self.account(i), requested_limit=limit, currency="USD",
            justification="Review", source=CreditLimitRequest.Source.STAFF, recorded_by=self.staff.manager_a,
            now=self.now,
        )
        if request is None:
            return
        if decider == "reject":
            self.call(credit_services.credit_request_reject, request_id=request.pk, actor=self.staff.manager_b,
                      note="Not now", now=self.now)
            return
        actor = self.staff.manager_a if decider == "recorder" else self.staff.manager_b
        _, refused = self.call(credit_services.credit_request_approve, request_id=request.pk, actor=actor, now=self.now)
        if decider == "recorder":
            assert refused is not None and refused.code == "credit_self_decision", "CRED-2: the recorder decided"
            self.call(credit_services.credit_request_reject, request_id=request.pk, actor=self.staff.manager_b,
                      note="Withdrawn", now=self.now)

    @precondition(lambda self: self.accounts)
    @rule(i=index, special=index, fresh=st.booleans(), short_expiry=st.booleans())
    def link_card(self, i, special, fresh, short_expiry):
        """ELIG-2..5, LINK-1..5, HOLD-1 with the sandbox's approving and declining numbers."""
        number = world.fresh_card_number() if fresh else pick(SPECIAL_WEIGHTED, special)
        # A card expiring in December 2026 expires while the clock runs (DEL-5).
        card = world.card(number, exp_month=12, exp_year=2026 if short_expiry else 2029)
        self.call(cards.card_link, account_id=self.account(i), card=card, now=self.now)

    @rule(i=index, outcome=st.sampled_from(("success", "success", "failure")), twice=st.booleans())
    def complete_3ds(self, i, outcome, twice):
        """LINK-5 / PAY-1: the cardholder answers a pending challenge of a card link or of an
        order (sometimes too late, or twice); an order's success charges its bill again."""
        challenge = pick(self.ids(ThreeDSChallenge.objects.filter(status=ThreeDSChallenge.Status.PENDING)), i)
        if challenge is None:
            return
        for_order = ThreeDSChallenge.objects.for_orders().filter(pk=challenge).exists()
        complete = order_three_ds.order_three_ds_complete if for_order else cards.three_ds_complete
        self.call(complete, challenge_id=challenge, outcome=outcome, now=self.now)
        if twice:
            _, refused = self.call(complete, challenge_id=challenge, outcome=outcome, now=self.now)
            assert refused is not None, "LINK-5 / PAY-1: a challenge was completed twice"

    @precondition(lambda self: self.accounts)
    @rule(i=index, payer=st.sampled_from(PAYERS),
          answer=st.sampled_from(("approve", "approve", "cancel", "nofunding", "later", "answer_open")))
    def link_paypal(self, i, payer, answer):
        """ELIG-2, LINK-1, LINK-6: PayPal with its agreement approved, cancelled, unfunded, left
        open (the abandoned-verification job fails it), or an open one answered now."""
        if answer == "answer_open":
            method = pick(self.ids(PaymentMethod.objects.filter(
                kind=PaymentMethod.Kind.PAYPAL, status=PaymentMethod.Status.PENDING,
                agreement_state=PaymentMethod.AgreementState.NOT_APPROVED)), i)
            if method is not None:
                self.call(paypal.paypal_agreement_complete, method_id=method, approved=True,
                          has_funding_source=True, now=self.now)
            return
        payer_id = self.next_ref("PAYER") if payer == "fresh" else payer
        result, _ = self.call(
            paypal.paypal_link, account_id=self.account(i), email=f"{payer_id.lower()}@example.com",
            payer_id=payer_id, country="US", now=self.now,
        )
        if result is None or answer == "later":
            return
        self.call(
            paypal.paypal_agreement_complete, method_id=result.method.pk, approved=answer != "cancel",
            has_funding_source=answer != "nofunding", now=self.now,
        )

    @rule(i=index, action=st.sampled_from(("make_default", "remove", "deactivate", "deactivate_and_back")))
    def manage(self, i, action):
        """DEF-2 (switch the default), DEL-1..3 (unlink; refused while bills are unpaid), LINK-2
        (deactivate an account: the silent period; the close job ends it)."""
        if action == "make_default":
            method = pick(self.ids(PaymentMethod.objects.filter(status=PaymentMethod.Status.ACTIVE, is_default=False)), i)
            if method is not None:
                self.call(payment_method_make_default, method_id=method)
        elif action == "remove":
            method = pick(self.ids(PaymentMethod.objects.exclude(status=PaymentMethod.Status.REMOVED)), i)
            if method is not None:
                self.call(payment_method_remove, method_id=method, now=self.now)
        elif self.accounts:
            account_id = self.account(i)
            self.call(account_services.account_deactivate, account_id=account_id, now=self.now)
            if action == "deactivate_and_back":
                self.call(account_services.account_reactivate, account_id=account_id, now=self.now)

    # -- the clock and the scheduled jobs ---------------------------------------------------------

    @rule(step=st.sampled_from(CLOCK_STEPS), job=st.sampled_from(BEAT_JOBS), twice=st.booleans(),
          workers=st.sampled_from(("catch_up", "catch_up", "duplicates", "lose_one", "stalled")))
    def time_passes(self, step, job, twice, workers):
        """The workers work off the queue (delivering each message once, some twice, losing one,
        or not at all), the clock moves on and beat fires one of its jobs (sometimes twice in
        one window: the second run changes nothing)."""
        if workers != "stalled" and len(self.broker):
            if workers == "lose_one":
                note(f"message lost: {self.broker.take(0)}")
                record("message lost")
            self.work_off_queue(twice=workers == "duplicates")
        self.now += step
        note(f"clock -> {self.now:%Y-%m-%d %H:%M}")
        if job == "release_holds":
            self.release_holds(mode="twice" if twice else "run", batch=2, i=0)
        elif job == "settlement_sweep":
            self.settle(i=0, mode="sweep")
        elif job in ("threshold", "month_end_and_deduction", "retry"):
            self.charging_jobs(job=job, twice=twice, i=0)
        elif job != "none":
            service = {
                "overdue": bill_services.bills_mark_overdue,  # CRED-3
                "abandoned": lifecycle.verifications_fail_abandoned,  # LINK-5, LINK-6
                "close_silent": lifecycle.accounts_close_silent,  # LINK-2
                "expire_cards": lifecycle.cards_expire,  # DEL-5
            }[job]
            self.call(service, now=self.now)
            if twice:
                again, _ = self.call(service, now=self.now)
                assert again == 0, f"{job}: a second run in the same window changed something"
            if job == "overdue":
                self._check_overdue()

    def _check_overdue(self) -> None:
        """CRED-3 after the overdue job: no unpaid bill past its due date is left open."""
        today = self.now.date()
        late = self.ids(Bill.objects.filter(status__in=(Bill.Status.OPEN, Bill.Status.PARTIALLY_PAID),
                                            due_date__lt=today))
        assert not late, f"CRED-3: unpaid bills past their due date not marked overdue: {late}"

    # -- holds (HOLD-2, I4) ------------------------------------------------------------------------

    def _due_holds(self) -> set[int]:
        lease_free = VerificationHold.objects.filter(lease_token__isnull=True) | VerificationHold.objects.filter(
            lease_expires_at__lte=self.now
        )
        return set(
            lease_free.filter(status__in=holds.DUE_STATUSES, release_after__lte=self.now).values_list("pk", flat=True)
        )

    def _release_run(self, batch: int) -> None:
        """HOLD-2: every hold that was due is released by a run or failed in it; only a failure
        may stop a run before the rest (the gateway is likely down)."""
        due = self._due_holds()
        attempts_before = dict(VerificationHold.objects.filter(pk__in=due).values_list("pk", "release_attempts"))
        self.call(holds.holds_release_due, now=self.now, batch_size=batch)
        after = {h.pk: h for h in VerificationHold.objects.filter(pk__in=due)}
        failed = {pk for pk, h in after.items() if h.release_attempts > attempts_before[pk]}
        left = {pk for pk, h in after.items() if h.status != VerificationHold.Status.RELEASED and pk not in failed}
        assert not left or failed, f"HOLD-2: due holds left unreleased by a run without failures: {left}"

    @rule(mode=st.sampled_from(("run", "twice", "crash", "one")), batch=st.integers(min_value=1, max_value=4), i=index)
    def release_holds(self, mode, batch, i):
        """HOLD-2 / I4: the release job (sometimes delivered twice); a run killed after the gateway
        voided and before the holds were marked (the batch stays leased; after the lease a later
        run voids again with the same keys, and the processor voids nothing twice); or staff's
        "release now" of one hold (refused while a run holds the lease)."""
        if mode == "crash":
            with self.crashing(holds, "_mark_released"):
                holds.holds_release_due(now=self.now, batch_size=batch)
        elif mode == "one":
            hold = pick(self.ids(VerificationHold.objects.all()), i)
            if hold is not None:
                self.call(holds.hold_release, hold_id=hold, now=self.now)
        else:
            for _ in range(2 if mode == "twice" else 1):
                self._release_run(batch)

    # -- usage, orders and charges (PAY-1..6, HOLD-4, CRED-3) ------------------------------------

    @precondition(lambda self: self.accounts)
    @rule(i=index, amount=cents, currency=st.sampled_from(CURRENCIES), previous_month=st.booleans(), mode=replay,
          j=index)
    def report_usage(self, i, amount, currency, previous_month, mode, j):
        """PAY-2: console usage, idempotent by reference; a replay returns the first record and a
        replay with other figures is refused (I2)."""
        if mode != "new" and self.usage_refs:
            reference = pick(sorted(self.usage_refs), j)
            first = self.usage_refs[reference]
            figures = dict(first["figures"])
            if mode == "other":
                figures["amount"] += D("1.00")
            result, refused = self.call(usage.usage_record, reference=reference, now=self.now, **figures)
            if mode == "same":
                assert result is not None and not result.created and result.record.pk == first["id"], "I2: usage replay"
            else:
                assert refused is not None and refused.code == "usage_reference_reused", "I2: usage reused"
            return
        figures = dict(
            account_id=self.account(i), amount=amount, currency=currency,
            period=world.previous_period(self.now) if previous_month else world.current_period(self.now),
        )
        reference = self.next_ref("usage")
        result, _ = self.call(usage.usage_record, reference=reference, now=self.now, **figures)
        if result is not None:
            self.usage_refs[reference] = {"figures": figures, "id": result.record.pk}

    @precondition(lambda self: self.accounts)
    @rule(i=index, amount=cents, kind=st.sampled_from(("purchase", "upgrade", "renewal")), mode=replay, j=index)
    def place_order(self, i, amount, kind, mode, j):
        """PAY-1 / CRED-3: an order becomes a bill charged at once (credit accounts: within the
        limit, never charged); the same reference twice is one bill and one charge (I2)."""
        if mode != "new" and self.order_refs:
            reference = pick(sorted(self.order_refs), j)
            first = self.order_refs[reference]
            figures = dict(first["figures"])
            if mode == "other":
                figures["amount"] += D("1.00")
            charges_before = Charge.objects.filter(bill_id=first["bill"]).count()
            result, refused = self.call(orders.order_place, reference=reference, now=self.now, **figures)
            if mode == "same":
                assert result is not None and not result.created and result.bill.pk == first["bill"], "I2: order replay"
                assert Charge.objects.filter(bill_id=first["bill"]).count() == charges_before, "I2: order charged again"
            else:
                assert refused is not None and refused.code == "order_reference_reused", "I2: order reused"
            return
        figures = dict(account_id=self.account(i), kind=kind, amount=amount, currency="USD")
        reference = self.next_ref("order")
        result, _ = self.call(orders.order_place, reference=reference, now=self.now, **figures)
        if result is not None:
            self.order_refs[reference] = {"figures": figures, "bill": result.bill.pk}

    @rule(job=st.sampled_from(("threshold", "month_end", "month_end_and_deduction", "retry", "crash_after_charge")),
          twice=st.booleans(), i=index)
    def charging_jobs(self, job, twice, i):
        """PAY-2 threshold scan, PAY-3 month-end bills and deduction (for last month), bounded
        retries; each delivered twice creates nothing the second time. ``crash_after_charge``:
        the worker dies after the gateway charged and before the outcome is written; the message
        is delivered again (acks late) and the same key finds the first charge."""
        if job == "threshold":
            self.call(scheduled_charging.threshold_charges_run, now=self.now)
            if twice:
                again, _ = self.call(scheduled_charging.threshold_charges_run, now=self.now)
                assert again == 0, "PAY-2: a second threshold run charged again"
        elif job.startswith("month_end"):
            period = world.previous_period(self.now)
            for run in range(2 if twice else 1):
                created, _ = self.call(monthly_bills_generate, period=period, now=self.now)
                assert not run or created == 0, "PAY-3: a second month-end run created bills"
                if job == "month_end_and_deduction":
                    charged, _ = self.call(scheduled_charging.month_end_deduction_run, period=period, now=self.now)
                    assert not run or charged == 0, "PAY-3: a second deduction created charges"
        elif job == "retry":
            self.call(scheduled_charging.charges_retry_failed, now=self.now)
        else:
            charge = pick(self.ids(Charge.objects.filter(status=Charge.Status.PENDING)), i)
            if charge is None:
                return
            with self.crashing(charge_execution, "_charge_succeed"):
                charge_execution.charge_execute(charge_id=charge, now=self.now)
            self.broker.sender("payments.execute_charge")(charge_id=charge)

    # -- Celery: the worker -----------------------------------------------------------------------

    @precondition(lambda self: len(self.broker))
    @rule(i=index, mode=delivery)
    def deliver(self, i, mode):
        """One queued message, delivered once, twice (duplicate delivery) or lost."""
        message = self.broker.take(i)
        if mode == "drop":
            note(f"message lost: {message}")
            record("message lost")
            return
        for _ in range(2 if mode == "twice" else 1):
            self.run_task(message)

    def work_off_queue(self, *, twice: bool = False) -> None:
        """The workers catch up with the queue (messages sent meanwhile included)."""
        for _ in range(50):
            if not len(self.broker):
                return
            message = self.broker.take(0)
            for _ in range(2 if twice else 1):
                self.run_task(message)

    def run_task(self, message: world.Message) -> None:
        record(f"delivered {message.task}")
        kwargs = message.kwargs
        if message.task == "payments.execute_charge":
            self.call(charge_execution.charge_execute, charge_id=kwargs["charge_id"], now=self.now)
        elif message.task == "payments.place_paypal_preauth":
            self.call(usage.paypal_preauth_place, account_id=kwargs["account_id"], now=self.now)
        elif message.task == "payments.settle_account":
            self.call(settlement.settle_accounts, account_ids=[kwargs["account_id"]], now=self.now)
        elif message.task == "payments.settle_chunk":
            self.call(settlement.settle_accounts, account_ids=kwargs["account_ids"], now=self.now)
        elif message.task == "payments.generate_monthly_bills_chunk":
            chunk = AccountChunk(kwargs["first_account_id"], kwargs["last_account_id"])
            self.call(monthly_bills_generate_chunk, period=kwargs["period"], now=self.now, chunk=chunk)
        elif not self.run_notification_task(message):  # pragma: no cover - a task the machine does not know yet
            raise AssertionError(f"unknown task {message.task}")

    # -- money in and out of the ledger -------------------------------------------------------------

    @precondition(lambda self: self.accounts)
    @rule(i=index, amount=cents, currency=st.sampled_from(CURRENCIES), mode=replay, j=index,
          debit=st.sampled_from((False, False, False, True)))
    def ledger_event(self, i, amount, currency, mode, j, debit):
        """I2: a credit event posted through ``ledger_post`` with the settlement it asks for; the
        same event again posts nothing, other figures under its reference are refused.
        ``debit``: I3, a debit may take the balance to minus the approved credit limit, not below."""
        if debit:
            self.call(ledger_post, account_id=self.account(i), amount=-(amount / 5).quantize(D("0.01")) - D("0.01"),
                      currency="USD", kind=LedgerEntry.Kind.ADJUSTMENT, reference=self.next_ref("debit"), now=self.now)
            return
        if mode != "new" and self.event_refs:
            reference = pick(sorted(self.event_refs), j)
            figures = dict(self.event_refs[reference])
            if mode == "other":
                figures["amount"] += D("0.01")
        else:
            mode = "new"
            reference = self.next_ref("event")
            figures = dict(account_id=self.account(i), amount=amount, currency=currency)

        def credit(**kwargs):
            with transaction.atomic():
                posting = ledger_post(kind=LedgerEntry.Kind.ADJUSTMENT, **kwargs)
                settlement.settlement_request(account_id=kwargs["account_id"])
                return posting

        posting, refused = self.call(credit, reference=reference, now=self.now, memo="credit event", **figures)
        if mode == "new":
            if posting is not None:
                self.event_refs[reference] = figures
        elif mode == "same":
            assert posting is not None and not posting.created, "I2: a replayed credit event posted again"
        else:
            assert refused is not None and refused.code == "reference_reused", "I2: a reused credit reference"

    @rule(i=index, shared=st.booleans(), amounts=st.lists(small_cents, min_size=1, max_size=3),
          debit=st.sampled_from((None, None, D("5.00"))),
          again=st.sampled_from(("no", "no", "same_bytes", "resent", "old_file")))
    def import_statement(self, i, shared, amounts, debit, again):
        """REM-1/2/4/5: a camt.053 day on a dedicated account (credited at once) or the shared one
        (waiting for claims); the same file again, the statement re-sent in other bytes, or an
        older file arriving again, adds nothing and moves no money."""
        if again == "old_file" and self.files:
            self._reimport(pick(self.files, i))
            return
        if shared:
            iban = self.shared.number
        else:
            iban = pick(list(RemittanceAccount.objects.filter(kind=RemittanceAccount.Kind.DEDICATED)
                             .order_by("pk").values_list("number", flat=True)), i)
            if iban is None:
                return
        statement_id = self.next_ref("STMT")
        credits = [(f"{statement_id}-{n}", amount) for n, amount in enumerate(amounts, start=1)]
        data = world.camt053(iban=iban, statement_id=statement_id, credits=credits, day=self.now, debit=debit)
        summary, _ = self.call(statement_import, data=data, file_name=f"{statement_id}.xml", now=self.now)
        if summary is None:
            return
        self.files.append(data)
        if again in ("same_bytes", "resent"):
            self._reimport(data if again == "same_bytes" else data + b"\n")

    def _reimport(self, data: bytes) -> None:
        before = ledger_snapshot()
        summary, _ = self.call(statement_import, data=data, file_name="again.xml", now=self.now)
        assert summary is not None and summary.duplicates == summary.entries, "REM-4: a re-import added lines"
        assert ledger_snapshot() == before, "REM-4: a re-imported statement moved money"

    # -- claims (CLM-1..4) ---------------------------------------------------------------------------

    def _unmatched(self) -> list[int]:
        return self.ids(BankTransaction.objects.filter(
            status=BankTransaction.Status.UNMATCHED, receiving_account__kind=RemittanceAccount.Kind.NON_DEDICATED))

    @precondition(lambda self: self.accounts)
    @rule(i=index, t=index, source=st.sampled_from(("console", "staff", "wrong_amount")),
          then=st.sampled_from(("approve", "review", "stop")),
          reviewer=st.sampled_from(("manager_a", "manager_b", "finance_b")),
          approver=st.sampled_from(("finance_a", "finance_b", "manager_a")), twice=st.booleans())
    def claim_flow(self, i, t, source, then, reviewer, approver, twice):
        """CLM-1..3: a claim for a shared-account transfer (the customer's, matched by reference,
        or the manager's), then reviewed and approved by other people (four eyes: finance_b may
        review, and then not approve; managers may not approve). An approval delivered twice
        credits once."""
        txn_id = pick(self._unmatched(), t)
        if txn_id is None:
            return
        txn = BankTransaction.objects.get(pk=txn_id)
        if source == "staff":
            claim, _ = self.call(
                claim_services.claim_submit, account_id=self.account(i), amount=txn.amount, currency=txn.currency,
                bank_transaction_id=txn.pk, source=RemittanceClaim.Source.STAFF, initiated_by=self.staff.manager_a,
                now=self.now)
        else:
            amount = txn.amount + (D("1.00") if source == "wrong_amount" else 0)
            claim, _ = self.call(
                claim_services.claim_submit, account_id=self.account(i), amount=amount, currency=txn.currency,
                bank_reference=txn.bank_reference, source=RemittanceClaim.Source.CONSOLE, now=self.now)
        if claim is None or then == "stop":
            return
        reviewed, _ = self.call(claim_services.claim_review, claim_id=claim.pk, actor=getattr(self.staff, reviewer),
                                now=self.now)
        if reviewed is not None and then == "approve":
            self._approve(claim.pk, approver, twice)

    def _approve(self, claim_id: int, approver: str, twice: bool) -> None:
        approved, _ = self.call(claim_services.claim_approve, claim_id=claim_id, actor=getattr(self.staff, approver),
                                now=self.now)
        if approved is not None and twice:
            before = ledger_snapshot()
            again, _ = self.call(claim_services.claim_approve, claim_id=claim_id, actor=self.staff.finance_b,
                                 now=self.now)
            assert again is not None and again.status == RemittanceClaim.Status.APPROVED, "CLM-2: approval replay"
            assert ledger_snapshot() == before, "CLM-2: a replayed approval credited again"

    @rule(c=index, t=index, action=st.sampled_from(("approve", "review", "attach", "reject")),
          actor=st.sampled_from(("finance_a", "finance_b", "manager_a", "manager_b")), twice=st.booleans())
    def work_claim(self, c, t, action, actor, twice):
        """CLM-1..4 on a claim already open: attach its transfer, review, approve (four eyes) or
        reject with a reason (frees the transaction, credits nothing)."""
        if action == "approve":
            claim = pick(self.ids(RemittanceClaim.objects.filter(status=RemittanceClaim.Status.REVIEWED)), c)
            if claim is not None:
                self._approve(claim, actor, twice)
        elif action == "review":
            claim = pick(self.ids(RemittanceClaim.objects.filter(status=RemittanceClaim.Status.SUBMITTED)), c)
            if claim is not None:
                self.call(claim_services.claim_review, claim_id=claim, actor=getattr(self.staff, actor), now=self.now)
        elif action == "attach":
            claim = pick(self.ids(RemittanceClaim.objects.filter(status=RemittanceClaim.Status.SUBMITTED,
                                                                   bank_transaction__isnull=True)), c)
            txn = pick(self._unmatched(), t)
            if claim is not None and txn is not None:
                self.call(claim_services.claim_attach, claim_id=claim, bank_transaction_id=txn,
                          actor=getattr(self.staff, actor), now=self.now)
        else:
            claim = pick(self.ids(RemittanceClaim.objects.filter(status__in=RemittanceClaim.OPEN_STATUSES)), c)
            if claim is not None:
                self.call(claim_services.claim_reject, claim_id=claim, actor=getattr(self.staff, actor),
                          reason="Not this customer's transfer", now=self.now)

    # -- settlement (SET-1..4) ---------------------------------------------------------------------

    def _settle_entries(self, account_ids) -> int:
        return LedgerEntry.objects.filter(account_id__in=account_ids, reference__startswith="settle:").count()

    def _check_settled(self, account_ids) -> None:
        """SET-2 after a run: an account with settlement on has no money left in a currency in
        which it still has an unpaid bill."""
        on = list(Account.objects.filter(pk__in=account_ids, auto_settlement_enabled=True).values_list("pk", flat=True))
        unpaid = set(Bill.objects.filter(account_id__in=on, status__in=Bill.UNPAID_STATUSES)
                     .values_list("account_id", "currency").distinct())
        idle = [(a, c, account_balance(account_id=a, currency=c)) for a, c in sorted(unpaid)]
        idle = [row for row in idle if row[2] > 0]
        assert not idle, f"SET-2: money left on accounts with unpaid bills after settlement: {idle}"

    @precondition(lambda self: self.accounts)
    @rule(i=index, mode=st.sampled_from(("one", "all", "twice", "sweep", "crash")))
    def settle(self, i, mode):
        """SET-2/4: settle one account or all (a second run pays nothing); the sweep finds what
        lost messages left unpaid; SET-1: accounts with settlement off are not touched; a worker
        killed between the ledger insert and the bill update leaves nothing (the chunk rolls back
        whole) and its message is delivered again."""
        if mode == "crash":
            account_id = self.account(i)
            before = database_digest()
            with self.crashing(settlement, "_after_insert"):
                settlement.settle_accounts(account_ids=[account_id], now=self.now)
            assert database_digest() == before, "SET-4: a crashed settlement left rows behind"
            self.broker.sender("payments.settle_account")(account_id=account_id)
            return
        if mode == "sweep":
            account_ids = settlement.settlement_due_account_ids()
        else:
            account_ids = [self.account(i)] if mode == "one" else list(self.accounts)
        off = list(Account.objects.filter(pk__in=account_ids, auto_settlement_enabled=False).values_list("pk", flat=True))
        off_before = self._settle_entries(off)
        self.call(settlement.settle_accounts, account_ids=account_ids, now=self.now)
        self._check_settled(account_ids)
        assert self._settle_entries(off) == off_before, "SET-1: settlement paid bills of an account with it off"
        if mode == "twice":
            again, _ = self.call(settlement.settle_accounts, account_ids=account_ids, now=self.now)
            assert again.payments == 0, "SET-4: a second settlement paid again"

    @rule(b=index, actor=st.sampled_from(("finance_a", "finance_b")), switch_off_first=st.booleans())
    def pay_bill_manually(self, b, actor, switch_off_first):
        """SET-3: finance pays a bill from the balance where settlement is off (else refused)."""
        bill = pick(self.ids(Bill.objects.filter(status__in=Bill.UNPAID_STATUSES)), b)
        if bill is None:
            return
        if switch_off_first:
            account_id = Bill.objects.get(pk=bill).account_id
            self.call(bill_services.settlement_switch, account_id=account_id, enabled=False,
                      actor=self.staff.finance_a, now=self.now)
        self.call(bill_services.bill_pay_manual, bill_id=bill, actor=getattr(self.staff, actor), now=self.now)

    @precondition(lambda self: self.accounts)
    @rule(i=index, enabled=st.booleans())
    def switch_settlement(self, i, enabled):
        """SET-1: finance switches automatic settlement off or on (on asks for a settlement)."""
        self.call(bill_services.settlement_switch, account_id=self.account(i), enabled=enabled,
                  actor=self.staff.finance_a, now=self.now)

    # -- crashes inside a transaction, and bad input at the edge ---------------------------------

    @precondition(lambda self: self.accounts)
    @rule(i=index, what=st.sampled_from(("credit", "settle", "approve", "import", "usage", "month", "pay", "overdue")),
          amount=small_cents)
    def crash_inside_transaction(self, i, what, amount):
        """A service runs inside ``transaction.atomic`` and the process dies right after it:
        nothing it wrote survives and nothing it enqueued is sent."""
        account_id = self.account(i)
        before, queued = database_digest(), len(self.broker)
        try:
            with transaction.atomic():
                if what == "credit":
                    ledger_post(account_id=account_id, amount=amount, currency="USD",
                                kind=LedgerEntry.Kind.ADJUSTMENT, reference=self.next_ref("crash"), now=self.now)
                    settlement.settlement_request(account_id=account_id)
                elif what == "settle":
                    settlement.settle_accounts(account_ids=list(self.accounts), now=self.now)
                elif what == "approve":
                    claim = pick(self.ids(RemittanceClaim.objects.filter(status=RemittanceClaim.Status.REVIEWED)), i)
                    if claim is not None:
                        claim_services.claim_approve(claim_id=claim, actor=self.staff.finance_a, now=self.now)
                elif what == "import":
                    statement_id = self.next_ref("STMT")
                    statement_import(data=world.camt053(
                        iban=self.shared.number, statement_id=statement_id,
                        credits=[(f"{statement_id}-1", amount)], day=self.now), now=self.now)
                elif what == "usage":
                    usage.usage_record(account_id=account_id, amount=amount, currency="USD",
                                          period=world.current_period(self.now), reference=self.next_ref("usage"),
                                          now=self.now)
                elif what == "month":
                    monthly_bills_generate(period=world.previous_period(self.now), now=self.now)
                elif what == "pay":
                    bill = pick(self.ids(Bill.objects.filter(status__in=Bill.UNPAID_STATUSES)), i)
                    if bill is not None:
                        bill_services.bill_pay_manual(bill_id=bill, actor=self.staff.finance_a, now=self.now)
                else:
                    bill_services.bills_mark_overdue(now=self.now)
                raise Crash(f"process killed after {what}")
        except (Crash, BillingError) as stopped:
            note(f"{self.now:%m-%d %H:%M} crash inside a transaction: {stopped}")
            record(f"rolled back {what}: {type(stopped).__name__}")
        assert database_digest() == before, f"a rolled-back {what} left rows behind"
        assert len(self.broker) == queued, f"a rolled-back {what} enqueued tasks"

    @rule(what=st.sampled_from(("usage_float", "usage_3dp", "order_3dp", "ledger_float", "claim_3dp", "credit_float")),
          i=index)
    def bad_amount_at_the_edge(self, what, i):
        """I6: floats and more than two decimals are refused before anything is written."""
        account_id = self.account(i) or 0
        before = database_digest()
        attempts = {
            "usage_float": lambda: usage.usage_record(
                account_id=account_id, amount=12.5, currency="USD", period=world.current_period(self.now),
                reference=self.next_ref("bad"), now=self.now),
            "usage_3dp": lambda: usage.usage_record(
                account_id=account_id, amount="12.505", currency="USD", period=world.current_period(self.now),
                reference=self.next_ref("bad"), now=self.now),
            "order_3dp": lambda: orders.order_place(
                account_id=account_id, kind="purchase", amount=D("9.999"), currency="USD",
                reference=self.next_ref("bad"), now=self.now),
            "ledger_float": lambda: ledger_post(
                account_id=account_id, amount=0.1, currency="USD", kind=LedgerEntry.Kind.ADJUSTMENT,
                reference=self.next_ref("bad"), now=self.now),
            "claim_3dp": lambda: claim_services.claim_submit(
                account_id=account_id, amount="10.001", currency="USD", source=RemittanceClaim.Source.CONSOLE,
                now=self.now),
            "credit_float": lambda: credit_services.credit_request_submit(
                account_id=account_id, requested_limit=100.5, currency="USD", justification="x",
                source=CreditLimitRequest.Source.CONSOLE, now=self.now),
        }
        try:
            attempts[what]()
        except BillingError as refused:
            assert refused.rule == "I6", f"I6: {what} refused for another reason: {refused.code}"
        else:
            raise AssertionError(f"I6: {what} was accepted")
        assert database_digest() == before, f"I6: the refused {what} wrote rows"

    # -- after every step ------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self):
        self.steps += 1
        assert_all_invariants(processor=simulated.PROCESSOR)
        self.ledger = assert_ledger_append_only(self.ledger)
        # CRED-3: a bill is overdue only after its due date (the clock only moves forward).
        early = self.ids(Bill.objects.filter(status=Bill.Status.OVERDUE, due_date__gte=self.now.date()))
        assert not early, f"CRED-3: bills overdue before their due date: {early}"


def _short(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in ("now", "data", "card", "actor"))[:160]


def _short_result(result) -> str:
    if hasattr(result, "pk"):
        return f"{type(result).__name__}#{result.pk} {getattr(result, 'status', '')}"
    return repr(result)[:120]

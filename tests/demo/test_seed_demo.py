"""``manage.py seed_demo``: idempotent, deterministic demo data that obeys the rules it shows,
billing and remittances included (I1..I6 checked with ``tests.payments.invariants``)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.urls import reverse
from django.utils import timezone

from billing_backoffice.logging import card_numbers_in
from billing_backoffice.dashboard import billing_dashboard
from billing_backoffice.demo import seed as demo
from payments import eligibility
from payments.tasks.billing import previous_period
from billing_backoffice.demo.profiles import CYCLE, Profile, billing_profile
from billing_backoffice.demo.seed_money_back import MARKER as MONEY_BACK
from payments.eligibility import Region
from payments.gateways import simulated
from payments.models import (
    Account, Bill, Charge, LedgerEntry, LinkAttempt, PaymentMethod, ThreeDSChallenge, UsageRecord, VerificationHold,
)
from payments.services import (
    bill_pay_manual, bills_mark_overdue, charges_retry_failed, month_end_deduction_run, monthly_bills_generate,
    settlement_due_account_ids, threshold_charges_run,
)
from payments.services.ledger import account_balance
from remittances.models import BankStatement, BankTransaction, CreditLimitRequest, RemittanceAccount, RemittanceClaim
from tests.payments.invariants import assert_all_invariants, assert_gateway_charge_invariants

pytestmark = pytest.mark.django_db

MODELS = (
    Account, PaymentMethod, VerificationHold, ThreeDSChallenge, LinkAttempt, UsageRecord, Bill, Charge, LedgerEntry,
    CreditLimitRequest, RemittanceAccount, BankStatement, BankTransaction, RemittanceClaim, LogEntry,
)


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def snapshot() -> dict:
    """Every column of every demo row (and the demo users), to compare two states exactly."""
    User = get_user_model()
    state = {model.__name__: sorted(model.objects.values_list(), key=repr) for model in MODELS}
    state["users"] = sorted(
        User.objects.filter(username__in=demo.DEMO_USERS).values_list(
            "username", "password", "is_staff", "is_superuser", "groups__name"
        )
    )
    return state


def test_seed_demo_twice_creates_and_changes_nothing_the_second_time():
    first_output = seed()
    first = snapshot()
    second_output = seed()

    assert snapshot() == first
    assert Account.objects.filter(uid__startswith=demo.UID_PREFIX).count() == demo.ACCOUNT_COUNT == 300
    assert "300 accounts created, 0 already present" in first_output
    assert "0 accounts created, 300 already present" in second_output
    assert "billing history made for 0 accounts" in second_output
    assert not re.search(r"billing history made for 0 accounts", first_output)
    for label, model in (
        ("payment methods", PaymentMethod), ("link attempts", LinkAttempt), ("usage records", UsageRecord),
        ("bills", Bill), ("charges", Charge), ("ledger entries", LedgerEntry), ("remittance claims", RemittanceClaim),
        ("credit applications", CreditLimitRequest), ("bank statements", BankStatement),
        ("bank transactions", BankTransaction), ("remittance accounts", RemittanceAccount),
    ):
        count = model.objects.count()
        assert count > 0, label
        assert re.search(rf"{label}\s+{count}\b", second_output), label


def test_seed_demo_fills_in_accounts_that_are_missing_without_touching_the_rest(now):
    first = demo.seed_demo(now=now, password="pw-one", count=40)
    before = snapshot()
    result = demo.seed_demo(now=now + timedelta(days=3), password="pw-one", count=50)

    assert (result.created_accounts, result.existing_accounts) == (10, 40)
    stories = [i for i in range(50) if billing_profile(i) != Profile.NONE]
    assert (first.billing_histories, result.billing_histories) == (
        len([i for i in stories if i < 40]), len([i for i in stories if i >= 40])) != (0, 0)
    after = snapshot()
    for model in MODELS:
        assert set(map(repr, before[model.__name__])) <= set(map(repr, after[model.__name__])), model
    assert Account.objects.count() == 50
    assert_all_invariants()


def test_seed_demo_is_the_same_data_every_time(now):
    """A fixed seed per account: seeding again at the same ``now`` (after rolling the first
    seed back: the ledger refuses deletes, I1) rebuilds identical rows, ids, the processor's
    random references and the random dedicated account numbers aside."""

    def content():
        accounts = Account.objects.prefetch_related(
            "payment_methods", "holds", "link_attempts", "usage_records", "bills", "charges", "ledger_entries",
            "credit_requests", "remittance_claims",
        )
        return sorted(
            (a.uid, a.name, a.country, a.status, a.kyc_status, str(a.created_at), a.credit_approved, a.credit_limit,
             a.auto_settlement_enabled, a.has_outstanding_bills,
             tuple(sorted((m.kind, m.status, m.is_default, m.last4, m.fingerprint, m.network, m.gateway_token,
                           m.paypal_payer_id, m.failure_reason, str(m.activated_at)) for m in a.payment_methods.all())),
             tuple(sorted((h.status, PROCESSOR_ID.sub("", h.authorization_id), str(h.placed_at))
                          for h in a.holds.all())),
             tuple(sorted((t.outcome, t.reason, t.kind, t.last4, str(t.created_at)) for t in a.link_attempts.all())),
             tuple(sorted((u.reference, u.amount, u.status, str(u.reported_at)) for u in a.usage_records.all())),
             tuple(sorted((b.kind, b.status, b.total, b.amount_paid, b.currency, str(b.issued_at), str(b.due_date))
                          for b in a.bills.all())),
             tuple(sorted((c.kind, c.status, c.failure_reason, c.amount, str(c.created_at)) for c in a.charges.all())),
             tuple(sorted((e.kind, e.amount, e.currency, str(e.created_at)) for e in a.ledger_entries.all())),
             tuple(sorted((r.status, r.source, r.requested_limit, str(r.submitted_at)) for r in a.credit_requests.all())),
             tuple(sorted((c.status, c.source, c.amount, str(c.submitted_at)) for c in a.remittance_claims.all())))
            for a in accounts
        )

    with transaction.atomic():
        demo.seed_demo(now=now, password="pw", count=60)
        first = content()
        transaction.set_rollback(True)
    assert not Account.objects.exists()
    demo.seed_demo(now=now, password="pw", count=60)

    assert content() == first
    assert Bill.objects.exists() and RemittanceClaim.objects.exists()


def test_elig_1_seed_demo_covers_all_five_regions_and_both_kinds():
    seed()
    regions = Counter(Account.objects.values_list("region", flat=True))
    assert set(regions) == set(Region.values)
    assert min(regions.values()) >= 50
    for account in Account.objects.only("country", "region"):
        assert account.region == eligibility.region_for_country(str(account.country))
    assert set(Account.objects.values_list("kind", flat=True)) == set(Account.Kind.values)
    assert set(Account.objects.values_list("kyc_status", flat=True)) == set(Account.KycStatus.values)


def test_link_2_seed_demo_has_every_account_state_with_consistent_methods(now, settings):
    seed()
    silent_start = Account.objects.filter(status=Account.Status.DEACTIVATED).values_list("deactivated_at", flat=True)
    cutoff = timezone.now() - settings.ACCOUNT_SILENT_PERIOD
    assert Account.objects.filter(status=Account.Status.ACTIVE).exists()
    assert any(t > cutoff for t in silent_start), "deactivated, still inside its silent period"
    assert any(t < cutoff for t in silent_start), "deactivated, silent period over (close job pending)"
    closed = Account.objects.filter(status=Account.Status.CLOSED)
    assert closed.exists()
    # LINK-2: closing released every method; inside the silent period methods stay linked.
    assert not PaymentMethod.objects.filter(account__in=closed).exclude(status__in=["removed", "failed"]).exists()
    assert PaymentMethod.objects.filter(
        account__status=Account.Status.DEACTIVATED, status__in=PaymentMethod.LIVE_STATUSES
    ).exists()


def test_seed_demo_has_every_payment_method_status_and_the_pending_kinds():
    seed()
    statuses = set(PaymentMethod.objects.values_list("status", flat=True))
    assert statuses == set(PaymentMethod.Status.values)
    pending = PaymentMethod.objects.filter(status=PaymentMethod.Status.PENDING)
    # LINK-5: a pending card waits on a pending 3DS challenge; LINK-6: PayPal on its agreement.
    assert ThreeDSChallenge.objects.filter(status="pending", payment_method__in=pending).exists()
    assert not pending.filter(kind="card").exclude(three_ds_challenges__status="pending").exists()
    assert pending.filter(kind="paypal", agreement_state=PaymentMethod.AgreementState.NOT_APPROVED).exists()
    assert PaymentMethod.objects.filter(status="active", is_default=True).exists()
    assert PaymentMethod.objects.filter(status="active", is_default=False).exists()
    failure_reasons = set(PaymentMethod.objects.filter(status="failed").values_list("failure_reason", flat=True))
    assert {"issuer_declined", "insufficient_funds", "three_ds_not_completed", "agreement_not_approved"} <= failure_reasons


def test_link_7_seed_demo_has_every_link_attempt_reason_and_outcome():
    seed()
    assert set(LinkAttempt.objects.exclude(reason="").values_list("reason", flat=True)) == set(LinkAttempt.Reason.values)
    assert set(LinkAttempt.objects.values_list("outcome", flat=True)) == set(LinkAttempt.Outcome.values)
    # Every method that was ever created has its attempts; a refusal names its rule.
    assert not PaymentMethod.objects.filter(link_attempts__isnull=True).exists()
    assert not LinkAttempt.objects.filter(outcome="rejected", rule="").exclude(reason="gateway_error").exists()


def test_hold_2_seed_demo_has_every_hold_status_each_released_within_24_hours():
    seed()
    t = timezone.now()
    holds = VerificationHold.objects.all()
    assert set(holds.values_list("status", flat=True)) == set(VerificationHold.Status.values)
    assert holds.filter(status="placed", release_after__lte=t).exists(), "placed and due"
    assert holds.filter(status="placed", release_after__gt=t).exists(), "placed, not yet due"
    for hold in holds:
        assert hold.release_deadline == hold.placed_at + timedelta(hours=24)
        assert hold.placed_at <= hold.release_after < hold.release_deadline
        if hold.status == "released":
            assert hold.placed_at < hold.released_at <= hold.release_deadline
        else:
            assert hold.release_deadline > t  # nothing outstanding is already late
    # HOLD-3: every active or expired method went through its hold; a failed one never did.
    assert not PaymentMethod.objects.filter(status__in=["active", "expired"], holds__isnull=True).exists()
    assert not VerificationHold.objects.filter(payment_method__status__in=["failed", "pending"]).exists()


def test_elig_2_no_seeded_card_or_paypal_outside_the_regions_that_allow_it():
    seed()
    methods = PaymentMethod.objects.select_related("account")
    for method in methods.filter(kind="card"):
        assert eligibility.card_network_allowed(method.account.region, method.network), (
            method.account.region, method.network)
    for method in methods.filter(kind="paypal"):
        assert eligibility.paypal_allowed(method.account.region), method.account.region
    # The data shows ELIG-2 from both sides: JCB only in OTHER, Amex nowhere in Malaysia.
    networks = set(methods.filter(kind="card").values_list("account__region", "network"))
    assert (Region.OTHER, "jcb") in networks and (Region.MY, "amex") not in networks
    assert LinkAttempt.objects.filter(reason="unsupported_region", rule="ELIG-2").exists()


def test_def_1_def_2_seeded_defaults_one_per_account_only_active_or_expired():
    seed()
    assert not PaymentMethod.objects.filter(is_default=True).exclude(status__in=["active", "expired"]).exists()
    per_account = PaymentMethod.objects.filter(is_default=True).values("account").annotate(n=Count("id"))
    assert max(row["n"] for row in per_account) == 1
    # DEF-1: every account with an active method has a default.
    without_default = Account.objects.annotate(
        active=Count("payment_methods", filter=Q(payment_methods__status="active")),
        defaults=Count("payment_methods", filter=Q(payment_methods__is_default=True)),
    ).filter(active__gt=0, defaults=0)
    assert not without_default.exists()
    assert PaymentMethod.objects.filter(status="expired", is_default=True).exists()


def test_link_1_seeded_live_cards_have_unique_fingerprints_and_expiry_consistent_with_status():
    seed()
    t = timezone.now()
    live = PaymentMethod.objects.filter(kind="card", status__in=PaymentMethod.LIVE_STATUSES)
    fingerprints = list(live.values_list("fingerprint", flat=True))
    assert len(fingerprints) == len(set(fingerprints)) > 100
    for method in live:
        not_past = (method.exp_year, method.exp_month) >= (t.year, t.month)
        assert not_past == (method.status != "expired"), method.expiry


# The simulated processor's references end in random hex (``ch_approve_<24 hex>``, ``3ds_<hex>``);
# now and then their digits line up into a Luhn-valid run, which no card number ever was.
PROCESSOR_ID = re.compile(r"\b(?:ch|auth|ppauth|3ds)_(?:[a-z0-9]+_)?[0-9a-f]{16,}\b")


def test_sec_1_seeded_data_holds_no_card_number_anywhere():
    seed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cursor.fetchall()]
        chunks = []
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" t')
            chunks.extend(row[0] for row in cursor.fetchall())
    # Fingerprints are HMAC hex digests; digits inside them are not card numbers.
    dump = "\n".join(chunks)
    assert re.search(r"\b[0-9a-f]{64}\b", dump) and PROCESSOR_ID.search(dump)  # fingerprints, references
    assert "bank-txn:" in dump  # the billing and remittance tables were read too
    # As the log filter reads a card number in text: a Luhn-valid run of 13 to 19 digits of its
    # own, not part of an identifier (a fingerprint's or a processor reference's hex, a UUID) nor
    # the first digits of a longer run such as an IBAN's; ungrouped, as stored references group
    # digits with dashes (STMT-20261204-0-038802).
    assert card_numbers_in(dump, grouped=False) == []


def test_sec_3_demo_users_have_their_roles_and_log_in_with_demo_password(client, settings):
    settings.DEMO_PASSWORD = "a-demo-password-from-env"
    output = seed()
    User = get_user_model()
    admin, manager, finance = (User.objects.get(username=name) for name in ("admin", "manager", "finance"))

    assert admin.is_superuser and admin.is_staff
    assert manager.is_staff and not manager.is_superuser
    assert list(manager.groups.values_list("name", flat=True)) == ["Account managers"]
    assert finance.is_staff and not finance.is_superuser
    assert list(finance.groups.values_list("name", flat=True)) == ["Finance staff"]
    for name in ("admin", "manager", "finance", "manager2"):
        assert client.login(username=name, password="a-demo-password-from-env"), name
        assert not client.login(username=name, password="billing-demo-2026")
    assert list(User.objects.get(username="manager2").groups.values_list("name", flat=True)) == ["Account managers"]
    assert "a-demo-password-from-env" in output
    # Accounts are looked after by the demo manager.
    assert not Account.objects.exclude(account_manager=manager).exists()


def test_sec_3_demo_manager_and_finance_see_the_demo_accounts_in_the_admin(client):
    """The demo logins work with the roles' real permissions (granted by the staff migrations)."""
    seed()
    for name in ("manager", "finance"):
        client.force_login(get_user_model().objects.get(username=name))
        page = client.get("/admin/payments/account/", {"q": demo.demo_uid(7)})  # found by its digits
        assert page.status_code == 200, name
        assert [account.uid for account in page.context["cl"].result_list] == [demo.demo_uid(7)], name


def test_seed_demo_resets_a_demo_password_that_no_longer_matches(client, settings):
    seed()
    settings.DEMO_PASSWORD = "changed-demo-password"
    seed()
    assert client.login(username="manager", password="changed-demo-password")



# --- billing and remittances -----------------------------------------------------------------------


def demo_user(name: str):
    return get_user_model().objects.get(username=name)


def test_seed_demo_tells_every_billing_story_and_shapes_its_account():
    """Each story of billing_backoffice.demo.profiles is told (the stories repeat every len(CYCLE)
    accounts with a story), on an active account with the KYC status and default method it needs."""
    seed()
    told = Counter(billing_profile(int(uid[5:-1])) for uid in
                   UsageRecord.objects.values_list("account__uid", flat=True).distinct())
    assert set(told) == set(CYCLE)
    for account in Account.objects.filter(usage_records__isnull=False).distinct():
        profile = billing_profile(int(account.uid[5:-1]))
        default = account.payment_methods.filter(is_default=True).first()
        assert account.status == Account.Status.ACTIVE
        assert (account.kyc_status in ("required", "pending")) == (profile == Profile.KYC_BLOCKED), account.uid
        if profile == Profile.PAYG_NO_METHOD:
            assert default.status == "expired"
        elif profile not in (Profile.CREDIT, Profile.CREDIT_SETTLEMENT_OFF):
            assert default.status == "active" and default.activated_at < Bill.objects.filter(account=account) \
                .order_by("issued_at").values_list("issued_at", flat=True).first()


def test_i1_i6_seeded_billing_and_remittances_keep_every_invariant():
    """I1..I6, CLM-2, PAY-2/3 and DEL-3 over the whole seeded database: amount paid equals the
    ledger's bill payments, balances are their ledger sums above their floor, nothing is paid twice
    or out of order, every charge entry is one succeeded charge the processor really made."""
    output = seed()
    assert_all_invariants()
    assert_gateway_charge_invariants(simulated.PROCESSOR)
    seeded_at = timezone.now()
    for model, field in ((UsageRecord, "reported_at"), (Bill, "issued_at"), (Charge, "created_at"),
                         (LedgerEntry, "created_at"), (CreditLimitRequest, "submitted_at"),
                         (BankTransaction, "received_at"), (RemittanceClaim, "submitted_at")):
        assert not model.objects.filter(**{f"{field}__gt": seeded_at}).exists(), model  # nothing in the future
    assert "billing history made for 0 accounts" not in output


@pytest.mark.parametrize("job", ["settlement", "thresholds", "month end", "deduction", "overdue", "retries"])
def test_seed_demo_leaves_the_scheduled_jobs_nothing_to_do(job, now):
    """The history is played up to ``now`` the way the jobs would have played it, so when make run
    starts the worker and beat, the settlement (SET-2), threshold charges (PAY-2), month end (PAY-3),
    overdue marking (CRED-3) and charge retries find their work done; the tasks the seed enqueued
    (settlement after credits, charges) change nothing either."""
    demo.seed_demo(now=now, password="pw")
    period = previous_period(now)
    ledger, bills, charges = LedgerEntry.objects.count(), list(Bill.objects.values_list()), Charge.objects.count()
    if job == "settlement":
        assert settlement_due_account_ids() == []
    elif job == "thresholds":
        assert threshold_charges_run(now=now) == 0
    elif job == "month end":
        assert monthly_bills_generate(period=period, now=now) == 0
    elif job == "deduction":
        assert month_end_deduction_run(period=period, now=now) == 0
    elif job == "overdue":
        assert bills_mark_overdue(now=now) == 0
    else:
        report = charges_retry_failed(now=now)
        assert (report.pending_retried, report.failed_retried) == (0, 0)
    assert (LedgerEntry.objects.count(), list(Bill.objects.values_list()), Charge.objects.count()) == (
        ledger, bills, charges)


def test_pay_1_pay_2_pay_3_seeded_bills_of_every_kind_and_status_paid_through_the_ledger():
    seed()
    bills = Bill.objects.all()
    assert set(bills.values_list("kind", flat=True)) == set(Bill.Kind.values)
    assert set(bills.values_list("status", flat=True)) == set(Bill.Status.values)
    assert {"USD", "EUR", "MYR"} <= set(bills.values_list("currency", flat=True))
    assert bills.filter(kind=Bill.Kind.ORDER).exclude(order_kind="").count() == bills.filter(kind="order").count()
    # A bill paid by its charge: +amount ``charge`` and -amount ``bill_payment`` for that charge.
    paid_by_charge = Charge.objects.filter(status="succeeded", bill__isnull=False)
    assert paid_by_charge.filter(kind="month_end").exists() and paid_by_charge.filter(kind="threshold").exists()
    assert paid_by_charge.filter(kind="order").exists()
    for charge in paid_by_charge:
        entries = {e.reference: e.amount for e in LedgerEntry.objects.filter(account_id=charge.account_id)}
        assert entries[f"charge:{charge.pk}"] == charge.amount
        assert entries[f"bill-payment:{charge.bill_id}:charge:{charge.pk}"] == -charge.amount
    # Monthly and threshold bills are their usage (PAY-2, PAY-3); this month's usage waits.
    assert UsageRecord.objects.filter(status="unbilled", bill__isnull=True).exists()
    assert UsageRecord.objects.filter(status="charged", charge__isnull=False).exists()
    # DEL-3: exactly the accounts that owe are flagged.
    owing = set(bills.filter(status__in=Bill.UNPAID_STATUSES).values_list("account_id", flat=True))
    assert set(Account.objects.filter(has_outstanding_bills=True).values_list("pk", flat=True)) == owing


def test_pay_5_pay_6_hold_4_seeded_charges_succeed_and_fail_for_every_reason():
    seed()
    charges = Charge.objects.all()
    assert charges.filter(status="succeeded").exists()
    reasons = set(charges.filter(status="failed").values_list("failure_reason", flat=True))
    assert {"kyc_required", "three_ds_not_completed", "issuer_declined", "insufficient_funds", "no_usable_method",
            "credit_account"} <= reasons
    assert not charges.filter(status="pending").exists()  # nothing left for the retry job to replay
    # A failed charge is tried again a day later, at most three times per bill.
    retried = charges.filter(failure_reason__in=["issuer_declined", "insufficient_funds", "no_usable_method"],
                             kind="month_end").values("bill").annotate(n=Count("id"))
    assert max(row["n"] for row in retried) == 3
    # PAY-6: the credit_account refusal is a charge that waited while its account became credit-approved.
    assert charges.filter(failure_reason="credit_account", account__credit_approved=True).exists()
    # HOLD-4: a PayPal pre-authorization before the first pay-as-you-go usage, its hold released.
    preauths = charges.filter(kind="paypal_preauth")
    assert preauths.exists() and not preauths.exclude(status="succeeded").exists()
    for preauth in preauths:
        hold = VerificationHold.objects.get(authorization_id=preauth.gateway_reference)
        assert hold.status == "released" and not LedgerEntry.objects.filter(reference=f"charge:{preauth.pk}").exists()
        first_usage = UsageRecord.objects.filter(account_id=preauth.account_id).earliest("reported_at")
        assert preauth.created_at < first_usage.reported_at
    # An order whose risk check asked for 3-D Secure waits for the cardholder (PAY-1).
    for three_ds in charges.filter(failure_reason="three_ds_not_completed"):
        assert three_ds.kind == "order" and three_ds.bill.status == "open"


def test_cred_1_cred_2_seeded_credit_applications_in_every_state_decided_by_someone_else():
    seed()
    manager, manager2 = demo_user("manager"), demo_user("manager2")
    requests = CreditLimitRequest.objects.all()
    assert set(requests.values_list("status", flat=True)) == set(CreditLimitRequest.Status.values)
    assert set(requests.values_list("source", flat=True)) == set(CreditLimitRequest.Source.values)
    assert not requests.filter(decided_by=F("recorded_by")).exists()
    assert requests.filter(source="staff", recorded_by=manager, decided_by=manager2).exists()
    assert not requests.filter(source="console", recorded_by__isnull=False).exists()
    assert not requests.exclude(status="submitted").filter(Q(decided_at__isnull=True) | Q(decision_note="")).exists()
    # CRED-1: every credit-approved account got there by an approved application of that limit.
    approved = Account.objects.filter(credit_approved=True)
    assert approved.count() >= 4
    for account in approved:
        last = account.credit_requests.filter(status="approved").latest("decided_at")
        assert (last.requested_limit, last.currency) == (account.credit_limit, account.credit_currency)
    # CRED-3: their bills are due 30 days after issue; bank transfers and the settlement paid them.
    credit_bills = Bill.objects.filter(account__in=approved, kind="monthly",
                                       issued_at__gt=F("account__credit_requests__decided_at")).distinct()
    assert credit_bills.exists()
    assert all(bill.due_date == bill.issued_at.date() + timedelta(days=30) for bill in credit_bills)
    settled = LedgerEntry.objects.filter(account__in=approved, kind="bill_payment", reference__startswith="settle:")
    assert settled.exists()
    assert LedgerEntry.objects.filter(account__in=approved, kind="remittance_credit").exists()


def test_set_1_set_3_accounts_with_settlement_off_have_a_bill_finance_can_pay_from_the_balance():
    seed()
    finance = demo_user("finance")
    off = Account.objects.filter(auto_settlement_enabled=False)
    assert off.count() >= 2
    for account in off:
        # SET-1: finance switched it off, recorded in the account's history.
        assert LogEntry.objects.filter(object_id=str(account.pk), user=finance,
                                       change_message__startswith="Automatic settlement switched off").exists()
        # Paid by hand once before (the entry records who), the oldest unpaid bill covered now.
        assert LedgerEntry.objects.filter(account=account, kind="bill_payment", created_by=finance).exists()
        oldest = account.bills.filter(status__in=Bill.UNPAID_STATUSES).order_by("issued_at", "pk").first()
        assert oldest is not None
        assert account_balance(account_id=account.pk, currency=oldest.currency) >= oldest.outstanding
    bill = off.first().bills.filter(status__in=Bill.UNPAID_STATUSES).order_by("issued_at", "pk").first()
    paid = bill_pay_manual(bill_id=bill.pk, actor=finance, now=timezone.now())
    assert paid.status == "paid"
    assert_all_invariants()


def test_rem_1_to_rem_7_seeded_receiving_accounts_statements_and_transactions():
    seed()
    shared = RemittanceAccount.objects.filter(kind="non_dedicated")
    assert set(shared.values_list("currency", flat=True)) == {"USD", "EUR"}
    assert sorted(shared.values_list("number", flat=True)) == sorted(demo.shared_numbers())
    dedicated = RemittanceAccount.objects.filter(kind="dedicated")
    assert dedicated.count() >= 3
    assert not dedicated.filter(account__credit_approved=False).exists()  # REM-1 / CRED-1
    assert set(dedicated.values_list("issued_by__username", flat=True)) == {"manager"}  # REM-3
    statements = BankStatement.objects.all()
    assert statements.filter(receiving_account__kind="dedicated").exists()
    assert statements.filter(receiving_account__kind="non_dedicated").exists()
    assert set(statements.values_list("imported_by__username", flat=True)) == {"finance"}
    for statement in statements:  # REM-5: every statement reconciles
        booked = statement.transactions.exclude(entry_kind="pending").aggregate(
            c=Sum("amount", filter=Q(entry_kind="credit")), d=Sum("amount", filter=~Q(entry_kind="credit")))
        assert statement.opening_balance + (booked["c"] or 0) - (booked["d"] or 0) == statement.closing_balance
    txns = BankTransaction.objects.all()
    # REM-1: a dedicated account's credits are credited at once; only the money-back statements
    # (seed_money_back: refunded, reversed, a currency mismatch in review) take them further.
    money_back = Q(statement__identity__startswith=MONEY_BACK)
    assert not txns.filter(receiving_account__kind="dedicated").exclude(money_back).exclude(status="credited").exists()
    assert {"credited", "unmatched", "claimed", "review", "not_creditable"} <= set(txns.values_list("status", flat=True))
    assert txns.filter(detail_index__gt=0).count() >= 2  # REM-6: a batch split into its transfers
    assert txns.filter(status="unmatched", receiving_account__kind="non_dedicated", claims__isnull=True).exists()


def test_clm_1_to_clm_4_seeded_claims_in_every_state_with_four_eyes():
    seed()
    manager, finance = demo_user("manager"), demo_user("finance")
    claims = RemittanceClaim.objects.all()
    assert set(claims.values_list("status", flat=True)) == set(RemittanceClaim.Status.values)
    assert set(claims.values_list("source", flat=True)) == set(RemittanceClaim.Source.values)
    # CLM-3: the initiator and the reviewer never decide.
    decided = claims.exclude(decided_by=None)
    assert not decided.filter(Q(decided_by=F("initiated_by")) | Q(decided_by=F("reviewed_by"))).exists()
    assert set(claims.exclude(initiated_by=None).values_list("initiated_by", flat=True)) == {manager.pk}
    assert set(claims.exclude(reviewed_by=None).values_list("reviewed_by", flat=True)) == {manager.pk}
    assert set(claims.filter(status="approved").values_list("decided_by", flat=True)) == {finance.pk}
    # CLM-1: claims waiting for their transfer, or for review; CLM-4: rejections say why.
    assert claims.filter(status="submitted", bank_transaction=None).exists()
    assert claims.filter(status="submitted", bank_transaction__isnull=False).exists()
    assert not claims.filter(status="rejected", note="").exists()
    # CLM-4: a rejected transfer was claimed again, for the right account, and approved.
    again = BankTransaction.objects.filter(claims__status="rejected").filter(claims__status="approved")
    assert again.exists()
    # CLM-2: each approved claim credited its transaction once, to its account.
    for claim in claims.filter(status="approved"):
        entry = LedgerEntry.objects.get(reference=f"bank-txn:{claim.bank_transaction_id}")
        assert (entry.kind, entry.account_id, entry.amount) == ("claim_credit", claim.account_id, claim.amount)


def test_seed_demo_fills_the_dashboard_and_every_billing_screen(client):
    """What staff see after make run: every figure of the dashboard, and rows on every billing
    and remittance changelist, for the role that works with them."""
    seed()
    board = billing_dashboard(user=demo_user("admin"), now=timezone.now())
    assert board.overdue and board.due_this_week and board.failed_charges and board.credited_today
    screens = {
        "finance": ["payments_bill", "payments_charge", "payments_ledgerentry", "payments_usagerecord",
                    "remittances_bankstatement", "remittances_banktransaction", "remittances_remittanceclaim",
                    "remittances_remittanceaccount"],
        "manager": ["payments_bill", "remittances_creditlimitrequest", "remittances_remittanceclaim",
                    "remittances_remittanceaccount"],
    }
    for role, names in screens.items():
        client.force_login(demo_user(role))
        for name in names:
            page = client.get(reverse(f"admin:{name}_changelist"))
            assert page.status_code == 200, (role, name)
            assert len(page.context["cl"].result_list) > 0, (role, name)
        assert client.get(reverse("admin:index")).context["billing_dashboard"] is not None


@pytest.mark.parametrize("moment", ["2026-12-01T00:05:00", "2027-01-01T00:40:00", "2026-03-31T23:50:00",
                                    "2026-03-01T12:00:00", "2027-01-01T00:00:30", "2026-12-01T00:00:00.400000"])
def test_seed_demo_history_fits_before_now_whatever_the_day_and_hour(moment):
    """The history is months and days before ``now``: a seed just after midnight on the 1st, at
    new year or at the end of a month still tells its stories, all in the past, invariants kept."""
    now = datetime.fromisoformat(moment).replace(tzinfo=dt_timezone.utc)
    result = demo.seed_demo(now=now, password="pw", count=60)
    assert result.billing_histories == len([i for i in range(60) if billing_profile(i) != Profile.NONE])
    assert_all_invariants()
    assert settlement_due_account_ids() == []
    for model, field in ((UsageRecord, "reported_at"), (Bill, "issued_at"), (Charge, "created_at"),
                         (LedgerEntry, "created_at"), (RemittanceClaim, "submitted_at")):
        assert not model.objects.filter(**{f"{field}__gte": now}).exists(), model


def test_seed_demo_seconds_after_midnight_utc_plays_todays_steps_today():
    """A seed that starts seconds after midnight UTC (the command's clock is the moment it starts,
    so a run across midnight is this): the month just ended was billed seconds ago and the
    settlement of those bills comes after them, never before (the timeline refused it: "cannot
    schedule an event at ... before the current one"); today's import, credits and 3-D Secure
    order are today's, as the dashboard counts them, and that order's bill is not overdue yet."""
    now = datetime(2027, 1, 1, 0, 0, 30, tzinfo=dt_timezone.utc)
    result = demo.seed_demo(now=now, password="pw")
    assert result.billing_histories == len([i for i in range(demo.ACCOUNT_COUNT) if billing_profile(i) != Profile.NONE])
    assert_all_invariants()
    new_year = datetime(2027, 1, 1, tzinfo=dt_timezone.utc)
    assert Bill.objects.filter(period_start=date(2026, 12, 1), issued_at__gte=new_year).exists()
    board = billing_dashboard(user=demo_user("admin"), now=now)
    assert board.credited_today and board.failed_charges
    three_ds = Charge.objects.filter(failure_reason="three_ds_not_completed")
    assert three_ds.exists() and not three_ds.exclude(bill__status="open").exists()
    assert not Charge.objects.filter(created_at__gte=now).exists()


@pytest.mark.parametrize("moment", ["2027-01-01T00:05:00", "2027-02-01T03:00:00"])
def test_pay_1_pay_3_every_bill_status_is_seeded_in_the_first_hours_of_a_month(moment):
    """After a 31-day month the month's bills fall due on its last day, so on the 1st they are
    overdue; today's transfers come after the month-end run and still leave a bill partially paid
    (the seed used to have none from 00:01 until the morning of such a 1st)."""
    now = datetime.fromisoformat(moment).replace(tzinfo=dt_timezone.utc)
    demo.seed_demo(now=now, password="pw")
    assert set(Bill.objects.values_list("status", flat=True)) == set(Bill.Status.values)
    assert_all_invariants()

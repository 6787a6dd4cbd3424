"""``manage.py seed_demo``: idempotent, deterministic demo data that obeys the rules it shows."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone
from stdnum import luhn

from payments import demo, eligibility
from payments.eligibility import Region
from payments.models import Account, LinkAttempt, PaymentMethod, ThreeDSChallenge, VerificationHold

pytestmark = pytest.mark.django_db

MODELS = (Account, PaymentMethod, VerificationHold, ThreeDSChallenge, LinkAttempt)


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
    for label, model in (("payment methods", PaymentMethod), ("link attempts", LinkAttempt)):
        assert re.search(rf"{label}\s+{model.objects.count()}\b", second_output)


def test_seed_demo_fills_in_accounts_that_are_missing_without_touching_the_rest(now):
    demo.seed_demo(now=now, password="pw-one", count=40)
    before = snapshot()
    result = demo.seed_demo(now=now + timedelta(days=3), password="pw-one", count=50)

    assert (result.created_accounts, result.existing_accounts) == (10, 40)
    after = snapshot()
    for model in MODELS:
        assert set(before[model.__name__]) <= set(after[model.__name__])
    assert Account.objects.count() == 50


def test_seed_demo_is_the_same_data_every_time(now):
    """A fixed seed per account: deleting the demo and seeding again at the same ``now``
    rebuilds identical rows (ids aside)."""

    def content():
        return sorted(
            (a.uid, a.name, a.country, a.status, a.kyc_status, str(a.created_at),
             tuple(sorted((m.kind, m.status, m.is_default, m.last4, m.fingerprint, m.network, m.gateway_token,
                           m.paypal_payer_id, m.failure_reason, str(m.activated_at)) for m in a.payment_methods.all())),
             tuple(sorted((h.status, h.authorization_id, str(h.placed_at)) for h in a.holds.all())),
             tuple(sorted((t.outcome, t.reason, t.kind, t.last4, str(t.created_at)) for t in a.link_attempts.all())))
            for a in Account.objects.prefetch_related("payment_methods", "holds", "link_attempts")
        )

    demo.seed_demo(now=now, password="pw", count=60)
    first = content()
    for model in (LinkAttempt, VerificationHold, ThreeDSChallenge, PaymentMethod, Account):
        model.objects.all().delete()
    demo.seed_demo(now=now, password="pw", count=60)

    assert content() == first


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
    dump = re.sub(r"\b[0-9a-f]{64}\b", "<hmac>", "\n".join(chunks))
    assert "<hmac>" in dump
    assert [run for run in re.findall(r"\d{13,19}", dump) if luhn.is_valid(run)] == []


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
    for name in ("admin", "manager", "finance"):
        assert client.login(username=name, password="a-demo-password-from-env"), name
        assert not client.login(username=name, password="billing-demo-2026")
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


"""SEC-3: the role x model x action matrix of the admin, and crafted POSTs that must change nothing.

The matrix covers every ModelAdmin registered when the tests run (models added later are covered
automatically) and every role: a superuser, one member of each staff group the migrations made
("Account managers", "Finance staff", and any group added later), and staff with no group.

What a role should get is derived from two independent things:
- the role's permissions as stored in the database (its groups' ``auth_permission`` rows);
- what the ModelAdmin allows *anyone* (asked for a superuser): records the processor owns are
  read-only for everybody, so "change" is off even for a superuser.
A role gets a page or an action exactly when the admin allows it to someone and the role holds
the permission codename (``<perm>_<model>``, the convention of every ``has_<perm>_permission``).
So an admin that shows a page or offers an action to a role without the permission fails here.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth import get_permission_codename
from django.contrib.auth.models import Group, Permission
from django.test import Client, RequestFactory
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from payments.gateways.simulated import PROCESSOR
from payments.models import Account, Bill, Charge, LedgerEntry, PaymentMethod, UsageRecord, VerificationHold
from remittances.models import CreditLimitRequest, RemittanceAccount, RemittanceClaim
from remittances.services import claims as claim_services
from remittances.services import credit as credit_services
from tests.helpers.admin import messages_of
from tests.factories import (
    AccountFactory,
    BankReversalFactory,
    CardMethodFactory,
    ChallengeFactory,
    ChargeFactory,
    CreditHoldFactory,
    FundsTransferFactory,
    HoldFactory,
    LinkAttemptFactory,
    NotificationFactory,
    PaymentFileFactory,
    PayPalMethodFactory,
    ReconciliationExceptionFactory,
    RefundRequestFactory,
    ReminderFactory,
    ReminderPauseFactory,
    UsageRecordFactory,
    UserFactory,
)
from tests.payments.invariants import credit, make_bill
from tests.helpers.claims import bank_txn, console_claim, shared_account
from tests.helpers.roles import confirm_post, is_confirm_page

pytestmark = pytest.mark.django_db

MANAGERS, FINANCE = "Account managers", "Finance staff"
NO_GROUP, SUPERUSER = "staff with no group", "superuser"
REGISTRY = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
_seq = itertools.count(1)


# --- roles -----------------------------------------------------------------------------------------


class Role:
    def __init__(self, name: str, user):
        self.name, self.user = name, user
        self.perms = set(
            Permission.objects.filter(group__user=user).values_list("content_type__app_label", "codename")
        ) | set(user.user_permissions.values_list("content_type__app_label", "codename"))

    def holds(self, opts, perm: str) -> bool:
        return self.user.is_superuser or (opts.app_label, get_permission_codename(perm, opts)) in self.perms


@pytest.fixture
def roles(client) -> list[Role]:
    groups = list(Group.objects.order_by("name"))
    names = {group.name for group in groups}
    # The role groups come from the migrations; without them the matrix would prove nothing.
    assert {MANAGERS, FINANCE} <= names, f"staff groups missing: {names}"
    found = [Role(SUPERUSER, UserFactory(username="matrix-root", is_superuser=True))]
    for group in groups:
        user = UserFactory(username=f"matrix-{group.pk}")
        user.groups.add(group)
        found.append(Role(group.name, user))
    found.append(Role(NO_GROUP, UserFactory(username="matrix-nogroup")))
    return found


def request_as(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def admin_allows(model_admin, perm: str, superuser) -> bool:
    """What the admin allows anyone: its answer for a superuser (who holds every permission)."""
    return bool(getattr(model_admin, f"has_{perm}_permission")(request_as(superuser)))


def role_may(model_admin, role: Role, perm: str, superuser) -> bool:
    return admin_allows(model_admin, perm, superuser) and role.holds(model_admin.opts, perm)


def offered_actions(response) -> set[str]:
    form = response.context.get("action_form") if response.context else None
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def expected_actions(model_admin, role: Role, superuser) -> set[str]:
    if model_admin.actions is None:
        return set()
    expected = set()
    for func, name, _ in model_admin._get_base_actions():
        perms = getattr(func, "allowed_permissions", None)
        # Django offers an action when any of its permissions is granted.
        if perms is None or any(role_may(model_admin, role, perm, superuser) for perm in perms):
            expected.add(name)
    return expected


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


# --- one object of everything ---------------------------------------------------------------------


@pytest.fixture
def world(now, roles):
    """At least one row of each registered model that can be built without a special setup."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from rest_framework.authtoken.models import Token

    account = AccountFactory()
    card = CardMethodFactory(account=account, is_default=True)
    PayPalMethodFactory(account=account)
    HoldFactory(payment_method=card)
    ChallengeFactory()
    LinkAttemptFactory(account=account)
    credit(account, "100.00", now=now)
    bill = make_bill(account, "40.00", issued_at=now)
    ChargeFactory(account=account, bill=bill, payment_method=card, amount=Decimal("40.00"), created_at=now)
    UsageRecordFactory(account=account, amount=Decimal("3.50"), period="2026-11", reported_at=now)
    reminder = ReminderFactory(bill=bill, sent_at=now)
    CreditHoldFactory(account=account, reminder=reminder, started_at=now)
    ReminderPauseFactory(account=account, started_at=now)
    NotificationFactory(account=account, created_at=now)
    RefundRequestFactory(account=account, submitted_at=now)
    FundsTransferFactory(from_account=account, submitted_at=now)
    PaymentFileFactory(created_at=now)
    BankReversalFactory(created_at=now)  # RVS-1 review queue
    ReconciliationExceptionFactory()  # RCN-1: a day with a difference (and so a ReconciliationDay)
    txn = bank_txn(now=now, payer_name="Payer Ltd", remittance_info="INV 1")
    console_claim(AccountFactory(), now=now, amount=str(txn.amount), reference=txn.bank_reference)
    credit_services.credit_request_submit(
        account_id=account.pk, requested_limit=Decimal("500.00"), currency="USD", justification="Seasonal peak",
        source=CreditLimitRequest.Source.CONSOLE, now=now,
    )
    staff = roles[-1].user
    Token.objects.create(user=staff)
    TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    StaticDevice.objects.create(user=staff, name="recovery", confirmed=True)
    AccessAttempt.objects.create(
        username="someone", ip_address="10.0.0.1", user_agent="test", http_accept="*/*", path_info="/admin/login/",
        attempt_time=timezone.now(), get_data="", post_data="", failures_since_start=1,
    )
    AccessLog.objects.create(
        username="someone", ip_address="10.0.0.1", user_agent="test", http_accept="*/*", path_info="/admin/login/",
        attempt_time=timezone.now(),
    )
    AccessFailureLog.objects.create(
        username="someone", ip_address="10.0.0.1", user_agent="test", http_accept="*/*", path_info="/admin/login/",
        attempt_time=timezone.now(), locked_out=False,
    )
    interval = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(name="matrix task", task="payments.expire_cards", interval=interval)
    CrontabSchedule.objects.create(minute="0", hour="3")
    SolarSchedule.objects.create(event="sunrise", latitude=Decimal("1.0"), longitude=Decimal("2.0"))
    ClockedSchedule.objects.create(clocked_time=now)
    from billing_backoffice.scheduled_runs import window_claim

    window_claim(job="payments.settlement_sweep", window="2026-11-26T12:00:00Z", task_id="matrix", now=now)
    from billing_backoffice.scheduled_runs import scheduled_job_succeeded

    scheduled_job_succeeded(job="payments.expire_cards", now=now)
    from billing_backoffice.item_failures import JobItems

    JobItems(job="payments.charge_usage_thresholds", item_kind="payments.account", now=now).record(
        f"{account.pk}:USD", RuntimeError("numeric field overflow"), object_id=account.pk
    )


def some_object(model):
    try:
        return model._default_manager.order_by("pk").first()
    except Exception:  # a model without a sortable key (e.g. a database view)
        return model._default_manager.first()


# --- the matrix ----------------------------------------------------------------------------------


def _label(item) -> str:
    return item[0]._meta.label


@pytest.mark.parametrize("model, model_admin", REGISTRY, ids=[_label(item) for item in REGISTRY])
def test_sec_3_changelist_and_actions_match_each_roles_permissions(client, roles, world, model, model_admin):
    superuser = roles[0].user
    problems = []
    for role in roles:
        client.force_login(role.user)
        may_view = role_may(model_admin, role, "view", superuser) or role_may(model_admin, role, "change", superuser)
        response = client.get(url(model, "changelist"))
        if response.status_code != (200 if may_view else 403):
            problems.append(f"{role.name}: changelist {response.status_code}, expected {200 if may_view else 403}")
            continue
        if may_view:
            offered, expected = offered_actions(response), expected_actions(model_admin, role, superuser)
            if offered != expected:
                problems.append(f"{role.name}: actions {sorted(offered)}, expected {sorted(expected)}")
            # SEC-3: every action a staff role is offered needs its own permission.
            if not role.user.is_superuser:
                for func, name, _ in model_admin._get_base_actions():
                    if name in offered and not getattr(func, "allowed_permissions", None):
                        problems.append(f"{role.name}: action {name} declares no permission")
        may_add = role_may(model_admin, role, "add", superuser)
        try:
            add_url = url(model, "add")
        except NoReverseMatch:
            continue
        status = client.get(add_url).status_code
        if (status == 200) != may_add or status not in (200, 403):
            problems.append(f"{role.name}: add page {status}, expected {200 if may_add else 403}")
    assert not problems, f"{model._meta.label}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("model, model_admin", REGISTRY, ids=[_label(item) for item in REGISTRY])
def test_sec_3_change_page_matches_each_roles_permissions(client, roles, world, model, model_admin):
    try:
        url(model, "change", "1")
    except NoReverseMatch:
        # The admin has no change page at all (the audit log is a list only): nothing to reach.
        return
    obj = some_object(model)
    if obj is None:
        pytest.skip(f"no {model._meta.label} row: add one to the world fixture to cover its change page")
    superuser = roles[0].user
    change_url = url(model, "change", quote(obj.pk))
    problems = []
    for role in roles:
        client.force_login(role.user)
        may_view = role_may(model_admin, role, "view", superuser) or role_may(model_admin, role, "change", superuser)
        status = client.get(change_url).status_code
        if status != (200 if may_view else 403):
            problems.append(f"{role.name}: change page {status}, expected {200 if may_view else 403}")
    assert not problems, f"{model._meta.label} #{obj.pk}:\n  " + "\n  ".join(problems)


def test_sec_3_the_matrix_covers_the_project_models_and_both_staff_roles(roles):
    labels = {model._meta.label for model, _ in REGISTRY}
    assert {
        "payments.Account", "payments.PaymentMethod", "payments.VerificationHold", "payments.Bill",
        "remittances.RemittanceClaim", "remittances.CreditLimitRequest", "remittances.BankTransaction",
    } <= labels
    assert {MANAGERS, FINANCE, SUPERUSER, NO_GROUP} <= {role.name for role in roles}


# --- crafted POSTs that must change nothing ----------------------------------------------------


def member(*groups: str, username: str | None = None):
    user = UserFactory(username=username or f"member{next(_seq)}")
    user.groups.add(*Group.objects.filter(name__in=groups))
    return type(user).objects.get(pk=user.pk)


def post_action(client, model, action: str, ids):
    """The action's POST; an action behind a confirmation page is confirmed at once (crafted: even
    a disabled Confirm), so the service's own checks are what is tested."""
    response = client.post(
        url(model, "changelist"), {"action": action, "_selected_action": [str(i) for i in ids], "index": "0"}
    )
    return confirm_post(client, response) if is_confirm_page(response) else response


def rows(*objs) -> list[dict]:
    return [type(obj).objects.values().get(pk=obj.pk) for obj in objs]


@pytest.mark.parametrize("action", ["make_default_selected", "remove_selected"])
def test_sec_3_finance_crafting_payment_method_actions_changes_nothing(client, action):
    account = AccountFactory()
    default, other = CardMethodFactory(account=account, is_default=True), PayPalMethodFactory(account=account)
    before = rows(account, default, other)
    client.force_login(member(FINANCE))
    response = post_action(client, PaymentMethod, action, [default.pk, other.pk])
    assert response.status_code in (200, 302)
    assert rows(account, default, other) == before


@pytest.mark.parametrize(
    "model, action",
    [(Account, "deactivate_selected"), (VerificationHold, "release_selected"),
     (RemittanceAccount, "suspend_selected")],
)
def test_sec_3_finance_crafting_a_managers_action_changes_nothing(client, now, model, action):
    account = AccountFactory(auto_settlement_enabled=False)
    credit(account, "500.00", now=now)
    targets = {
        Account: lambda: account,
        VerificationHold: lambda: HoldFactory(payment_method=CardMethodFactory(account=account)),
        Bill: lambda: make_bill(account, "10.00", issued_at=now),
        RemittanceAccount: lambda: shared_account(now=now),
    }
    target = targets[model]()
    before, entries = rows(target), LedgerEntry.objects.count()
    client.force_login(member(FINANCE))
    post_action(client, model, action, [target.pk])
    assert rows(target) == before
    assert LedgerEntry.objects.count() == entries
    assert sum(PROCESSOR.void_calls.values()) == 0


def test_sec_3_manager_crafting_a_claim_approval_gets_403_and_nothing_changes(client, now):
    txn = bank_txn(now=now)
    claim = console_claim(AccountFactory(), now=now, amount=str(txn.amount), reference=txn.bank_reference)
    claim = claim_services.claim_review(claim_id=claim.pk, actor=member(MANAGERS), now=now)
    before, entries = rows(claim, txn), LedgerEntry.objects.count()
    client.force_login(member(MANAGERS))
    response = client.post(url(RemittanceClaim, "approve", claim.pk), {"confirm": "on"})
    assert response.status_code == 403
    assert rows(claim, txn) == before and LedgerEntry.objects.count() == entries


def test_sec_3_finance_crafting_a_credit_decision_gets_403_and_nothing_changes(client, now):
    application = credit_services.credit_request_submit(
        account_id=AccountFactory().pk, requested_limit=Decimal("900.00"), currency="USD", justification="x",
        source=CreditLimitRequest.Source.CONSOLE, now=now,
    )
    before = rows(application, application.account)
    client.force_login(member(FINANCE))
    for view in ("approve", "reject"):
        assert client.post(url(CreditLimitRequest, view, application.pk), {"note": "n"}).status_code == 403
    assert rows(application, application.account) == before


def test_sec_3_the_requester_can_never_approve_even_holding_both_roles(client, now):
    """CLM-3 / CRED-2: one person in both groups initiates, and then tries to approve."""
    both = member(MANAGERS, FINANCE, username="both-roles")
    txn = bank_txn(now=now)
    claim = claim_services.claim_submit(
        account_id=AccountFactory().pk, amount=txn.amount, currency=txn.currency, bank_transaction_id=txn.pk,
        source=RemittanceClaim.Source.STAFF, initiated_by=both, now=now,
    )
    claim = claim_services.claim_review(claim_id=claim.pk, actor=member(MANAGERS), now=now)
    application = credit_services.credit_request_submit(
        account_id=AccountFactory().pk, requested_limit=Decimal("900.00"), currency="USD", justification="x",
        source=CreditLimitRequest.Source.STAFF, recorded_by=both, now=now,
    )
    before, entries = rows(claim, txn, application, application.account), LedgerEntry.objects.count()
    client.force_login(both)
    client.post(url(RemittanceClaim, "approve", claim.pk), {"confirm": "on"})
    client.post(url(CreditLimitRequest, "approve", application.pk), {"note": ""})
    assert rows(claim, txn, application, application.account) == before
    assert LedgerEntry.objects.count() == entries


def test_sec_3_wrong_state_action_posts_are_refused_with_the_rule_and_change_nothing(client, now):
    """A manager holds the permissions; the objects are in a state the services refuse."""
    manager = member(MANAGERS)
    account = AccountFactory()
    removed = CardMethodFactory(account=account, status=PaymentMethod.Status.REMOVED, activated_at=None)
    closed = AccountFactory(status=Account.Status.CLOSED, closed_at=now)
    released = HoldFactory(status=VerificationHold.Status.RELEASED, released_at=now)
    before = rows(account, removed, closed, released)
    client.force_login(manager)

    post_action(client, PaymentMethod, "make_default_selected", [removed.pk])
    refused = messages_of(client.get(url(PaymentMethod, "changelist")))
    response = post_action(client, Account, "reactivate_selected", [closed.pk])
    refused += messages_of(response)
    post_action(client, VerificationHold, "release_selected", [released.pk])

    assert rows(account, removed, closed, released) == before
    assert sum(PROCESSOR.void_calls.values()) == 0  # a released hold is never voided again
    assert any("DEF-" in text for text in refused), refused
    assert any("LINK-2" in text for text in refused), refused


def test_sec_3_wrong_state_claim_and_credit_decisions_change_nothing(client, now):
    """Finance approving a claim nobody reviewed; a manager approving a decided application."""
    txn = bank_txn(now=now)
    submitted = console_claim(AccountFactory(), now=now, amount=str(txn.amount), reference=txn.bank_reference)
    application = credit_services.credit_request_submit(
        account_id=AccountFactory().pk, requested_limit=Decimal("900.00"), currency="USD", justification="x",
        source=CreditLimitRequest.Source.CONSOLE, now=now,
    )
    credit_services.credit_request_reject(request_id=application.pk, actor=member(MANAGERS), note="no", now=now)
    before, entries = rows(submitted, txn, application, application.account), LedgerEntry.objects.count()

    client.force_login(member(FINANCE))
    client.post(url(RemittanceClaim, "approve", submitted.pk), {"confirm": "on"})
    client.force_login(member(MANAGERS))
    client.post(url(CreditLimitRequest, "approve", application.pk), {"note": ""})
    assert rows(submitted, txn, application, application.account) == before
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize("ids", [["999999999"], ["-1"], [str(2**63)], ["not-a-number"], ["1 OR 1=1"]])
def test_sec_3_action_posts_with_ids_of_no_object_change_nothing(ids):
    account = AccountFactory()
    method = CardMethodFactory(account=account)
    before = rows(account, method)
    client = Client(raise_request_exception=False)
    client.force_login(member(MANAGERS))
    for model, action in ((PaymentMethod, "remove_selected"), (Account, "deactivate_selected")):
        post_action(client, model, action, ids)
    assert rows(account, method) == before


def test_sec_3_an_action_post_with_a_non_numeric_id_is_answered_without_a_server_error():
    client = Client(raise_request_exception=False)
    client.force_login(member(MANAGERS))
    target = AccountFactory()
    response = post_action(client, Account, "deactivate_selected", ["not-a-number", "1 OR 1=1"])
    assert response.status_code < 500
    target.refresh_from_db()
    assert target.status == Account.Status.ACTIVE


def test_sec_3_an_action_post_acts_only_on_the_posted_ids(client, now):
    """The selected ids are the whole scope: the other rows of the table stay as they were."""
    target, bystander = AccountFactory(), AccountFactory()
    before = rows(bystander)
    client.force_login(member(MANAGERS))
    post_action(client, Account, "deactivate_selected", [target.pk])
    target.refresh_from_db()
    assert target.status == Account.Status.DEACTIVATED
    assert rows(bystander) == before


def test_sec_3_a_crafted_claim_step_on_a_missing_claim_is_404(client):
    client.force_login(member(FINANCE))
    assert client.post(url(RemittanceClaim, "approve", 999999999), {"confirm": "on"}).status_code == 404

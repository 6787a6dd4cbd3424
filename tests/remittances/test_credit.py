"""Credit applications: the services (CRED-1, CRED-2, CRED-3, SEC-2, SEC-3) and the admin queue.

Services are called directly with ``now=``; the admin is driven through the test client as an
account manager (view, record, approve) and as finance staff (view only). The builders are in
``tests/helpers/credit.py``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from payments.models import Account, LedgerEntry
from payments.services.accounts import account_deactivate
from payments.services.ledger import InsufficientBalance, InvalidAmount, ledger_post
from remittances.models import CreditLimitRequest
from remittances.services.credit import (
    CreditDecisionNotPermitted,
    CreditLimitBelowOwed,
    CreditRequestDecided,
    CreditRequestOpen,
    CreditRequestRefused,
    CreditSelfDecision,
    InvalidCurrency,
    credit_request_approve,
    credit_request_reject,
    credit_request_submit,
)
from tests.helpers.admin import messages_of
from tests.factories import AccountFactory, UserFactory
from tests.helpers.credit import FINANCE_PERMS, MANAGER_PERMS, approve, credit_of, staff_user, submit

pytestmark = pytest.mark.django_db

Status = CreditLimitRequest.Status
Source = CreditLimitRequest.Source


@pytest.fixture
def recorder():
    return staff_user("am_ann", *MANAGER_PERMS)


@pytest.fixture
def approver():
    return staff_user("am_bob", *MANAGER_PERMS)


@pytest.fixture
def finance():
    return staff_user("fin_fay", *FINANCE_PERMS)


def owe(account, amount: str, now, reference: str = "bill:1", currency: str = "USD"):
    """Spend on credit: a bill payment that takes the balance below zero."""
    return ledger_post(
        account_id=account.pk, amount=f"-{amount}", currency=currency, kind=LedgerEntry.Kind.BILL_PAYMENT,
        reference=reference, now=now,
    )


@pytest.fixture
def enterprise():
    return AccountFactory(name="Acme Corp", kind=Account.Kind.ENTERPRISE)


@pytest.fixture
def approved_account(enterprise, approver, now):
    """An enterprise with an approved limit of 100.00 USD."""
    approve(submit(enterprise, now, limit="100.00"), approver, now)
    return enterprise


NOT_APPROVED = (False, Decimal("0.00"), "USD")


# --- CRED-1: a limit takes effect only once approved -----------------------------------------


def test_cred_1_console_application_takes_effect_only_when_approved(enterprise, approver, now):
    request = submit(enterprise, now, limit="5000.00", currency="eur")
    assert (request.status, request.source, request.recorded_by, request.currency) == (
        Status.SUBMITTED, Source.CONSOLE, None, "EUR"
    )
    assert request.submitted_at == now
    assert credit_of(enterprise) == NOT_APPROVED

    later = now + timedelta(hours=2)
    approve(request, approver, later, note="Two years of on-time payments")

    assert credit_of(enterprise) == (True, Decimal("5000.00"), "EUR")
    request.refresh_from_db()
    # SEC-2: who, when and why are on the decided application.
    assert (request.status, request.decided_by, request.decided_at, request.decision_note) == (
        Status.APPROVED, approver, later, "Two years of on-time payments"
    )


def test_cred_1_staff_recorded_application_takes_effect_only_when_approved(recorder, approver, now):
    account = AccountFactory(kind=Account.Kind.INDIVIDUAL)
    request = submit(account, now, limit="750.50", recorded_by=recorder)
    assert (request.source, request.recorded_by) == (Source.STAFF, recorder)
    assert credit_of(account) == NOT_APPROVED
    approve(request, approver, now)
    assert credit_of(account) == (True, Decimal("750.50"), "USD")


def test_cred_1_debit_on_credit_possible_only_after_approval(enterprise, approver, now):
    """The limit is what the ledger lets the account owe (I3) — and only once approved."""
    request = submit(enterprise, now, limit="100.00")
    with pytest.raises(InsufficientBalance):
        owe(enterprise, "60.00", now)
    approve(request, approver, now)
    owe(enterprise, "60.00", now)
    with pytest.raises(InsufficientBalance):
        owe(enterprise, "41.00", now, reference="bill:2")


def test_cred_1_later_applications_raise_lower_and_revoke_with_zero(approved_account, recorder, approver, now):
    approve(submit(approved_account, now, limit="250.00", recorded_by=recorder), approver, now)
    assert credit_of(approved_account) == (True, Decimal("250.00"), "USD")
    approve(submit(approved_account, now, limit="40.00"), approver, now)
    assert credit_of(approved_account) == (True, Decimal("40.00"), "USD")
    approve(submit(approved_account, now, limit="0"), approver, now)
    assert credit_of(approved_account) == NOT_APPROVED
    with pytest.raises(InsufficientBalance):
        owe(approved_account, "0.01", now)


def test_cred_1_rejection_keeps_credit_and_records_the_reason(approved_account, approver, now):
    request = submit(approved_account, now, limit="900.00")
    with pytest.raises(CreditRequestRefused):
        credit_request_reject(request_id=request.pk, actor=approver, note="  ", now=now)
    credit_request_reject(request_id=request.pk, actor=approver, note="Late payments in March", now=now)
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.decision_note) == (
        Status.REJECTED, approver, "Late payments in March"
    )
    assert credit_of(approved_account) == (True, Decimal("100.00"), "USD")


@pytest.mark.parametrize("status", [Account.Status.DEACTIVATED, Account.Status.CLOSED])
def test_cred_1_only_active_accounts_apply(status, now):
    account = AccountFactory(status=status, deactivated_at=now, closed_at=now)
    with pytest.raises(CreditRequestRefused) as refused:
        submit(account, now)
    assert refused.value.rule == "CRED-1"
    assert not CreditLimitRequest.objects.exists()


def test_cred_1_approval_refused_once_the_account_is_no_longer_active(approved_account, approver, now):
    raise_it = submit(approved_account, now, limit="500.00")
    account_deactivate(account_id=approved_account.pk, now=now)
    with pytest.raises(CreditRequestRefused) as refused:
        approve(raise_it, approver, now)
    assert refused.value.rule == "CRED-1"
    assert credit_of(approved_account) == (True, Decimal("100.00"), "USD")
    assert CreditLimitRequest.objects.get(pk=raise_it.pk).status == Status.SUBMITTED


def test_cred_1_revocation_still_approved_for_a_deactivated_account(approved_account, approver, now):
    revoke = submit(approved_account, now, limit="0")
    account_deactivate(account_id=approved_account.pk, now=now)
    approve(revoke, approver, now)
    assert credit_of(approved_account) == NOT_APPROVED


def test_cred_1_zero_refused_when_there_is_no_credit_to_revoke(enterprise, now):
    with pytest.raises(CreditRequestRefused, match="no credit approval to revoke"):
        submit(enterprise, now, limit="0.00")


def test_cred_1_one_open_application_per_account(enterprise, approver, now):
    first = submit(enterprise, now)
    with pytest.raises(CreditRequestOpen) as conflict:
        submit(enterprise, now, limit="10.00")
    assert (conflict.value.rule, conflict.value.http_status) == ("CRED-1", 409)
    assert f"#{first.pk}" in conflict.value.detail
    # Once decided, the account may apply again.
    credit_request_reject(request_id=first.pk, actor=approver, note="Not yet", now=now)
    assert submit(enterprise, now, limit="10.00").status == Status.SUBMITTED


def test_cred_1_database_refuses_a_second_open_application(enterprise, now):
    submit(enterprise, now)
    with pytest.raises(IntegrityError, match="credit_one_open_request_per_account"), transaction.atomic():
        CreditLimitRequest.objects.create(
            account=enterprise, requested_limit="1.00", currency="USD", source=Source.CONSOLE, submitted_at=now
        )


@pytest.mark.parametrize(
    "limit, currency, error",
    [
        (12.5, "USD", InvalidAmount),  # I6: floats refused
        ("10.005", "USD", InvalidAmount),
        ("-1.00", "USD", InvalidAmount),
        ("1e20", "USD", InvalidAmount),
        ("lots", "USD", InvalidAmount),
        ("10.00", "US", InvalidCurrency),
        ("10.00", "ZZZ", InvalidCurrency),
        ("10.00", "XXX", InvalidCurrency),
    ],
)
def test_i6_malformed_applications_refused_and_nothing_filed(enterprise, now, limit, currency, error):
    with pytest.raises(error):
        submit(enterprise, now, limit=limit, currency=currency)
    assert not CreditLimitRequest.objects.exists()


def test_cred_1_application_needs_a_justification(enterprise, now):
    with pytest.raises(CreditRequestRefused, match="justification"):
        submit(enterprise, now, justification="   ")


def test_sec_3_only_staff_allowed_to_record_may_record(enterprise, finance, now):
    with pytest.raises(CreditDecisionNotPermitted):
        submit(enterprise, now, recorded_by=finance)
    assert not CreditLimitRequest.objects.exists()


# --- CRED-2: four eyes ----------------------------------------------------------------------


def test_cred_2_recorder_cannot_approve_or_reject_but_another_manager_can(enterprise, recorder, approver, now):
    request = submit(enterprise, now, recorded_by=recorder)
    with pytest.raises(CreditSelfDecision) as refused:
        approve(request, recorder, now)
    assert refused.value.rule == "CRED-2"
    with pytest.raises(CreditSelfDecision):
        credit_request_reject(request_id=request.pk, actor=recorder, note="Changed my mind", now=now)
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (Status.SUBMITTED, None)
    assert credit_of(enterprise) == NOT_APPROVED

    approve(request, approver, now)
    assert credit_of(enterprise) == (True, Decimal("5000.00"), "USD")


def test_cred_2_database_refuses_recorder_as_decider(enterprise, recorder, now):
    """The CheckConstraint holds even when the service is bypassed with raw SQL."""
    request = submit(enterprise, now, recorded_by=recorder)
    with pytest.raises(IntegrityError, match="credit_decider_is_not_recorder"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE remittances_creditlimitrequest SET status = 'approved', decided_by_id = recorded_by_id, "
                "decided_at = %s WHERE id = %s",
                [now, request.pk],
            )
    request.refresh_from_db()
    assert (request.status, request.decided_by_id) == (Status.SUBMITTED, None)


def test_cred_2_console_application_can_be_decided_by_any_manager(enterprise, recorder, now):
    approve(submit(enterprise, now), recorder, now)
    assert credit_of(enterprise)[0] is True


def test_sec_3_deciding_needs_the_approve_permission(enterprise, finance, now):
    request = submit(enterprise, now)
    with pytest.raises(CreditDecisionNotPermitted) as refused:
        approve(request, finance, now)
    assert refused.value.http_status == 403
    with pytest.raises(CreditDecisionNotPermitted):
        credit_request_reject(request_id=request.pk, actor=finance, note="No", now=now)
    assert CreditLimitRequest.objects.get(pk=request.pk).status == Status.SUBMITTED
    superuser = UserFactory(username="root", is_superuser=True)
    approve(request, superuser, now)
    assert credit_of(enterprise)[0] is True


def test_cred_1_a_decision_is_made_once_and_a_replay_changes_nothing(enterprise, recorder, approver, now):
    request = submit(enterprise, now, limit="300.00")
    approve(request, approver, now, note="ok")
    replay = approve(request, approver, now + timedelta(minutes=5), note="again")
    assert (replay.status, replay.decided_at, replay.decision_note) == (Status.APPROVED, now, "ok")
    with pytest.raises(CreditRequestDecided) as decided:
        approve(request, recorder, now)
    assert decided.value.http_status == 409
    with pytest.raises(CreditRequestDecided):
        credit_request_reject(request_id=request.pk, actor=approver, note="Oops", now=now)
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.decided_at) == (Status.APPROVED, approver, now)


# --- CRED-3: never below what is owed -------------------------------------------------------


def test_cred_3_limit_cannot_be_lowered_below_what_is_owed(approved_account, approver, now):
    owe(approved_account, "80.00", now)
    request = submit(approved_account, now, limit="50.00")
    with pytest.raises(CreditLimitBelowOwed) as refused:
        approve(request, approver, now)
    assert refused.value.rule == "CRED-3"
    assert "owes 80.00 USD" in refused.value.detail
    request.refresh_from_db()
    assert request.status == Status.SUBMITTED
    assert credit_of(approved_account) == (True, Decimal("100.00"), "USD")
    credit_request_reject(request_id=request.pk, actor=approver, note="Below the debt", now=now)

    approve(submit(approved_account, now, limit="80.00"), approver, now)  # exactly what is owed: fine
    assert credit_of(approved_account) == (True, Decimal("80.00"), "USD")


def test_cred_3_cannot_revoke_while_owing(approved_account, approver, now):
    owe(approved_account, "0.01", now)
    with pytest.raises(CreditLimitBelowOwed):
        approve(submit(approved_account, now, limit="0"), approver, now)
    assert credit_of(approved_account) == (True, Decimal("100.00"), "USD")


def test_cred_3_cannot_move_the_limit_to_another_currency_while_owing(approved_account, approver, now):
    owe(approved_account, "30.00", now)
    with pytest.raises(CreditLimitBelowOwed, match="owes 30.00 USD"):
        approve(submit(approved_account, now, limit="1000.00", currency="EUR"), approver, now)
    assert credit_of(approved_account) == (True, Decimal("100.00"), "USD")


def test_cred_3_lowering_allowed_once_the_debt_is_paid(approved_account, approver, now):
    owe(approved_account, "80.00", now)
    ledger_post(
        account_id=approved_account.pk, amount="80.00", currency="USD", kind=LedgerEntry.Kind.REMITTANCE_CREDIT,
        reference="bank-txn:1", now=now,
    )
    approve(submit(approved_account, now, limit="0"), approver, now)
    assert credit_of(approved_account) == NOT_APPROVED


# --- admin: the account managers' queue -----------------------------------------------------


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:remittances_creditlimitrequest_{name}", args=args)


@pytest.fixture
def login(client):
    def as_user(user):
        client.force_login(user)
        return client

    return as_user


def record_form(account, **overrides) -> dict:
    return {
        "account": str(account.pk), "requested_limit": "2500.00", "currency": "usd",
        "justification": "Quarterly invoicing", **overrides,
    }


def test_cred_1_cred_2_admin_record_then_a_second_manager_approves(login, enterprise, recorder, approver):
    """Recorded by one manager, refused to them, approved by another through the admin views."""
    client = login(recorder)
    response = client.post(admin_url("add"), record_form(enterprise))
    request = CreditLimitRequest.objects.get()
    assert response.status_code == 302 and response.url == admin_url("change", request.pk)
    assert (request.source, request.recorded_by, request.currency, request.requested_limit) == (
        Source.STAFF, recorder, "USD", Decimal("2500.00")
    )
    assert credit_of(enterprise) == NOT_APPROVED

    # The recorder: buttons disabled with the CRED-2 reason, no link to the decision views.
    page = client.get(admin_url("change", request.pk)).content.decode()
    assert "CRED-2: you recorded this application" in page
    assert admin_url("approve", request.pk) not in page
    refused = client.get(admin_url("approve", request.pk))
    assert refused.status_code == 302 and any("CRED-2" in m for m in messages_of(refused))
    # A crafted POST by the recorder changes nothing.
    crafted = client.post(admin_url("approve", request.pk), {"note": "self-approved"})
    assert crafted.status_code == 302 and any("CRED-2" in m for m in messages_of(crafted))
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (Status.SUBMITTED, None)
    assert credit_of(enterprise) == NOT_APPROVED

    client = login(approver)
    page = client.get(admin_url("change", request.pk)).content.decode()
    assert admin_url("approve", request.pk) in page and admin_url("reject", request.pk) in page
    assert client.get(admin_url("approve", request.pk)).status_code == 200
    done = client.post(admin_url("approve", request.pk), {"note": "Checked the financials"})
    assert done.status_code == 302 and any("approved" in m for m in messages_of(done))
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.decision_note) == (
        Status.APPROVED, approver, "Checked the financials"
    )
    assert credit_of(enterprise) == (True, Decimal("2500.00"), "USD")

    # Decided: read-only, no buttons; another approval is refused and changes nothing.
    page = client.get(admin_url("change", request.pk)).content.decode()
    assert admin_url("approve", request.pk) not in page
    again = client.post(admin_url("reject", request.pk), {"note": "too late"})
    assert any("CRED-1" in m and "already approved" in m for m in messages_of(again))
    assert CreditLimitRequest.objects.get(pk=request.pk).status == Status.APPROVED


def test_admin_record_refusals_show_the_rule(login, recorder, enterprise, now):
    submit(enterprise, now)
    client = login(recorder)
    response = client.post(admin_url("add"), record_form(enterprise))
    assert response.status_code == 200
    assert "CRED-1" in response.content.decode() and "open credit application" in response.content.decode()
    bad = client.post(admin_url("add"), record_form(AccountFactory(), currency="ZZZ", requested_limit="1.234"))
    assert bad.status_code == 200 and set(bad.context["form"].errors) == {"currency", "requested_limit"}
    assert CreditLimitRequest.objects.count() == 1


def test_admin_record_form_looks_the_account_up_by_uid_or_name(login, recorder):
    """The account field is the admin's autocomplete (tests/test_admin_autocomplete.py), never a
    <select> of every account."""
    response = login(recorder).get(admin_url("add"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="admin-autocomplete' in html and 'data-field-name="account"' in html
    assert "<option" not in html.split('name="account"', 1)[1].split("</select>", 1)[0]


def test_admin_reject_needs_a_note(login, approver, enterprise, now):
    request = submit(enterprise, now)
    client = login(approver)
    response = client.post(admin_url("reject", request.pk), {"note": ""})
    assert response.status_code == 200 and response.context["form"].errors["note"]
    assert CreditLimitRequest.objects.get(pk=request.pk).status == Status.SUBMITTED
    client.post(admin_url("reject", request.pk), {"note": "Insufficient history"})
    request.refresh_from_db()
    assert (request.status, request.decision_note) == (Status.REJECTED, "Insufficient history")


def test_cred_3_admin_approval_refused_below_what_is_owed(login, approved_account, approver, now):
    owe(approved_account, "80.00", now)
    request = submit(approved_account, now, limit="10.00")
    response = login(approver).post(admin_url("approve", request.pk), {"note": ""})
    assert any(m.startswith(f"Credit application #{request.pk}: CRED-3:") for m in messages_of(response))
    assert CreditLimitRequest.objects.get(pk=request.pk).status == Status.SUBMITTED
    assert credit_of(approved_account)[1] == Decimal("100.00")


def test_sec_3_finance_staff_see_the_queue_but_cannot_decide_or_record(login, finance, enterprise, now):
    request = submit(enterprise, now)
    client = login(finance)
    assert client.get(admin_url("changelist")).status_code == 200
    page = client.get(admin_url("change", request.pk))
    assert page.status_code == 200
    assert admin_url("approve", request.pk) not in page.content.decode()
    assert client.get(admin_url("approve", request.pk)).status_code == 403
    assert client.post(admin_url("approve", request.pk), {"note": "x"}).status_code == 403
    assert client.post(admin_url("reject", request.pk), {"note": "x"}).status_code == 403
    assert client.post(admin_url("add"), record_form(AccountFactory())).status_code == 403
    request.refresh_from_db()
    assert request.status == Status.SUBMITTED and CreditLimitRequest.objects.count() == 1


def test_admin_change_page_is_read_only_for_everyone(login, approver, enterprise, now):
    request = submit(enterprise, now)
    client = login(approver)
    response = client.post(
        admin_url("change", request.pk), {"requested_limit": "999999.00", "status": "approved"}
    )
    assert response.status_code == 403
    request.refresh_from_db()
    assert (request.requested_limit, request.status) == (Decimal("5000.00"), Status.SUBMITTED)
    assert client.post(admin_url("delete", request.pk), {"post": "yes"}).status_code == 403


def test_admin_queue_search_and_filters(login, approver, recorder, now):
    acme = AccountFactory(name="Acme Corp", account_manager=approver)
    globex = AccountFactory(name="Globex")
    initech = AccountFactory(name="Initech")
    a = submit(acme, now, currency="EUR")
    g = submit(globex, now, recorded_by=recorder)
    i = submit(initech, now - timedelta(days=40))
    credit_request_reject(request_id=i.pk, actor=approver, note="No", now=now)
    client = login(approver)

    def pks(**params) -> set[int]:
        response = client.get(admin_url("changelist"), params)
        assert response.status_code == 200
        return {obj.pk for obj in response.context["cl"].result_list}

    assert pks() == {a.pk, g.pk, i.pk}
    assert pks(q=acme.uid) == {a.pk}
    assert pks(q=str(globex.pk)) == {g.pk}
    assert pks(q="initech") == {i.pk}
    assert pks(q="99999999999999999999999") == set()
    assert pks(status__exact="submitted") == {a.pk, g.pk}
    assert pks(source__exact="staff") == {g.pk}
    assert pks(currency="EUR") == {a.pk}
    assert pks(manager="me") == {a.pk}
    assert pks(submitted_at__gte=(now - timedelta(days=7)).isoformat()) == {a.pk, g.pk}


def test_admin_queue_query_count_does_not_grow_with_the_page(login, approver, recorder, now):
    def queries() -> int:
        client = login(approver)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(admin_url("changelist")).status_code == 200
        return len(ctx.captured_queries)

    submit(AccountFactory(), now, recorded_by=recorder)
    few = queries()
    for _ in range(12):
        request = submit(AccountFactory(), now, recorded_by=recorder)
        approve(request, approver, now)
    assert queries() == few

"""Remittance accounts: REM-1 (dedicated, unique, never reassigned), CRED-1, REM-2 (shared),
number generation, and the admin as account manager and finance staff.

The staff fixtures (``am``, ``fin``, ``nobody``) are in ``tests/remittances/conftest.py``, the builders
in ``tests/helpers/remittance_accounts.py``.
"""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import pytest
from django.db import IntegrityError, InternalError, ProgrammingError, connection, transaction
from django.urls import reverse
from schwifty import IBAN
from stdnum.iso7064 import mod_97_10

from payments.errors import AccountStateError
from payments.models import Account
from remittances import numbering
from remittances.models import RemittanceAccount
from remittances.services.accounts import (
    CreditNotApproved,
    DedicatedAccountExists,
    InvalidBankDetails,
    NumberUnavailable,
    PermissionRefused,
    ReceivingAccountConflict,
    dedicated_account_issue,
    receiving_account_register,
    remittance_account_resume,
    remittance_account_suspend,
)
from tests.factories import AccountFactory, UserFactory
from tests.helpers.admin import messages_of
from tests.helpers.roles import confirm_post, is_confirm_page
from tests.helpers.remittance_accounts import MANAGER_PERMS, SHARED_IBAN, credit_account, staff_with

pytestmark = pytest.mark.django_db

Kind = RemittanceAccount.Kind
Status = RemittanceAccount.Status
def issue(account, actor, now) -> RemittanceAccount:
    return dedicated_account_issue(account_id=account.pk, actor=actor, now=now)


class ConstantRandom(random.Random):
    """Draws the same digits every time: every candidate number collides with the first."""

    def randrange(self, start, stop=None, step=1):
        return start if stop is not None else 0


# --- REM-1 / CRED-1: issuing -------------------------------------------------------------------


def test_rem_1_credit_approved_account_gets_a_dedicated_account_from_the_configured_bank(am, now, settings):
    account = credit_account()
    ra = issue(account, am, now)
    bank = settings.REMITTANCE_BANK
    assert ra.kind == Kind.DEDICATED and ra.status == Status.ACTIVE and ra.account_id == account.pk
    assert (ra.bank_name, ra.bic, ra.bank_country, ra.currency, ra.beneficiary_name) == (
        bank["name"], bank["bic"], bank["country"], bank["currency"], bank["beneficiary"]
    )
    assert ra.issued_by == am and ra.issued_at == now
    iban = IBAN(ra.number)  # raises if the check digits are wrong
    assert iban.country_code == "DE" and iban.bank_code == bank["bank_code"]


def test_cred_1_rem_1_account_without_credit_approval_gets_no_dedicated_account(am, now):
    account = credit_account(credit_approved=False, credit_limit=Decimal("0"))
    with pytest.raises(CreditNotApproved) as refused:
        issue(account, am, now)
    assert refused.value.rule == "CRED-1" and account.uid in refused.value.detail
    assert not RemittanceAccount.objects.exists()


def test_rem_1_closed_account_gets_no_dedicated_account(am, now):
    account = credit_account(status=Account.Status.CLOSED)
    with pytest.raises(AccountStateError):
        issue(account, am, now)
    assert not RemittanceAccount.objects.exists()


def test_rem_1_second_issue_is_refused_naming_the_existing_number(am, now):
    account = credit_account()
    first = issue(account, am, now)
    with pytest.raises(DedicatedAccountExists) as refused:
        issue(account, am, now)
    assert refused.value.rule == "REM-1"
    assert numbering.format_number(first.number) in refused.value.detail
    assert RemittanceAccount.objects.filter(account=account).count() == 1


def test_rem_1_each_cloud_account_gets_its_own_number(am, now):
    numbers = {issue(credit_account(name=f"Customer {i}"), am, now).number for i in range(15)}
    assert len(numbers) == 15


def test_rem_1_suspended_account_keeps_its_number_and_no_new_one_is_issued(am, now):
    account = credit_account()
    ra = issue(account, am, now)
    suspended = remittance_account_suspend(remittance_account_id=ra.pk, actor=am, now=now)
    assert suspended.status == Status.SUSPENDED and suspended.suspended_at == now
    assert suspended.number == ra.number and suspended.account_id == account.pk
    with pytest.raises(DedicatedAccountExists, match="resume it instead"):
        issue(account, am, now)
    resumed = remittance_account_resume(remittance_account_id=ra.pk, actor=am, now=now)
    assert resumed.status == Status.ACTIVE and resumed.number == ra.number and resumed.suspended_at is None
    assert RemittanceAccount.objects.count() == 1


def test_rem_1_suspend_and_resume_are_idempotent(am, now):
    ra = issue(credit_account(), am, now)
    remittance_account_suspend(remittance_account_id=ra.pk, actor=am, now=now)
    again = remittance_account_suspend(remittance_account_id=ra.pk, actor=am, now=now.replace(hour=13))
    assert again.suspended_at == now  # the first suspension's time stays
    remittance_account_resume(remittance_account_id=ra.pk, actor=am, now=now)
    assert remittance_account_resume(remittance_account_id=ra.pk, actor=am, now=now).status == Status.ACTIVE


def test_cred_1_dedicated_account_of_a_revoked_credit_stays_suspended(am, now):
    account = credit_account()
    ra = issue(account, am, now)
    remittance_account_suspend(remittance_account_id=ra.pk, actor=am, now=now)
    Account.objects.filter(pk=account.pk).update(credit_approved=False)
    with pytest.raises(CreditNotApproved):
        remittance_account_resume(remittance_account_id=ra.pk, actor=am, now=now)
    assert RemittanceAccount.objects.get(pk=ra.pk).status == Status.SUSPENDED


def test_sec_3_rem_3_issue_and_suspend_need_their_permissions(fin, nobody, am, now):
    account = credit_account()
    for actor in (fin, nobody, None):
        with pytest.raises(PermissionRefused) as refused:
            issue(account, actor, now)
        assert refused.value.http_status == 403 and "issue_remittanceaccount" in refused.value.detail
    assert not RemittanceAccount.objects.exists()
    ra = issue(account, am, now)
    with pytest.raises(PermissionRefused):
        remittance_account_suspend(remittance_account_id=ra.pk, actor=fin, now=now)
    assert RemittanceAccount.objects.get(pk=ra.pk).status == Status.ACTIVE


# --- REM-1: the database guards ----------------------------------------------------------------


def test_rem_1_database_allows_one_dedicated_account_per_cloud_account(am, now):
    ra = issue(credit_account(), am, now)
    with pytest.raises(IntegrityError, match="rem_one_dedicated_per_account"), transaction.atomic():
        RemittanceAccount.objects.create(
            kind=Kind.DEDICATED, account_id=ra.account_id, number="DE02370400440532013000", bank_name="B",
            bic="EXBKDEFF", bank_country="DE", currency="USD", beneficiary_name="X", issued_at=now,
        )


def test_rem_1_numbers_are_unique_across_dedicated_and_shared_accounts(am, now):
    ra = issue(credit_account(), am, now)
    with pytest.raises(IntegrityError), transaction.atomic():
        RemittanceAccount.objects.create(
            kind=Kind.NON_DEDICATED, number=ra.number, bank_name="B", bic="EXBKDEFF", bank_country="DE",
            currency="USD", beneficiary_name="X", issued_at=now,
        )


@pytest.mark.parametrize(
    "column, value",
    [("account_id", "other"), ("number", "'DE02370400440532013000'"), ("kind", "'non_dedicated'")],
)
def test_rem_1_trigger_refuses_reassigning_a_dedicated_account_even_by_raw_sql(am, now, column, value):
    ra = issue(credit_account(), am, now)
    other = credit_account(name="Someone else")
    sql_value = str(other.pk) if value == "other" else value
    with pytest.raises((InternalError, ProgrammingError), match="Cannot update rows"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"UPDATE remittances_remittanceaccount SET {column} = {sql_value} WHERE id = %s", [ra.pk])
    with pytest.raises((InternalError, ProgrammingError)), transaction.atomic():
        RemittanceAccount.objects.filter(pk=ra.pk).update(account_id=other.pk)
    fresh = RemittanceAccount.objects.get(pk=ra.pk)
    assert (fresh.account_id, fresh.number, fresh.kind) == (ra.account_id, ra.number, Kind.DEDICATED)


def test_rem_1_trigger_lets_the_status_change(am, now):
    """Only ownership, number and kind are frozen: suspending by plain UPDATE is allowed."""
    ra = issue(credit_account(), am, now)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE remittances_remittanceaccount SET status = 'suspended' WHERE id = %s", [ra.pk])
    assert RemittanceAccount.objects.get(pk=ra.pk).status == Status.SUSPENDED


# --- number generation ---------------------------------------------------------------------------


def test_rem_1_a_colliding_number_is_drawn_again(am, now, monkeypatch):
    monkeypatch.setattr(numbering, "_random", random.Random(20261126))
    taken = numbering.new_dedicated_number({"country": "DE", "bank_code": "37040044"})
    receiving_account_register(number=taken, bank_name="Shared", bic="EXBKDEFF", currency="USD", now=now)
    monkeypatch.setattr(numbering, "_random", random.Random(20261126))  # the same first draw again
    ra = issue(credit_account(), am, now)
    assert ra.number != taken and numbering.is_valid_iban(ra.number)


def test_rem_1_collisions_are_retried_a_bounded_number_of_times(am, now, monkeypatch):
    monkeypatch.setattr(numbering, "_random", ConstantRandom())
    taken = numbering.new_dedicated_number({"country": "DE", "bank_code": "37040044"})
    receiving_account_register(number=taken, bank_name="Shared", bic="EXBKDEFF", currency="USD", now=now)
    account = credit_account()
    with pytest.raises(NumberUnavailable) as refused:
        issue(account, am, now)
    assert refused.value.rule == "REM-1"
    assert not RemittanceAccount.objects.filter(account=account).exists()


@pytest.mark.parametrize(
    "bank",
    [
        {"country": "DE", "bank_code": "37040044"},
        {"country": "FR", "bank_code": "30006", "branch_code": "00001"},  # with national check digits
        {"country": "GB", "bank_code": "NWBK", "branch_code": "601613"},
        {"country": "NL", "bank_code": "ABNA"},
    ],
)
def test_rem_1_generated_ibans_pass_schwifty_validation(bank):
    for _ in range(200):
        number = numbering.new_dedicated_number(bank)
        iban = IBAN(number)  # check digits and national format
        assert iban.country_code == bank["country"] and iban.bank_code == bank["bank_code"]
        assert numbering.is_valid_dedicated_number(number, country=bank["country"])


@pytest.mark.parametrize("country", ["SG", "US"])
def test_rem_1_outside_iban_countries_numbers_carry_iso_7064_check_digits(country, am, now, settings):
    settings.REMITTANCE_BANK = {
        **settings.REMITTANCE_BANK, "country": country, "bank_code": "7171", "bic": f"EXBK{country}22XXX"
    }
    assert not numbering.country_uses_iban(country)
    ra = issue(credit_account(), am, now)
    assert ra.number.isdigit() and len(ra.number) == 12 and ra.number[0] != "0"
    assert mod_97_10.is_valid(ra.number) and ra.bank_country == country
    # One mistyped digit is caught by the check digits.
    wrong = ra.number[:3] + str((int(ra.number[3]) + 1) % 10) + ra.number[4:]
    assert not numbering.is_valid_dedicated_number(wrong, country=country)


# --- REM-2: shared receiving accounts -----------------------------------------------------------


def test_rem_2_shared_account_is_registered_without_a_cloud_account(now):
    registration = receiving_account_register(
        number="gb33 bukb 2020 1555 5555 55", bank_name="  Shared   Bank ", bic="bukbgb22", currency="gbp", now=now
    )
    ra = registration.account
    assert registration.created
    assert ra.kind == Kind.NON_DEDICATED and ra.account_id is None and ra.status == Status.ACTIVE
    assert (ra.number, ra.bank_name, ra.bic, ra.bank_country, ra.currency) == (
        SHARED_IBAN, "Shared Bank", "BUKBGB22", "GB", "GBP"
    )


def test_rem_2_registering_again_with_the_same_details_changes_nothing(now):
    first = receiving_account_register(
        number=SHARED_IBAN, bank_name="Shared Bank", bic="BUKBGB22", currency="GBP", now=now
    )
    again = receiving_account_register(
        number=SHARED_IBAN, bank_name="Shared Bank", bic="BUKBGB22XXX", currency="GBP", now=now
    )
    assert not again.created and again.account.pk == first.account.pk
    assert RemittanceAccount.objects.count() == 1


def test_rem_2_registering_a_number_with_other_details_is_refused(now):
    receiving_account_register(number=SHARED_IBAN, bank_name="Shared Bank", bic="BUKBGB22", currency="GBP", now=now)
    with pytest.raises(ReceivingAccountConflict, match="currency"):
        receiving_account_register(number=SHARED_IBAN, bank_name="Shared Bank", bic="BUKBGB22", currency="USD", now=now)
    assert RemittanceAccount.objects.get().currency == "GBP"


def test_rem_1_rem_2_a_dedicated_number_never_becomes_a_shared_account(am, now):
    ra = issue(credit_account(), am, now)
    with pytest.raises(ReceivingAccountConflict) as refused:
        receiving_account_register(
            number=ra.number, bank_name=ra.bank_name, bic=ra.bic, currency=ra.currency, now=now
        )
    assert refused.value.rule == "REM-1"
    fresh = RemittanceAccount.objects.get(pk=ra.pk)
    assert fresh.kind == Kind.DEDICATED and fresh.account_id == ra.account_id


@pytest.mark.parametrize(
    "number, bic, currency, fault",
    [
        ("GB34BUKB20201555555555", "BUKBGB22", "GBP", "not a valid IBAN"),  # wrong check digits
        ("DE8937040044", "BUKBGB22", "GBP", "not a valid IBAN"),  # truncated IBAN
        (SHARED_IBAN, "BUKB22", "GBP", "SWIFT/BIC"),
        (SHARED_IBAN, "BUKBXX22", "GBP", "SWIFT/BIC"),  # no such country
        (SHARED_IBAN, "BUKBGB22", "ZZZ", "ISO 4217"),
        ("123/456", "BUKBGB22", "GBP", "not an account number"),
        ("123", "BUKBGB22", "GBP", "not an account number"),  # too short
    ],
)
def test_rem_2_invalid_bank_details_are_refused_and_nothing_is_written(number, bic, currency, fault, now):
    with pytest.raises(InvalidBankDetails, match=fault):
        receiving_account_register(number=number, bank_name="Shared Bank", bic=bic, currency=currency, now=now)
    assert not RemittanceAccount.objects.exists()


def test_rem_2_local_account_numbers_are_accepted(now):
    ra = receiving_account_register(
        number="0123456789", bank_name="Example Bank Asia", bic="EXBKSGSG", currency="SGD", now=now
    ).account
    assert ra.number == "0123456789" and ra.bank_country == "SG"


def test_rem_2_database_refuses_a_shared_account_with_a_cloud_account(now):
    account = credit_account()
    with pytest.raises(IntegrityError, match="rem_dedicated_has_account"), transaction.atomic():
        RemittanceAccount.objects.create(
            kind=Kind.NON_DEDICATED, account=account, number=SHARED_IBAN, bank_name="B", bic="BUKBGB22",
            bank_country="GB", currency="GBP", beneficiary_name="X", issued_at=now,
        )


def test_sec_3_staff_registering_a_shared_account_needs_add_permission(fin, now):
    with pytest.raises(PermissionRefused):
        receiving_account_register(
            number=SHARED_IBAN, bank_name="Shared Bank", bic="BUKBGB22", currency="GBP", actor=fin, now=now
        )
    assert not RemittanceAccount.objects.exists()


# --- REM-1 race: two managers issue for one account at once ------------------------------------


@pytest.mark.race
@pytest.mark.django_db(transaction=True)
def test_rem_1_race_two_managers_issuing_at_once_make_one_dedicated_account(now):
    manager_a = staff_with("rem-race-a", *MANAGER_PERMS)
    manager_b = staff_with("rem-race-b", *MANAGER_PERMS)
    account = credit_account()
    barrier = threading.Barrier(2)
    results = [None, None]

    def worker(index, actor):
        try:
            barrier.wait(timeout=10)
            results[index] = issue(account, actor, now)
        except Exception as exc:  # collected and asserted below
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, a)) for i, a in enumerate((manager_a, manager_b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    issued = [r for r in results if isinstance(r, RemittanceAccount)]
    refused = [r for r in results if isinstance(r, DedicatedAccountExists)]
    assert len(issued) == 1 and len(refused) == 1, results
    assert RemittanceAccount.objects.filter(account=account).count() == 1


# --- admin: account manager and finance staff ---------------------------------------------------


ISSUE_URL = "admin:remittances_remittanceaccount_issue"
CHANGELIST = "admin:remittances_remittanceaccount_changelist"


def test_rem_3_account_manager_issues_a_dedicated_account_in_the_admin(client, am):
    account = credit_account()
    client.force_login(am)
    page = client.get(reverse(ISSUE_URL))
    assert page.status_code == 200
    assert account.uid in page.content.decode()  # listed among the accounts still waiting
    confirmation = client.post(reverse(ISSUE_URL), {"account": account.uid})
    assert confirmation.status_code == 200 and not RemittanceAccount.objects.exists()  # a preview first
    response = confirm_post(client, confirmation)
    ra = RemittanceAccount.objects.get(account=account)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:remittances_remittanceaccount_change", args=[ra.pk])
    assert ra.kind == Kind.DEDICATED and ra.issued_by == am
    assert any(numbering.format_number(ra.number) in m for m in messages_of(response))


def test_cred_1_admin_issue_for_an_account_without_credit_shows_the_rule(client, am):
    account = credit_account(credit_approved=False)
    client.force_login(am)
    response = client.post(reverse(ISSUE_URL), {"account": str(account.pk)})
    assert response.status_code == 200
    assert "CRED-1" in response.content.decode()
    assert not RemittanceAccount.objects.exists()


def test_rem_1_admin_second_issue_shows_the_existing_number(client, am, now):
    account = credit_account()
    ra = issue(account, am, now)
    client.force_login(am)
    response = client.post(reverse(ISSUE_URL), {"account": account.uid})
    body = response.content.decode()
    assert response.status_code == 200 and "REM-1" in body and numbering.format_number(ra.number) in body
    assert RemittanceAccount.objects.count() == 1


def test_admin_issue_with_an_unknown_account_is_a_form_error(client, am):
    client.force_login(am)
    response = client.post(reverse(ISSUE_URL), {"account": "999999999"})
    assert response.status_code == 200 and "No account with UID or id" in response.content.decode()
    assert not RemittanceAccount.objects.exists()


@pytest.mark.parametrize("role", ["fin", "nobody"])
def test_sec_3_rem_3_only_account_managers_reach_the_issue_view(client, role, request):
    account = credit_account()
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse(ISSUE_URL)).status_code == 403
    assert client.post(reverse(ISSUE_URL), {"account": account.uid}).status_code == 403
    assert not RemittanceAccount.objects.exists()


def test_sec_3_issue_button_only_for_those_who_may_issue(client, am, fin):
    client.force_login(am)
    assert "Issue dedicated account" in client.get(reverse(CHANGELIST)).content.decode()
    client.force_login(fin)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200 and "Issue dedicated account" not in response.content.decode()


def test_admin_changelist_filters_and_exact_searches(client, fin, am, now):
    dedicated = issue(credit_account(), am, now)
    shared = receiving_account_register(
        number=SHARED_IBAN, bank_name="Shared Bank", bic="BUKBGB22", currency="GBP", now=now
    ).account
    client.force_login(fin)

    def rows(**params):
        response = client.get(reverse(CHANGELIST), params)
        assert response.status_code == 200, response.status_code
        return {obj.pk for obj in response.context["cl"].result_list}

    assert rows() == {dedicated.pk, shared.pk}
    assert rows(kind__exact="dedicated") == {dedicated.pk}
    assert rows(currency__exact="GBP") == {shared.pk}
    assert rows(status__exact="suspended") == set()
    assert rows(q=numbering.format_number(dedicated.number)) == {dedicated.pk}  # IBAN typed with spaces
    assert rows(q=dedicated.account.uid) == {dedicated.pk}
    assert rows(q=SHARED_IBAN[:10]) == set()  # exact match only, no partial scans


def test_rem_1_dedicated_accounts_are_read_only_in_the_admin(client, am, now):
    ra = issue(credit_account(), am, now)
    client.force_login(am)
    url = reverse("admin:remittances_remittanceaccount_change", args=[ra.pk])
    page = client.get(url)
    assert page.status_code == 200 and 'name="number"' not in page.content.decode()
    assert client.post(url, {"number": "DE02370400440532013000"}).status_code == 403
    assert RemittanceAccount.objects.get(pk=ra.pk).number == ra.number


def action_first_post(client, name, ids):
    return client.post(
        reverse(CHANGELIST), {"action": name, "_selected_action": [str(i) for i in ids], "index": "0"}
    )


def action(client, name, ids, *, reason: str = ""):
    """The action, confirmed on its confirmation page where it has one (as a crafted POST would)."""
    page = action_first_post(client, name, ids)
    return confirm_post(client, page, reason=reason) if is_confirm_page(page) else page


def test_rem_1_account_manager_suspends_and_resumes_from_the_list(client, am, now):
    ra = issue(credit_account(), am, now)
    client.force_login(am)
    assert action(client, "suspend_selected", [ra.pk]).status_code == 302
    suspended = RemittanceAccount.objects.get(pk=ra.pk)
    assert suspended.status == Status.SUSPENDED and suspended.number == ra.number
    assert action(client, "resume_selected", [ra.pk]).status_code == 302
    assert RemittanceAccount.objects.get(pk=ra.pk).status == Status.ACTIVE


def test_rem_1_suspending_shows_what_happens_first_and_is_logged_with_the_reason(client, am, now):
    from django.contrib.admin.models import LogEntry

    ra = issue(credit_account(), am, now)
    client.force_login(am)
    page = action_first_post(client, "suspend_selected", [ra.pk])
    assert is_confirm_page(page) and page.context["can_confirm"]
    [preview] = page.context["previews"]
    assert ("Status", "Active -> Suspended") in preview.lines and "keeps its number" in page.context["intro"]
    assert RemittanceAccount.objects.get(pk=ra.pk).status == Status.ACTIVE  # nothing before Confirm
    confirm_post(client, page, reason="customer asked to pause bank transfers")
    assert RemittanceAccount.objects.get(pk=ra.pk).status == Status.SUSPENDED
    entry = LogEntry.objects.get(object_id=str(ra.pk), user=am)
    assert "Suspended through the admin. Reason: customer asked to pause bank transfers" == entry.change_message


def test_cred_1_resume_refused_for_an_account_no_longer_approved_is_said_before_confirming(client, am, now):
    account = credit_account()
    ra = issue(account, am, now)
    client.force_login(am)
    action(client, "suspend_selected", [ra.pk])
    Account.objects.filter(pk=account.pk).update(credit_approved=False)
    page = action_first_post(client, "resume_selected", [ra.pk])
    [preview] = page.context["previews"]
    assert not page.context["can_confirm"] and preview.refusal.startswith("CRED-1") and "no longer" in preview.refusal
    change = client.get(reverse("admin:remittances_remittanceaccount_change", args=[ra.pk])).content.decode()
    assert 'aria-disabled="true"' in change and "Resume cannot be used: CRED-1" in change
    confirm_post(client, page)  # a crafted confirm: the service refuses, nothing changes
    assert RemittanceAccount.objects.get(pk=ra.pk).status == Status.SUSPENDED


def test_rem_1_the_account_page_has_a_suspend_button_for_managers_only(client, am, fin, now):
    ra = issue(credit_account(), am, now)
    url = reverse("admin:remittances_remittanceaccount_change", args=[ra.pk])
    client.force_login(am)
    assert 'value="suspend_selected"' in client.get(url).content.decode()
    client.force_login(fin)
    assert 'value="suspend_selected"' not in client.get(url).content.decode()


def test_sec_3_finance_cannot_suspend_even_with_a_crafted_post(client, am, fin, now):
    ra = issue(credit_account(), am, now)
    client.force_login(fin)
    action(client, "suspend_selected", [ra.pk])
    assert RemittanceAccount.objects.get(pk=ra.pk).status == Status.ACTIVE

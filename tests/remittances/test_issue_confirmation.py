"""Issue 10, safe actions: issuing a dedicated account goes through a confirmation page that shows
the number it will get (REM-1); the preview writes nothing and consumes no number; Confirm issues
exactly that number once, through the service's checks (REM-1, CRED-1), and logs it."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.urls import reverse

from payments.models import Account
from remittances import numbering
from remittances.models import RemittanceAccount
from tests.helpers.admin import messages_of
from tests.helpers.remittance_accounts import credit_account
from tests.helpers.roles import confirm_post

pytestmark = pytest.mark.django_db

ISSUE_URL = "admin:remittances_remittanceaccount_issue"
DISABLED_CONFIRM = '<button type="submit" class="default" disabled aria-disabled="true"'


def shown_number(page) -> str:
    [preview] = page.context["previews"]
    return numbering.normalise(dict(preview.lines)["Number to be issued"])


def test_rem_1_issue_confirmation_shows_the_number_and_writes_nothing(client, am):
    account = credit_account()
    client.force_login(am)
    page = client.post(reverse(ISSUE_URL), {"account": account.uid})
    body = page.content.decode()
    number = shown_number(page)
    assert page.status_code == 200 and numbering.format_number(number) in body and ">Confirm</button>" in body
    assert numbering.is_valid_dedicated_number(number, country="DE")
    assert not RemittanceAccount.objects.exists() and not LogEntry.objects.exists()


def test_rem_1_confirming_issues_the_number_shown_once_and_logs_it(client, am):
    account = credit_account()
    client.force_login(am)
    page = client.post(reverse(ISSUE_URL), {"account": account.uid})
    number = shown_number(page)
    done = confirm_post(client, page)
    issued = RemittanceAccount.objects.get(account=account)
    assert done.status_code == 302 and issued.number == number
    assert f"Issued dedicated account {numbering.format_number(number)}" in " ".join(messages_of(done))
    [entry] = LogEntry.objects.filter(object_id=str(issued.pk))
    assert entry.action_flag == ADDITION and numbering.format_number(number) in entry.get_change_message()
    again = confirm_post(client, page)  # double submit
    assert again.status_code in (200, 302) and RemittanceAccount.objects.filter(account=account).count() == 1


def test_rem_1_a_tampered_number_is_refused_and_nothing_is_issued(client, am):
    account = credit_account()
    client.force_login(am)
    page = client.post(reverse(ISSUE_URL), {"account": account.uid})
    page.context["hidden"][1] = ("number", "DE89370400440532013000")  # not the page's signed value
    response = confirm_post(client, page)
    assert response.status_code == 200 and "did not come from this page" in response.content.decode()
    assert not RemittanceAccount.objects.exists()


def test_rem_1_a_number_taken_since_the_preview_is_drawn_again(client, am, now):
    account = credit_account()
    client.force_login(am)
    page = client.post(reverse(ISSUE_URL), {"account": account.uid})
    number = shown_number(page)
    other = credit_account(name="Other")
    RemittanceAccount.objects.create(
        kind=RemittanceAccount.Kind.DEDICATED, status=RemittanceAccount.Status.ACTIVE, account=other,
        number=number, bank_name="X", bic="EXBKDEFF", bank_country="DE", currency="USD", beneficiary_name="X",
        issued_at=now,
    )
    confirm_post(client, page)
    issued = RemittanceAccount.objects.get(account=account)
    assert issued.number != number and numbering.is_valid_dedicated_number(issued.number, country="DE")


def test_cred_1_credit_withdrawn_after_the_preview_is_refused_by_the_service(client, am):
    account = credit_account()
    client.force_login(am)
    page = client.post(reverse(ISSUE_URL), {"account": account.uid})
    Account.objects.filter(pk=account.pk).update(credit_approved=False)
    response = confirm_post(client, page)
    assert response.status_code == 200 and "CRED-1" in response.content.decode()
    assert not RemittanceAccount.objects.exists()


def test_cred_1_issue_for_an_account_without_credit_disables_confirm(client, am):
    account = credit_account(credit_approved=False)
    client.force_login(am)
    body = client.post(reverse(ISSUE_URL), {"account": account.uid}).content.decode()
    assert "CRED-1" in body and DISABLED_CONFIRM in body

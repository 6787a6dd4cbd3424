"""Issue 10: every account field of the admin forms takes a UID or a name, with autocomplete.

The widget is Django admin's autocomplete; its endpoint searches through ``AccountAdmin``
(UID or id for digits, part of the name on the trigram index), answers only to staff who may view
accounts, and keeps a fixed number of queries however many accounts match.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from payments.admin.account_field import AccountAutocomplete, AccountChoiceField
from remittances.admin.claims import InitiateForm
from remittances.admin.credit import RecordApplicationForm
from remittances.admin.refunds import RefundForm, TransferForm
from remittances.models import CreditLimitRequest
from tests.factories import AccountFactory, UserFactory
from tests.helpers.roles import MANAGERS, role_group

pytestmark = pytest.mark.django_db

AUTOCOMPLETE = "admin:autocomplete"
SOURCE = {"app_label": "remittances", "model_name": "creditlimitrequest", "field_name": "account"}


def lookup(client, term: str, **source):
    response = client.get(reverse(AUTOCOMPLETE), {**SOURCE, **source, "term": term})
    return response, (json.loads(response.content) if response.status_code == 200 else None)


@pytest.fixture
def recorder():
    user = UserFactory(username="recorder")
    user.groups.add(role_group(MANAGERS))
    return user


def test_cred_1_autocomplete_finds_an_account_by_uid_and_by_part_of_its_name(client, recorder):
    target = AccountFactory(name="Northwind Traders")
    AccountFactory(name="Contoso")
    client.force_login(recorder)
    _, by_uid = lookup(client, target.uid)
    assert [r["id"] for r in by_uid["results"]] == [str(target.pk)]
    assert target.uid in by_uid["results"][0]["text"] and "Northwind" in by_uid["results"][0]["text"]
    _, by_name = lookup(client, "wind trad")
    assert [r["id"] for r in by_name["results"]] == [str(target.pk)]
    _, grouped = lookup(client, " ".join(target.uid[i:i + 4] for i in range(0, 16, 4)))
    assert [r["id"] for r in grouped["results"]] == [str(target.pk)]


def test_cred_1_credit_application_recorded_for_an_account_picked_by_uid(client, recorder, now):
    """CRED-1/CRED-2: the account found through the autocomplete endpoint is accepted by the form."""
    target = AccountFactory(name="Fabrikam GmbH")
    client.force_login(recorder)
    _, found = lookup(client, target.uid)
    picked = found["results"][0]["id"]
    response = client.post(reverse("admin:remittances_creditlimitrequest_add"), {
        "account": picked, "requested_limit": "50000.00", "currency": "USD", "justification": "Seasonal peak",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    application = CreditLimitRequest.objects.get(account=target)
    assert (application.requested_limit, application.recorded_by) == (Decimal("50000.00"), recorder)


def test_cred_1_credit_application_form_also_takes_the_uid_itself(client, recorder):
    """A UID typed or posted as is (no "Select a valid choice")."""
    target = AccountFactory()
    client.force_login(recorder)
    response = client.post(reverse("admin:remittances_creditlimitrequest_add"), {
        "account": target.uid, "requested_limit": "100.00", "currency": "USD", "justification": "Growth",
    })
    assert response.status_code == 302
    assert CreditLimitRequest.objects.filter(account=target).count() == 1


def test_an_unknown_or_non_numeric_account_is_a_clear_form_error_and_records_nothing(client, recorder):
    client.force_login(recorder)
    for value in ("999999999999", "Northwind", "4111111111111111"):
        response = client.post(reverse("admin:remittances_creditlimitrequest_add"), {
            "account": value, "requested_limit": "100.00", "currency": "USD", "justification": "Growth",
        })
        page = response.content.decode()
        assert response.status_code == 200 and "type its UID or part of its name" in page
        assert "Select a valid choice" not in page
        assert "4111111111111111" not in page  # SEC-1: a card number typed here is never shown back
    assert CreditLimitRequest.objects.count() == 0


def test_sec_3_autocomplete_answers_only_staff_who_may_view_accounts(client):
    AccountFactory(name="Secret Customer")
    client.force_login(UserFactory(username="no-role"))
    response, _ = lookup(client, "Secret")
    assert response.status_code == 403
    client.logout()
    response = client.get(reverse(AUTOCOMPLETE), {**SOURCE, "term": "Secret"})
    assert response.status_code in (302, 403)


def test_autocomplete_refuses_a_field_that_does_not_point_at_accounts(client, recorder):
    client.force_login(recorder)
    response, _ = lookup(client, "x", field_name="justification")
    assert response.status_code == 403


def test_autocomplete_queries_do_not_grow_with_the_accounts(client, recorder):
    """A fixed number of queries (session, user, permissions, one page of accounts, the estimate
    of a big table's count, the default methods' prefetch), however many accounts match."""
    client.force_login(recorder)

    def queries_for(batch: int) -> int:
        AccountFactory.create_batch(batch, name="Bulk Customer")
        with CaptureQueriesContext(connection) as captured:
            _, found = lookup(client, "Bulk")
        assert len(found["results"]) == 20 and found["pagination"]["more"] is True
        return len(captured)

    first = queries_for(25)
    assert first <= 10
    assert queries_for(40) == first


@pytest.mark.parametrize(
    ("form", "fields"),
    [
        (lambda: RecordApplicationForm(admin_site=admin.site), ["account"]),
        (lambda: RefundForm(), ["account"]),
        (lambda: TransferForm(), ["from_account", "to_account"]),
        (lambda: InitiateForm(), ["account"]),
    ],
    ids=["credit application", "refund", "transfer", "claim"],
)
def test_every_admin_account_field_is_the_autocomplete(form, fields):
    built = form()
    for name in fields:
        assert isinstance(built.fields[name], AccountChoiceField)
        assert isinstance(built.fields[name].widget, AccountAutocomplete)


def test_pause_and_dedicated_account_forms_use_the_autocomplete():
    from payments.admin.credit_control import PauseForm
    from remittances.admin.accounts import IssueDedicatedAccountForm

    assert isinstance(PauseForm().fields["account"], AccountChoiceField)
    assert isinstance(IssueDedicatedAccountForm(admin_site=admin.site).fields["account"], AccountChoiceField)


def test_the_add_page_renders_the_autocomplete_with_its_media(client, recorder):
    client.force_login(recorder)
    page = client.get(reverse("admin:remittances_creditlimitrequest_add")).content.decode()
    assert "admin/js/autocomplete.js" in page and 'data-ajax--url="/admin/autocomplete/"' in page

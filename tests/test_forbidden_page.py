"""Issue 10 / SEC-3: a page a role may not open answers 403 with the admin's look, the permission
it needs and the role that holds it, and a link home (``templates/403.html``), never a bare
"403 Forbidden"; the API keeps its JSON error."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_sec_3_finance_on_the_issue_page_is_told_the_permission_and_the_role(as_role):
    response = as_role("finance").get(reverse("admin:remittances_remittanceaccount_issue"))
    body = response.content.decode()
    assert response.status_code == 403
    assert "Can issue dedicated remittance accounts" in body and "remittances.issue_remittanceaccount" in body
    assert "Account managers" in body and "signed in as <strong>finance</strong>" in body
    assert f'href="{reverse("admin:index")}"' in body and "Back to the admin home" in body
    assert "<h1>403 Forbidden</h1>" not in body


def test_sec_3_a_claim_approval_by_a_manager_names_the_approve_permission_and_finance(as_role):
    response = as_role("manager").get(reverse("admin:remittances_remittanceclaim_approve", args=[1]))
    body = response.content.decode()
    assert response.status_code == 403
    assert "remittances.approve_remittanceclaim" in body and "Finance staff" in body


def test_sec_3_a_list_the_role_may_not_view_names_its_view_permission(client):
    client.force_login(UserFactory(username="nobody", is_staff=True))
    AccountFactory()
    response = client.get(reverse("admin:payments_account_changelist"))
    body = response.content.decode()
    assert response.status_code == 403 and "payments.view_account" in body and "in no staff role" in body


def test_sec_3_the_api_keeps_its_json_403(client):
    response = client.get("/api/v1/accounts/")
    assert response.status_code in (401, 403) and response["Content-Type"].startswith("application/json")

"""SEC-3: the role groups carry the remittances permissions each role needs, and no more."""

import pytest
from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


def codenames(group_name):
    group = Group.objects.get(name=group_name)
    return set(group.permissions.filter(content_type__app_label="remittances").values_list("codename", flat=True))


def test_sec_3_account_managers_decide_credit_and_review_claims_but_never_approve_claims():
    perms = codenames("Account managers")
    assert {"approve_creditlimitrequest", "issue_remittanceaccount", "review_remittanceclaim"} <= perms
    assert not perms & {"approve_remittanceclaim", "import_bankstatement"}


def test_sec_3_finance_approves_claims_and_imports_statements_but_never_decides_credit():
    perms = codenames("Finance staff")
    assert {"approve_remittanceclaim", "import_bankstatement", "view_banktransaction"} <= perms
    assert not perms & {"approve_creditlimitrequest", "issue_remittanceaccount", "review_remittanceclaim",
                        "add_remittanceclaim"}

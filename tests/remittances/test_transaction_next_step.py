"""Issue 10: every bank transaction's page says whose turn it is; a currency mismatch (REM-4
review) tells finance what to do with it (ask the bank to return it; RVS-2 closes it)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from remittances.models import BankTransaction
from tests.helpers.claims import bank_txn
from tests.helpers.roles import in_group

pytestmark = pytest.mark.django_db
Status = BankTransaction.Status


@pytest.mark.parametrize("status, says", [
    (Status.REVIEW, "Finance: it arrived in a currency the receiving account does not hold"),
    (Status.UNMATCHED, "Account manager: find the customer and initiate a claim (CLM-1)."),
    (Status.NOT_CREDITABLE, "Nothing: a debit, reversal or pending line credits nobody."),
])
def test_rvs_2_rem_4_the_transaction_page_says_whose_turn_it_is(client, now, status, says):
    txn = bank_txn(now=now, status=status)
    client.force_login(in_group("Finance staff", "fin"))
    body = client.get(reverse("admin:remittances_banktransaction_change", args=[txn.pk])).content.decode()
    assert "next step (whose turn)" in body.lower() and says in body
    if status == Status.REVIEW:
        assert "RVS-2" in body and "return it to the payer" in body

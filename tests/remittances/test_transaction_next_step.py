"""Issue 10: every bank transaction's page says whose turn it is. A line in review in the
account's own currency is a repeat that differs (REM-4); a currency mismatch links finance to its
return to the payer (tests/remittances/test_payer_returns.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from remittances.models import BankTransaction
from tests.helpers.claims import bank_txn
from tests.helpers.roles import in_group

pytestmark = pytest.mark.django_db
Status = BankTransaction.Status


@pytest.mark.parametrize("status, says", [
    (Status.REVIEW, "Finance: it repeats a line with different figures; compare it with the first one (REM-4)."),
    (Status.UNMATCHED, "Account manager: find the customer and initiate a claim (CLM-1)."),
    (Status.NOT_CREDITABLE, "Nothing: a debit, reversal or pending line credits nobody."),
])
def test_rvs_2_rem_4_the_transaction_page_says_whose_turn_it_is(client, now, status, says):
    txn = bank_txn(now=now, status=status)
    client.force_login(in_group("Finance staff", "fin"))
    body = client.get(reverse("admin:remittances_banktransaction_change", args=[txn.pk])).content.decode()
    assert "next step (whose turn)" in body.lower() and says in body
    if status == Status.REVIEW:
        assert "return it to the payer" not in body.lower()  # its currency is the account's: nothing to return

"""Console claims are idempotent, and automatic matching never undoes a decision (CLM-1, CLM-4).

A console client may retry a claim or post it several times at once: the claim is known by what
it describes (``console_claim_key``), unique per account in the database. A rejected claim stays
rejected, and its transaction is never matched to the same account again by the importer's
automatic matching (only a person can claim it for that account once more).
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from remittances.models import BankTransaction, RemittanceClaim
from remittances.services import claims as svc
from tests.concurrency import run_at_once
from tests.factories import AccountFactory, UserFactory
from tests.helpers.claims import bank_txn, console_claim, finance_user, manager_user, staff_claim

Status = RemittanceClaim.Status
TxnStatus = BankTransaction.Status

BODY = {
    "amount": "1200.00", "currency": "USD", "value_date": "2026-11-25", "payer_name": "Acme Ltd",
    "bank_reference": "INV-77",
}


def _api() -> APIClient:
    user = UserFactory(username=f"api-console-{UserFactory._meta.model.objects.count()}", is_staff=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.django_db
def test_clm_1_the_same_console_claim_sent_again_is_the_first_one(now):
    account = AccountFactory()
    first = console_claim(account, now=now, reference="INV-77", payer_name="Acme Ltd")
    again = svc.claim_submit_once(
        account_id=account.pk, amount="1200.00", currency="usd", bank_reference=" INV-77 ",
        payer_name="ACME  Ltd", source=RemittanceClaim.Source.CONSOLE, now=now,
    )
    assert (again.claim.pk, again.created) == (first.pk, False)
    other = console_claim(account, now=now, amount="1200.01", reference="INV-77", payer_name="Acme Ltd")
    assert other.pk != first.pk  # another amount is another claim
    assert RemittanceClaim.objects.filter(account=account).count() == 2


@pytest.mark.django_db
def test_clm_1_database_refuses_a_second_claim_with_the_same_key(now):
    account = AccountFactory()
    first = console_claim(account, now=now, reference="INV-77")
    with pytest.raises(IntegrityError), transaction.atomic():
        RemittanceClaim.objects.create(
            account=account, amount=first.amount, currency="USD", source="console",
            idempotency_key=first.idempotency_key, submitted_at=now,
        )


@pytest.mark.django_db
def test_clm_1_api_replay_answers_200_with_the_first_claim(now):
    account = AccountFactory()
    api = _api()
    url = f"/api/v1/accounts/{account.pk}/claims/"
    created = api.post(url, BODY, format="json")
    replay = api.post(url, BODY, format="json")
    assert created.status_code == 201, created.json()
    assert replay.status_code == 200, replay.json()
    assert replay.json()["id"] == created.json()["id"]
    assert RemittanceClaim.objects.filter(account=account).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.race
def test_clm_1_race_ten_identical_console_posts_file_one_claim(now):
    account = AccountFactory()
    txn = bank_txn(now=now, amount="1200.00", reference="INV-77")
    clients = [_api() for _ in range(10)]
    url = f"/api/v1/accounts/{account.pk}/claims/"
    responses = run_at_once([lambda c=c: c.post(url, BODY, format="json") for c in clients], timeout=120)
    assert [r for r in responses if isinstance(r, BaseException)] == []
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    claim = RemittanceClaim.objects.get(account=account)
    assert claim.bank_transaction_id == txn.pk
    txn.refresh_from_db()
    assert (txn.status, txn.account_id) == (TxnStatus.CLAIMED, account.pk)


@pytest.mark.django_db
def test_clm_4_a_rejection_is_not_undone_by_a_replay_or_by_the_next_import(now):
    account = AccountFactory()
    txn = bank_txn(now=now, amount="1200.00", reference="INV-77")
    claim = console_claim(account, now=now, reference="INV-77", payer_name="Acme Ltd")
    assert claim.bank_transaction_id == txn.pk
    svc.claim_reject(claim_id=claim.pk, actor=finance_user(), reason="Not this customer's transfer", now=now)

    # The console sends the same claim again: the rejected one, unchanged.
    replay = svc.claim_submit_once(
        account_id=account.pk, amount="1200.00", currency="USD", bank_reference="INV-77", payer_name="Acme Ltd",
        source=RemittanceClaim.Source.CONSOLE, now=now,
    )
    assert (replay.claim.pk, replay.created, replay.claim.status) == (claim.pk, False, Status.REJECTED)
    # A claim of the same account worded otherwise is not matched to the rejected transaction,
    # neither at once nor by the matching that runs after each statement import.
    reworded = console_claim(account, now=now, reference="INV-77", payer_name="Acme Limited")
    assert reworded.bank_transaction_id is None
    assert svc.claims_match_pending(now=now) == 0
    txn.refresh_from_db()
    reworded.refresh_from_db()
    claim.refresh_from_db()
    assert (txn.status, txn.account_id) == (TxnStatus.UNMATCHED, None)
    assert (reworded.bank_transaction_id, claim.status) == (None, Status.REJECTED)


@pytest.mark.django_db
def test_clm_4_waiting_duplicate_is_not_attached_after_the_matched_one_is_rejected(now):
    """The issue's sequence: two claims for one transfer, the matched one rejected, then an import."""
    account = AccountFactory()
    waiting = console_claim(account, now=now, reference="INV-78", payer_name="Acme")
    txn = bank_txn(now=now, amount="1200.00", reference="INV-78")
    staff_claimed = staff_claim(account, txn, by=manager_user(), now=now)
    svc.claim_reject(claim_id=staff_claimed.pk, actor=finance_user(), reason="Wrong customer", now=now)
    assert svc.claims_match_pending(now=now) == 0
    waiting.refresh_from_db()
    txn.refresh_from_db()
    assert waiting.bank_transaction_id is None and txn.status == TxnStatus.UNMATCHED


@pytest.mark.django_db
def test_clm_4_another_account_may_still_be_matched_and_a_person_may_claim_it_again(now):
    account, other = AccountFactory(), AccountFactory()
    txn = bank_txn(now=now, amount="1200.00", reference="INV-79")
    claim = console_claim(account, now=now, reference="INV-79")
    svc.claim_reject(claim_id=claim.pk, actor=finance_user(), reason="Wrong customer", now=now)
    # CLM-4: the transaction is claimable again: by another account's claim automatically ...
    theirs = console_claim(other, now=now, reference="INV-79")
    assert theirs.bank_transaction_id == txn.pk
    svc.claim_reject(claim_id=theirs.pk, actor=finance_user("fin2"), reason="Not theirs either", now=now)
    # ... or for the first account again, by an account manager who looked at it.
    again = staff_claim(account, txn, by=manager_user("am2"), now=now)
    assert again.bank_transaction_id == txn.pk and again.status == Status.SUBMITTED

"""Claims under concurrency, on PostgreSQL with real threads (CLM-2, CLM-3, CLM-4).

Each thread runs its own connection (closed at the end) and starts at a barrier, so the calls
really overlap. Outcomes are checked against the ledger and the rows, never against timing.
The claim services lock claim -> transaction -> account; a wrong order would show up here as a
deadlock error (PostgreSQL aborts one side after ``deadlock_timeout``) instead of a clean result.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from billing_backoffice.errors import BillingError
from payments.models import LedgerEntry
from payments.services.ledger import account_balance, ledger_post
from remittances.models import BankTransaction, RemittanceClaim, bank_transaction_ledger_reference
from remittances.services import claims as svc
from tests.concurrency import run_at_once as run_all_at_once
from tests.factories import AccountFactory
from tests.helpers.claims import (
    bank_txn,
    console_claim,
    credits_of,
    finance_user,
    manager_user,
    reviewed_claim,
    staff_claim,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.race]

Status = RemittanceClaim.Status
TxnStatus = BankTransaction.Status


def run_at_once(*calls: Callable[[], object]) -> list[tuple[str, object]]:
    """Every call at once in its own thread: ``("ok", result)`` or ``("error", exc)``."""
    return [
        ("error", result) if isinstance(result, BaseException) else ("ok", result)
        for result in run_all_at_once(calls, timeout=120)
    ]


def unexpected(outcomes) -> list:
    """Errors that are not business refusals (deadlocks, integrity errors...): must be none."""
    return [o for kind, o in outcomes if kind == "error" and not isinstance(o, BillingError)]


def test_clm_2_race_twenty_finance_users_approve_one_claim_credit_once(now):
    claim, txn = reviewed_claim(now=now)
    finance = [finance_user(f"fin{i}") for i in range(20)]
    outcomes = run_at_once(*[
        (lambda user=user: svc.claim_approve(claim_id=claim.pk, actor=user, now=now)) for user in finance
    ])
    assert unexpected(outcomes) == []
    assert all(kind == "ok" and result.status == Status.APPROVED for kind, result in outcomes)
    claim.refresh_from_db()
    txn.refresh_from_db()
    [entry] = credits_of(txn)
    assert LedgerEntry.objects.count() == 1
    assert (entry.account_id, entry.amount) == (claim.account_id, txn.amount)
    assert entry.created_by_id == claim.decided_by_id  # the winner is the one recorded
    assert (txn.status, txn.ledger_entry_id) == (TxnStatus.CREDITED, entry.pk)
    assert account_balance(account_id=claim.account_id, currency="USD") == txn.amount


@pytest.mark.parametrize("round_", range(4))
def test_clm_2_race_claim_approval_and_direct_ledger_credit_credit_once(now, round_):
    """The approval and another path (e.g. an auto-credit) post one transaction's reference at once."""
    claim, txn = reviewed_claim(now=now)
    finance, other = finance_user(), AccountFactory()
    reference = bank_transaction_ledger_reference(txn.pk)

    def direct_credit():
        return ledger_post(
            account_id=other.pk, amount=txn.amount, currency="USD", kind=LedgerEntry.Kind.REMITTANCE_CREDIT,
            reference=reference, now=now,
        )

    calls = [lambda: svc.claim_approve(claim_id=claim.pk, actor=finance, now=now), direct_credit]
    outcomes = run_at_once(*(calls if round_ % 2 == 0 else calls[::-1]))
    assert unexpected(outcomes) == []
    [entry] = credits_of(txn)
    claim.refresh_from_db()
    txn.refresh_from_db()
    if entry.account_id == claim.account_id:  # the approval won
        assert claim.status == Status.APPROVED
        assert (txn.status, txn.ledger_entry_id) == (TxnStatus.CREDITED, entry.pk)
        assert account_balance(account_id=other.pk, currency="USD") == 0
    else:  # the other path won: the approval was refused and changed nothing
        assert any(isinstance(o, svc.AlreadyCredited) for _, o in outcomes)
        assert claim.status == Status.REVIEWED and claim.decided_by_id is None
        assert (txn.status, txn.ledger_entry_id) == (TxnStatus.CLAIMED, None)
        assert account_balance(account_id=claim.account_id, currency="USD") == 0
    total = account_balance(account_id=claim.account_id, currency="USD") + account_balance(
        account_id=other.pk, currency="USD"
    )
    assert total == txn.amount


def test_clm_2_race_ten_managers_claim_one_transaction_for_different_accounts(now):
    txn = bank_txn(now=now)
    managers = [manager_user(f"am{i}") for i in range(10)]
    accounts = [AccountFactory() for _ in range(10)]
    outcomes = run_at_once(*[
        (lambda m=m, a=a: staff_claim(a, txn, by=m, now=now)) for m, a in zip(managers, accounts)
    ])
    assert unexpected(outcomes) == []
    winners = [result for kind, result in outcomes if kind == "ok"]
    assert len(winners) == 1
    assert all(isinstance(o, svc.TransactionNotClaimable) for kind, o in outcomes if kind == "error")
    txn.refresh_from_db()
    assert txn.account_id == winners[0].account_id
    assert RemittanceClaim.objects.filter(bank_transaction=txn).count() == 1


@pytest.mark.parametrize("round_", range(3))
def test_clm_4_race_reject_against_approve_no_deadlock_consistent_outcome(now, round_):
    claim, txn = reviewed_claim(now=now)
    approver, rejecter = finance_user("fin-a"), finance_user("fin-r")
    calls = [
        lambda: svc.claim_approve(claim_id=claim.pk, actor=approver, now=now),
        lambda: svc.claim_reject(claim_id=claim.pk, actor=rejecter, reason="Wrong customer", now=now),
    ]
    outcomes = run_at_once(*(calls if round_ % 2 == 0 else calls[::-1]))
    assert unexpected(outcomes) == []
    claim.refresh_from_db()
    txn.refresh_from_db()
    if claim.status == Status.APPROVED:
        assert txn.status == TxnStatus.CREDITED and len(credits_of(txn)) == 1
        assert any(isinstance(o, svc.ClaimStateError) for _, o in outcomes)  # the rejection came too late
    else:
        assert claim.status == Status.REJECTED and claim.note == "Wrong customer"
        assert (txn.status, txn.account_id) == (TxnStatus.UNMATCHED, None)
        assert credits_of(txn) == []


def test_clm_1_race_review_against_reject_of_a_submitted_claim(now):
    txn = bank_txn(now=now)
    claim = console_claim(AccountFactory(), now=now, amount=str(txn.amount), reference=txn.bank_reference)
    reviewer, rejecter = manager_user("am-r"), manager_user("am-x")
    outcomes = run_at_once(
        lambda: svc.claim_review(claim_id=claim.pk, actor=reviewer, now=now),
        lambda: svc.claim_reject(claim_id=claim.pk, actor=rejecter, reason="Not ours", now=now),
    )
    assert unexpected(outcomes) == []
    claim.refresh_from_db()
    txn.refresh_from_db()
    if claim.status == Status.REVIEWED:
        # The rejection ran second: a reviewed claim is finance's to reject; it was refused.
        assert txn.status == TxnStatus.CLAIMED
        assert any(isinstance(o, svc.ClaimPermissionDenied) for _, o in outcomes)
    else:
        assert claim.status == Status.REJECTED and txn.status == TxnStatus.UNMATCHED


@pytest.mark.parametrize("round_", range(3))
def test_clm_4_race_opposite_directions_reject_frees_while_a_new_claim_takes_the_transaction(now, round_):
    """One call starts from the claim (reject: claim -> transaction), the other from the transaction
    (a manager's new claim on it); plus a pending-claims matcher walking claims -> transactions.
    No deadlock; the transaction ends with at most one live claim that agrees with it."""
    claim, txn = reviewed_claim(now=now)
    newcomer, manager, rejecter = AccountFactory(), manager_user("am-new"), finance_user("fin-r")
    waiting = console_claim(AccountFactory(), now=now, amount=str(txn.amount), reference=txn.bank_reference)
    assert waiting.bank_transaction_id is None  # the transaction was held by the first claim
    calls = [
        lambda: svc.claim_reject(claim_id=claim.pk, actor=rejecter, reason="Not theirs", now=now),
        lambda: staff_claim(newcomer, txn, by=manager, now=now),
        lambda: svc.claims_match_pending(now=now),
    ]
    outcomes = run_at_once(*(calls if round_ % 2 == 0 else calls[::-1]))
    assert unexpected(outcomes) == []
    claim.refresh_from_db()
    txn.refresh_from_db()
    assert claim.status == Status.REJECTED
    live = list(RemittanceClaim.objects.filter(bank_transaction=txn, status__in=RemittanceClaim.OPEN_STATUSES))
    assert len(live) <= 1
    if live:
        assert txn.status == TxnStatus.CLAIMED and txn.account_id == live[0].account_id
    else:
        assert txn.status == TxnStatus.UNMATCHED and txn.account_id is None
    assert credits_of(txn) == []


def test_clm_2_race_approvals_of_two_claims_of_one_account_serialise_on_the_account(now):
    """Two different transactions credited to one account at once: both credit, each once."""
    account = AccountFactory()
    first, txn1 = reviewed_claim(now=now, account=account)
    second, txn2 = reviewed_claim(now=now, account=account)
    f1, f2 = finance_user("f1"), finance_user("f2")
    outcomes = run_at_once(
        lambda: svc.claim_approve(claim_id=first.pk, actor=f1, now=now),
        lambda: svc.claim_approve(claim_id=second.pk, actor=f2, now=now),
    )
    assert unexpected(outcomes) == [] and all(kind == "ok" for kind, _ in outcomes)
    assert account_balance(account_id=account.pk, currency="USD") == txn1.amount + txn2.amount == Decimal("2400.00")

"""Claims for transfers to the shared account (CLM-1..4), through the services.

Bank transactions are made directly with the ORM (status ``unmatched`` on a non-dedicated
receiving account), as the statement importer would leave them; the builders are in
``tests/helpers/claims.py``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from payments.errors import AccountNotFound
from payments.models import LedgerEntry
from payments.services.ledger import account_balance, ledger_post
from remittances.models import (
    BankStatement,
    BankTransaction,
    RemittanceAccount,
    RemittanceClaim,
    bank_transaction_ledger_reference,
)
from remittances import selectors
from remittances.selectors import claim_suggestions, name_similarity, uid_candidates
from remittances.services import claims as svc
from tests.factories import AccountFactory, UserFactory
from tests.helpers.claims import (
    bank_txn,
    console_claim,
    credits_of,
    dedicated_account,
    finance_user,
    manager_user,
    reviewed_claim,
    shared_account,
    staff,
    staff_claim,
)

pytestmark = pytest.mark.django_db

Status = RemittanceClaim.Status
TxnStatus = BankTransaction.Status

# --- CLM-1: the flow ---------------------------------------------------------------------------


def test_clm_1_full_flow_console_claim_matched_reviewed_approved_credited_once(now):
    account = AccountFactory()
    txn = bank_txn(now=now, amount="1200.00", reference="NOTPROVIDED-77", payer_name="ACME LTD")
    manager, finance = manager_user(), finance_user()

    claim = console_claim(account, now=now, amount="1200.00", reference="NOTPROVIDED-77", payer_name="Acme")
    assert (claim.status, claim.bank_transaction_id, claim.source, claim.initiated_by_id) == (
        Status.SUBMITTED, txn.pk, "console", None
    )
    txn.refresh_from_db()
    assert (txn.status, txn.account_id) == (TxnStatus.CLAIMED, account.pk)
    assert account_balance(account_id=account.pk, currency="USD") == 0

    claim = svc.claim_review(claim_id=claim.pk, actor=manager, note="Remittance advice matches", now=now)
    assert (claim.status, claim.reviewed_by, claim.note) == (Status.REVIEWED, manager, "Remittance advice matches")
    assert account_balance(account_id=account.pk, currency="USD") == 0

    claim = svc.claim_approve(claim_id=claim.pk, actor=finance, now=now)
    claim.refresh_from_db()
    txn.refresh_from_db()
    assert (claim.status, claim.decided_by, claim.decided_at) == (Status.APPROVED, finance, now)
    [entry] = credits_of(txn)
    assert (entry.account_id, entry.amount, entry.currency, entry.kind) == (
        account.pk, Decimal("1200.00"), "USD", LedgerEntry.Kind.CLAIM_CREDIT
    )
    assert (txn.status, txn.account_id, txn.ledger_entry_id, txn.credited_at) == (
        TxnStatus.CREDITED, account.pk, entry.pk, now
    )
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("1200.00")

    # A replay of the approval (double click, retried request) returns it and credits nothing more.
    again = svc.claim_approve(claim_id=claim.pk, actor=finance_user("fin2"), now=now)
    assert again.status == Status.APPROVED and again.decided_by_id == finance.pk
    assert account_balance(account_id=account.pk, currency="USD") == Decimal("1200.00")
    assert LedgerEntry.objects.count() == 1


def test_clm_1_console_claim_matches_the_end_to_end_id_the_customer_typed(now):
    account = AccountFactory()
    txn = bank_txn(now=now, amount="50.00", reference="BANK-SIDE-1", end_to_end_id="INV-2026-11")
    claim = console_claim(account, now=now, amount="50.00", reference="INV-2026-11")
    assert claim.bank_transaction_id == txn.pk


def test_clm_1_a_bank_reference_with_a_hash_matches_although_it_is_stored_escaped(now):
    """REM-4 keeps a reference such as ``INV#77`` as ``ref:INV#77``; the customer types ``INV#77``,
    at the claim and when the transfer arrives after the claim."""
    account = AccountFactory()
    txn = bank_txn(now=now, amount="70.00", reference="ref:INV#77")
    assert console_claim(account, now=now, amount="70.00", reference="INV#77").bank_transaction_id == txn.pk

    waiting = console_claim(account, now=now, amount="80.00", reference="INV#78")
    late = bank_txn(now=now, amount="80.00", reference="ref:INV#78")
    assert svc.claims_match_pending(now=now) == 1
    waiting.refresh_from_db()
    assert waiting.bank_transaction_id == late.pk


def test_clm_1_console_claim_without_a_matching_transfer_waits_unattached(now):
    account = AccountFactory()
    other_amount = bank_txn(now=now, amount="99.00", reference="REF-A")
    other_currency = bank_txn(now=now, amount="100.00", currency="EUR", reference="REF-B")
    for amount, currency, reference in (("100.00", "USD", "REF-A"), ("100.00", "USD", "REF-B"), ("100.00", "USD", "")):
        claim = console_claim(account, now=now, amount=amount, currency=currency, reference=reference)
        assert claim.bank_transaction_id is None and claim.status == Status.SUBMITTED
    for txn in (other_amount, other_currency):
        txn.refresh_from_db()
        assert txn.status == TxnStatus.UNMATCHED and txn.account_id is None


def test_clm_1_a_reference_on_two_shared_accounts_is_left_to_a_person(now):
    bank_txn(now=now, amount="10.00", reference="SAME")
    bank_txn(now=now, amount="10.00", reference="SAME")  # another shared account, same reference
    claim = console_claim(AccountFactory(), now=now, amount="10.00", reference="SAME")
    assert claim.bank_transaction_id is None
    assert BankTransaction.objects.filter(status=TxnStatus.UNMATCHED).count() == 2


def test_clm_1_claims_match_pending_attaches_waiting_claims_to_arrived_transfers(now):
    account, other = AccountFactory(), AccountFactory()
    waiting = console_claim(account, now=now, amount="300.00", reference="LATE-1")
    no_match = console_claim(other, now=now, amount="301.00", reference="LATE-2")
    no_reference = console_claim(other, now=now, amount="300.00")
    assert svc.claims_match_pending(now=now) == 0

    txn = bank_txn(now=now, amount="300.00", reference="LATE-1")  # the next statement brings it
    bank_txn(now=now, amount="999.00", reference="LATE-2")
    assert svc.claims_match_pending(now=now) == 1
    waiting.refresh_from_db(), no_match.refresh_from_db(), no_reference.refresh_from_db()
    txn.refresh_from_db()
    assert waiting.bank_transaction_id == txn.pk
    assert (txn.status, txn.account_id) == (TxnStatus.CLAIMED, account.pk)
    assert no_match.bank_transaction_id is None and no_reference.bank_transaction_id is None
    assert svc.claims_match_pending(now=now) == 0  # a second run changes nothing


def test_clm_1_claims_match_pending_skips_a_transfer_someone_claimed_meanwhile(now):
    waiting = console_claim(AccountFactory(), now=now, amount="300.00", reference="LATE-9")
    txn = bank_txn(now=now, amount="300.00", reference="LATE-9")
    staff_claim(AccountFactory(), txn, by=manager_user(), now=now)
    assert svc.claims_match_pending(now=now) == 0
    waiting.refresh_from_db()
    assert waiting.bank_transaction_id is None


def test_clm_1_staff_claim_takes_the_chosen_transaction(now):
    account, manager = AccountFactory(), manager_user()
    txn = bank_txn(now=now, amount="75.50", payer_name="Globex", reference="B-1")
    claim = staff_claim(account, txn, by=manager, now=now)
    txn.refresh_from_db()
    assert (claim.source, claim.initiated_by, claim.bank_transaction_id) == ("staff", manager, txn.pk)
    assert (claim.amount, claim.payer_name, claim.bank_reference, claim.value_date) == (
        Decimal("75.50"), "Globex", "B-1", txn.value_date
    )
    assert (txn.status, txn.account_id) == (TxnStatus.CLAIMED, account.pk)


@pytest.mark.parametrize(
    "case, error",
    [
        ("amount", svc.ClaimMismatch),
        ("currency", svc.ClaimMismatch),
        ("dedicated", svc.ClaimMismatch),
        ("debit", svc.ClaimMismatch),
        ("credited", svc.TransactionNotClaimable),
        ("review", svc.TransactionNotClaimable),
    ],
)
def test_clm_1_staff_claim_refuses_a_transaction_that_does_not_fit(now, case, error):
    account = AccountFactory()
    if case == "dedicated":
        txn = bank_txn(now=now, receiving=dedicated_account(AccountFactory(), now=now), status=TxnStatus.MATCHED)
    elif case == "debit":
        txn = bank_txn(now=now, entry_kind=BankTransaction.EntryKind.DEBIT, status=TxnStatus.NOT_CREDITABLE)
    elif case == "review":
        txn = bank_txn(now=now, status=TxnStatus.REVIEW)
    elif case == "credited":
        txn = bank_txn(now=now)
        claim, txn = reviewed_claim(now=now, txn=txn)
        svc.claim_approve(claim_id=claim.pk, actor=finance_user(), now=now)
    else:
        txn = bank_txn(now=now)
    before = BankTransaction.objects.values().get(pk=txn.pk)
    claims_before = RemittanceClaim.objects.count()
    amount = "1.00" if case == "amount" else str(txn.amount)
    currency = "EUR" if case == "currency" else txn.currency
    with pytest.raises(error) as raised:
        staff_claim(account, txn, by=manager_user(), now=now, amount=amount, currency=currency)
    assert raised.value.rule in ("CLM-1", "CLM-2")
    assert BankTransaction.objects.values().get(pk=txn.pk) == before
    assert RemittanceClaim.objects.count() == claims_before


def test_clm_1_review_needs_the_transfer_attached_and_attach_then_allows_it(now):
    manager = manager_user()
    claim = console_claim(AccountFactory(), now=now, amount="42.00", reference="TYPO")
    with pytest.raises(svc.ClaimStateError) as raised:
        svc.claim_review(claim_id=claim.pk, actor=manager, now=now)
    assert (raised.value.rule, raised.value.code) == ("CLM-1", "claim_not_matched")

    wrong = bank_txn(now=now, amount="41.00")
    with pytest.raises(svc.ClaimMismatch):
        svc.claim_attach(claim_id=claim.pk, bank_transaction_id=wrong.pk, actor=manager, now=now)
    txn = bank_txn(now=now, amount="42.00", reference="REAL-REF")
    claim = svc.claim_attach(claim_id=claim.pk, bank_transaction_id=txn.pk, actor=manager, now=now)
    assert svc.claim_attach(claim_id=claim.pk, bank_transaction_id=txn.pk, actor=manager, now=now) == claim  # replay
    txn.refresh_from_db()
    assert claim.bank_transaction_id == txn.pk and txn.status == TxnStatus.CLAIMED
    assert svc.claim_review(claim_id=claim.pk, actor=manager, now=now).status == Status.REVIEWED


def test_clm_1_steps_run_in_order_only(now):
    finance = finance_user()
    claim = console_claim(AccountFactory(), now=now, amount="1.00", reference="X")
    with pytest.raises(svc.ClaimStateError):
        svc.claim_approve(claim_id=claim.pk, actor=finance, now=now)  # not reviewed yet
    claim, _ = reviewed_claim(now=now)
    with pytest.raises(svc.ClaimStateError):
        svc.claim_review(claim_id=claim.pk, actor=manager_user("other"), now=now)  # already reviewed
    with pytest.raises(svc.ClaimNotFound):
        svc.claim_approve(claim_id=10**9, actor=finance, now=now)


def test_clm_1_the_reviewer_may_be_the_initiator(now):
    manager = manager_user()
    claim = staff_claim(AccountFactory(), bank_txn(now=now), by=manager, now=now)
    assert svc.claim_review(claim_id=claim.pk, actor=manager, now=now).reviewed_by == manager


def test_sec_3_each_step_needs_its_permission(now):
    outsider = staff("outsider", "view_remittanceclaim")
    txn = bank_txn(now=now)
    with pytest.raises(svc.ClaimPermissionDenied):
        staff_claim(AccountFactory(), txn, by=outsider, now=now)
    claim = console_claim(AccountFactory(), now=now, amount=str(txn.amount), reference=txn.bank_reference)
    for call in (
        lambda: svc.claim_review(claim_id=claim.pk, actor=outsider, now=now),
        lambda: svc.claim_approve(claim_id=claim.pk, actor=outsider, now=now),
        lambda: svc.claim_reject(claim_id=claim.pk, actor=outsider, reason="no", now=now),
    ):
        with pytest.raises(svc.ClaimPermissionDenied) as raised:
            call()
        assert raised.value.rule == "SEC-3"
    # Finance does not review; account managers do not approve or reject reviewed claims.
    with pytest.raises(svc.ClaimPermissionDenied):
        svc.claim_review(claim_id=claim.pk, actor=finance_user(), now=now)
    claim = svc.claim_review(claim_id=claim.pk, actor=manager_user(), now=now)
    with pytest.raises(svc.ClaimPermissionDenied):
        svc.claim_approve(claim_id=claim.pk, actor=manager_user("am2"), now=now)
    with pytest.raises(svc.ClaimPermissionDenied):
        svc.claim_reject(claim_id=claim.pk, actor=manager_user("am3"), reason="no", now=now)
    claim.refresh_from_db()
    assert claim.status == Status.REVIEWED


@pytest.mark.parametrize("amount", [1.5, "1.005", "0", "-3.00", "abc"])
def test_i6_claim_amount_must_be_a_positive_two_place_decimal(now, amount):
    with pytest.raises(svc.ClaimInvalid):
        console_claim(AccountFactory(), now=now, amount=amount)
    assert not RemittanceClaim.objects.exists()


def test_claim_input_refusals(now):
    account = AccountFactory()
    with pytest.raises(svc.ClaimInvalid):
        console_claim(account, now=now, currency="US")
    with pytest.raises(svc.ClaimInvalid):
        svc.claim_submit(account_id=account.pk, amount="1.00", currency="USD", source="fax", now=now)
    with pytest.raises(svc.ClaimInvalid):
        console_claim(account, now=now, initiated_by=manager_user())
    with pytest.raises(AccountNotFound):
        svc.claim_submit(account_id=10**9, amount="1.00", currency="USD", source="console", now=now)
    assert console_claim(account, now=now, currency="eur").currency == "EUR"


# --- CLM-2: one transaction, one account, once -----------------------------------------------------


def test_clm_2_second_claim_on_the_same_transaction_is_refused(now):
    txn = bank_txn(now=now)
    first = staff_claim(AccountFactory(), txn, by=manager_user(), now=now)
    other = AccountFactory()
    with pytest.raises(svc.TransactionNotClaimable) as raised:
        staff_claim(other, txn, by=manager_user("am2"), now=now)
    assert raised.value.rule == "CLM-2"
    # The console cannot take it either: it stays waiting.
    late = console_claim(other, now=now, amount=str(txn.amount), reference=txn.bank_reference)
    assert late.bank_transaction_id is None
    txn.refresh_from_db()
    assert txn.account_id == first.account_id
    assert RemittanceClaim.objects.filter(bank_transaction=txn).count() == 1


def test_clm_2_database_allows_one_live_claim_per_transaction(now):
    claim = staff_claim(AccountFactory(), bank_txn(now=now), by=manager_user(), now=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        RemittanceClaim.objects.create(
            account=AccountFactory(), bank_transaction_id=claim.bank_transaction_id, amount=claim.amount,
            currency="USD", source="console", submitted_at=now,
        )


def test_clm_2_approval_after_the_transaction_was_credited_by_another_path_is_refused(now):
    claim, txn = reviewed_claim(now=now)
    somebody_else = AccountFactory()
    ledger_post(
        account_id=somebody_else.pk, amount=txn.amount, currency="USD", kind=LedgerEntry.Kind.REMITTANCE_CREDIT,
        reference=bank_transaction_ledger_reference(txn.pk), now=now,
    )
    claim_before = RemittanceClaim.objects.values().get(pk=claim.pk)
    txn_before = BankTransaction.objects.values().get(pk=txn.pk)
    with pytest.raises(svc.AlreadyCredited) as raised:
        svc.claim_approve(claim_id=claim.pk, actor=finance_user(), now=now)
    assert raised.value.rule == "CLM-2"
    assert RemittanceClaim.objects.values().get(pk=claim.pk) == claim_before
    assert BankTransaction.objects.values().get(pk=txn.pk) == txn_before
    assert [e.account_id for e in credits_of(txn)] == [somebody_else.pk]
    assert account_balance(account_id=claim.account_id, currency="USD") == 0


def test_clm_2_an_earlier_credit_with_the_same_figures_also_refuses(now):
    """Even a CLAIM_CREDIT of the same account and amount posted elsewhere counts as credited."""
    claim, txn = reviewed_claim(now=now)
    ledger_post(
        account_id=claim.account_id, amount=txn.amount, currency="USD", kind=LedgerEntry.Kind.CLAIM_CREDIT,
        reference=bank_transaction_ledger_reference(txn.pk), now=now,
    )
    with pytest.raises(svc.AlreadyCredited):
        svc.claim_approve(claim_id=claim.pk, actor=finance_user(), now=now)
    claim.refresh_from_db()
    txn.refresh_from_db()
    assert claim.status == Status.REVIEWED and txn.status == TxnStatus.CLAIMED and txn.ledger_entry_id is None
    assert account_balance(account_id=claim.account_id, currency="USD") == txn.amount  # once, not twice


# --- CLM-3: four eyes ----------------------------------------------------------------------------


def test_clm_3_initiator_cannot_approve(now):
    lead = staff("lead", "view_remittanceclaim", "add_remittanceclaim", "review_remittanceclaim",
                 "approve_remittanceclaim")
    claim = staff_claim(AccountFactory(), bank_txn(now=now), by=lead, now=now)
    claim = svc.claim_review(claim_id=claim.pk, actor=manager_user(), now=now)
    with pytest.raises(svc.FourEyesViolation) as raised:
        svc.claim_approve(claim_id=claim.pk, actor=lead, now=now)
    assert raised.value.rule == "CLM-3"
    claim.refresh_from_db()
    assert claim.status == Status.REVIEWED and claim.decided_by_id is None
    assert not LedgerEntry.objects.exists()
    assert svc.claim_approve(claim_id=claim.pk, actor=finance_user(), now=now).status == Status.APPROVED


def test_clm_3_reviewer_cannot_approve(now):
    lead = staff("lead", "view_remittanceclaim", "review_remittanceclaim", "approve_remittanceclaim")
    claim, _ = reviewed_claim(now=now, reviewer=lead)
    with pytest.raises(svc.FourEyesViolation) as raised:
        svc.claim_approve(claim_id=claim.pk, actor=lead, now=now)
    assert raised.value.rule == "CLM-3"
    assert not LedgerEntry.objects.exists()


def test_clm_3_initiator_or_reviewer_cannot_reject_either(now):
    manager = manager_user()
    claim = staff_claim(AccountFactory(), bank_txn(now=now), by=manager, now=now)
    with pytest.raises(svc.FourEyesViolation):
        svc.claim_reject(claim_id=claim.pk, actor=manager, reason="withdrawn", now=now)
    lead = staff("lead", "review_remittanceclaim", "approve_remittanceclaim")
    claim = svc.claim_review(claim_id=claim.pk, actor=lead, now=now)
    with pytest.raises(svc.FourEyesViolation):
        svc.claim_reject(claim_id=claim.pk, actor=lead, reason="changed my mind", now=now)
    claim.refresh_from_db()
    assert claim.status == Status.REVIEWED


@pytest.mark.parametrize("column", ["initiated_by_id", "reviewed_by_id"])
def test_clm_3_database_refuses_a_decider_who_initiated_or_reviewed(now, column):
    """A raw UPDATE that bypasses the service still cannot make the initiator/reviewer the decider."""
    manager = manager_user()
    claim = staff_claim(AccountFactory(), bank_txn(now=now), by=manager, now=now)
    claim = svc.claim_review(claim_id=claim.pk, actor=manager_user("am2"), now=now)
    decider = getattr(claim, column)
    table = RemittanceClaim._meta.db_table
    with pytest.raises(IntegrityError) as raised, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = 'approved', decided_by_id = %s, decided_at = now() WHERE id = %s",
            [decider, claim.pk],
        )
    expected = "claim_decider_not_initiator" if column == "initiated_by_id" else "claim_decider_not_reviewer"
    assert expected in str(raised.value)
    claim.refresh_from_db()
    assert claim.status == Status.REVIEWED


# --- CLM-4: rejection --------------------------------------------------------------------------------


def test_clm_4_reject_records_reason_credits_nothing_and_frees_the_transaction(now):
    claim, txn = reviewed_claim(now=now)
    finance = finance_user()
    rejected = svc.claim_reject(claim_id=claim.pk, actor=finance, reason="Payer is another customer", now=now)
    txn.refresh_from_db()
    assert (rejected.status, rejected.decided_by, rejected.decided_at) == (Status.REJECTED, finance, now)
    assert rejected.note == "Payer is another customer"
    assert (txn.status, txn.account_id, txn.ledger_entry_id) == (TxnStatus.UNMATCHED, None, None)
    assert not LedgerEntry.objects.exists()
    assert rejected.bank_transaction_id == txn.pk  # the history keeps which transfer it was
    # A replay changes nothing.
    assert svc.claim_reject(claim_id=claim.pk, actor=finance, reason="again", now=now).note == rejected.note

    # Claimable again: a new claim on it can go all the way to a credit.
    right = AccountFactory()
    new = staff_claim(right, txn, by=manager_user("am9"), now=now)
    new = svc.claim_review(claim_id=new.pk, actor=manager_user("am10"), now=now)
    svc.claim_approve(claim_id=new.pk, actor=finance_user("fin9"), now=now)
    txn.refresh_from_db()
    assert txn.status == TxnStatus.CREDITED and txn.account_id == right.pk
    assert account_balance(account_id=right.pk, currency="USD") == txn.amount
    assert account_balance(account_id=claim.account_id, currency="USD") == 0
    with pytest.raises(svc.ClaimStateError):
        svc.claim_reject(claim_id=new.pk, actor=finance_user("fin10"), reason="too late", now=now)


def test_clm_4_reject_needs_a_reason_and_keeps_the_review_note(now):
    claim, _ = reviewed_claim(now=now)
    RemittanceClaim.objects.filter(pk=claim.pk).update(note="Looked fine")
    with pytest.raises(svc.ClaimInvalid) as raised:
        svc.claim_reject(claim_id=claim.pk, actor=finance_user(), reason="   ", now=now)
    assert raised.value.rule == "CLM-4"
    claim.refresh_from_db()
    assert claim.status == Status.REVIEWED
    claim = svc.claim_reject(claim_id=claim.pk, actor=finance_user("f2"), reason="Duplicate", now=now)
    assert claim.note.startswith("Duplicate") and "Looked fine" in claim.note


def test_clm_4_account_manager_rejects_a_submitted_claim_and_a_waiting_one(now):
    txn = bank_txn(now=now)
    claim = console_claim(AccountFactory(), now=now, amount=str(txn.amount), reference=txn.bank_reference)
    svc.claim_reject(claim_id=claim.pk, actor=manager_user(), reason="Not our customer", now=now)
    txn.refresh_from_db()
    assert txn.status == TxnStatus.UNMATCHED
    waiting = console_claim(AccountFactory(), now=now, amount="5.00", reference="NOPE")
    rejected = svc.claim_reject(claim_id=waiting.pk, actor=manager_user("am2"), reason="No such transfer", now=now)
    assert rejected.status == Status.REJECTED


# --- suggestions ---------------------------------------------------------------------------------------


def test_clm_1_suggestions_rank_uid_in_remittance_text_first(now):
    by_uid = AccountFactory(name="Initech", uid="4417123456789012")
    by_name = AccountFactory(name="Acme Trading Ltd")
    AccountFactory(name="Umbrella Corp")
    txn = bank_txn(
        now=now, payer_name="ACME TRADING LIMITED", remittance_info="Invoice 77 account 4417 1234 5678 9012",
    )
    suggestions = claim_suggestions(transaction=txn)
    assert [s.account for s in suggestions][:2] == [by_uid, by_name]
    assert "UID" in suggestions[0].reasons[0]
    assert "payer name" in suggestions[1].reasons[0]
    assert suggestions[0].score > suggestions[1].score
    assert all(s.account.name != "Umbrella Corp" for s in suggestions)


def test_clm_1_suggestions_add_up_uid_and_name_and_keep_the_top_five(now):
    both = AccountFactory(name="Globex Corporation", uid="9000000000000001")
    for n in range(8):
        AccountFactory(name=f"Globex Subsidiary {n}")
    txn = bank_txn(now=now, payer_name="Globex Corp", remittance_info="UID 9000000000000001")
    suggestions = claim_suggestions(transaction=txn)
    assert len(suggestions) == 5
    assert suggestions[0].account == both and len(suggestions[0].reasons) == 2
    assert [s.score for s in suggestions] == sorted((s.score for s in suggestions), reverse=True)


def test_clm_1_suggestions_read_a_bounded_number_of_accounts(now, django_assert_max_num_queries):
    for n in range(60):
        AccountFactory(name=f"Acme {n}")
    txn = bank_txn(now=now, payer_name="Acme", remittance_info="1234567890123456 and 6543210987654321")
    with django_assert_max_num_queries(4):
        suggestions = claim_suggestions(transaction=txn)
    assert len(suggestions) == 5


def test_clm_1_suggestions_with_nothing_to_go_on_are_empty(now):
    AccountFactory(name="Acme")
    assert claim_suggestions(transaction=bank_txn(now=now)) == []


def test_clm_1_suggestions_use_pg_trgm_when_the_extension_exists(now):
    """With pg_trgm (payments migration 0003; created here if missing, rolled back with the test)
    the database finds the names by trigram word similarity."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    target = AccountFactory(name="Stark Industries")
    AccountFactory(name="Wayne Enterprises")
    txn = bank_txn(now=now, payer_name="STARK INDUSTRIES LLC")
    with CaptureQueriesContext(connection) as queries:
        suggestions = claim_suggestions(transaction=txn)
    assert [s.account for s in suggestions] == [target]
    assert any("WORD_SIMILARITY(" in q["sql"].upper() for q in queries.captured_queries)


@pytest.mark.parametrize("pg_trgm", [True, False], ids=["pg_trgm", "no_pg_trgm"])
def test_clm_1_suggestions_rank_names_the_same_with_or_without_pg_trgm(now, monkeypatch, pg_trgm):
    if pg_trgm:
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    else:
        monkeypatch.setattr(selectors, "_pg_trgm_installed", lambda: False)
    exact = AccountFactory(name="Acme Trading GmbH")
    close = AccountFactory(name="Acme Trading Asia")
    AccountFactory(name="Umbrella Corp")
    txn = bank_txn(now=now, payer_name="ACME TRADING")
    assert [s.account for s in claim_suggestions(transaction=txn)] == [exact, close]


def test_name_similarity_and_uid_candidates():
    assert name_similarity("ACME LTD", "Acme Limited") == 1.0
    assert name_similarity("Müller GmbH", "Mueller") < name_similarity("Müller GmbH", "Muller AG") == 1.0
    assert name_similarity("", "Acme") == 0.0
    assert "1234567890123456" in uid_candidates("acct 1234-5678-9012-3456 thanks")
    assert "ABCD1234" in uid_candidates("ref ABCD1234")

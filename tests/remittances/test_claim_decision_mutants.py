"""The claim decisions edge by edge (CLM-1..4, SEC-1, SEC-3, NOTIFY-1, SET-2): the survivors of
the claim decisions group of ``make mutate`` (README, "Mutation testing"): ``claim_reject`` from
the first, partial run; ``claim_review``, ``claim_approve`` and ``claim_steps`` from the full run
of 2026-12-04 (refusal texts, who and when, the customer's notification, the settlement asked for).

Each refusal is checked by its code, rule and text, and by what it leaves behind: the claim
still undecided with its note, its transaction still held, no customer notification. The
builders are in ``tests/helpers/claims.py``.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from billing_backoffice.errors import CardNumberInText
from payments.models import LedgerEntry, Notification
from remittances.models import BankTransaction, RemittanceClaim
from remittances.services import claims as svc
from tests.factories import AccountFactory
from tests.helpers.claims import bank_txn, console_claim, finance_user, manager_user, reviewed_claim, staff, staff_claim

pytestmark = pytest.mark.django_db

Status = RemittanceClaim.Status
TxnStatus = BankTransaction.Status

CARD = "4242 4242 4242 4242"  # Luhn-valid
REVIEW = "remittances.review_remittanceclaim"
APPROVE = "remittances.approve_remittanceclaim"


def submitted_claim(*, now):
    """A console claim matched to its transfer, not yet reviewed."""
    txn = bank_txn(now=now)
    claim = console_claim(AccountFactory(), now=now, amount=str(txn.amount), reference=txn.bank_reference)
    assert claim.bank_transaction_id == txn.pk
    return claim, txn


def assert_undecided(claim, txn, *, status, note):
    """Nothing of a rejection happened: same status and note, no decider, transfer still held."""
    claim.refresh_from_db()
    txn.refresh_from_db()
    assert (claim.status, claim.note, claim.decided_by_id, claim.decided_at) == (status, note, None, None)
    assert (txn.status, txn.account_id) == (TxnStatus.CLAIMED, claim.account_id)
    assert not Notification.objects.filter(kind="claim_decided").exists()
    assert not LedgerEntry.objects.exists()


# --- SEC-1: the reason is free text ------------------------------------------------------------


@pytest.mark.parametrize("card", [CARD, "4242-4242-4242-4242", "4242424242424242"])
@pytest.mark.parametrize("stage", ["submitted", "reviewed"])
def test_sec_1_clm_4_a_card_number_in_the_rejection_reason_is_refused_and_nothing_changes(now, stage, card):
    if stage == "submitted":
        claim, txn = submitted_claim(now=now)
    else:
        claim, txn = reviewed_claim(now=now)
    RemittanceClaim.objects.filter(pk=claim.pk).update(note="Looked fine")
    with pytest.raises(CardNumberInText) as raised:
        svc.claim_reject(claim_id=claim.pk, actor=finance_user(), reason=f"Customer wrote {card} on the slip", now=now)
    assert (raised.value.code, raised.value.rule) == ("card_number_in_text", "SEC-1")
    assert raised.value.detail.startswith("Reason: ")
    assert card not in str(raised.value) and "4242424242424242" not in str(raised.value)
    assert_undecided(claim, txn, status=Status(stage), note="Looked fine")


def test_sec_1_clm_4_the_last_four_digits_in_a_reason_are_not_a_card_number(now):
    """The SEC-1 check refuses card numbers only: the same reason with the last four is kept."""
    claim, txn = reviewed_claim(now=now)
    rejected = svc.claim_reject(claim_id=claim.pk, actor=finance_user(), reason="Paid by card 4242 instead", now=now)
    assert (rejected.status, rejected.note) == (Status.REJECTED, "Paid by card 4242 instead")
    assert Notification.objects.filter(kind="claim_decided", account_id=claim.account_id).exists()


# --- CLM-4: the reason is required and recorded ---------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"], ids=["empty", "spaces", "newline-tab"])
@pytest.mark.parametrize("stage", ["submitted", "reviewed"])
def test_clm_4_a_rejection_without_a_reason_is_refused_and_nothing_changes(now, stage, reason):
    if stage == "submitted":
        claim, txn = submitted_claim(now=now)
    else:
        claim, txn = reviewed_claim(now=now)
    with pytest.raises(svc.ClaimInvalid) as raised:
        svc.claim_reject(claim_id=claim.pk, actor=finance_user(), reason=reason, now=now)
    assert raised.value.as_dict() == {"code": "claim_invalid", "rule": "CLM-4", "detail": "A rejection needs a reason."}
    assert_undecided(claim, txn, status=Status(stage), note="")


def test_clm_4_the_reason_is_recorded_stripped(now):
    claim, _ = reviewed_claim(now=now)
    rejected = svc.claim_reject(claim_id=claim.pk, actor=finance_user(), reason="  Payer is someone else \n", now=now)
    rejected.refresh_from_db()
    assert rejected.note == "Payer is someone else"


def test_clm_4_an_approved_claim_is_never_rejected_and_says_so(now):
    claim, txn = reviewed_claim(now=now)
    svc.claim_approve(claim_id=claim.pk, actor=finance_user("fin1"), now=now)
    with pytest.raises(svc.ClaimStateError) as raised:
        svc.claim_reject(claim_id=claim.pk, actor=finance_user("fin2"), reason="too late", now=now)
    assert raised.value.as_dict() == {
        "code": "claim_state", "rule": "CLM-1",
        "detail": f"Claim #{claim.pk} is approved; an approved claim is never rejected.",
    }
    claim.refresh_from_db()
    txn.refresh_from_db()
    assert (claim.status, txn.status) == (Status.APPROVED, TxnStatus.CREDITED)


# --- SEC-3 / CLM-3: who may reject ---------------------------------------------------------------


def test_sec_3_clm_4_finance_with_only_the_approve_permission_rejects_a_submitted_claim(now):
    """claim_steps: a submitted claim is the account manager's or finance's to reject."""
    claim, txn = submitted_claim(now=now)
    finance = staff("fin-only-approve", "approve_remittanceclaim")
    rejected = svc.claim_reject(claim_id=claim.pk, actor=finance, reason="Not our customer", now=now)
    txn.refresh_from_db()
    assert (rejected.status, rejected.decided_by, rejected.decided_at, rejected.note) == (
        Status.REJECTED, finance, now, "Not our customer",
    )
    assert (txn.status, txn.account_id) == (TxnStatus.UNMATCHED, None)


def test_sec_3_clm_4_a_manager_with_only_the_review_permission_rejects_a_submitted_claim(now):
    claim, txn = submitted_claim(now=now)
    manager = staff("am-only-review", "review_remittanceclaim")
    assert svc.claim_reject(claim_id=claim.pk, actor=manager, reason="Duplicate", now=now).status == Status.REJECTED


def test_sec_3_rejecting_a_submitted_claim_without_either_permission_names_the_action(now):
    claim, txn = submitted_claim(now=now)
    outsider = staff("outsider", "view_remittanceclaim", "add_remittanceclaim")
    with pytest.raises(svc.ClaimPermissionDenied) as raised:
        svc.claim_reject(claim_id=claim.pk, actor=outsider, reason="no", now=now)
    assert raised.value.as_dict() == {
        "code": "permission_denied", "rule": "SEC-3",
        "detail": f"outsider may not reject remittance claims (permission {REVIEW} or {APPROVE}).",
    }
    assert_undecided(claim, txn, status=Status.SUBMITTED, note="")


def test_sec_3_a_manager_rejecting_a_reviewed_claim_is_refused_with_the_reviewed_action(now):
    claim, txn = reviewed_claim(now=now)
    with pytest.raises(svc.ClaimPermissionDenied) as raised:
        svc.claim_reject(claim_id=claim.pk, actor=manager_user("am3"), reason="no", now=now)
    assert raised.value.as_dict() == {
        "code": "permission_denied", "rule": "SEC-3",
        "detail": f"am3 may not reject reviewed remittance claims (permission {APPROVE}).",
    }
    assert_undecided(claim, txn, status=Status.REVIEWED, note="")


def test_sec_3_the_permission_check_comes_before_the_reason_check(now):
    """Someone who may not reject learns nothing about the claim from an empty reason."""
    claim, txn = reviewed_claim(now=now)
    with pytest.raises(svc.ClaimPermissionDenied):
        svc.claim_reject(claim_id=claim.pk, actor=manager_user("am4"), reason="", now=now)
    assert_undecided(claim, txn, status=Status.REVIEWED, note="")


@pytest.mark.parametrize("part", ["initiated", "reviewed"])
def test_clm_3_the_initiator_or_reviewer_is_told_why_they_may_not_reject(now, part):
    lead = staff("lead", "add_remittanceclaim", "review_remittanceclaim", "approve_remittanceclaim")
    if part == "initiated":
        claim = staff_claim(AccountFactory(), bank_txn(now=now), by=lead, now=now)
    else:
        claim, _ = reviewed_claim(now=now, reviewer=lead)
    txn = BankTransaction.objects.get(pk=claim.bank_transaction_id)
    with pytest.raises(svc.FourEyesViolation) as raised:
        svc.claim_reject(claim_id=claim.pk, actor=lead, reason="withdrawn", now=now)
    assert raised.value.as_dict() == {
        "code": "four_eyes", "rule": "CLM-3",
        "detail": f"You {part} this claim; another staff member must decide it.",
    }
    assert_undecided(claim, txn, status=claim.status, note="")


# --- the second run of the group (2026-12-04): claim_review, claim_approve, claim_steps ----------


def decided_notifications(claim):
    return sorted(
        Notification.objects.filter(kind="claim_decided", account_id=claim.account_id).values_list(
            "event_key", "title", "body"
        )
    )


def test_sec_1_clm_1_a_card_number_in_the_review_note_is_refused_and_nothing_changes(now):
    claim, txn = submitted_claim(now=now)
    with pytest.raises(CardNumberInText) as raised:
        svc.claim_review(claim_id=claim.pk, actor=manager_user(), note=f"Slip shows {CARD}", now=now)
    assert (raised.value.code, raised.value.rule) == ("card_number_in_text", "SEC-1")
    claim.refresh_from_db()
    assert (claim.status, claim.reviewed_by_id, claim.reviewed_at, claim.note) == (Status.SUBMITTED, None, None, "")


def test_clm_1_the_review_records_who_and_when(now):
    claim, _ = submitted_claim(now=now)
    manager = manager_user()
    svc.claim_review(claim_id=claim.pk, actor=manager, note="  Slip matches  ", now=now)
    claim.refresh_from_db()
    assert (claim.status, claim.reviewed_by, claim.reviewed_at, claim.note) == (
        Status.REVIEWED, manager, now, "Slip matches",
    )


def test_clm_1_a_claim_is_reviewed_once_and_the_refusal_says_why(now):
    claim, _ = reviewed_claim(now=now)
    with pytest.raises(svc.ClaimStateError) as raised:
        svc.claim_review(claim_id=claim.pk, actor=manager_user("am2"), now=now)
    assert raised.value.as_dict() == {
        "code": "claim_state", "rule": "CLM-1",
        "detail": f"Claim #{claim.pk} is reviewed; only a submitted claim is reviewed.",
    }


def test_clm_1_a_claim_without_its_transfer_is_not_reviewed_and_says_attach_it(now):
    claim = console_claim(AccountFactory(), now=now, reference="")
    assert claim.bank_transaction_id is None
    with pytest.raises(svc.ClaimStateError) as raised:
        svc.claim_review(claim_id=claim.pk, actor=manager_user(), now=now)
    assert raised.value.as_dict() == {
        "code": "claim_not_matched", "rule": "CLM-1",
        "detail": f"Claim #{claim.pk} has no bank transaction yet; attach the transfer before reviewing.",
    }


@pytest.mark.parametrize("step, action, permission", [
    ("review", "review", REVIEW), ("approve", "approve", APPROVE),
])
def test_sec_3_reviewing_or_approving_without_the_permission_names_the_action(now, step, action, permission):
    claim, txn = reviewed_claim(now=now) if step == "approve" else submitted_claim(now=now)
    outsider = staff("outsider", "view_remittanceclaim")
    call = svc.claim_review if step == "review" else svc.claim_approve
    with pytest.raises(svc.ClaimPermissionDenied) as raised:
        call(claim_id=claim.pk, actor=outsider, now=now)
    assert raised.value.as_dict() == {
        "code": "permission_denied", "rule": "SEC-3",
        "detail": f"outsider may not {action} remittance claims (permission {permission}).",
    }


def test_clm_1_only_a_reviewed_claim_is_approved_and_the_refusal_says_why(now):
    claim, txn = submitted_claim(now=now)
    with pytest.raises(svc.ClaimStateError) as raised:
        svc.claim_approve(claim_id=claim.pk, actor=finance_user(), now=now)
    assert raised.value.as_dict() == {
        "code": "claim_state", "rule": "CLM-1",
        "detail": f"Claim #{claim.pk} is submitted; only a reviewed claim is approved.",
    }
    assert not LedgerEntry.objects.exists()


def test_clm_3_the_reviewer_is_told_another_finance_member_must_approve(now):
    lead = staff("lead", "review_remittanceclaim", "approve_remittanceclaim")
    claim, txn = reviewed_claim(now=now, reviewer=lead)
    with pytest.raises(svc.FourEyesViolation) as raised:
        svc.claim_approve(claim_id=claim.pk, actor=lead, now=now)
    assert raised.value.as_dict() == {
        "code": "four_eyes", "rule": "CLM-3",
        "detail": "You reviewed this claim; another finance staff member must approve it.",
    }
    assert not LedgerEntry.objects.exists()


def test_clm_2_a_transfer_no_longer_held_by_the_claim_is_never_credited(now):
    """The transfer left ``claimed`` (reversed by the bank) with no ledger entry: refused, and
    the refusal says it cannot be credited again; nothing is posted."""
    claim, txn = reviewed_claim(now=now)
    BankTransaction.objects.filter(pk=txn.pk).update(status=TxnStatus.REVERSED)
    with pytest.raises(svc.AlreadyCredited) as raised:
        svc.claim_approve(claim_id=claim.pk, actor=finance_user(), now=now)
    assert raised.value.detail == (
        f"Bank transaction {txn.pk} has already been credited; this claim cannot credit it again."
    )
    assert not LedgerEntry.objects.exists()
    claim.refresh_from_db()
    assert claim.status == Status.REVIEWED


def test_clm_2_a_credit_posted_by_another_path_during_the_approval_refuses_it(now, monkeypatch):
    """Between the approval's check and its insert another path posts the transfer's reference:
    the approval is refused with the same words and changes nothing (CLM-2)."""
    from remittances.services.claims import decisions

    claim, txn = reviewed_claim(now=now)
    real_post = decisions.ledger_post

    def another_path_first(**kwargs):
        real_post(**{**kwargs, "memo": "statement import"})
        return real_post(**kwargs)

    monkeypatch.setattr(decisions, "ledger_post", another_path_first)
    with pytest.raises(svc.AlreadyCredited) as raised:
        with transaction.atomic():
            svc.claim_approve(claim_id=claim.pk, actor=finance_user(), now=now)
    assert raised.value.detail == (
        f"Bank transaction {txn.pk} has already been credited; this claim cannot credit it again."
    )
    claim.refresh_from_db()
    assert claim.status == Status.REVIEWED and not LedgerEntry.objects.exists()


def test_clm_1_notify_1_set_2_an_approval_credits_once_tells_the_customer_and_settles(
    now, sent, django_capture_on_commit_callbacks,
):
    claim, txn = reviewed_claim(now=now)
    with django_capture_on_commit_callbacks(execute=True):
        approved = svc.claim_approve(claim_id=claim.pk, actor=finance_user(), now=now)
    entry = LedgerEntry.objects.get()
    assert (entry.account_id, entry.amount, entry.memo) == (claim.account_id, txn.amount, f"Claim #{claim.pk}")
    assert ("payments.settle_account", {"account_id": claim.account_id}) in sent
    assert approved.decided_at == now
    assert {(k, t, b) for k, t, b in decided_notifications(claim)} == {(
        f"claim:{claim.pk}", "Your transfer claim was approved",
        f"Your claim for a transfer of 1200.00 USD (reference {txn.bank_reference}) was approved. "
        "The amount was credited to your account balance.",
    )}


@pytest.mark.parametrize("with_reference", [True, False], ids=["reference", "no-reference"])
def test_clm_4_notify_1_a_rejection_tells_the_customer_the_amount_reference_and_reason(now, with_reference):
    if with_reference:
        claim, txn = reviewed_claim(now=now)
        reference = txn.bank_reference
    else:
        claim = console_claim(AccountFactory(), now=now, amount="75.50", currency="EUR", reference="")
        reference = "-"
    svc.claim_reject(claim_id=claim.pk, actor=finance_user(), reason="Payer is someone else", now=now)
    amount = "1200.00 USD" if with_reference else "75.50 EUR"
    assert {(k, t, b) for k, t, b in decided_notifications(claim)} == {(
        f"claim:{claim.pk}", "Your transfer claim was rejected",
        f"Your claim for a transfer of {amount} (reference {reference}) was rejected. Reason: Payer is someone else",
    )}


@pytest.mark.parametrize("helper", ["step_permissions", "step_open"])
def test_clm_1_an_unknown_step_is_named_in_the_error(now, helper):
    from remittances import claim_steps

    claim, _ = submitted_claim(now=now)
    with pytest.raises(ValueError, match=r"^Unknown claim step 'pay'\.$"):
        getattr(claim_steps, helper)("pay", claim)

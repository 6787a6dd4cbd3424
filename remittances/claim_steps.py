"""Which step of a claim a staff user may take (CLM-1 order of steps, CLM-3 four eyes, SEC-3).

Decided here once. The claim services (``remittances/services/claims/``) refuse a step these
rules do not allow, and the admin (``remittances/admin/claims.py``) shows only the buttons they
allow, with the reason a decision is blocked. Pure functions of the claim row and the user: no
query beyond ``user.has_perm`` (cached per request by Django).

Steps: ``review`` and ``attach`` (account managers), ``approve`` (finance), ``reject`` (the
account manager while the claim is submitted, finance while it is submitted or reviewed).
Whoever initiated or reviewed a claim never decides it (CLM-3; also CheckConstraints).
"""

from __future__ import annotations

from remittances.models import RemittanceClaim

Status = RemittanceClaim.Status

# Permission codenames (app label ``remittances``), checked by the services and the admin (SEC-3).
PERM_INITIATE = "remittances.add_remittanceclaim"
PERM_REVIEW = "remittances.review_remittanceclaim"
PERM_APPROVE = "remittances.approve_remittanceclaim"

STEPS = ("review", "attach", "approve", "reject")
DECISIONS = ("approve", "reject")  # CLM-3: never taken by the initiator or the reviewer


def involvement(claim: RemittanceClaim, user) -> str | None:
    """CLM-3: ``"initiated"`` or ``"reviewed"`` when ``user`` took that part in ``claim`` and so
    may not decide it; None when ``user`` is free to decide (or is the system)."""
    if user is None:
        return None
    if claim.initiated_by_id == user.pk:
        return "initiated"
    if claim.reviewed_by_id == user.pk:
        return "reviewed"
    return None


def decision_blocked(claim: RemittanceClaim, user) -> str | None:
    """CLM-3: why ``user`` may not decide ``claim``, in words for a staff page, or None."""
    part = involvement(claim, user)
    if part is None:
        return None
    return f"CLM-3: you {part} this claim; another staff member must decide it."


def step_permissions(step: str, claim: RemittanceClaim) -> tuple[str, ...]:
    """SEC-3: the permissions of which ``user`` needs one to take ``step`` on ``claim``."""
    if step in ("review", "attach"):
        return (PERM_REVIEW,)
    if step == "approve":
        return (PERM_APPROVE,)
    if step == "reject":
        # A reviewed claim is finance's to decide; a submitted one the manager's or finance's.
        return (PERM_APPROVE,) if claim.status == Status.REVIEWED else (PERM_REVIEW, PERM_APPROVE)
    raise ValueError(f"Unknown claim step {step!r}.")


def step_open(step: str, claim: RemittanceClaim) -> bool:
    """CLM-1: ``claim`` is in the state ``step`` starts from."""
    submitted = claim.status == Status.SUBMITTED
    if step == "review":
        return submitted and claim.bank_transaction_id is not None
    if step == "attach":
        return submitted and claim.bank_transaction_id is None
    if step == "approve":
        return claim.status == Status.REVIEWED
    if step == "reject":
        return submitted or claim.status == Status.REVIEWED
    raise ValueError(f"Unknown claim step {step!r}.")


def available_steps(claim: RemittanceClaim, user) -> dict[str, bool]:
    """Which steps ``user`` may take on ``claim`` now (the step buttons on its admin page)."""
    free = involvement(claim, user) is None
    return {
        step: step_open(step, claim)
        and any(user.has_perm(permission) for permission in step_permissions(step, claim))
        and (free or step not in DECISIONS)
        for step in STEPS
    }

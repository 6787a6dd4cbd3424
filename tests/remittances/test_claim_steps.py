"""remittances/claim_steps.py: which claim step a staff user may take (CLM-1, CLM-3, SEC-3).

Decided once: the admin shows the buttons ``available_steps`` allows and the services refuse
the rest. The matrix pins the rules, and every cell is checked against the service itself (each
call inside a savepoint that is rolled back), so the display and the enforcement cannot drift.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction

from billing_backoffice.errors import BillingError
from remittances.claim_steps import STEPS, available_steps, decision_blocked
from remittances.models import RemittanceClaim
from remittances.services import claims as svc
from tests.factories import AccountFactory, BankTransactionFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = {
    "manager": ("view_remittanceclaim", "add_remittanceclaim", "review_remittanceclaim"),
    "finance": ("view_remittanceclaim", "approve_remittanceclaim"),
    "lead": ("view_remittanceclaim", "add_remittanceclaim", "review_remittanceclaim", "approve_remittanceclaim"),
    "reviewer": ("view_remittanceclaim", "add_remittanceclaim", "review_remittanceclaim", "approve_remittanceclaim"),
    "viewer": ("view_remittanceclaim",),
}

# stage -> role -> the steps that role may take (the lead initiated the claim of the later stages,
# the reviewer reviewed it).
EXPECTED = {
    "waiting": {
        "manager": {"attach", "reject"}, "finance": {"reject"}, "lead": {"attach", "reject"},
        "reviewer": {"attach", "reject"}, "viewer": set(),
    },
    "matched": {
        "manager": {"review", "reject"}, "finance": {"reject"}, "lead": {"review"},
        "reviewer": {"review", "reject"}, "viewer": set(),
    },
    "reviewed": {
        "manager": set(), "finance": {"approve", "reject"}, "lead": set(), "reviewer": set(), "viewer": set(),
    },
}


def _user(role: str):
    user = UserFactory(username=f"steps-{role}")
    perms = Permission.objects.filter(content_type__app_label="remittances", codename__in=ROLES[role])
    user.user_permissions.add(*perms)
    return type(user).objects.get(pk=user.pk)  # fresh: no cached permissions


@pytest.fixture
def world(now):
    users = {role: _user(role) for role in ROLES}
    account = AccountFactory()
    waiting = svc.claim_submit(
        account_id=account.pk, amount="1200.00", currency="USD", bank_reference="NO-SUCH-TRANSFER",
        source=RemittanceClaim.Source.CONSOLE, now=now,
    )
    matched = svc.claim_submit(
        account_id=account.pk, amount="1200.00", currency="USD",
        bank_transaction_id=BankTransactionFactory(received_at=now).pk,
        source=RemittanceClaim.Source.STAFF, initiated_by=users["lead"], now=now,
    )
    reviewed = svc.claim_submit(
        account_id=account.pk, amount="1200.00", currency="USD",
        bank_transaction_id=BankTransactionFactory(received_at=now).pk,
        source=RemittanceClaim.Source.STAFF, initiated_by=users["lead"], now=now,
    )
    reviewed = svc.claim_review(claim_id=reviewed.pk, actor=users["reviewer"], now=now)
    spare = BankTransactionFactory(received_at=now)  # what "attach" offers to any claim of 1200 USD
    return users, {"waiting": waiting, "matched": matched, "reviewed": reviewed}, spare


class _Undo(Exception):
    pass


def _service_accepts(step: str, claim: RemittanceClaim, user, *, spare, now) -> bool:
    calls = {
        "review": lambda: svc.claim_review(claim_id=claim.pk, actor=user, note="ok", now=now),
        "attach": lambda: svc.claim_attach(claim_id=claim.pk, bank_transaction_id=spare.pk, actor=user, now=now),
        "approve": lambda: svc.claim_approve(claim_id=claim.pk, actor=user, now=now),
        "reject": lambda: svc.claim_reject(claim_id=claim.pk, actor=user, reason="not theirs", now=now),
    }
    try:
        with transaction.atomic():
            calls[step]()
            raise _Undo
    except _Undo:
        return True
    except BillingError:
        return False


@pytest.mark.parametrize("stage", EXPECTED)
def test_clm_1_clm_3_sec_3_available_steps_are_the_steps_the_services_accept(world, stage, now):
    users, claims, spare = world
    claim = RemittanceClaim.objects.get(pk=claims[stage].pk)
    for role, user in users.items():
        shown = {step for step, allowed in available_steps(claim, user).items() if allowed}
        assert shown == EXPECTED[stage][role], (stage, role)
        accepted = {step for step in STEPS if _service_accepts(step, claim, user, spare=spare, now=now)}
        assert accepted == shown, (stage, role)


def test_clm_3_decision_blocked_names_the_part_the_user_took(world):
    users, claims, _ = world
    reviewed = claims["reviewed"]
    assert decision_blocked(reviewed, users["lead"]) == (
        "CLM-3: you initiated this claim; another staff member must decide it."
    )
    assert decision_blocked(reviewed, users["reviewer"]) == (
        "CLM-3: you reviewed this claim; another staff member must decide it."
    )
    assert decision_blocked(reviewed, users["finance"]) is None

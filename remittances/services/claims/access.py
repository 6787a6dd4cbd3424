"""What every claim step starts with: the actor's permission (SEC-3) and the rows it works on,
locked in the package's order (claim -> bank transaction -> account)."""

from __future__ import annotations

from billing_backoffice.permissions import staff_require
from remittances.models import BankTransaction, RemittanceClaim
from remittances.services.claims.errors import BankTransactionNotFound, ClaimNotFound


def require_perm(actor, *perms: str, action: str) -> None:
    """SEC-3: ``actor`` holds at least one of ``perms`` (``claim_steps.step_permissions``)."""
    staff_require(actor, permission=perms, action=f"{action} remittance claims", system_allowed=False)


def locked_claim(claim_id: int) -> RemittanceClaim:
    try:
        return RemittanceClaim.objects.select_for_update().get(pk=claim_id)
    except RemittanceClaim.DoesNotExist:
        raise ClaimNotFound() from None


def locked_transaction(txn_id: int) -> BankTransaction:
    try:
        return BankTransaction.objects.select_related("receiving_account").select_for_update(of=("self",)).get(
            pk=txn_id
        )
    except BankTransaction.DoesNotExist:
        raise BankTransactionNotFound() from None

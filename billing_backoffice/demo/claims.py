"""Claims for transfers received on the shared account, worked through the claim services (CLM-1..4).

A flow is a list of steps, each run at its own moment by the claim service a person would use:
the customer's console (``claim_submit``, matched at once by the reference it quotes) or the
account manager ``manager`` (initiates from the unmatched transaction and reviews), then finance
``finance`` approves (credits the ledger once, CLM-2) or rejects (CLM-4). Four eyes (CLM-3): the
initiator and the reviewer never decide; ``manager`` initiates and reviews, ``finance`` decides,
so the demo needs no second finance login. A claim has no draft state: it starts ``submitted``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from remittances.models import BankTransaction
from remittances.services.claims import claim_approve, claim_reject, claim_review, claim_submit

if TYPE_CHECKING:
    from .billing import Staff, Story
    from .timeline import Timeline

REVIEW_NOTE = "Payer and amount match the customer's remittance advice."
WRONG_ACCOUNT = "The payer is not this account's holder; the transfer belongs to another customer."
NO_TRANSFER = "No transfer with this reference has arrived; ask the customer for the bank's confirmation."

# Steps of each flow (the last state the claim is left in).
FLOWS = {
    "staff_approved": ("initiate", "review", "approve"),
    "console_approved": ("submit", "review", "approve"),
    "corrected": ("initiate_wrong", "review", "reject", "initiate", "review", "approve"),
    "reviewed": ("submit", "review"),
    "staff_reviewed": ("initiate", "review"),
    "submitted": ("submit",),
}
OLD_DAY_FLOWS = ("staff_approved", "console_approved", "corrected")
TODAY_FLOWS = ("staff_approved", "reviewed", "submitted", "console_approved", "staff_reviewed")


class ClaimFlow:
    """One transfer on the shared account claimed for ``story``'s account, step by step."""

    def __init__(self, *, flow: str, txn: BankTransaction, story: Story, wrong: Story | None, staff: Staff):
        self.steps = FLOWS[flow] if wrong is not None or flow != "corrected" else FLOWS["staff_approved"]
        self.txn, self.story, self.wrong, self.staff = txn, story, wrong, staff
        self.claim = None

    def schedule(self, timeline: Timeline, times: list[datetime]) -> None:
        for step, when in zip(self.steps, times):
            timeline.add(when, lambda t, step=step: getattr(self, step)(t))

    def submit(self, when: datetime) -> None:
        """The customer's console quotes the transfer's end-to-end reference (CLM-1)."""
        txn = self.txn
        self.claim = claim_submit(
            account_id=self.story.account.pk, amount=txn.amount, currency=txn.currency, value_date=txn.value_date,
            payer_name=txn.payer_name, bank_reference=txn.end_to_end_id, source="console", now=when,
        )

    def initiate(self, when: datetime, *, account=None) -> None:
        self.claim = claim_submit(
            account_id=(account or self.story.account).pk, amount=self.txn.amount, currency=self.txn.currency,
            bank_transaction_id=self.txn.pk, source="staff", initiated_by=self.staff.manager, now=when,
        )

    def initiate_wrong(self, when: datetime) -> None:
        self.initiate(when, account=self.wrong.account)

    def review(self, when: datetime) -> None:
        if self.claim is not None and self.claim.bank_transaction_id is not None:
            self.claim = claim_review(claim_id=self.claim.pk, actor=self.staff.manager, note=REVIEW_NOTE, now=when)

    def reject(self, when: datetime) -> None:
        claim_reject(claim_id=self.claim.pk, actor=self.staff.finance, reason=WRONG_ACCOUNT, now=when)
        self.claim = None

    def approve(self, when: datetime) -> None:
        if self.claim is not None and self.claim.status == "reviewed":
            claim_approve(claim_id=self.claim.pk, actor=self.staff.finance, now=when)
            self.story.credited(when)  # SET-2: the settlement task pays the bills with it


def waiting_claim(story: Story, *, amount, currency: str, reference: str, when: datetime,
                  reject_at: datetime | None, staff: Staff, timeline: Timeline) -> None:
    """A console claim for a transfer that is not on any statement (its reference matches
    nothing): it waits unattached (CLM-1), or the account manager rejects it (CLM-4)."""
    claim = claim_submit(account_id=story.account.pk, amount=amount, currency=currency, bank_reference=reference,
                         payer_name=story.account.name, source="console", now=when)
    if reject_at is not None:
        timeline.add(reject_at, lambda t: claim_reject(claim_id=claim.pk, actor=staff.manager, reason=NO_TRANSFER, now=t))

"""Outgoing payment files (RFD-1): approved refunds -> pain.001 files -> sent.

``payment_files_generate`` takes every approved refund not yet in a file, one file per debtor
account and currency, and moves each refund ``approved -> in_file`` with a conditional update
naming the file: a refund is in exactly one file even when two finance members (or a job)
generate at once (the refunds are locked in pk order with ``SKIP LOCKED``: a concurrent run
takes the others or none). ``payment_file_mark_sent`` records that the file went to the bank;
a credited bank transaction its sent refunds now pay back in full becomes ``refunded`` (a stored
state, RFD-1/RCN-3). A payment the bank then reports rejected is ``refunds.refund_return``,
which credits the money back once and makes that transaction ``credited`` again.
"""

from __future__ import annotations

import secrets
import string
from collections import defaultdict
from datetime import datetime

from django.db import transaction
from django.db.models import F, OuterRef, Subquery, Sum

from billing_backoffice.permissions import staff_require
from remittances.models import BankTransaction, PaymentFile, RefundRequest
from remittances.payment_files import Debtor, Payment, end_to_end_id, pain001_write
from remittances.services.funds_out import RequestNotFound
from remittances.errors import (  # noqa: F401 (raised here, importable from here)
    PaymentFileState,
)

PERM_GENERATE = "remittances.generate_paymentfile"
PERM_SEND = "remittances.send_paymentfile"
Status = RefundRequest.Status


def _message_id(now: datetime) -> str:
    # Letters after the date: the id never holds a run of digits a card-number scan could
    # read as a card (SEC-1), in a log line or a stored file.
    return f"RFD{now:%Y%m%d}{''.join(secrets.choice(string.ascii_uppercase) for _ in range(20))}"


@transaction.atomic
def payment_files_generate(*, actor, now: datetime) -> list[PaymentFile]:
    """One pain.001 file per debtor account and currency of the approved refunds not in a file."""
    staff_require(actor, permission=PERM_GENERATE, action="generate payment files", rule="RFD-1")
    refunds = list(
        RefundRequest.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status=Status.APPROVED, payment_file__isnull=True)
        .select_related("debtor_account").order_by("pk")
    )
    groups: dict[tuple[int, str], list[RefundRequest]] = defaultdict(list)
    for refund in refunds:
        groups[(refund.debtor_account_id, refund.currency)].append(refund)
    files = []
    for (_, currency), members in sorted(groups.items()):
        debtor = members[0].debtor_account
        message_id = _message_id(now)
        content = pain001_write(
            message_id=message_id, created_at=now, execution_date=now.date(), currency=currency,
            debtor=Debtor(name=debtor.beneficiary_name, account_number=debtor.number, bic=debtor.bic),
            payments=[
                Payment(
                    end_to_end_id=end_to_end_id(r.pk), amount=r.amount, creditor_name=r.payer_name,
                    creditor_iban=r.payer_iban, creditor_bic=r.payer_bic, remittance_info=_remittance_info(r),
                )
                for r in members
            ],
        )
        payment_file = PaymentFile.objects.create(
            debtor_account=debtor, currency=currency, message_id=message_id, payment_count=len(members),
            total=sum(r.amount for r in members), content=content.decode("utf-8"), created_by=actor, created_at=now,
        )
        moved = RefundRequest.objects.filter(
            pk__in=[r.pk for r in members], status=Status.APPROVED, payment_file__isnull=True
        ).update(status=Status.IN_FILE, payment_file=payment_file)
        if moved != len(members):  # cannot happen under the row locks; never write a file twice
            raise PaymentFileState("A refund changed while its payment file was written; try again.")
        files.append(payment_file)
    return files


@transaction.atomic
def payment_file_mark_sent(*, payment_file_id: int, actor, now: datetime) -> PaymentFile:
    """The file went to the bank: it and its refunds are ``sent`` (a replay changes nothing)."""
    staff_require(actor, permission=PERM_SEND, action="mark payment files sent", rule="RFD-1")
    payment_file = PaymentFile.objects.select_for_update().filter(pk=payment_file_id).first()
    if payment_file is None:
        raise RequestNotFound("No such payment file.")
    if payment_file.status == PaymentFile.Status.SENT:
        return payment_file
    RefundRequest.objects.filter(payment_file=payment_file, status=Status.IN_FILE).update(status=Status.SENT)
    in_file = RefundRequest.objects.filter(payment_file=payment_file, bank_transaction__isnull=False)
    transactions_mark_refunded(in_file.filter(kind=RefundRequest.Kind.REFUND).values_list("bank_transaction_id", flat=True))
    # A payer return's transfer is paid back whole: it is ``returned`` (it was never credited).
    BankTransaction.objects.filter(
        pk__in=in_file.filter(kind=RefundRequest.Kind.PAYER_RETURN).values_list("bank_transaction_id", flat=True),
        status=BankTransaction.Status.REVIEW,
    ).update(status=BankTransaction.Status.RETURNED)
    payment_file.status = PaymentFile.Status.SENT
    payment_file.sent_by = actor
    payment_file.sent_at = now
    payment_file.save(update_fields=["status", "sent_by", "sent_at"])
    return payment_file


def _remittance_info(refund: RefundRequest) -> str:
    if refund.kind == RefundRequest.Kind.PAYER_RETURN:
        return f"Return of your transfer, not creditable ({refund.currency}) {refund.pk}"
    return f"Refund {refund.pk}"


def transactions_mark_refunded(txn_ids) -> int:
    """RFD-1: these credited bank transactions that sent refunds pay back in full are ``refunded``.

    The transactions are locked (after the refunds, the order of ``funds_out``) so a refund being
    approved out of one at the same time is counted or waits."""
    ids = list(
        BankTransaction.objects.select_for_update().filter(pk__in=list(txn_ids), status=BankTransaction.Status.CREDITED)
        .order_by("pk").values_list("pk", flat=True)
    )
    sent = Subquery(
        RefundRequest.objects.filter(bank_transaction_id=OuterRef("pk"), status=Status.SENT)
        .order_by().values("bank_transaction_id").annotate(s=Sum("amount")).values("s")[:1]
    )
    full = BankTransaction.objects.filter(pk__in=ids).annotate(sent_total=sent).filter(sent_total__gte=F("amount"))
    return BankTransaction.objects.filter(pk__in=list(full.values_list("pk", flat=True))).update(
        status=BankTransaction.Status.REFUNDED
    )

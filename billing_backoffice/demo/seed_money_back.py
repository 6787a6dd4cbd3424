"""Demo money going back out (issue 13): a refund (RFD-1), a transfer between accounts (RFD-2),
bank reversals (RVS-1, one debited, one leaving the account owing), a currency mismatch returned
to its payer, and a reconciliation day with a difference next to a clean one (RCN-1).

Everything goes through the real services, as staff would do it after the history: on one
dedicated receiving account whose customer owes nothing, finance imports a statement (camt.053,
``statement_import``) with three credits and a transfer in the wrong currency (``review``); it
opens 25.00 above the account's last closing balance, the RCN-1 difference of the day.
``finance`` records a refund of the first credit, ``finance2`` approves it (four eyes), the
payment file is generated and marked sent (the transaction is ``refunded``); ``manager``
initiates the transfer of the second credit to another account, ``finance`` approves it; a second
statement reverses the third credit (RVS-1: debited once) and the second, whose money has left
and which is more than the account's credit line (RVS-1: ``owing``). The mismatch gets a payer
return, left ``submitted`` for another finance member. Then the daily proof runs for the first
statement day of the history (clean) and for today's.

Times: one ``now``; every step is a moment of today after the history's (``Clock.recent``), in
order, never after ``now``. Idempotent: nothing is done when the demo already holds the
statement this module imports (identity ``MONEYBACK-...``); a demo without a fitting account
(tiny test seeds) gets nothing.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings

from payments.models import Account, Bill
from payments.services import credit_control as cc
from payments.services.billing import account_unpaid_total
from payments.services.ledger import account_balance
from remittances.models import BankStatement, BankTransaction, RemittanceAccount
from remittances.services.payer_returns import payer_return_request
from remittances.services.payment_files import payment_file_mark_sent, payment_files_generate
from remittances.services.reconciliation import reconciliation_run
from remittances.services.refunds import refund_approve, refund_request
from remittances.services.reversals import reversals_apply
from remittances.services.statements import statement_import
from remittances.services.transfers import transfer_approve, transfer_request

from .camt import Detail, Entry, Statement, camt053
from .clock import Clock
from .tables import UID_PREFIX

MARKER = "MONEYBACK-"
OPENING_GAP = Decimal("25.00")  # RCN-1: the first statement opens this much above the last close
REFUNDED, REVERSED = Decimal("300.00"), Decimal("150.00")
MISMATCH = Decimal("420.00")
PAYER = ("Harbour Logistics BV", "NL91ABNA0417164300", "ABNANL2A")


def _source() -> RemittanceAccount | None:
    """A demo dedicated account whose customer owes nothing on a bill (RFD-3 leaves it all free)."""
    for receiving in RemittanceAccount.objects.filter(
            kind=RemittanceAccount.Kind.DEDICATED, account__uid__startswith=UID_PREFIX).select_related("account") \
            .order_by("pk"):
        currency = receiving.currency
        if account_unpaid_total(account_id=receiving.account_id, currency=currency) == 0 \
                and account_balance(account_id=receiving.account_id, currency=currency) >= 0:
            return receiving
    return None


def _target(source: RemittanceAccount) -> Account | None:
    """Whose the transferred funds are: an active demo account with no unpaid bill (SET-2 then
    has nothing to settle with them)."""
    unpaid = Bill.objects.filter(status__in=cc.UNPAID).values("account_id")
    return Account.objects.filter(uid__startswith=UID_PREFIX, status=Account.Status.ACTIVE) \
        .exclude(pk=source.account_id).exclude(pk__in=unpaid).order_by("pk").first()


def _last_closing(receiving: RemittanceAccount) -> Decimal:
    last = BankStatement.objects.filter(receiving_account=receiving).order_by("-imported_at", "-pk") \
        .values_list("closing_balance", flat=True).first()
    return last or Decimal("0.00")


def _credit(receiving: RemittanceAccount, amount: Decimal, ref: str, *, currency: str | None = None) -> Entry:
    name, iban, _ = PAYER
    detail = Detail(amount=amount, payer_name=name, payer_iban=iban, info=f"Payment {ref}", end_to_end_id=f"E2E{ref}")
    return Entry(amount=amount, currency=currency or receiving.currency, reference=ref, details=[detail])


def _reversal(original: Entry) -> Entry:
    detail = Detail(amount=original.amount, payer_name=original.details[0].payer_name,
                    info=f"Return of transfer {original.reference}", end_to_end_id=original.details[0].end_to_end_id)
    return Entry(amount=original.amount, currency=original.currency, reference=f"R{original.reference}",
                 details=[detail], credit=False, reversal=True)


def _import(receiving: RemittanceAccount, entries: list[Entry], *, opening: Decimal, name: str, when: datetime,
            actor) -> None:
    statement = Statement(identity=f"{MARKER}{when:%Y%m%d}-{name}", iban=receiving.number,
                          currency=receiving.currency, opening=opening, day=when, entries=entries)
    data = camt053([statement], message_id=f"DEMO-{MARKER}{when:%Y%m%d}-{name}",
                   bic=settings.REMITTANCE_BANK["bic"].upper())
    statement_import(data=data, file_name=f"camt053_{MARKER}{name}.xml", actor=actor, now=when)


def _txn(receiving: RemittanceAccount, entry: Entry) -> BankTransaction:
    return BankTransaction.objects.get(receiving_account=receiving, bank_reference=entry.reference)


def seed_money_back(*, now: datetime, users: dict) -> bool:
    """Play the money-back steps once (see the module docstring); True when this run did."""
    if BankStatement.objects.filter(identity__startswith=MARKER).exists():
        return False
    source = _source()
    target = _target(source) if source is not None else None
    if target is None:
        return False
    clock = Clock(now)
    times = iter(clock.recent(0.9 + 0.01 * step) for step in range(10))
    finance, finance2, manager = users["finance"], users["finance2"], users["manager"]
    account = source.account
    # More than the balance and the credit line together once it has left: its reversal owes.
    limit = account.credit_limit if account.credit_approved else Decimal("0.00")
    moved = (account_balance(account_id=account.pk, currency=source.currency) + limit + Decimal("300.00")).quantize(
        Decimal("1"))
    stamp = f"{clock.now:%y%m%d}"
    refunded, transferred, reversed_ = (_credit(source, amount, f"MB{stamp}{n}")
                                        for n, amount in ((1, REFUNDED), (2, moved), (3, REVERSED)))
    other = "EUR" if source.currency != "EUR" else "USD"
    mismatch = _credit(source, MISMATCH, f"MB{stamp}4", currency=other)
    first = Statement(identity="", iban=source.number, currency=source.currency,
                      opening=_last_closing(source) + OPENING_GAP, day=now,
                      entries=[refunded, transferred, reversed_, mismatch])
    when = next(times)
    _import(source, first.entries, opening=first.opening, name="1", when=when, actor=finance)
    _refund(source, refunded, account, finance=finance, finance2=finance2, times=times)
    _transfer(source, transferred, account, target, manager=manager, finance=finance, times=times)
    _import(source, [_reversal(reversed_), _reversal(transferred)], opening=first.closing, name="2",
            when=(at := next(times)), actor=finance)
    reversals_apply(now=at)  # the import's on-commit hook, here inside the seed's transaction
    name, iban, bic = PAYER
    payer_return_request(bank_transaction_id=_txn(source, mismatch).pk, payer_name=name, payer_iban=iban,
                         payer_bic=bic, reason=f"Paid in {other} to a {source.currency} account; returned whole (demo).",
                         actor=finance, now=next(times))
    at = next(times)
    reconciliation_run(day=clock.statement_days()[0].date(), now=at)  # a clean day
    reconciliation_run(day=when.date(), now=at)  # RCN-1: today's statement does not follow the last one
    return True


def _refund(source, entry: Entry, account, *, finance, finance2, times) -> None:
    """RFD-1: finance records, another finance member approves, the file is sent."""
    name, iban, bic = PAYER
    refund = refund_request(
        account_id=account.pk, amount=entry.amount, currency=source.currency, payer_name=name, payer_iban=iban,
        payer_bic=bic, reason="Paid twice for the same invoice; the second payment goes back (demo).",
        actor=finance, now=next(times), bank_transaction_id=_txn(source, entry).pk,
    )
    refund_approve(refund_id=refund.pk, actor=finance2, now=next(times))
    at = next(times)
    for payment_file in payment_files_generate(actor=finance, now=at):
        payment_file_mark_sent(payment_file_id=payment_file.pk, actor=finance, now=at)


def _transfer(source, entry: Entry, account, target, *, manager, finance, times) -> None:
    """RFD-2: the account manager initiates, finance approves."""
    transfer = transfer_request(
        from_account_id=account.pk, to_account_id=target.pk, amount=entry.amount, currency=source.currency,
        reason=f"The customer paid for account {target.uid} into the wrong account (demo).", actor=manager,
        now=next(times), bank_transaction_id=_txn(source, entry).pk,
    )
    transfer_approve(transfer_id=transfer.pk, actor=finance, now=next(times))

"""Money going back out in the state machine (issue 13: RFD-1..3, RVS-1/2, RCN-2/3).

Mixed into ``BillingMachine``; every rule calls the real services. Finance requests a refund of
a credited bank transaction's money and another finance member approves it (RFD-1 four eyes: the
same person is refused); the approved refunds go into payment files that are marked sent (a
credit refunded in full becomes ``refunded``); the bank returns a sent refund, by hand
(``refund_return``) or as a reversed debit on a statement naming ``RFD-<id>`` (``reversal_apply``),
sometimes both, and the money comes back once. An account manager moves money between two
accounts and finance approves it (RFD-2). The bank reverses a credit line, credited (RVS-1: one
reversing entry, or ``owing``) or not (RVS-2: closed). The daily proof runs (RCN-2/RCN-3) and,
unless a fault was injected, records no RCN-2/RCN-3 difference for the world's receiving accounts.

Checked after every step, besides the machine's I1..I6: RFD-3 (never more refunded or moved out
of a bank transaction than it credited), each refund's money leaves the ledger once (its debit,
``refund:<id>``, exists exactly while it is approved, in a file, sent or returned) and comes back
at most once (one reversing entry, exactly when it is returned), each approved transfer is one
debit and one credit of its amount, and a credit is ``refunded`` exactly when its sent refunds
pay it back in full (RFD-1).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal

from django.contrib.auth.models import Permission
from django.db.models import Sum
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from payments.models import LedgerEntry
from payments.services.ledger import account_balance
from remittances.models import (
    BankReversal,
    BankStatement,
    BankTransaction,
    FundsTransfer,
    PaymentFile,
    ReconciliationDay,
    ReconciliationException,
    RefundRequest,
    refund_ledger_reference,
    transfer_ledger_references,
)
from remittances.payment_files import end_to_end_id
from remittances.services import payment_files, refunds, reversals, transfers
from remittances.services.funds_out import account_available, transaction_remaining
from remittances.services.reconciliation import reconciliation_run

index = st.integers(min_value=0, max_value=10_000)
D = Decimal
TxnStatus = BankTransaction.Status
RefundStatus = RefundRequest.Status
PAYER_IBAN, PAYER_BIC = "DE89370400440532013000", "COBADEFFXXX"
FINANCE_GRANTS = (
    "view_refundrequest", "add_refundrequest", "approve_refundrequest", "view_fundstransfer",
    "approve_fundstransfer", "view_paymentfile", "generate_paymentfile", "send_paymentfile",
)
MANAGER_GRANTS = ("view_fundstransfer", "add_fundstransfer", "view_refundrequest")
# How much a refund or transfer asks for: all that is left, part of it, or more than the credit.
PORTIONS = st.sampled_from(("all", "all", "half", "cent", "more"))
# Reversal lines on the days of RCN-2: an OWING reversal is a difference the proof must show.
FAULT_OUTCOMES = (BankReversal.Outcome.OWING,)


class MoneyBackRules:
    """Rules and checks of RFD-1..3, RVS-1/2 and RCN-2/3 (see the module docstring)."""

    @initialize()
    def money_back_start(self):
        self._mb_people = None
        self.mb_faults = False  # set when a step leaves a difference the daily proof must report
        self.mb_lines = 0

    def mb_people(self) -> dict:
        """The machine's staff with the refund, transfer and payment-file permissions."""
        if self._mb_people is None:
            for person, codenames in ((self.staff.finance_a, FINANCE_GRANTS), (self.staff.finance_b, FINANCE_GRANTS),
                                      (self.staff.manager_a, MANAGER_GRANTS)):
                person.user_permissions.add(*Permission.objects.filter(
                    content_type__app_label="remittances", codename__in=codenames))
            model = type(self.staff.finance_a)
            self._mb_people = {name: model.objects.get(pk=getattr(self.staff, name).pk)
                               for name in ("finance_a", "finance_b", "manager_a")}
        return self._mb_people

    def _credited(self, i: int = 0) -> list[int]:
        """The credited bank transactions; when there are none yet, a statement day on a
        dedicated account is imported first (through the machine's rule, the real import), so
        that short runs reach refunds, transfers and reversals of real credits."""
        def credited():
            return self.ids(BankTransaction.objects.filter(
                status=TxnStatus.CREDITED, entry_kind=BankTransaction.EntryKind.CREDIT, account__isnull=False))

        found = credited()
        if not found:
            self.import_statement(i=i, shared=False, amounts=[D("100.00"), D("40.00")], debit=None, again="no")
            found = credited()
        return found

    @staticmethod
    def _portion(txn: BankTransaction, portion: str) -> Decimal:
        left = transaction_remaining(txn)
        return {"all": left, "half": (left / 2).quantize(D("0.01")), "cent": D("0.01"),
                "more": left + D("0.01")}[portion]

    # -- refunds (RFD-1, RFD-3) -------------------------------------------------------------------

    @precondition(lambda self: self.accounts)
    @rule(t=index, portion=PORTIONS, approver=st.sampled_from(("finance_b", "finance_b", "finance_a")),
          then=st.sampled_from(("stop", "file", "send", "send", "returned", "returned", "approve_twice")),
          how=st.sampled_from(("by_hand", "statement", "both")))
    def refund_flow(self, t, portion, approver, then, how):
        """RFD-1/RFD-3: finance_a requests a refund out of a credited bank transaction; the
        approver debits the ledger once (the requester is refused: four eyes); more than is left
        of the credit is refused; then the payment file is generated, maybe sent, and maybe the bank
        returns the payment (by hand, on a statement, or both: the money comes back once)."""
        credited = self._credited(t)
        if not credited:
            return
        txn_id = credited[t % len(credited)]
        people = self.mb_people()
        txn = BankTransaction.objects.get(pk=txn_id)
        amount = self._portion(txn, portion)
        if amount <= 0:
            return
        refund, refused = self.call(
            refunds.refund_request, account_id=txn.account_id, bank_transaction_id=txn.pk, amount=amount,
            currency=txn.currency, payer_name="Payer GmbH", payer_iban=PAYER_IBAN, payer_bic=PAYER_BIC,
            reason="Overpaid invoice", actor=people["finance_a"], now=self.now,
        )
        if portion == "more":
            assert refused is not None and refused.rule == "RFD-3", "RFD-3: a refund above the credit was accepted"
            return
        if refund is None:
            return
        balance = account_balance(account_id=txn.account_id, currency=txn.currency)
        approved, refused = self.call(refunds.refund_approve, refund_id=refund.pk, actor=people[approver], now=self.now)
        if approver == "finance_a":
            assert refused is not None and refused.rule == "RFD-1", "RFD-1: the requester approved their own refund"
            return
        if approved is None:
            return
        assert account_balance(account_id=txn.account_id, currency=txn.currency) == balance - amount, \
            "RFD-1: the approval did not debit the refund once"
        if then == "approve_twice":
            again, _ = self.call(refunds.refund_approve, refund_id=refund.pk, actor=people[approver], now=self.now)
            assert again is not None and again.status == RefundStatus.APPROVED, "RFD-1: a replayed approval changed it"
            assert account_balance(account_id=txn.account_id, currency=txn.currency) == balance - amount, \
                "RFD-1: a replayed approval debited again"
        elif then in ("file", "send", "returned"):
            # The whole way in one step (short runs): into a file, sent, returned by the bank.
            self.payment_files_flow(send=then != "file", twice=False)
            if then == "returned":
                self.refund_returned_by_bank(r=0, how=how, only=refund.pk)

    @precondition(lambda self: self.accounts)
    @rule(send=st.booleans(), twice=st.booleans())
    def payment_files_flow(self, send, twice):
        """RFD-1: every approved refund goes into exactly one payment file; sending it marks the
        refunds sent and a credit refunded in full ``refunded`` (the invariant checks the state)."""
        people = self.mb_people()
        files, _ = self.call(payment_files.payment_files_generate, actor=people["finance_a"], now=self.now)
        if twice:
            again, _ = self.call(payment_files.payment_files_generate, actor=people["finance_b"], now=self.now)
            assert again == [], "RFD-1: a refund went into a second payment file"
        if not send:
            return
        for payment_file in PaymentFile.objects.filter(status=PaymentFile.Status.GENERATED).order_by("pk"):
            self.call(payment_files.payment_file_mark_sent, payment_file_id=payment_file.pk,
                      actor=people["finance_b"], now=self.now)
            if twice:
                self.call(payment_files.payment_file_mark_sent, payment_file_id=payment_file.pk,
                          actor=people["finance_a"], now=self.now)
        assert not RefundRequest.objects.filter(status=RefundStatus.IN_FILE).exists(), \
            "RFD-1: a refund of a sent file is not sent"

    @precondition(lambda self: self.accounts)
    @rule(r=index, how=st.sampled_from(("by_hand", "statement", "both")))
    def refund_returned_by_bank(self, r, how, only=None):
        """RFD-1/RVS: the bank returns a refund payment (by hand, a reversed debit on a statement
        naming ``RFD-<id>``, or both): its money is credited back once."""
        live = self.ids(RefundRequest.objects.filter(status__in=(RefundStatus.IN_FILE, RefundStatus.SENT),
                                                     kind=RefundRequest.Kind.REFUND, **({"pk": only} if only else {})))
        if not live:
            return
        refund = RefundRequest.objects.get(pk=live[r % len(live)])
        balance = account_balance(account_id=refund.account_id, currency=refund.currency)
        if how in ("statement", "both"):
            line = self._line(receiving_id=refund.debtor_account_id, amount=refund.amount, currency=refund.currency,
                              end_to_end_id=end_to_end_id(refund.pk), reversal_of="debit")
            outcome, _ = self.call(reversals.reversal_apply, reversal_id=line.pk, now=self.now)
            assert outcome is not None and outcome.outcome == BankReversal.Outcome.RETURNED, \
                f"RFD-1: the bank's return of refund #{refund.pk} was not recognised ({outcome and outcome.outcome})"
        if how in ("by_hand", "both"):
            self.call(refunds.refund_return, refund_id=refund.pk, actor=self.mb_people()["finance_b"],
                      reason="AC04 account closed", now=self.now)
        assert account_balance(account_id=refund.account_id, currency=refund.currency) == balance + refund.amount, \
            "RFD-1: a returned refund's money did not come back exactly once"

    # -- transfers (RFD-2, RFD-3) -----------------------------------------------------------------

    @precondition(lambda self: len(self.accounts) >= 2)
    @rule(i=index, j=index, t=index, from_credit=st.booleans(), portion=PORTIONS,
          approver=st.sampled_from(("finance_a", "finance_b", "manager_a")), twice=st.booleans())
    def transfer_flow(self, i, j, t, from_credit, portion, approver, twice):
        """RFD-2/RFD-3: an account manager moves money to another account, out of a credited bank
        transaction or the balance; finance approves (the initiator is refused): one debit, one
        credit; more than the transaction credited is refused."""
        people = self.mb_people()
        txn = None
        if from_credit:
            credited = self._credited(t)
            if not credited:
                return
            txn = BankTransaction.objects.get(pk=credited[t % len(credited)])
            source, currency = txn.account_id, txn.currency
            amount = self._portion(txn, portion)
        else:
            source, currency = self.account(i), "USD"
            left = account_available(account_id=source, currency=currency)
            amount = {"all": left, "half": (left / 2).quantize(D("0.01")), "cent": D("0.01"),
                      "more": left + D("0.01")}[portion]
        target = next((a for a in self.accounts[j % len(self.accounts):] + self.accounts if a != source), None)
        if target is None or amount <= 0:
            return
        transfer, refused = self.call(
            transfers.transfer_request, from_account_id=source, to_account_id=target, amount=amount,
            currency=currency, reason="Paid to the wrong account", actor=people["manager_a"], now=self.now,
            bank_transaction_id=txn.pk if txn is not None else None,
        )
        if portion == "more":
            assert refused is not None and refused.rule == "RFD-3", "RFD-3: a transfer above the credit was accepted"
            return
        if transfer is None:
            return
        before = (account_balance(account_id=source, currency=currency),
                  account_balance(account_id=target, currency=currency))
        done, refused = self.call(transfers.transfer_approve, transfer_id=transfer.pk, actor=people[approver],
                                  now=self.now)
        if approver == "manager_a":
            assert refused is not None and refused.rule == "RFD-2", "RFD-2: the initiator approved their own transfer"
            return
        if done is None:
            return
        if twice:
            self.call(transfers.transfer_approve, transfer_id=transfer.pk, actor=people[approver], now=self.now)
        after = (account_balance(account_id=source, currency=currency),
                 account_balance(account_id=target, currency=currency))
        assert after == (before[0] - amount, before[1] + amount), "RFD-2: a transfer did not move its amount once"

    # -- bank reversals (RVS-1, RVS-2) ------------------------------------------------------------

    def _line(self, *, receiving_id: int, amount, currency: str, reversal_of: str = "", end_to_end_id: str = "",
              remittance_info: str = "") -> BankTransaction:
        """A reversal line of a statement, made with the ORM as tests/remittances/refund_helpers
        does (the import's reversal parsing has its own tests; here what matters is the apply)."""
        self.mb_lines += 1
        ref = self.next_ref("RVSL")
        statement = BankStatement.objects.create(
            receiving_account_id=receiving_id, format=BankStatement.Format.CAMT053, identity=ref, currency=currency,
            file_sha256=f"{self.seq:064d}", imported_at=self.now,
        )
        return BankTransaction.objects.create(
            statement=statement, receiving_account_id=receiving_id, bank_reference=ref, position=1,
            entry_kind=BankTransaction.EntryKind.REVERSAL, status=TxnStatus.NOT_CREDITABLE, amount=amount,
            currency=currency, booking_date=self.now.date(), value_date=self.now.date(), received_at=self.now,
            end_to_end_id=end_to_end_id, remittance_info=remittance_info, reversal_of=reversal_of,
        )

    @precondition(lambda self: self.accounts)
    @rule(t=index, which=st.sampled_from(("credited", "credited", "refunded", "uncredited")), twice=st.booleans())
    def bank_reversal(self, t, which, twice):
        """RVS-1: the bank takes back a credited (or refunded) line: one reversing ledger entry of
        its credit, or ``owing`` when the balance cannot take it; RVS-2: an uncredited line is
        closed (``reversed``) and moves no money. A second apply returns the first outcome."""
        statuses = {"credited": (TxnStatus.CREDITED,), "refunded": (TxnStatus.REFUNDED,),
                    "uncredited": reversals.UNCREDITED}[which]
        def lines():
            return self.ids(BankTransaction.objects.filter(
                status__in=statuses, entry_kind=BankTransaction.EntryKind.CREDIT))

        candidates = lines()
        if not candidates and which != "refunded":
            self.import_statement(i=t, shared=which == "uncredited", amounts=[D("99.99")], debit=None, again="no")
            candidates = lines()
        if not candidates:
            return
        original = BankTransaction.objects.get(pk=candidates[t % len(candidates)])
        ledger_before = LedgerEntry.objects.count()
        line = self._line(receiving_id=original.receiving_account_id, amount=original.amount,
                          currency=original.currency, reversal_of="credit",
                          remittance_info=f"Return of {original.bank_reference}")
        outcome, _ = self.call(reversals.reversal_apply, reversal_id=line.pk, now=self.now)
        assert outcome is not None and outcome.original_id == original.pk, "RVS: the reversal missed its original"
        status = BankTransaction.objects.values_list("status", flat=True).get(pk=original.pk)
        assert status == TxnStatus.REVERSED, f"RVS: the reversed original is {status}"
        added = LedgerEntry.objects.count() - ledger_before
        if which == "uncredited":
            assert (outcome.outcome, added) == (BankReversal.Outcome.CLOSED, 0), "RVS-2: an uncredited line moved money"
        elif outcome.outcome == BankReversal.Outcome.DEBITED:
            assert added == 1 and outcome.ledger_entry.amount == -original.amount, "RVS-1: not one reversing entry"
        else:
            assert (outcome.outcome, added) == (BankReversal.Outcome.OWING, 0), f"RVS-1: {outcome.outcome}"
        if outcome.outcome in FAULT_OUTCOMES or (which == "uncredited" and original.currency != self._currency_of(
                original.receiving_account_id)):
            self.mb_faults = True  # the bank took money the ledger could not give back: RCN-2 shows it
        if twice:
            again, _ = self.call(reversals.reversal_apply, reversal_id=line.pk, now=self.now)
            assert again.pk == outcome.pk and LedgerEntry.objects.count() - ledger_before == added, \
                "RVS: a second apply of one reversal line did something"

    @staticmethod
    def _currency_of(receiving_id: int) -> str:
        from remittances.models import RemittanceAccount

        return RemittanceAccount.objects.values_list("currency", flat=True).get(pk=receiving_id)

    # -- the daily proof (RCN-2, RCN-3) ----------------------------------------------------------

    @rule()
    def daily_proof(self):
        """RCN-2/RCN-3: the proof of today; with no fault injected it records no RCN-2 (dedicated
        accounts: the ledger credited what the bank's creditable lines less reversals say) and no
        RCN-3 (shared accounts: every booked credit in a state) difference."""
        day = self.now.date()
        done = set(ReconciliationDay.objects.filter(day=day).values_list("pk", flat=True))
        self.call(reconciliation_run, day=day, now=self.now)
        found = list(ReconciliationException.objects.filter(day__day=day, rule__in=("RCN-2", "RCN-3"))
                     .exclude(day_id__in=done).values_list("rule", "detail", "transaction_ids"))
        if found:
            note(f"proof differences: {found}")
        if not self.mb_faults:
            assert not found, f"RCN-2/RCN-3: the proof found differences with no fault injected: {found}"

    # -- after every step -------------------------------------------------------------------------

    @invariant()
    def money_back_invariants(self):
        """RFD-3, a refund's money leaves once and comes back at most once, RFD-2 transfers
        balanced, RFD-1 ``refunded`` exactly when sent refunds pay the credit back in full."""
        out = defaultdict(lambda: D("0.00"))
        for txn_id, total in (RefundRequest.objects.filter(status__in=RefundRequest.DEBITED_STATUSES,
                                                           bank_transaction__isnull=False)
                              .values("bank_transaction_id").annotate(s=Sum("amount"))
                              .values_list("bank_transaction_id", "s")):
            out[txn_id] += total
        for txn_id, total in (FundsTransfer.objects.filter(status=FundsTransfer.Status.APPROVED,
                                                           bank_transaction__isnull=False)
                              .values("bank_transaction_id").annotate(s=Sum("amount"))
                              .values_list("bank_transaction_id", "s")):
            out[txn_id] += total
        if out:
            credited = dict(BankTransaction.objects.filter(pk__in=list(out)).values_list("pk", "amount"))
            over = {pk: (total, credited[pk]) for pk, total in out.items() if total > credited[pk]}
            assert not over, f"RFD-3: more refunded or moved out than credited: {over}"

        entries = defaultdict(list)
        for reference, amount in LedgerEntry.objects.filter(
                reference__startswith="refund:").values_list("reference", "amount"):
            entries[reference].append(amount)
        backs = Counter(LedgerEntry.objects.filter(reverses__reference__startswith="refund:")
                           .values_list("reverses__reference", flat=True))
        for pk, status, kind, amount in RefundRequest.objects.values_list("pk", "status", "kind", "amount"):
            ref = refund_ledger_reference(pk)
            debited = kind == RefundRequest.Kind.REFUND and status in (*RefundRequest.DEBITED_STATUSES,
                                                                       RefundStatus.RETURNED)
            assert entries.get(ref, []) == ([-amount] if debited else []), \
                f"RFD-1: refund #{pk} ({status}) left the ledger {entries.get(ref, [])} times, not once"
            came_back = 1 if debited and status == RefundStatus.RETURNED else 0
            assert backs.get(ref, 0) == came_back, \
                f"RFD-1: refund #{pk} ({status}) came back {backs.get(ref, 0)} times, not {came_back}"

        moved = dict(LedgerEntry.objects.filter(reference__startswith="transfer:").values_list("reference", "amount"))
        for pk, status, amount in FundsTransfer.objects.values_list("pk", "status", "amount"):
            out_ref, in_ref = transfer_ledger_references(pk)
            expected = (-amount, amount) if status == FundsTransfer.Status.APPROVED else (None, None)
            assert (moved.get(out_ref), moved.get(in_ref)) == expected, f"RFD-2: transfer #{pk} ({status}) is unbalanced"

        sent = dict(RefundRequest.objects.filter(status=RefundStatus.SENT, kind=RefundRequest.Kind.REFUND,
                                                 bank_transaction__isnull=False)
                    .values("bank_transaction_id").annotate(s=Sum("amount")).values_list("bank_transaction_id", "s"))
        wrong = [
            (pk, status) for pk, status, amount in BankTransaction.objects.filter(
                status__in=(TxnStatus.CREDITED, TxnStatus.REFUNDED)).values_list("pk", "status", "amount")
            if (status == TxnStatus.REFUNDED) != (sent.get(pk, D("0.00")) >= amount)
        ]
        assert not wrong, f"RFD-1: refunded state differs from the sent refunds: {wrong}"


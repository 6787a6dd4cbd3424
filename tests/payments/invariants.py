"""Billing invariants (QUALITY.md I1, I3, I5; SET-2, SET-4) checked after every settlement test,
race and state-machine step, plus small builders for bills and credits.

``assert_billing_invariants()`` reads the whole database (tests only):
- I3: every (account, currency) ledger sum stays at or above its floor: minus the approved
  credit limit in the credit currency, zero otherwise. (The balance *is* the sum of entries:
  nothing stores a balance, so "balance == sum(entries)" is checked by the tests that compute
  a balance through ``account_balance`` against their own arithmetic.)
- I5 / SET-4: every bill's ``amount_paid`` equals minus the sum of its ``bill_payment`` entries,
  is within its total, and its status matches (paid <=> amount_paid == total).
  A ``bill_payment`` reference names its bill in the second ``:``-separated field
  (``settle:<bill>:<paid before>``, the scheme shared by the settlement and manual payment).
- I5 / SET-2: no bill has received a payment from the balance (``settle:`` entries: the
  settlement and finance's manual payment) while an older bill (issued_at, id) of the same
  account and currency is still unpaid. A card or PayPal charge for one bill (PAY-1, its entries
  ``bill-payment:<bill>:charge:<charge>``) pays that bill with the charge's own money and is
  not bound by the order. This assumes bills are issued in
  ``issued_at`` order (a bill issued later with an earlier ``issued_at`` would be "older" than
  bills already paid).
- I1: the append-only trigger is installed on the ledger table.

``assert_all_invariants(processor=None)`` runs the above and the whole-domain checks added for the
state machine (``tests/state_machine``), each usable alone:
- ``assert_ledger_invariants``: I1 (trigger present, enabled, on UPDATE and DELETE), I2 (unique
  keys of every external event; one ``charge:<id>`` entry per succeeded charge, none for a
  pre-authorization; a charge pays at most its own amount of its own bill), entry signs.
- ``assert_claim_invariants``: CLM-2 / REM-1 (every ``bank-txn:<id>`` entry is the one credit of
  a credited transaction; dedicated transfers credit their own account, shared ones exactly one
  approved claim's account; claimed <=> one live claim).
- ``assert_hold_invariants(processor=)``: I4 (status, release time and lease agree; never
  captured; with the simulated processor: no authorization voided twice, released => voided).
- ``assert_usage_invariants``: usage billed once, usage bills are the sum of their usage, DEL-3 flag.
- ``assert_amount_invariants``: I6 (every amount column a two-place decimal beside a currency).
- ``assert_gateway_charge_invariants(processor)``: money the simulated processor took is recorded
  once and never written off as failed; every succeeded charge was really made.
- ``ledger_snapshot`` / ``assert_ledger_append_only``: I1 across steps (no row changed or gone).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import count

from django.db import connection

from payments.models import Bill, LedgerEntry
from payments.services.ledger import ledger_post

_sequence = count(1)
# The bill a ledger entry pays (NULL for every other entry); CASE keeps the cast off other rows.
BILL_OF_ENTRY = (
    "CASE WHEN e.kind = 'bill_payment' AND split_part(e.reference, ':', 2) ~ '^[0-9]+$' "
    "THEN split_part(e.reference, ':', 2)::bigint END"
)


def make_bill(
    account,
    total,
    *,
    issued_at: datetime,
    currency: str = "USD",
    due_date: date | None = None,
    status: str = Bill.Status.OPEN,
    amount_paid=Decimal("0.00"),
    kind: str = Bill.Kind.MONTHLY,
    paid_at: datetime | None = None,
) -> Bill:
    """A bill as the billing services would issue it (and the account flagged, DEL-3)."""
    total = Decimal(str(total))
    bill = Bill.objects.create(
        account=account, kind=kind, order_kind="purchase" if kind == Bill.Kind.ORDER else "",
        reference=f"bill-{next(_sequence)}-{account.pk}-{issued_at:%Y%m%d%H%M%S%f}",
        issued_at=issued_at, due_date=due_date or (issued_at + timedelta(days=30)).date(),
        amount_before_tax=total, tax=Decimal("0.00"), total=total, currency=currency,
        amount_paid=Decimal(str(amount_paid)), status=status,
        paid_at=paid_at or (issued_at if status == Bill.Status.PAID else None),
    )
    type(account).objects.filter(pk=account.pk).update(has_outstanding_bills=True)
    return bill


def credit(account, amount, *, now: datetime, currency: str = "USD", reference: str | None = None):
    """Money the customer sent (a dedicated transfer), through the ledger's only writer."""
    return ledger_post(
        account_id=account.pk, amount=Decimal(str(amount)), currency=currency,
        kind=LedgerEntry.Kind.REMITTANCE_CREDIT,
        reference=reference or f"test-credit:{next(_sequence)}", now=now,
    ).entry


def _rows(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def assert_billing_invariants() -> None:
    # I3: the floor of every balance.
    below = _rows(
        """
        SELECT e.account_id, e.currency, SUM(e.amount)
        FROM payments_ledgerentry e JOIN payments_account a ON a.id = e.account_id
        GROUP BY e.account_id, e.currency, a.credit_approved, a.credit_limit, a.credit_currency
        HAVING SUM(e.amount) < CASE WHEN a.credit_approved AND a.credit_currency = e.currency
                                    THEN -a.credit_limit ELSE 0 END
        """
    )
    assert not below, f"I3: balances below their floor: {below}"

    # I5 / SET-4: amount paid == what the ledger paid, per bill.
    unnamed = _rows(
        "SELECT reference FROM payments_ledgerentry WHERE kind = %s AND split_part(reference, ':', 2) !~ '^[0-9]+$'",
        [LedgerEntry.Kind.BILL_PAYMENT],
    )
    assert not unnamed, f"bill payments that name no bill: {unnamed}"
    mismatched = _rows(
        f"""
        SELECT b.id, b.amount_paid, COALESCE(-p.paid, 0), b.account_id, p.account_ids
        FROM payments_bill b
        LEFT JOIN (
            SELECT {BILL_OF_ENTRY} AS bill_id, SUM(e.amount) AS paid,
                   array_agg(DISTINCT e.account_id) AS account_ids
            FROM payments_ledgerentry e WHERE e.kind = %s GROUP BY 1
        ) p ON p.bill_id = b.id
        WHERE b.amount_paid <> COALESCE(-p.paid, 0)
           OR (p.account_ids IS NOT NULL AND p.account_ids <> ARRAY[b.account_id])
        """,
        [LedgerEntry.Kind.BILL_PAYMENT],
    )
    assert not mismatched, f"I5: amount_paid differs from the ledger (bill, paid, ledger, ...): {mismatched}"
    orphans = _rows(
        f"""
        SELECT e.reference FROM payments_ledgerentry e
        LEFT JOIN payments_bill b ON b.id = {BILL_OF_ENTRY}
        WHERE e.kind = %s AND b.id IS NULL
        """,
        [LedgerEntry.Kind.BILL_PAYMENT],
    )
    assert not orphans, f"bill payments of no bill: {orphans}"
    bad_status = _rows(
        """
        SELECT id, status, amount_paid, total FROM payments_bill
        WHERE amount_paid < 0 OR amount_paid > total
           OR (status = 'paid') <> (amount_paid = total)
           OR (status = 'open' AND amount_paid <> 0)
           OR (status = 'partially_paid' AND amount_paid = 0)
        """
    )
    assert not bad_status, f"bills whose status does not match what was paid: {bad_status}"

    # I5 / SET-2: nothing paid from the balance while an older bill is unpaid.
    out_of_order = _rows(
        f"""
        SELECT young.id, old.id FROM payments_bill young
        JOIN payments_bill old
          ON old.account_id = young.account_id AND old.currency = young.currency
         AND (old.issued_at, old.id) < (young.issued_at, young.id)
        WHERE old.status <> 'paid'
          AND EXISTS (
              SELECT 1 FROM payments_ledgerentry e
              WHERE e.kind = %s AND e.reference LIKE 'settle:%%' AND {BILL_OF_ENTRY} = young.id
          )
        """,
        [LedgerEntry.Kind.BILL_PAYMENT],
    )
    assert not out_of_order, f"SET-2: bills paid while an older one is unpaid (younger, older): {out_of_order}"

    # I1: the ledger refuses updates and deletes.
    triggers = _rows(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'payments_ledgerentry'::regclass AND NOT tgisinternal"
    )
    assert any("ledger_append_only" in name for (name,) in triggers), f"I1: no append-only trigger: {triggers}"


# --- the whole domain (state machine, races): I1, I2, I4, I6 and CLM-2 -------------------------
#
# ``assert_all_invariants()`` runs ``assert_billing_invariants()`` and the checks below. Each
# check reads the whole database with a few set-based queries and reports the offending rows.


def _unique_index_exists(table: str, columns: tuple[str, ...]) -> bool:
    """A unique index (or constraint) on exactly these columns, without a WHERE clause."""
    rows = _rows(
        """
        SELECT array_agg(a.attname::text ORDER BY a.attname)
        FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indpred IS NULL
        GROUP BY i.indexrelid
        """,
        [table],
    )
    return any(sorted(cols) == sorted(columns) for (cols,) in rows)


# I2: the constraints that make every external event post (or create) at most once.
EVENT_KEYS = (
    ("payments_ledgerentry", ("reference",)),  # every posting: bank entry, claim, charge, bill payment
    ("payments_bill", ("reference",)),  # one bill per order / month / threshold crossing
    ("payments_charge", ("idempotency_key",)),  # one charge per saved gateway key
    ("payments_usagerecord", ("reference",)),  # one usage record per console reference
    ("payments_verificationhold", ("authorization_id",)),  # one hold per gateway authorization
    ("remittances_banktransaction", ("receiving_account_id", "bank_reference")),  # REM-4
)


def assert_ledger_invariants() -> None:
    """I1 (trigger installed, enabled, on UPDATE and DELETE), I2 (unique event keys, and every
    credit/charge entry backed by exactly the event it names), signs of the entry kinds."""
    triggers = _rows(
        """
        SELECT tgname, tgenabled, tgtype FROM pg_trigger
        WHERE tgrelid = 'payments_ledgerentry'::regclass AND NOT tgisinternal AND tgname LIKE %s
        """,
        ["%ledger_append_only%"],
    )
    # tgtype bits: 8 = DELETE, 16 = UPDATE; tgenabled 'D' = disabled.
    guarding = [t for t in triggers if t[1] != "D" and t[2] & 8 and t[2] & 16]
    assert guarding, f"I1: the ledger's append-only trigger is missing or disabled: {triggers}"

    missing = [f"{table}{columns}" for table, columns in EVENT_KEYS if not _unique_index_exists(table, columns)]
    assert not missing, f"I2: no unique constraint on {missing}"

    wrong_sign = _rows(
        """
        SELECT id, kind, amount FROM payments_ledgerentry
        WHERE (kind IN ('remittance_credit', 'claim_credit', 'charge') AND amount <= 0)
           OR (kind = 'bill_payment' AND amount >= 0)
        """
    )
    assert not wrong_sign, f"credits must be positive and bill payments negative: {wrong_sign}"

    # I2 / PAY-4: one ``charge:<id>`` entry per succeeded charge, for exactly what was charged;
    # pre-authorizations move no money (I4: a hold is never captured).
    charge_mismatch = _rows(
        """
        SELECT c.id, c.kind, c.status, c.amount, e.reference, e.amount
        FROM payments_charge c
        FULL JOIN (SELECT * FROM payments_ledgerentry WHERE kind = 'charge') e
          ON e.reference = 'charge:' || c.id
        WHERE (c.id IS NULL)
           OR (c.status = 'succeeded' AND c.kind <> 'paypal_preauth'
               AND (e.id IS NULL OR e.amount <> c.amount OR e.currency <> c.currency
                    OR e.account_id <> c.account_id))
           OR ((c.status <> 'succeeded' OR c.kind = 'paypal_preauth') AND e.id IS NOT NULL)
        """
    )
    assert not charge_mismatch, f"I2: charge entries that do not match one succeeded charge: {charge_mismatch}"

    # A charge pays only its own bill, at most its own amount.
    overpaid_by_charge = _rows(
        """
        SELECT c.id, c.amount, SUM(-e.amount)
        FROM payments_charge c
        JOIN payments_ledgerentry e
          ON e.kind = 'bill_payment' AND split_part(e.reference, ':', 1) = 'bill-payment'
         AND split_part(e.reference, ':', 3) = 'charge' AND split_part(e.reference, ':', 4) = c.id::text
        GROUP BY c.id, c.amount, c.bill_id
        HAVING SUM(-e.amount) > c.amount OR COUNT(*) > 1
            OR bool_or(split_part(e.reference, ':', 2) IS DISTINCT FROM c.bill_id::text)
        """
    )
    assert not overpaid_by_charge, f"I2: charges that paid more than they took: {overpaid_by_charge}"


def assert_claim_invariants() -> None:
    """CLM-2 / REM-1 / REM-4: one credit per bank transaction, to the right account, and the
    transaction, its claims and the ledger telling the same story."""
    # Every ledger entry of a bank transaction (``bank-txn:<id>``, the one reference both the
    # dedicated auto-credit and the claim approval use) is a credit of a credited transaction,
    # for its amount, currency and account, and is the entry the transaction points at.
    # (Tests also post remittance credits under their own references, e.g. ``credit()`` above.)
    # A transaction credited once stays so when its money later leaves: paid back to the payer
    # (``refunded``, RFD-1) or taken back by the bank (``reversed`` with its entry, RVS-1).
    bank_credits = _rows(
        """
        SELECT e.id, e.reference, e.kind, t.id, t.status, t.amount, e.amount
        FROM payments_ledgerentry e
        LEFT JOIN remittances_banktransaction t ON e.reference = 'bank-txn:' || t.id
        WHERE e.reference LIKE 'bank-txn:%%'
          AND (e.kind NOT IN ('remittance_credit', 'claim_credit')
               OR t.id IS NULL OR t.status NOT IN ('credited', 'refunded', 'reversed')
               OR t.ledger_entry_id IS DISTINCT FROM e.id
               OR t.amount <> e.amount OR t.currency <> e.currency OR t.account_id <> e.account_id)
        """
    )
    assert not bank_credits, f"CLM-2: bank credits that match no credited transaction: {bank_credits}"
    uncredited = _rows(
        """
        SELECT t.id, t.status, t.ledger_entry_id FROM remittances_banktransaction t
        WHERE (t.status IN ('credited', 'refunded') AND t.ledger_entry_id IS NULL)
           OR (t.status NOT IN ('credited', 'refunded', 'reversed') AND t.ledger_entry_id IS NOT NULL)
           OR (t.ledger_entry_id IS NOT NULL AND t.entry_kind <> 'credit')
        """
    )
    assert not uncredited, f"CLM-2: transactions whose status and ledger entry disagree: {uncredited}"

    # Dedicated receiving accounts credit their own cloud account (REM-1) and are never claimed;
    # a credited shared-account transaction has exactly one approved claim, for that account.
    misrouted = _rows(
        """
        SELECT t.id, r.kind, t.account_id, r.account_id,
               COUNT(c.id) FILTER (WHERE c.status = 'approved'),
               array_agg(c.account_id) FILTER (WHERE c.status = 'approved')
        FROM remittances_banktransaction t
        JOIN remittances_remittanceaccount r ON r.id = t.receiving_account_id
        LEFT JOIN remittances_remittanceclaim c ON c.bank_transaction_id = t.id
        WHERE t.ledger_entry_id IS NOT NULL
        GROUP BY t.id, r.kind, t.account_id, r.account_id
        HAVING (r.kind = 'dedicated' AND (t.account_id <> r.account_id
                                          OR COUNT(c.id) FILTER (WHERE c.status = 'approved') <> 0))
            OR (r.kind = 'non_dedicated' AND (COUNT(c.id) FILTER (WHERE c.status = 'approved') <> 1
                OR bool_or(c.status = 'approved' AND c.account_id <> t.account_id)))
        """
    )
    assert not misrouted, f"CLM-2 / REM-1: credited transactions with the wrong claims or account: {misrouted}"

    # An approved claim's transaction is credited; a claimed transaction is held by exactly one
    # live claim of the same account; an unmatched one by none.
    approved_not_credited = _rows(
        """
        SELECT c.id, t.id, t.status FROM remittances_remittanceclaim c
        LEFT JOIN remittances_banktransaction t ON t.id = c.bank_transaction_id
        WHERE c.status = 'approved' AND (t.id IS NULL OR t.ledger_entry_id IS NULL)
        """
    )
    assert not approved_not_credited, f"CLM-1: approved claims whose transaction is not credited: {approved_not_credited}"
    holders = _rows(
        """
        SELECT t.id, t.status, t.account_id,
               COUNT(c.id) FILTER (WHERE c.status IN ('submitted', 'reviewed')),
               bool_or(c.status IN ('submitted', 'reviewed') AND c.account_id <> t.account_id)
        FROM remittances_banktransaction t
        LEFT JOIN remittances_remittanceclaim c ON c.bank_transaction_id = t.id
        GROUP BY t.id, t.status, t.account_id
        HAVING (t.status = 'claimed' AND (COUNT(c.id) FILTER (WHERE c.status IN ('submitted', 'reviewed')) <> 1
                                          OR bool_or(c.status IN ('submitted', 'reviewed') AND c.account_id <> t.account_id)))
            OR (t.status <> 'claimed' AND COUNT(c.id) FILTER (WHERE c.status IN ('submitted', 'reviewed')) <> 0)
            OR (t.status = 'unmatched' AND t.account_id IS NOT NULL)
        """
    )
    assert not holders, f"CLM-2: transactions and their live claims disagree: {holders}"


def assert_hold_invariants(*, processor=None) -> None:
    """I4: a hold resolves at most once and is never captured.

    With ``processor`` (the simulated gateway's ``PROCESSOR``, for holds placed in this process):
    no authorization was voided twice at the gateway, and every hold marked released was voided
    there (a release the gateway never saw would leave the customer's USD 1 held).
    """
    bad = _rows(
        """
        SELECT id, status, released_at, lease_token FROM payments_verificationhold
        WHERE (status = 'released') <> (released_at IS NOT NULL)
           OR (status = 'released' AND lease_token IS NOT NULL)
           OR (status = 'release_failed' AND (release_attempts = 0 OR last_error = ''))
        """
    )
    assert not bad, f"I4: holds whose status, release time and lease disagree: {bad}"
    # Never captured: no money moved for a pre-authorization (its hold is only ever voided).
    captured = _rows(
        """
        SELECT h.id, h.authorization_id, c.id FROM payments_verificationhold h
        JOIN payments_charge c ON c.gateway_reference = h.authorization_id
        JOIN payments_ledgerentry e ON e.reference = 'charge:' || c.id
        """
    )
    assert not captured, f"I4: holds that were captured: {captured}"
    if processor is None:
        return
    with processor.lock:
        voids = dict(processor.void_calls)
        voided = set(processor.voided)
    twice = {auth: n for auth, n in voids.items() if n > 1}
    assert not twice, f"I4: authorizations voided more than once at the gateway: {twice}"
    released = _rows("SELECT id, authorization_id FROM payments_verificationhold WHERE status = 'released'")
    never_voided = [row for row in released if row[1] not in voided]
    assert not never_voided, f"I4: holds marked released that the gateway never voided: {never_voided}"


def assert_usage_invariants(*, bills_from_usage: bool = True) -> None:
    """PAY-2 / PAY-3: every usage row is billed at most once, and a usage bill is its usage.

    ``bills_from_usage=False`` for tests that make monthly bills by hand (``make_bill``): a
    usage bill is then only checked against usage when it has some.
    """
    bad = _rows(
        """
        SELECT u.id, u.status, u.bill_id, b.account_id, b.currency
        FROM payments_usagerecord u LEFT JOIN payments_bill b ON b.id = u.bill_id
        WHERE (u.status = 'unbilled') <> (u.bill_id IS NULL)
           OR (u.status = 'charged') <> (u.charge_id IS NOT NULL)
           OR (b.id IS NOT NULL AND (b.account_id <> u.account_id OR b.currency <> u.currency
                                     OR b.kind NOT IN ('monthly', 'usage_threshold')))
        """
    )
    assert not bad, f"usage rows billed inconsistently: {bad}"
    sums = _rows(
        """
        SELECT b.id, b.kind, b.amount_before_tax, COALESCE(SUM(u.amount), 0)
        FROM payments_bill b LEFT JOIN payments_usagerecord u ON u.bill_id = b.id
        WHERE b.kind IN ('monthly', 'usage_threshold')
        GROUP BY b.id, b.kind, b.amount_before_tax
        HAVING b.amount_before_tax <> COALESCE(SUM(u.amount), 0) AND (%s OR COUNT(u.id) > 0)
        """,
        [bills_from_usage],
    )
    assert not sums, f"usage bills that are not the sum of their usage (bill, kind, billed, usage): {sums}"
    # DEL-3: an account with an unpaid bill is flagged as owing (the flag may lag the other way).
    unflagged = _rows(
        """
        SELECT DISTINCT a.id FROM payments_account a JOIN payments_bill b ON b.account_id = a.id
        WHERE b.status IN ('open', 'partially_paid', 'overdue') AND NOT a.has_outstanding_bills
        """
    )
    assert not unflagged, f"DEL-3: accounts with unpaid bills not flagged as owing: {unflagged}"


# Tables whose amounts are money (I6); their event tables (audit trail) mirror them.
MONEY_TABLE_PREFIXES = ("payments_", "remittances_")


def assert_amount_invariants() -> None:
    """I6: every amount column is a Decimal with two places beside a currency; no floats."""
    columns = _rows(
        """
        SELECT table_name, column_name, data_type, numeric_scale
        FROM information_schema.columns
        WHERE table_schema = current_schema()
          AND (table_name LIKE 'payments\\_%%' OR table_name LIKE 'remittances\\_%%')
          AND data_type IN ('numeric', 'real', 'double precision', 'money')
        """
    )
    assert columns, "I6: no amount columns found (wrong schema?)"
    wrong = [c for c in columns if c[2] != "numeric" or c[3] != 2]
    assert not wrong, f"I6: amount columns that are not two-place decimals: {wrong}"
    tables = {c[0] for c in columns}
    with_currency = {
        row[0]
        for row in _rows(
            """
            SELECT DISTINCT table_name FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = ANY(%s) AND column_name LIKE '%%currency%%'
            """,
            [sorted(tables)],
        )
    }
    assert tables == with_currency, f"I6: amounts without a currency column: {sorted(tables - with_currency)}"


def assert_all_invariants(*, processor=None, bills_from_usage: bool = True) -> None:
    """QUALITY.md I1..I6 and CLM-2 over the whole database (state machine, race and fault tests).

    ``processor``: the simulated gateway's ``PROCESSOR`` when every hold and charge in the
    database went through it in this process (adds the gateway-side checks of I4 and I2).
    ``bills_from_usage``: see ``assert_usage_invariants``.
    """
    assert_billing_invariants()
    assert_ledger_invariants()
    assert_claim_invariants()
    assert_hold_invariants(processor=processor)
    assert_usage_invariants(bills_from_usage=bills_from_usage)
    assert_amount_invariants()
    if processor is not None:
        assert_gateway_charge_invariants(processor)


def ledger_snapshot() -> dict[int, tuple]:
    """Every ledger row as it is now, for ``assert_ledger_append_only`` (I1)."""
    return {
        row[0]: row[1:]
        for row in _rows("SELECT id, account_id, amount, currency, kind, reference, created_at FROM payments_ledgerentry")
    }


def assert_ledger_append_only(before: dict[int, tuple]) -> dict[int, tuple]:
    """I1 across a step: every row seen before is still there, unchanged. Returns the new snapshot."""
    after = ledger_snapshot()
    changed = {pk: (row, after.get(pk)) for pk, row in before.items() if after.get(pk) != row}
    assert not changed, f"I1: ledger rows changed or deleted (before, after): {changed}"
    return after


def assert_gateway_charge_invariants(processor) -> None:
    """PAY-4 / I2 against the simulated processor: money it really took is recorded once, for the
    same amount, and never written off as a failed charge; every succeeded charge was really made.
    Pending is allowed (the answer was lost; the retry with the same key will find it)."""
    with processor.lock:
        taken = list(processor.charges)
    keys = [c.idempotency_key for c in taken]
    rows = {
        key: (status, amount, currency, reference)
        for key, status, amount, currency, reference in _rows(
            "SELECT idempotency_key, status, amount, currency, gateway_reference FROM payments_charge "
            "WHERE idempotency_key = ANY(%s)",
            [keys],
        )
    }
    lost = []
    for made in taken:
        row = rows.get(made.idempotency_key)
        if (
            row is None
            or row[0] == "failed"
            or (row[1], row[2]) != (made.amount, made.currency)
            or (row[0] == "succeeded" and row[3] != made.gateway_reference)
        ):
            lost.append((made.idempotency_key, made.amount, made.currency, row))
    assert not lost, f"PAY-5 / I2: money taken at the gateway but not recorded as taken: {lost}"
    succeeded = _rows(
        "SELECT id, idempotency_key FROM payments_charge WHERE status = 'succeeded' AND kind <> 'paypal_preauth'"
    )
    phantom = [row for row in succeeded if row[1] not in set(keys)]
    assert not phantom, f"I2: charges recorded as succeeded that the gateway never made: {phantom}"

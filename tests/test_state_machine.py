"""A Hypothesis state machine over the whole billing domain, with QUALITY.md I1..I6 after every step.

The machine is ``tests/state_machine/machine.py`` (rules: accounts and credit, card/PayPal linking
with declines and 3DS, hold release, usage, orders, threshold charges, monthly bills and the
month-end deduction, statements, claims, ledger credits and debits, settlement, manual payment,
the settlement switch, scheduled jobs, duplicate deliveries, lost messages and crashes). Each
example starts from an empty database (TRUNCATE ... CASCADE) on PostgreSQL.

How to run it
- Short run (part of ``make test``): 15 examples of up to 25 steps, derandomized (the same
  examples on every run, so the suite is never flaky), 10-20 s on 2 cores.
- Long run, on request::

      HYPOTHESIS_LONG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/<you> \\
          .venv/bin/python -m pytest tests/test_state_machine.py -q

  300 examples of up to 60 steps (``HYPOTHESIS_EXAMPLES`` / ``HYPOTHESIS_STEPS`` override either).
  Add ``--hypothesis-seed=<n>`` to repeat a run and ``--hypothesis-show-statistics`` to see how
  often each rule ran and which refusals it met.
- A failure prints the shortest sequence of steps found, with a note per service call. The long
  run keeps failing examples in ``.local/hypothesis`` and replays them first on the next run.

The tests after the machine prove that the invariant checks can fail: each corrupts the
database (or the gateway's record) in one way the services never would and expects the helper
to raise.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import run_state_machine_as_test

from payments.gateways import simulated
from payments.services import account_create, card_link, holds, orders, scheduled_charging
from payments.services.ledger import ledger_post
from tests.payments import invariants
from tests.payments.invariants import make_bill
from tests.state_machine import world
from tests.state_machine.credit_control_rules import CreditControlRules
from tests.state_machine.machine import STATS, BillingMachine

LONG = os.environ.get("HYPOTHESIS_LONG", "") not in ("", "0")
MACHINE_SETTINGS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES") or (300 if LONG else 15)),
    stateful_step_count=int(os.environ.get("HYPOTHESIS_STEPS") or (60 if LONG else 25)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    # The short run is the same sequence of examples every time (no flaky suite); the long run
    # explores anew each time and replays the failures it kept.
    derandomize=not LONG,
    database=DirectoryBasedExampleDatabase(str(Path(django_settings.LOCAL_DIR) / "hypothesis")) if LONG else None,
    print_blob=True,
)


@pytest.mark.django_db(transaction=True)
def test_i1_to_i6_hold_under_random_credits_claims_orders_settlements_duplicates_and_crashes(monkeypatch):
    """I1..I6, CLM-2, SET-1..4, PAY-1..6, HOLD-2/4, CC-1..3 and NOTIFY-2 after every step of random
    sequences."""
    from payments.tasks.notifications import deliver_notifications

    broker = world.Broker()
    world.patch_tasks(monkeypatch, broker)
    # NOTIFY-2: the e-mails handed on after a commit wait in the broker for the machine's worker.
    monkeypatch.setattr(deliver_notifications, "delay", broker.sender(deliver_notifications.name))
    machine = type("Machine", (BillingMachine,), {"staff": world.make_staff(), "broker": broker})
    STATS.clear()
    try:
        run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
    finally:
        print("\nWhat the machine did (service outcomes and refusals, crashes, lost messages):")
        for name, count in sorted(STATS.items()):
            print(f"{count:7d}  {name}")


# --- the checks can fail ---------------------------------------------------------------------------

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def paid_bill():
    account = account_create(name="Corrupt Co", kind="individual", country="US")
    bill = make_bill(account, "40.00", issued_at=NOW, kind="order")
    invariants.credit(account, "100.00", now=NOW)
    from payments.services.settlement import settle_accounts

    assert settle_accounts(account_ids=[account.pk], now=NOW).bills_paid == 1
    invariants.assert_all_invariants()
    return bill


def _execute(sql: str, params=None) -> None:
    with connection.cursor() as cursor:
        if sql.startswith("ALTER"):
            # Fire the deferred foreign-key checks of the test's transaction: ALTER TABLE refuses
            # to run while trigger events are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(sql, params)


@pytest.mark.django_db
def test_i5_a_second_payment_of_a_paid_bill_is_caught(paid_bill):
    # A raw INSERT of a duplicate-looking bill payment (another allocation reference).
    _execute(
        "INSERT INTO payments_ledgerentry (account_id, amount, currency, kind, reference, memo, created_at) "
        "VALUES (%s, -40.00, 'USD', 'bill_payment', %s, '', %s)",
        [paid_bill.account_id, f"settle:{paid_bill.pk}:0.00:again", NOW],
    )
    with pytest.raises(AssertionError, match="I5: amount_paid differs"):
        invariants.assert_all_invariants()


@pytest.mark.django_db
def test_i1_a_disabled_append_only_trigger_is_caught(paid_bill):
    invariants.assert_ledger_invariants()
    _execute("ALTER TABLE payments_ledgerentry DISABLE TRIGGER USER")  # rolled back with the test
    with pytest.raises(AssertionError, match="I1: the ledger's append-only trigger"):
        invariants.assert_ledger_invariants()


@pytest.mark.django_db
def test_i1_a_changed_ledger_row_is_caught_across_steps(paid_bill):
    before = invariants.ledger_snapshot()
    _execute("ALTER TABLE payments_ledgerentry DISABLE TRIGGER USER")
    _execute("UPDATE payments_ledgerentry SET memo = 'edited', amount = amount + 1 WHERE kind = 'adjustment' "
             "OR kind = 'remittance_credit'")
    with pytest.raises(AssertionError, match="I1: ledger rows changed"):
        invariants.assert_ledger_append_only(before)


@pytest.mark.django_db
def test_i2_a_missing_unique_reference_is_caught(paid_bill):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
            "AND a.attnum = ANY(c.conkey) WHERE c.conrelid = 'payments_bill'::regclass AND c.contype = 'u' "
            "AND a.attname = 'reference'"
        )
        (name,) = cursor.fetchone()
    _execute(f'ALTER TABLE payments_bill DROP CONSTRAINT "{name}"')  # rolled back with the test
    with pytest.raises(AssertionError, match="I2: no unique constraint"):
        invariants.assert_ledger_invariants()


@pytest.mark.django_db
def test_i3_a_balance_below_its_floor_is_caught():
    account = account_create(name="Floor Co", kind="individual", country="US")
    _execute(
        "INSERT INTO payments_ledgerentry (account_id, amount, currency, kind, reference, memo, created_at) "
        "VALUES (%s, -5.00, 'USD', 'adjustment', 'raw-debit', '', %s)",
        [account.pk, NOW],
    )
    with pytest.raises(AssertionError, match="I3: balances below their floor"):
        invariants.assert_all_invariants()


@pytest.mark.django_db
def test_clm_2_a_second_credit_of_one_bank_transaction_is_caught():
    account = account_create(name="Claim Co", kind="individual", country="US")
    # A credit that claims to come from a bank transaction that was never credited.
    ledger_post(account_id=account.pk, amount=Decimal("10.00"), currency="USD", kind="claim_credit",
                reference="bank-txn:999999", now=NOW)
    with pytest.raises(AssertionError, match="CLM-2: bank credits that match no credited transaction"):
        invariants.assert_claim_invariants()


@pytest.mark.django_db
def test_i4_a_hold_voided_twice_or_released_without_a_void_is_caught():
    simulated.reset()
    account = account_create(name="Hold Co", kind="individual", country="US")
    method = card_link(account_id=account.pk, card=world.card(world.fresh_card_number()), now=NOW).method
    hold = method.holds.get()
    invariants.assert_hold_invariants(processor=simulated.PROCESSOR)
    # Marked released in the database without the gateway ever voiding it.
    _execute("UPDATE payments_verificationhold SET status = 'released', released_at = %s WHERE id = %s", [NOW, hold.pk])
    with pytest.raises(AssertionError, match="I4: holds marked released that the gateway never voided"):
        invariants.assert_hold_invariants(processor=simulated.PROCESSOR)
    simulated.PROCESSOR.void_calls[hold.authorization_id] = 2
    with pytest.raises(AssertionError, match="I4: authorizations voided more than once"):
        invariants.assert_hold_invariants(processor=simulated.PROCESSOR)
    simulated.reset()


@pytest.mark.django_db
def test_i2_money_taken_at_the_gateway_but_recorded_as_failed_is_caught():
    simulated.reset()
    account = account_create(name="Charge Co", kind="individual", country="US")
    card_link(account_id=account.pk, card=world.card(world.fresh_card_number()), now=NOW)
    result = orders.order_place(account_id=account.pk, kind="purchase", amount="25.00", currency="USD",
                                  reference="corrupt-order", now=NOW)
    assert result.charge.status == "succeeded"
    invariants.assert_all_invariants(processor=simulated.PROCESSOR)
    # The charge row says failed (a write-off) although the processor took the money.
    _execute("UPDATE payments_charge SET status = 'failed', failure_reason = 'issuer_declined' WHERE id = %s",
             [result.charge.pk])
    with pytest.raises(AssertionError, match="money taken at the gateway but not recorded"):
        invariants.assert_gateway_charge_invariants(simulated.PROCESSOR)
    simulated.reset()


@pytest.mark.django_db
def test_i6_a_float_amount_column_is_caught():
    invariants.assert_amount_invariants()
    _execute("ALTER TABLE payments_charge ADD COLUMN fee double precision")
    with pytest.raises(AssertionError, match="I6: amount columns that are not two-place decimals"):
        invariants.assert_amount_invariants()


@pytest.mark.django_db
def test_hold_2_release_runs_are_checked_by_the_machine_helpers():
    """The helper the machine's crash rule relies on really leaves a leased, voided hold."""
    simulated.reset()
    account = account_create(name="Lease Co", kind="individual", country="US")
    method = card_link(account_id=account.pk, card=world.card(world.fresh_card_number()), now=NOW).method
    hold = method.holds.get()
    later = NOW + django_settings.HOLD_RELEASE_AFTER
    from unittest import mock

    with mock.patch.object(holds, "_mark_released", side_effect=world.Crash("killed")), pytest.raises(world.Crash):
        holds.holds_release_due(now=later)
    hold.refresh_from_db()
    assert (hold.status, hold.lease_token is not None) == ("placed", True)
    assert simulated.PROCESSOR.void_calls[hold.authorization_id] == 1
    invariants.assert_hold_invariants(processor=simulated.PROCESSOR)
    simulated.reset()


# --- bugs the machine found, kept as regression tests ------------------------------------------


@pytest.mark.django_db
def test_pay_5_i2_a_charge_whose_answer_was_lost_is_never_written_off_while_the_gateway_took_the_money():
    """Found by the state machine's gateway check: order charged on a card whose first answer
    is lost (timeout), the bill then paid from the balance (a transfer + settlement), then the
    retry job: the retry sees the bill paid and fails the charge; the card was charged anyway,
    so the customer paid twice and the ledger shows one payment."""
    from datetime import timedelta

    from payments.services.settlement import settle_accounts

    simulated.reset()
    account = account_create(name="Timeout Co", kind="individual", country="US")
    card_link(account_id=account.pk, card=world.card("4000000000000366"), now=NOW)  # sandbox: answer lost once
    order = orders.order_place(account_id=account.pk, kind="purchase", amount="100.00", currency="USD",
                                 reference="lost-answer", now=NOW)
    assert (order.charge.status, simulated.PROCESSOR.charge_count()) == ("pending", 1)  # charged, answer lost
    invariants.credit(account, "100.00", now=NOW)
    settle_accounts(account_ids=[account.pk], now=NOW)  # the transfer pays the bill meanwhile
    scheduled_charging.charges_retry_failed(now=NOW + timedelta(minutes=11))
    try:
        invariants.assert_all_invariants(processor=simulated.PROCESSOR)
    finally:
        simulated.reset()


# --- the credit-control checks can fail (tests/state_machine/credit_control_rules.py) ------------------


class _CreditControlProbe(CreditControlRules):
    """The machine's credit-control checks, on the database as a test leaves it."""

    def __init__(self, *, holds_fresh: bool) -> None:
        self.cc_started, self.holds_fresh, self.now = True, holds_fresh, NOW


@pytest.fixture
def late_bill():
    from payments.models import Bill

    account = account_create(name="Late Co", kind="individual", country="US")
    bill = make_bill(account, "40.00", issued_at=NOW - timedelta(days=40), kind="order")
    Bill.objects.filter(pk=bill.pk).update(due_date=(NOW - timedelta(days=20)).date())
    return bill


def _reminders(bill, *levels):
    from payments.models import Reminder

    return [Reminder.objects.create(bill=bill, account_id=bill.account_id, level=level, days_past_due=7 * level,
                                    sent_at=NOW - timedelta(days=10 - 3 * level)) for level in levels]


@pytest.mark.django_db
def test_cc_2_a_final_notice_past_due_without_a_hold_is_caught(late_bill):
    _reminders(late_bill, 1, 2, 3)
    _CreditControlProbe(holds_fresh=False).credit_control_holds()  # between runs: not checked
    with pytest.raises(AssertionError, match="CC-2: accounts with a final notice past due and no hold"):
        _CreditControlProbe(holds_fresh=True).credit_control_holds()


@pytest.mark.django_db
def test_cc_2_a_hold_without_a_final_notice_is_caught(late_bill):
    from payments.models import CreditHold

    [first] = _reminders(late_bill, 1)
    CreditHold.objects.create(account_id=late_bill.account_id, reminder=first, started_at=NOW)
    with pytest.raises(AssertionError, match="CC-2: holds placed without a final notice"):
        _CreditControlProbe(holds_fresh=False).credit_control_holds()


@pytest.mark.django_db
def test_cc_1_a_level_without_the_previous_one_is_caught(late_bill):
    _reminders(late_bill, 2)
    with pytest.raises(AssertionError, match="CC-1: reminders sent without the previous level"):
        _CreditControlProbe(holds_fresh=False).credit_control_holds()


@pytest.mark.django_db
def test_notify_2_an_email_sent_twice_is_caught(late_bill, mailoutbox):
    from django.core import mail

    mail.send_mail("Reminder", "Your bill", "billing@example.com", ["late@example.com"])  # no notification sent it
    with pytest.raises(AssertionError, match="NOTIFY-2"):
        _CreditControlProbe(holds_fresh=False).credit_control_holds()

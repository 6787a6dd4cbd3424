"""The receiving bank's side of the demo: shared accounts, statement days and what arrives on them.

- Two shared (non-dedicated) receiving accounts, USD and EUR, registered like
  ``manage.py register_receiving_account`` does (REM-2, ``receiving_account_register``).
- On each statement day (``Clock.statement_days``) the bank sends one camt.053 file, imported by
  ``finance`` through ``statement_import`` (REM-4..7): one statement per dedicated account that
  received a transfer (credited at once, REM-1), and one per shared account with the customers'
  transfers, transfers nobody has claimed yet, and on some days a bank fee, a pending credit, a
  transfer in the wrong currency (review) and a batch of two transfers (REM-6).
- Transfers on the shared account are claimed (``billing_backoffice.demo.claims``): on the older days the
  claims are decided, today's are at every step of the way.
Each customer's story decides how much it sends (``Story.transfer``), from what it owes that day.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from payments.eligibility import Region
from remittances.models import BankStatement, BankTransaction, RemittanceAccount
from remittances.services.accounts import receiving_account_register
from remittances.services.statements import statement_import

from .billing import Staff, Story
from .camt import Detail, Entry, Statement, camt053
from .claims import OLD_DAY_FLOWS, TODAY_FLOWS, ClaimFlow, waiting_claim
from .clock import Clock
from .tables import SEED
from .timeline import Timeline

# The shared accounts' account parts under the remittance bank's code (dedicated numbers are
# drawn at random by the issuing service; the database keeps every number unique).
SHARED_ACCOUNTS = {"USD": "0990000101", "EUR": "0990000202"}
SHARED_OPENING = {"USD": Decimal("184250.00"), "EUR": Decimal("61730.00")}
UNKNOWN_PAYERS = (
    "Harbor Freight Forwarding Ltd", "J. Okonkwo", "Quartz Media LLC", "Sofia Andersson",
    "Blue Lantern Trading", "M. Tanaka", "Northgate Schools Trust", "Pixelforge Studio SRL",
)
CENT = Decimal("0.01")
# How many of a shared account's unknown payers' transfers are claimed: (older days, today).
UNKNOWN_CLAIMED = {"USD": (1, 2), "EUR": (0, 1)}


def shared_number(currency: str) -> str:
    bank = settings.REMITTANCE_BANK
    try:
        return str(IBAN.generate(bank["country"].upper(), bank_code=bank["bank_code"],
                                 account_code=SHARED_ACCOUNTS[currency]))
    except SchwiftyException:  # a bank country without IBANs: a plain account number
        return f"{bank['bank_code']}{SHARED_ACCOUNTS[currency]}"


def shared_numbers() -> list[str]:
    return [shared_number(currency) for currency in SHARED_ACCOUNTS]


def payer_iban(story: Story) -> str:
    """A European customer pays from an IBAN (10-digit account part: never a card-like run)."""
    if story.account.region not in (Region.EU, Region.EUROPE_NON_EU):
        return ""
    return str(IBAN.generate("NL", bank_code="ABNA", account_code=story.account.uid[5:15]))


class Bank:
    def __init__(self, *, clock: Clock, timeline: Timeline, staff: Staff, stories: list[Story], run_tag: str):
        self.clock, self.timeline, self.staff, self.run_tag = clock, timeline, staff, run_tag
        self.stories = stories
        self.payers = [s for s in stories if s.route]
        self.shared: dict[str, RemittanceAccount] = {}
        self.rng = random.Random(f"{SEED}-bank-{run_tag}")
        self.flows = 0  # claims started, to rotate through every kind of flow
        self.claimants = 0

    def schedule(self) -> None:
        self.timeline.add(self.clock.history_start - timedelta(days=30), self.open_shared_accounts)
        days = self.clock.statement_days()
        for day, when in enumerate(days):
            self.timeline.add(when, lambda t, day=day: self.statement_day(t, day, last_day=len(days) - 1))

    def open_shared_accounts(self, when: datetime) -> None:
        bank = settings.REMITTANCE_BANK
        for currency in SHARED_ACCOUNTS:
            self.shared[currency] = receiving_account_register(
                number=shared_number(currency), bank_name=bank["name"], bic=bank["bic"], currency=currency,
                actor=None, now=when,
            ).account

    # --- a statement day -----------------------------------------------------------------------

    def opening(self, receiving: RemittanceAccount, default: Decimal) -> Decimal:
        last = BankStatement.objects.filter(receiving_account=receiving).order_by("-imported_at", "-pk") \
            .values_list("closing_balance", flat=True).first()
        return default if last is None else last

    def transfer_entry(self, story: Story, amount: Decimal, when: datetime) -> Entry:
        uid = story.account.uid
        detail = Detail(
            amount=amount, payer_name=story.account.name, payer_iban=payer_iban(story),
            info=f"Cloud services, account {uid}", end_to_end_id=f"E2E{uid[-6:]}{when:%y%m%d}",
        )
        return Entry(amount=amount, currency=story.currency, reference=f"BT{when:%y%m%d}-{uid[-6:]}", details=[detail])

    def unknown_entry(self, currency: str, when: datetime, n: int, *, booked: bool = True) -> Entry:
        amount = Decimal(self.rng.randint(15000, 480000)) / 100
        payer = self.rng.choice(UNKNOWN_PAYERS)
        detail = Detail(amount=amount, payer_name=payer, info=f"Invoice {self.rng.randint(1000, 9999)}",
                        end_to_end_id=f"NOTE{when:%y%m%d}X{self.run_tag}X{n}")
        return Entry(amount=amount, currency=currency, reference=f"BT{when:%y%m%d}-X{self.run_tag}{n}",
                     details=[detail], booked=booked)

    def extras(self, currency: str, when: datetime, day: int) -> list[Entry]:
        """What else a shared account's day holds: transfers nobody has claimed, and on some days
        a bank fee, a pending credit, a transfer in another currency and a batch (REM-4..6)."""
        entries = [self.unknown_entry(currency, when, n) for n in range(1, 4 if currency == "USD" else 3)]
        if currency != "USD":
            return entries
        stamp = f"{when:%y%m%d}-{self.run_tag}"
        if day >= 1:
            entries.append(Entry(amount=Decimal("35.00"), currency="USD", reference=f"FEE{stamp}", credit=False,
                                 details=[Detail(Decimal("35.00"), settings.REMITTANCE_BANK["name"],
                                                 info="Account maintenance fee")]))
        if day == 2:
            entries.append(self.unknown_entry("USD", when, 7, booked=False))  # pending: not creditable
            entries.append(Entry(amount=Decimal("820.00"), currency="EUR", reference=f"BT{stamp}-EUR",
                                 details=[Detail(Decimal("820.00"), "Lumen Health BV", info="Wrong account, EUR")]))
            batch = [Detail(Decimal("1200.00"), "Meridian Payroll Services", info="Collective transfer 1/2",
                            reference=f"BT{stamp}-B1"),
                     Detail(Decimal("640.50"), "Meridian Payroll Services", info="Collective transfer 2/2",
                            reference=f"BT{stamp}-B2")]
            entries.append(Entry(amount=Decimal("1840.50"), currency="USD", reference=f"BT{stamp}-B", details=batch))
        return entries

    def statement_day(self, when: datetime, day: int, *, last_day: int) -> None:
        statements, dedicated_payers, shared_payers = [], [], []
        ident = f"{when:%Y%m%d}-{self.run_tag}"
        for story in self.payers:
            if story.route != "dedicated" or story.dedicated is None:
                continue
            amount = story.transfer(day, last_day=last_day)
            if amount is None:
                continue
            receiving = story.dedicated
            statements.append(Statement(
                identity=f"STMT-{ident}-{receiving.number[-6:]}", iban=receiving.number, currency=receiving.currency,
                opening=self.opening(receiving, Decimal("0.00")), day=when,
                entries=[self.transfer_entry(story, amount, when)],
            ))
            dedicated_payers.append(story)
        for currency, receiving in self.shared.items():
            entries = []
            for story in self.payers:
                if story.route == "shared" and story.currency == currency:
                    amount = story.transfer(day, last_day=last_day)
                    if amount is not None:
                        entries.append(self.transfer_entry(story, amount, when))
                        shared_payers.append((story, receiving, entries[-1].reference))
            extras = self.extras(currency, when, day)
            # Some transfers from payers the bank does not name as customers are claimed too (a
            # parent company paying for its subsidiary); the others wait in the unmatched queue.
            for entry in extras[:UNKNOWN_CLAIMED[currency][day == last_day]]:
                shared_payers.append((self.next_claimant(currency), receiving, entry.reference))
            entries += extras
            statements.append(Statement(
                identity=f"STMT-{ident}-{receiving.number[-6:]}", iban=receiving.number, currency=currency,
                opening=self.opening(receiving, SHARED_OPENING[currency]), day=when, entries=entries,
            ))
        bank = settings.REMITTANCE_BANK
        data = camt053(statements, message_id=f"DEMO-{ident}", bic=bank["bic"].upper())
        statement_import(data=data, file_name=f"camt053_{ident}.xml", actor=self.staff.finance, now=when)
        for story in dedicated_payers:
            story.credited(when)  # REM-1: credited at once; the settlement pays the bills
        self.claim_transfers(shared_payers, when, day, last_day=last_day)

    # --- claims ---------------------------------------------------------------------------------

    def next_claimant(self, currency: str) -> Story:
        """Whose claim an unknown payer's transfer becomes: the stories billed in its currency,
        in turn."""
        self.claimants += 1
        candidates = [s for s in self.stories if s.currency == currency] or self.stories
        return candidates[(self.claimants * 7) % len(candidates)]

    def claim_transfers(self, payers: list[tuple[Story, RemittanceAccount, str]], when: datetime, day: int,
                        *, last_day: int) -> None:
        today = day == last_day
        for n, (story, receiving, reference) in enumerate(payers):
            txn = BankTransaction.objects.get(receiving_account=receiving, bank_reference=reference)
            kinds = TODAY_FLOWS if today else OLD_DAY_FLOWS
            flow = kinds[self.flows % len(kinds)]
            self.flows += 1
            others = [s for s in self.stories if s is not story]
            wrong = others[n % len(others)] if others else None
            steps = ClaimFlow(flow=flow, txn=txn, story=story, wrong=wrong, staff=self.staff)
            if today:
                times = [self.clock.recent(0.2 + 0.13 * (i + 1)) for i in range(len(steps.steps))]
            else:
                times = [when + timedelta(hours=hours) for hours in (2, 5, 26, 28, 31, 50)]
            steps.schedule(self.timeline, times)
        if payers and day == 0:
            # A customer quoted a reference no transfer has: rejected after a week (CLM-4).
            story = payers[0][0]
            self.timeline.add(when + timedelta(hours=1), lambda t: waiting_claim(
                story, amount=Decimal("500.00"), currency=story.currency, reference=f"REF-{story.account.uid[-6:]}-X",
                when=t, reject_at=t + timedelta(days=7), staff=self.staff, timeline=self.timeline))
        if today:
            # Sent yesterday, not on a statement yet: the claim waits for its transfer (CLM-1).
            waiting = next((s for s in self.payers if s.route == "shared" and all(s is not p[0] for p in payers)),
                           payers[0][0] if payers else None)
            if waiting is not None:
                amount = max(waiting.owed(), Decimal("100.00")).quantize(CENT)
                self.timeline.add(self.clock.recent(0.3), lambda t: waiting_claim(
                    waiting, amount=amount, currency=waiting.currency,
                    reference=f"E2E{waiting.account.uid[-6:]}{self.clock.now:%y%m%d}W",
                    when=t, reject_at=None, staff=self.staff, timeline=self.timeline))

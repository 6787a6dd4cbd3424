"""``manage.py register_receiving_account``: register a shared (non-dedicated) receiving account.

REM-2. Contract (DESIGN.md): ``--number N --bank-name B --bic BIC --currency C``. Prints what it
registered (or that the same account was already registered: running it twice is harmless);
invalid input, or a number already used with other details, exits non-zero with the reason and
writes nothing.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing_backoffice.audit import command_audit
from billing_backoffice.errors import BillingError
from remittances import numbering
from remittances.services.accounts import receiving_account_register


class Command(BaseCommand):
    help = "Register a shared (non-dedicated) receiving bank account; idempotent (REM-2)."

    def add_arguments(self, parser):
        parser.add_argument("--number", required=True, help="IBAN or local account number (spaces allowed).")
        parser.add_argument("--bank-name", required=True)
        parser.add_argument("--bic", required=True, help="SWIFT/BIC code, 8 or 11 characters.")
        parser.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD.")
        parser.add_argument(
            "--bank-code", default="",
            help="Optional national bank code (e.g. a German BLZ) that MT940 statements name the bank by (REM-7).",
        )

    @command_audit  # its writes carry actor command:<name> (SEC-2)
    def handle(self, *args, number, bank_name, bic, currency, bank_code="", **options):
        try:
            registration = receiving_account_register(
                number=number, bank_name=bank_name, bic=bic, currency=currency, bank_code=bank_code, actor=None,
                now=timezone.now(),
            )
        except BillingError as error:
            raise CommandError(f"Nothing registered: {error}") from None
        account = registration.account
        verb = "Registered" if registration.created else "Already registered (unchanged)"
        self.stdout.write(
            f"{verb}: shared receiving account {numbering.format_number(account.number)} "
            f"at {account.bank_name} ({account.bic}), currency {account.currency}, id {account.pk}."
        )

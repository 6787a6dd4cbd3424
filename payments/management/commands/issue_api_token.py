"""``manage.py issue_api_token NAME [--rotate]``: the console's API token, alone on the last line.

Notes go to stderr, the token to stdout, so ``TOKEN=$(manage.py issue_api_token console)`` works.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing_backoffice.audit import command_audit
from payments.api.clients import ApiClientRefused, api_client_token_issue


class Command(BaseCommand):
    help = "Create (or reuse) the console API client NAME and print its token on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Client name, e.g. console; the user is api-NAME.")
        parser.add_argument("--rotate", action="store_true", help="Replace the key; the old one stops working.")

    @command_audit  # its writes carry actor command:<name> (SEC-2)
    def handle(self, *args, name: str, rotate: bool, **options):
        try:
            issued = api_client_token_issue(name=name, rotate=rotate)
        except ApiClientRefused as error:
            raise CommandError(error.detail) from None
        user_note = "created" if issued.user_created else "reused"
        key_note = "new key" if issued.key_created else "existing key"
        self.stderr.write(f"API client {issued.username} {user_note}; {key_note}.")
        self.stdout.write(issued.key)

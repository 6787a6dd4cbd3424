"""``manage.py seed_demo``: idempotent demo data across every region, and the demo staff logins.

Contract (DESIGN.md): staff users ``admin`` (superuser), ``manager`` (group "Account managers"),
``finance`` (group "Finance staff"); the password comes from ``DEMO_PASSWORD`` and is printed.
A second account manager ``manager2`` decides the credit applications ``manager`` recorded (CRED-2).
Running it again creates nothing and changes nothing. The data itself is built by
``billing_backoffice.demo``; the summary lists what the demo holds, billing and remittances included.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from billing_backoffice.audit import command_audit
from billing_backoffice.demo.seed import ACCOUNT_COUNT, demo_uid, seed_demo


class Command(BaseCommand):
    help = (
        "Create the demo accounts, payment methods, holds, link attempts, their billing and remittance "
        "history, and the staff users (idempotent)."
    )

    @command_audit  # its writes carry actor command:<name> (SEC-2)
    def handle(self, *args, **options):
        started = timezone.now()
        result = seed_demo(now=started, password=settings.DEMO_PASSWORD)
        seconds = (timezone.now() - started).total_seconds()
        out = self.stdout
        out.write(
            f"Demo data (account UIDs {demo_uid(0)} to {demo_uid(ACCOUNT_COUNT - 1)}): "
            f"{result.created_accounts} accounts created, "
            f"{result.existing_accounts} already present of {ACCOUNT_COUNT}; "
            f"billing history made for {result.billing_histories} accounts ({seconds:.1f} s)."
        )
        width = max(len(name) for name in result.counts)
        for name, count in result.counts.items():
            out.write(f"  {name:<{width}}  {count:>6}")
        out.write("")
        out.write(f"Demo logins (password: {settings.DEMO_PASSWORD}, from DEMO_PASSWORD):")
        for username, description in result.users.items():
            out.write(f"  {username:<9}{description}")
        # SEC-3: say plainly whether the admin asks for a second factor.
        if settings.ADMIN_REQUIRE_OTP:
            out.write("Second factor required: enrol each login with `manage.py add_totp_device USERNAME`.")
        else:
            out.write("Second factor disabled (local demo): ADMIN_REQUIRE_OTP is off; never deploy like this.")

"""``manage.py add_totp_device USERNAME``: enrol a staff user's authenticator app (SEC-3).

Prints the ``otpauth://`` URL (paste it into, or render it as a QR code for, any TOTP app) and
the secret for manual entry, and with ``--recovery-codes N`` a set of one-use recovery codes.
The device is confirmed at once: the operator hands the URL to the user over a trusted channel.
``--replace`` deletes the user's existing TOTP devices first (lost phone).
"""

from __future__ import annotations

from base64 import b32encode

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Create a TOTP device for a staff user and print its otpauth:// URL."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="Authenticator app", help="Device name shown at login.")
        parser.add_argument("--replace", action="store_true", help="Delete the user's existing TOTP devices first.")
        parser.add_argument(
            "--recovery-codes", type=int, default=0, metavar="N",
            help="Also (re)create N one-use recovery codes, replacing any earlier ones.",
        )

    @transaction.atomic
    def handle(self, *args, username: str, name: str, replace: bool, recovery_codes: int, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.is_staff:
            raise CommandError(f"{username!r} is not staff: the admin would refuse it anyway.")
        existing = TOTPDevice.objects.filter(user=user)
        if existing.exists() and not replace:
            raise CommandError(f"{username!r} already has a TOTP device; pass --replace to make a new one.")
        existing.delete()
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
        self.stdout.write(device.config_url)
        self.stdout.write(f"Secret (manual entry): {b32encode(device.bin_key).decode()}")
        if recovery_codes > 0:
            StaticDevice.objects.filter(user=user).delete()
            backup = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
            codes = [StaticToken.random_token() for _ in range(recovery_codes)]
            StaticToken.objects.bulk_create(StaticToken(device=backup, token=code) for code in codes)
            self.stdout.write("Recovery codes (each works once):")
            for code in codes:
                self.stdout.write(f"  {code}")

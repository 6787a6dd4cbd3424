"""``manage.py`` in a subprocess under the production settings (tests of settings and staff access)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "billing_backoffice.settings.production",
    "SECRET_KEY": "x" * 64 + "-production-secret-for-the-check",
    "CARD_FINGERPRINT_KEY": "production-fingerprint-key",
    "ALLOWED_HOSTS": "billing.example.com",
}


def run_manage(*args, env):
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV}
    base.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/unused")
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
        capture_output=True, text=True, timeout=120,
    )

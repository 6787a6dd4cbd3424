"""``manage.py register_receiving_account`` (REM-2): registers a shared receiving account,
idempotently; invalid input exits non-zero with the reason and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from remittances.models import RemittanceAccount
from remittances.services.accounts import dedicated_account_issue
from tests.helpers.remittance_accounts import SHARED_IBAN, credit_account

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
VALID = [
    "--number", "GB33 BUKB 2020 1555 5555 55", "--bank-name", "Shared Bank", "--bic", "BUKBGB22", "--currency", "GBP",
]


def register(*args: str) -> str:
    out = StringIO()
    call_command("register_receiving_account", *args, stdout=out)
    return out.getvalue()


def test_rem_2_command_registers_a_shared_account_and_says_what(now):
    output = register(*VALID)
    ra = RemittanceAccount.objects.get()
    assert ra.kind == RemittanceAccount.Kind.NON_DEDICATED and ra.account_id is None
    assert (ra.number, ra.bank_name, ra.bic, ra.currency) == (SHARED_IBAN, "Shared Bank", "BUKBGB22", "GBP")
    assert output.startswith("Registered:")
    for shown in ("GB33 BUKB 2020 1555 5555 55", "Shared Bank", "BUKBGB22", "GBP", f"id {ra.pk}"):
        assert shown in output


def test_rem_2_command_run_twice_registers_once():
    register(*VALID)
    output = register(*VALID)
    assert output.startswith("Already registered (unchanged):")
    assert RemittanceAccount.objects.count() == 1


@pytest.mark.parametrize(
    "override, reason",
    [
        ({"--bic": "NOTABIC!"}, "SWIFT/BIC"),
        ({"--number": "GB34BUKB20201555555555"}, "not a valid IBAN"),
        ({"--currency": "XYZ"}, "ISO 4217"),
    ],
)
def test_rem_2_command_refuses_invalid_input_and_writes_nothing(override, reason):
    args = list(VALID)
    for flag, value in override.items():
        args[args.index(flag) + 1] = value
    with pytest.raises(CommandError, match=reason) as refused:
        register(*args)
    assert "Nothing registered" in str(refused.value)
    assert not RemittanceAccount.objects.exists()


def test_rem_1_command_refuses_a_dedicated_accounts_number(am, now):
    ra = dedicated_account_issue(account_id=credit_account().pk, actor=am, now=now)
    with pytest.raises(CommandError, match="REM-1"):
        register("--number", ra.number, "--bank-name", ra.bank_name, "--bic", ra.bic, "--currency", ra.currency)
    assert RemittanceAccount.objects.get().kind == RemittanceAccount.Kind.DEDICATED


def run_manage(*args: str):
    """The real ``manage.py`` against the test database (committed data, transactional test)."""
    from tests.helpers.database import current_database_url

    env = {**os.environ, "DATABASE_URL": current_database_url(), "DJANGO_SETTINGS_MODULE": "billing_backoffice.settings.test"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.django_db(transaction=True)
def test_rem_2_command_exit_codes_from_the_shell():
    refused = run_manage("register_receiving_account", *VALID[:-1], "US")  # "US" is no currency
    assert refused.returncode != 0
    assert "ISO 4217" in refused.stderr and "Nothing registered" in refused.stderr
    assert not RemittanceAccount.objects.exists()
    done = run_manage("register_receiving_account", *VALID)
    assert done.returncode == 0, done.stderr
    assert "Registered:" in done.stdout
    assert RemittanceAccount.objects.filter(number=SHARED_IBAN).exists()

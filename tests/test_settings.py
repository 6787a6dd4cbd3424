"""Production settings refuse to start without their secrets, and pass Django's deploy checks."""

import pytest

from tests.helpers.manage import PRODUCTION_ENV, run_manage

@pytest.mark.parametrize("missing", ["SECRET_KEY", "CARD_FINGERPRINT_KEY", "ALLOWED_HOSTS"])
def test_production_refuses_to_start_without(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "Production settings need" in result.stderr and missing in result.stderr


def test_production_settings_pass_check_deploy():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr

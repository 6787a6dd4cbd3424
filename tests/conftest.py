from __future__ import annotations

from datetime import datetime, timezone

import pytest

from payments.gateways import simulated
from payments.services import CardInput


@pytest.fixture(autouse=True)
def fresh_simulated_processor():
    """Each test starts with a processor that has seen no idempotency key and no void."""
    simulated.reset()
    yield
    simulated.reset()


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def card_input(number: str = "4242424242424242", **overrides) -> CardInput:
    """A valid card form, with any field overridden."""
    fields = dict(
        number=number,
        exp_month=12,
        exp_year=2029,
        cvv="1234" if number.startswith(("34", "37")) else "123",
        cardholder_name="Ada Lovelace",
        billing_line1="1 Main St",
        billing_city="Springfield",
        billing_postal_code="12345",
        billing_country="US",
    )
    fields.update(overrides)
    return CardInput(**fields)


@pytest.fixture
def make_card():
    return card_input


def current_database_url() -> str:
    """A DATABASE_URL for a ``manage.py`` subprocess that must see this test's database.

    Works for TCP hosts and for the embedded server's Unix socket directory alike.
    """
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host, port = db.get("HOST") or "", db.get("PORT") or "5432"
    if host.startswith("/"):
        return f"postgres://{db['USER']}{password}@/{db['NAME']}?host={quote(host, safe='')}&port={port}"
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


def _flush_past_truncate_protection() -> None:
    """Django's flush after a ``transaction=True`` test TRUNCATEs every table, the append-only
    ones included: let it (``tests/db_reset.py``); nothing else in the suite may."""
    from django.test import TransactionTestCase

    from tests.db_reset import truncation_allowed

    original = TransactionTestCase._fixture_teardown
    if getattr(original, "truncation_allowed", False):
        return

    def _fixture_teardown(self):
        with truncation_allowed():
            original(self)

    _fixture_teardown.truncation_allowed = True
    TransactionTestCase._fixture_teardown = _fixture_teardown


_flush_past_truncate_protection()

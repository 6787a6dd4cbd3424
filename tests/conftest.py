from __future__ import annotations

from datetime import datetime

import pytest
import time_machine

from payments.api.clients import api_client_token_issue
from payments.gateways import simulated
from remittances.models import RemittanceAccount
from tests.factories import AccountFactory, UserFactory
from tests.helpers.api import RecordingClient
from tests.helpers.cards import card_input
from tests.helpers.clock import FROZEN_NOW
from tests.helpers.roles import FINANCE, MANAGERS, role_group
from tests.helpers.statements import make_receiving_account
from tests.remittances.samples import build


@pytest.fixture(autouse=True)
def fresh_simulated_processor():
    """Each test starts with a processor that has seen no idempotency key and no void."""
    simulated.reset()
    yield
    simulated.reset()




@pytest.fixture
def frozen_clock():
    """Every Python clock of this process stands at ``FROZEN_NOW`` and ticks on from there.

    How the suite handles time (one rule: a test never mixes a frozen clock with the wall clock):

    - A test that takes ``now`` (or ``frozen_clock``) lives at ``FROZEN_NOW``: what it passes to the
      services and what the code it exercises reads itself (``timezone.now()`` in admin filters
      such as "Today" and the age filters, the dashboard, API views, tasks, sessions, TOTP, file
      names) agree, every thread included. ``tick=True``: time moves on, so durations, leases and
      orderings behave, and a test never runs long enough to cross a midnight from noon.
    - To live through time, move this clock (``frozen_clock.move_to(now + timedelta(days=2))`` or
      ``frozen_clock.shift(...)``) rather than passing a later ``now`` to a service next to code that
      reads the clock itself.
    - The database's own ``now()`` (pghistory's ``pgh_created_at``, raw SQL ``now()``) is the wall
      clock, which no Python fixture can move: a test that compares such a time with a Python time
      takes neither ``now`` nor ``frozen_clock`` and reads the real clock (``timezone.now()``) only.
    - A subprocess (``manage.py`` run with ``subprocess``) is not frozen either: a test with one
      reads the real clock too.
    """
    with time_machine.travel(FROZEN_NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def now(frozen_clock) -> datetime:
    """``FROZEN_NOW``, with every Python clock there too (see ``frozen_clock``)."""
    return FROZEN_NOW


@pytest.fixture
def sent(monkeypatch):
    """Messages sent to the broker, as (task name, kwargs), recorded instead of sent."""
    from celery.app.task import Task

    messages = []
    monkeypatch.setattr(Task, "apply_async", lambda task, args=None, kwargs=None, **options: messages.append(
        (task.name, kwargs)))
    return messages


@pytest.fixture
def eager_tasks():
    """Tasks run at once, in this thread, when sent (their errors raised): with
    ``django_capture_on_commit_callbacks(execute=True)`` a staff job runs inside the request that
    starts it, as the browser tests' fixture of the same name does in the live server."""
    from billing_backoffice.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def make_card():
    return card_input


# --- staff users of each role (SEC-3), for the admin tests of every app ---------------------------


@pytest.fixture
def superuser():
    return UserFactory(username="root", is_superuser=True)


@pytest.fixture
def manager():
    user = UserFactory(username="manager")
    user.groups.add(role_group(MANAGERS))
    return user


@pytest.fixture
def finance():
    user = UserFactory(username="finance")
    user.groups.add(role_group(FINANCE))
    return user


@pytest.fixture
def as_role(client, superuser, manager, finance):
    """``as_role("manager")`` -> the test client logged in as that role."""
    users = {"superuser": superuser, "manager": manager, "finance": finance}

    def login(role: str):
        client.force_login(users[role])
        return client

    return login


# --- the console API -----------------------------------------------------------------------------


@pytest.fixture
def api() -> RecordingClient:
    """The console's token client (client name ``console-test``), keeping every response body."""
    client = RecordingClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_client_token_issue(name='console-test').key}")
    return client


# --- the receiving accounts of the sample bank statements (tests/remittances/samples) -------------
# Here rather than in tests/remittances/conftest.py: payments tests import statements too.


@pytest.fixture
def customer():
    """The enterprise customer the sample statements' dedicated account belongs to."""
    return AccountFactory(kind="enterprise", name="ACME Corp")


@pytest.fixture
def dedicated(customer, now):
    return make_receiving_account(
        number=build.DEDICATED_IBAN, kind=RemittanceAccount.Kind.DEDICATED, account=customer, now=now
    )


@pytest.fixture
def shared(now):
    return make_receiving_account(number=build.SHARED_IBAN, kind=RemittanceAccount.Kind.NON_DEDICATED, now=now)


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

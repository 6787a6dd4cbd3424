"""The suite's clocks (tests/conftest.py ``frozen_clock``): a test that takes ``now`` has every
Python clock at ``now``, in every thread; a test that does not reads the wall clock, which the
database shares (also under the shifted clock of CI's second pass, .ci/run)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.utils import timezone as dj_timezone

from tests.helpers.clock import FROZEN_NOW

pytestmark = pytest.mark.django_db


def test_now_fixture_puts_every_python_clock_at_now_in_every_thread(now):
    """The admin's "Today" filter, tasks and API views read ``timezone.now()`` themselves: at
    ``now`` too, so a test never mixes the ``now`` it passes to a service with the wall clock."""
    assert now == FROZEN_NOW
    seen = {}
    reader = threading.Thread(target=lambda: seen.update(thread=dj_timezone.now()))
    reader.start()
    reader.join()
    for moment in (dj_timezone.now(), datetime.now(timezone.utc), datetime.fromtimestamp(time.time(), timezone.utc),
                   seen["thread"]):
        assert now <= moment < now + timedelta(minutes=1)


def test_frozen_clock_ticks_and_moves_on_request(now, frozen_clock):
    first = dj_timezone.now()
    time.sleep(0.01)
    assert dj_timezone.now() > first  # ticking: durations and orderings behave
    frozen_clock.move_to(now + timedelta(days=2))
    assert now + timedelta(days=2) <= dj_timezone.now() < now + timedelta(days=2, minutes=1)


def test_without_now_the_python_clock_is_the_databases_clock():
    """The database's own ``now()`` (audit event times, raw SQL) is never frozen: a test that
    compares it with a Python time reads the wall clock, and the two agree. In CI's shifted pass
    (.ci/run) the embedded PostgreSQL runs under the same faketime offset as Python, so this
    holds there too; a database left on the real clock would fail it by days."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        database = cursor.fetchone()[0]
    assert abs(database - dj_timezone.now()) < timedelta(seconds=30)

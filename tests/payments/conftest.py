"""Fixtures of the payments tests (the role users and the clock are in ``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from payments.tasks import billing as billing_tasks, charging as charging_tasks
from tests.helpers.charging import Enqueued


@pytest.fixture
def enqueued(monkeypatch, django_capture_on_commit_callbacks) -> Enqueued:
    """Records the tasks that would reach the broker (``delay``) instead of sending them."""
    calls = Enqueued(django_capture_on_commit_callbacks)
    for task in (
        charging_tasks.execute_charge,
        charging_tasks.place_paypal_preauth,
        billing_tasks.generate_monthly_bills_chunk,
    ):
        monkeypatch.setattr(task, "delay", lambda _name=task.name, **kwargs: calls.append((_name, kwargs)))
    return calls

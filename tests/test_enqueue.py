"""billing_backoffice.enqueue: services start tasks by NAME after the commit (issue 14: tasks
import services, never the reverse), with the registered task's own options and routing."""

from __future__ import annotations

import pytest
from celery import current_app
from django.db import transaction

from billing_backoffice.enqueue import enqueue_on_commit, registered_task

pytestmark = pytest.mark.django_db


def test_sent_by_name_only_after_the_commit(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            enqueue_on_commit("payments.settle_account", account_id=7)
            assert sent == []  # not before the commit
    assert sent == [("payments.settle_account", {"account_id": 7})]


def test_nothing_sent_when_the_work_rolls_back(sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            enqueue_on_commit("payments.settle_chunk", account_ids=[1, 2])
            raise RuntimeError("the credit failed")
    assert callbacks == [] and sent == []


def test_an_unknown_task_name_fails_in_the_callers_transaction():
    with pytest.raises(KeyError, match="payments.no_such_task"):
        enqueue_on_commit("payments.no_such_task", account_id=1)


def test_the_registered_task_is_the_one_celery_routes_and_retries():
    task = registered_task("payments.execute_charge")
    assert task is current_app.tasks["payments.execute_charge"] and task.max_retries == 3
    assert current_app.amqp.router.route({}, task.name)["queue"].name == "money"

"""The one seam through which services start Celery tasks: by task NAME, after the commit.

A service that needs work done later (settle an account after a credit, run a charge at the
gateway) calls ``enqueue_on_commit("payments.settle_account", account_id=...)``. The service
imports no task module, so task modules may import services and never the reverse (no import
circles; the import-linter contracts in pyproject.toml hold it).

The message is sent by the registered task's own ``delay`` inside ``transaction.on_commit``:
nothing is sent for work that rolls back, the task sees the committed rows, and everything that
applies to ``delay`` still applies (routing by task name in ``CELERY_TASK_ROUTES``, the task's
options, tests that replace a task's ``delay`` or ``Task.apply_async``). The task is looked up
when the service calls this, as ``Task.delay_on_commit`` binds it. A task not registered yet
(a web process that never imported the task modules) is found by importing them as a worker
does (``CELERY_IMPORTS`` and autodiscovery); an unknown name fails loudly, in the caller's
transaction, so the work rolls back instead of being silently dropped.
"""

from __future__ import annotations

from functools import partial

from celery import current_app
from django.db import transaction


def registered_task(name: str):
    """The task registered under ``name`` (importing the task modules once if needed)."""
    tasks = current_app.tasks
    if name not in tasks:
        current_app.loader.import_default_modules()
    return tasks[name]  # KeyError names the task: a typo is a bug, never a dropped message


def enqueue_on_commit(task_name: str, /, **kwargs) -> None:
    """Send ``task_name`` with these keyword arguments once the current transaction commits."""
    transaction.on_commit(partial(registered_task(task_name).delay, **kwargs))

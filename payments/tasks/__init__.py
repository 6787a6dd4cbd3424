"""Celery tasks of the payments app, one module per service they run: thin wrappers that take ids,
make one service call and retry only transient errors (``billing_backoffice.task_retries``).

Tasks import services; services never import tasks (they enqueue by task name through
``billing_backoffice.enqueue``). Celery's autodiscovery imports this package, so every task
module is imported here to register its tasks. The task NAMES (``payments.settle_chunk`` ...)
are what beat, the routes in the settings and ``sync_beat_schedule`` refer to: they never change.
"""

from payments.tasks import (  # noqa: F401
    billing,
    bills,
    charging,
    credit_control,
    holds,
    lifecycle,
    notifications,
    settlement,
)

__all__ = [
    "billing", "bills", "charging", "credit_control", "holds", "lifecycle", "notifications", "settlement",
]

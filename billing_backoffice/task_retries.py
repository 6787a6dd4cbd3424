"""How every Celery task of the project retries: transient database errors only, a bounded number
of times, with countdowns far below the broker's visibility timeout (3600 s), so Redis never
redelivers a task that is merely waiting for its retry. ``acks_late`` is set globally in the
settings. A core module: the apps' task modules import it, it imports no app.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

TRANSIENT_ERRORS = (OperationalError, InterfaceError)
MAX_RETRIES = 3
# Exponential backoff 30 s, 60 s, 120 s (plus jitter), never more than RETRY_BACKOFF_MAX.
RETRY_BACKOFF = 30
RETRY_BACKOFF_MAX = 300
RETRY_OPTIONS = dict(
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=MAX_RETRIES,
    retry_backoff=RETRY_BACKOFF,
    retry_backoff_max=RETRY_BACKOFF_MAX,
    retry_jitter=True,
)

"""Emptying tables between tests, past the TRUNCATE protection of the append-only tables.

The ledger, the bank transaction keys and every audit event table refuse ``TRUNCATE`` with a
statement-level trigger (``billing_backoffice.audit.no_truncate``). Test resets (Django's flush
after a ``transaction=True`` test, the state machine's per-example reset) are the one place that
may empty them: they do it inside ``truncation_allowed()``, which ignores exactly those triggers
through ``pgtrigger.ignore`` for the block.
"""

from __future__ import annotations

import contextlib
import functools

import pgtrigger
from django.apps import apps


@functools.cache
def truncate_protections() -> tuple[str, ...]:
    """``app_label.Model:trigger`` for every TRUNCATE-refusing trigger of the project."""
    uris = []
    for model in apps.get_models():
        for trigger in getattr(model._meta, "triggers", ()):
            if str(trigger.operation) == str(pgtrigger.Truncate):
                uris.append(f"{model._meta.label}:{trigger.name}")
    return tuple(sorted(uris))


@contextlib.contextmanager
def truncation_allowed():
    with pgtrigger.ignore(*truncate_protections()):
        yield

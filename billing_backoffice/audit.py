"""Audit trail (SEC-2): who, when, what, before and after, for every money, status or
permission row.

What is recorded, and how
- Each audited model carries ``@track(...)`` (a configured ``pghistory.track``): PostgreSQL
  triggers copy the row into its event table (``<model>event``) on INSERT, on any UPDATE that
  changes a tracked column, and on DELETE. Because they are triggers, ORM saves, ``.update()``,
  bulk writes and raw SQL are all recorded, in the same transaction as the change.
- Statement-level triggers: one ``INSERT ... SELECT`` per statement from the transition table,
  so a set-based update of 100k rows (statement import, settlement) writes its events in one
  statement instead of 100k trigger calls.
- "Before and after": an event stores the row as it is after the change; the previous event of
  the same row is the state before (``audit_rows`` pairs them). Rows that existed before the
  trail was switched on got a ``baseline`` event in the migration that added it.
- Event tables are append-only (a trigger refuses UPDATE and DELETE), like the ledger, and a
  statement-level trigger refuses TRUNCATE, which row triggers never see (``NO_TRUNCATE``).

Who: the context
- ``pghistory.context`` puts a JSON object into every write statement of a block; the triggers
  store it on each event (``pgh_context``). Keys: ``actor`` (always: a username,
  ``task:<name>`` or ``command:<name>``), ``user`` (id) and ``username`` for staff, ``url`` and
  ``method`` for web requests, ``task``/``task_id`` for Celery, ``reason`` when given.
- Web requests: ``billing_backoffice.middleware.AuditContextMiddleware`` (admin and API; the
  API's token user is picked up when DRF authenticates).
- Celery: the ``task_prerun``/``task_postrun`` handlers below (connected on import; the Celery
  app module imports this one).
- Management commands that change money, status or credentials: ``@command_audit`` on their
  ``handle`` (actor ``command:<name>``).
- Services called from a shell or a test: ``with audit_context(actor=user,
  reason="...")``. A change made with no context at all (e.g. psql) is still recorded, with an
  empty context: the log shows it as "no context".
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import pghistory
import pgtrigger
import psycopg
from celery.signals import task_postrun, task_prerun
from django.db import connection, models
from django.db.models import F
from django.db.models.fields.json import KT
from pghistory import runtime

# Columns never shown in the audit views (SEC-1: the admin never shows them either); a change
# to them is still recorded and shown as "(hidden)".
HIDDEN_COLUMNS = frozenset({"gateway_token", "fingerprint"})

# --- tracking ---------------------------------------------------------------------------------


def no_truncate(name: str = "no_truncate") -> pgtrigger.Trigger:
    """A statement-level trigger that refuses ``TRUNCATE`` of an append-only table (ledger, audit).

    Row triggers (append-only UPDATE/DELETE protection) never fire for TRUNCATE, and
    ``pgtrigger.Protect`` has no statement-level TRUNCATE form (it needs transition tables), so
    this is a plain BEFORE TRUNCATE trigger. Test database resets get past it with
    ``pgtrigger.ignore`` (``tests/db_reset.py``), like past any pgtrigger protection.
    """
    return pgtrigger.Trigger(
        name=name,
        level=pgtrigger.Statement,
        when=pgtrigger.Before,
        operation=pgtrigger.Truncate,
        func="RAISE EXCEPTION 'pgtrigger: Cannot truncate the append-only table %', TG_TABLE_NAME; RETURN NULL;",
    )


def track(prefix: str, *, exclude: tuple[str, ...] = (), **options: Any):
    """``pghistory.track`` with the project's settings; ``prefix`` names the event indexes.

    - insert, update (only when a tracked column changes) and delete events;
    - statement-level triggers (bulk writes stay set-based);
    - context denormalised as JSON on each event (no join, filterable by ``actor``);
    - append-only event tables;
    - indexes for the per-object history and the audit log: (object, event id),
      (time, event id) and (actor, time, event id), so every audit query is an index range.
    ``exclude``: operational columns whose churn is not an auditable change (a lease).
    Foreign keys copied into an event table are plain, unindexed columns: every audited write
    inserts an event row, and an index per copied foreign key (pghistory's default) would slow
    each one for a query the audit views never make.
    """
    pghistory_track = pghistory.track(
        pghistory.InsertEvent(),
        pghistory.UpdateEvent(),
        pghistory.DeleteEvent(),
        exclude=list(exclude),
        obj_field=pghistory.ObjForeignKey(related_name="audit_events", db_index=False),
        context_field=pghistory.ContextJSONField(),
        context_id_field=pghistory.ContextUUIDField(),
        append_only=True,
        level=pghistory.Statement,
        meta={
            "triggers": [no_truncate()],
            "indexes": [
                models.Index(F("pgh_obj"), F("pgh_id"), name=f"{prefix}_ev_obj"),
                models.Index(F("pgh_created_at"), F("pgh_id"), name=f"{prefix}_ev_time"),
                models.Index(
                    KT("pgh_context__actor"), F("pgh_created_at"), F("pgh_id"), name=f"{prefix}_ev_actor"
                ),
            ]
        },
        **options,
    )

    def decorate(model_class):
        pghistory_track(model_class)
        event_model = event_model_for(model_class)
        for field in event_model._meta.fields:
            if isinstance(field, models.ForeignKey) and field.name != "pgh_obj":
                field.db_index = False
        return model_class

    return decorate


def event_model_for(model: type[models.Model]) -> type[models.Model] | None:
    """The event model of an audited model (``None`` if it is not audited)."""
    return getattr(model, "pgh_event_models", {}).get("update")


def audited_models() -> list[type[models.Model]]:
    """Every audited model, in app/model order (the audit log's model filter)."""
    from django.apps import apps

    return sorted(
        (model for model in apps.get_models() if event_model_for(model) is not None),
        key=lambda model: model._meta.label,
    )


BASELINE_LABEL = "baseline"


def insert_baseline_events(apps, schema_editor, *, app_label: str, event_models: list[str]) -> None:
    """Migration step: one ``baseline`` event per existing row of each newly audited model.

    Without it, the first change of a row that existed before the trail was switched on would
    have no "before". One ``INSERT ... SELECT`` per table; nothing to do on an empty database.
    """
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    for name in event_models:
        event_model = apps.get_model(app_label, name)
        tracked = event_model._meta.get_field("pgh_obj").related_model
        columns = [f.column for f in event_model._meta.local_fields if not f.name.startswith("pgh_")]
        listed = ", ".join(quote(c) for c in columns)
        schema_editor.execute(
            f"INSERT INTO {quote(event_model._meta.db_table)} "
            f"({listed}, pgh_created_at, pgh_label, pgh_obj_id, pgh_context) "
            f"SELECT {listed}, NOW(), %s, {quote(tracked._meta.pk.column)}, %s::jsonb "
            f"FROM {quote(tracked._meta.db_table)}",
            [BASELINE_LABEL, '{"actor": "migration:audit baseline"}'],
        )


# --- context ----------------------------------------------------------------------------------


def context_active() -> bool:
    """True inside a ``pghistory.context`` block of this thread (request, task, helper)."""
    return hasattr(runtime._tracker, "value")


def actor_metadata(actor: Any) -> dict[str, Any]:
    """Context keys for an actor: a user (staff or API client) or a free label (``task:x``)."""
    if actor is None:
        return {}
    if hasattr(actor, "_meta") and hasattr(actor, "get_username"):
        username = actor.get_username()
        return {"actor": username, "user": actor.pk, "username": username}
    return {"actor": str(actor)}


def _forget_database_context() -> None:
    """Clear the context pghistory left in the current transaction's settings.

    pghistory sets the context with ``set_config(..., is_local => true)`` before each write:
    it lasts until the transaction ends. When a block ends inside a longer transaction (a task
    run eagerly, a helper in a test or a shell, a request in a test), later writes of that
    transaction would otherwise still be attributed to the block's actor.
    """
    if connection.connection is None or not connection.in_atomic_block:
        return  # autocommit: the settings ended with the statement's own transaction
    if connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
        return  # the transaction is rolling back; nothing more will be written in it
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('pghistory.context_id', '', true),"
            " set_config('pghistory.context_metadata', '', true)"
        )


class AuditBlock:
    """Attach ``metadata`` to every write made in the block.

    Outermost: enters ``pghistory.context`` and, on exit, clears the database context (see
    ``_forget_database_context``). Nested (an eager task in a request, a helper in a task):
    its keys override the outer ones for the block only; the outer keys come back on exit
    (and go to the database with the next write). Used by the middleware, tasks and helpers.
    """

    def __init__(self, **metadata: Any):
        self.metadata = metadata
        self._context: pghistory.context | None = None
        self._watch = None
        self._wrote = False
        self._outer: dict[str, Any] | None = None
        self._outer_saved: dict[str, Any] = {}

    def __enter__(self) -> AuditBlock:
        if context_active():
            self._outer = runtime._tracker.value.metadata
            self._outer_saved = dict(self._outer)
            self._outer.update(self.metadata)
            return self
        # Installed before pghistory's wrapper, so it sees each statement as written.
        self._wrote = False
        self._watch = connection.execute_wrapper(self._note_write)
        self._watch.__enter__()
        self._context = pghistory.context(**self.metadata)
        self._context.__enter__()
        return self

    def _note_write(self, execute, sql, params, many, context):
        # The statements pghistory gives the context to (it skips SELECT, DDL and the like).
        if not runtime._is_ignored_statement(sql):
            self._wrote = True
        return execute(sql, params, many, context)

    def __exit__(self, *exc) -> None:
        if self._outer is not None:
            self._outer.clear()
            self._outer.update(self._outer_saved)
            self._outer = None
            return
        context, self._context = self._context, None
        watch, self._watch = self._watch, None
        try:
            if self._wrote:  # a read-only block set nothing: no extra query
                _forget_database_context()
        finally:
            context.__exit__(*exc)
            watch.__exit__(*exc)


def audit_context(*, actor: Any, reason: str = "", **extra: Any) -> AuditBlock:
    """Attach ``actor`` (and a ``reason``) to every change made in the block.

    For services run outside a request or a task (shell, tests, commands)::

        with audit_context(actor=user, reason="customer called"):
            account_deactivate(account_id=..., now=now)

    ``actor``: a user, or a label such as ``"command:import_bank_statement"``.
    """
    metadata = {**actor_metadata(actor), **extra}
    if reason:
        metadata["reason"] = reason
    return AuditBlock(**metadata)


def command_audit(handle):
    """Decorator for a management command's ``handle``: its writes carry ``command:<name>``.

    ``<name>`` is the command's module name (what ``manage.py`` is given). Inside an outer
    block (a test, a shell's ``audit_context``) the command is the actor for its duration.
    """

    @functools.wraps(handle)
    def wrapper(self, *args, **options):
        name = type(self).__module__.rsplit(".", 1)[-1]
        with audit_context(actor=f"command:{name}", command=name):
            return handle(self, *args, **options)

    return wrapper


# --- Celery: the task name is the actor --------------------------------------------------------

# Open contexts by task id; prerun and postrun of one task run in the same worker thread.
_task_contexts: dict[str, AuditBlock] = {}
_task_contexts_lock = threading.Lock()


def _task_started(sender=None, task_id=None, task=None, **kwargs) -> None:
    # Run eagerly inside a request, the task is the actor and the request's user stays in the
    # context (``user``, ``url``) for the task's duration.
    name = getattr(task, "name", None) or getattr(sender, "name", "unknown")
    context = AuditBlock(actor=f"task:{name}", task=name, task_id=task_id)
    context.__enter__()
    with _task_contexts_lock:
        _task_contexts[task_id] = context


def _task_finished(sender=None, task_id=None, **kwargs) -> None:
    with _task_contexts_lock:
        context = _task_contexts.pop(task_id, None)
    if context is not None:
        context.__exit__(None, None, None)


task_prerun.connect(_task_started, weak=False, dispatch_uid="billing_backoffice.audit.task_started")
task_postrun.connect(_task_finished, weak=False, dispatch_uid="billing_backoffice.audit.task_finished")

"""Poison items in batch jobs: one failing item is recorded and skipped, the rest of the run goes on.

``celery_failures.py`` deals with poison *messages*; this module with a poison *item* inside a
healthy run: a usage total that overflows the bill column, a card whose gateway raises, a
malformed statement file. Without it one such item kills its job at the same place on every
run, and every item after it is never processed.

How a job uses it (``JobItems``, one per run of a job over one kind of item):

- ``items.run(key, fn)`` runs one item in a SAVEPOINT (``transaction.atomic``, a transaction of
  its own when the loop runs in autocommit, as the Celery tasks do), so a failing item rolls back
  only its own writes. The failure is then recorded *after* that rollback, in a transaction of
  its own, and ``run`` returns: the loop continues with the next item.
- Set-based jobs (one SQL statement per chunk) try the chunk first; on a failure they run the
  chunk's items one by one (``items.run_chunk``), so only the poison item is isolated and a run
  without poison costs what it did.
- Bounded retries: an item that failed waits ``retry_delay(attempts)`` (5 min, doubling, at most
  6 h) before a run tries it again, and after ``MAX_ATTEMPTS`` failures it is given up: later runs
  skip it (``items.skips(key)``; the set-based jobs exclude ``items.skipped_ids()`` in their SQL)
  until a staff member retries it from the admin (``job_item_failure_retry``). An item that then
  succeeds marks its failure resolved.
- Not isolated: transient database errors (a lost connection, a deadlock, a serialization
  failure) and Celery's soft time limit. They are not the item's fault; they stop the run and the
  task retries it, bounded (``billing_backoffice.task_retries.RETRY_OPTIONS``).

Rows are ``JobItemFailure`` (unique per job, item kind and key), shown read-only in the admin to
finance staff and superusers. The error's text is stored and logged with card numbers masked
(SEC-1): only the code and rule of a business error, or the class of any other exception, plus
that masked text.

One caveat: the failure is committed with the run's transaction. The jobs call this from
autocommit (Celery tasks), where it is committed at once; a caller that wraps a whole run in
one transaction and rolls it back loses the record with everything else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q

from billing_backoffice.errors import BillingError, FailureNotFound  # noqa: F401 (raised here)
from billing_backoffice.logging import redact_card_numbers
from billing_backoffice.models import JobItemFailure

logger = logging.getLogger("billing.item_failures")

# Failures before an item is given up (its first attempt included); staff retries add one each.
MAX_ATTEMPTS = 5
FIRST_RETRY_DELAY = timedelta(minutes=5)
MAX_RETRY_DELAY = timedelta(hours=6)
MESSAGE_MAX = 2000
# Not the item's fault: the run stops and its task retries (bounded) instead.
NOT_ISOLATED = (OperationalError, InterfaceError, SoftTimeLimitExceeded)


def max_attempts() -> int:
    return getattr(settings, "BILLING_ITEM_MAX_ATTEMPTS", MAX_ATTEMPTS)


def retry_delay(attempts: int) -> timedelta:
    """How long an item that failed ``attempts`` times waits for its next try."""
    return min(FIRST_RETRY_DELAY * 2 ** max(attempts - 1, 0), MAX_RETRY_DELAY)


def error_fields(error: BaseException) -> dict[str, str]:
    """What is kept of an error: its code and rule, or its class, and its text masked (SEC-1)."""
    if isinstance(error, BillingError):
        code, rule, text = error.code, error.rule or "", str(error.detail)
    else:
        code, rule, text = type(error).__name__, "", str(error)
    return {"error": code[:100], "rule": rule[:20], "message": redact_card_numbers(text)[:MESSAGE_MAX]}


@dataclass
class ItemOutcome:
    ok: bool
    value: Any = None
    error: BaseException | None = None


class JobItems:
    """The items of one kind in one run of ``job`` at ``now`` (see the module docstring).

    ``item_kind`` is a model label (``payments.bill``) when the key is that model's id, which is
    also what the admin links to; a key may carry more (``12:USD``), with ``object_id`` passed.
    The job's open failures are read once, on first use, so a run with no items costs nothing.
    """

    def __init__(self, *, job: str, item_kind: str, now: datetime):
        self.job, self.item_kind, self.now = job, item_kind, now
        self._open: dict[str, JobItemFailure] | None = None

    # --- reading -------------------------------------------------------------------------

    def open_failures(self) -> dict[str, JobItemFailure]:
        if self._open is None:
            rows = JobItemFailure.objects.filter(job=self.job, item_kind=self.item_kind, resolved_at__isnull=True)
            self._open = {failure.item_key: failure for failure in rows}
        return self._open

    def _waits(self, failure: JobItemFailure) -> bool:
        return failure.given_up_at is not None or (
            failure.next_retry_at is not None and failure.next_retry_at > self.now
        )

    def skips(self, key: Any) -> bool:
        """True for an item given up, or waiting for its next retry: this run leaves it alone."""
        failure = self.open_failures().get(str(key))
        return failure is not None and self._waits(failure)

    def skipped_ids(self) -> list[int]:
        """The object ids this run leaves alone, for a set-based job to exclude in its SQL."""
        return sorted(
            failure.object_id for failure in self.open_failures().values()
            if failure.object_id is not None and self._waits(failure)
        )

    # --- running -------------------------------------------------------------------------

    def run(
        self, key: Any, fn: Callable[[], Any], *, object_id: int | None = None, atomic: bool = True,
        resolve: bool = True, isolate: tuple[type[BaseException], ...] = (Exception,),
    ) -> ItemOutcome:
        """Run one item; a failure is recorded and returned, never raised (but NOT_ISOLATED).

        ``atomic=False`` is for items that must run outside any transaction (a gateway call with
        no row lock held) and commit their own writes: there is nothing of theirs to roll back.
        ``resolve=False`` leaves resolving to the caller (``resolve_objects``), for a job that
        knows from its own read which items had failed and must not spend a query per run.
        ``isolate`` narrows what counts as the item's fault (the settlement isolates database
        refusals only: its own conflicts and crashes must reach its caller, which retries).
        """
        key = str(key)
        try:
            if atomic:
                with transaction.atomic():
                    value = fn()
            else:
                value = fn()
        except NOT_ISOLATED:
            raise
        except isolate as error:
            self.record(key, error, object_id=object_id if object_id is not None else _as_id(key))
            return ItemOutcome(ok=False, error=error)
        if resolve:
            self.resolve([key])
        return ItemOutcome(ok=True, value=value)

    def run_chunk(
        self, keys: Iterable[Any], fn: Callable[[list], Any], *, combine: Callable[[list], Any] = list,
        isolate: tuple[type[BaseException], ...] = (Exception,),
    ) -> Any:
        """Set-based: ``fn(keys)`` for the whole chunk in one savepoint; if it fails, ``fn([key])``
        for each key alone (``run``), so only the poison item fails. Items this run skips are
        left out first. Returns ``fn``'s value, or ``combine`` of the values of the items that
        passed one by one."""
        keys = [key for key in keys if not self.skips(key)]
        if not keys:
            return combine([])
        try:
            with transaction.atomic():
                value = fn(keys)
        except NOT_ISOLATED:
            raise
        except isolate as error:
            logger.warning(
                "%s: a chunk of %s %s item(s) failed (%s); running them one by one",
                self.job, len(keys), self.item_kind, type(error).__name__,
            )
            outcomes = [self.run(key, lambda key=key: fn([key]), isolate=isolate) for key in keys]
            return combine([outcome.value for outcome in outcomes if outcome.ok])
        self.resolve(keys)
        return value

    # --- writing -------------------------------------------------------------------------

    def record(self, key: Any, error: BaseException, *, object_id: int | None = None) -> JobItemFailure:
        """Record a failure of one item (its own transaction); given up after ``max_attempts``."""
        key, now, fields = str(key), self.now, error_fields(error)
        with transaction.atomic():
            failure, created = JobItemFailure.objects.select_for_update().get_or_create(
                job=self.job, item_kind=self.item_kind, item_key=key,
                defaults={"object_id": object_id, "first_failed_at": now, "last_failed_at": now, **fields},
            )
            if not created:
                if failure.resolved_at is not None:  # it had recovered; this is a new episode
                    failure.attempts, failure.first_failed_at, failure.resolved_at = 0, now, None
                    failure.given_up_at = None
                failure.attempts += 1
                failure.last_failed_at = now
                for name, value in fields.items():
                    setattr(failure, name, value)
            if failure.attempts >= max_attempts():
                failure.given_up_at, failure.next_retry_at = now, None
            else:
                failure.given_up_at, failure.next_retry_at = None, now + retry_delay(failure.attempts)
            failure.save()
        if self._open is not None:
            self._open[key] = failure
        logger.warning(
            "%s: %s %s failed (attempt %s, %s%s): %s", self.job, self.item_kind, key, failure.attempts,
            fields["error"], f", {fields['rule']}" if fields["rule"] else "",
            "given up until staff retry it" if failure.given_up_at else f"retried from {failure.next_retry_at:%Y-%m-%dT%H:%M:%SZ}",
        )
        return failure

    def resolve(self, keys: Iterable[Any]) -> int:
        """Mark the open failures of these items resolved (they just succeeded)."""
        open_failures = self.open_failures()
        ids = [open_failures.pop(str(key)).pk for key in keys if str(key) in open_failures]
        if not ids:
            return 0
        return JobItemFailure.objects.filter(pk__in=ids, resolved_at__isnull=True).update(
            resolved_at=self.now, next_retry_at=None
        )


    def resolve_objects(self, object_ids: Iterable[int]) -> int:
        """Like ``resolve``, by the items' object ids, without reading the open failures first."""
        object_ids = list(object_ids)
        if not object_ids:
            return 0
        return JobItemFailure.objects.filter(
            job=self.job, item_kind=self.item_kind, object_id__in=object_ids, resolved_at__isnull=True
        ).update(resolved_at=self.now, next_retry_at=None)


def _as_id(key: str) -> int | None:
    return int(key) if key.isdigit() else None


# --- staff ---------------------------------------------------------------------------------


@transaction.atomic
def job_item_failure_retry(*, failure_id: int, actor, now: datetime) -> JobItemFailure:
    """The admin's "retry now": the next run of the job tries the item again, even one given up.

    It is one more attempt: an item that fails again after ``max_attempts`` is given up again at
    once. A resolved failure is left as it is. Who asked and when are kept on the row.
    """
    try:
        failure = JobItemFailure.objects.select_for_update().get(pk=failure_id)
    except JobItemFailure.DoesNotExist:
        raise FailureNotFound() from None
    if failure.resolved_at is not None:
        return failure
    failure.given_up_at, failure.next_retry_at = None, now
    failure.retried_at, failure.retried_by = now, actor
    failure.save(update_fields=["given_up_at", "next_retry_at", "retried_at", "retried_by"])
    logger.info("%s: %s %s re-armed by user %s", failure.job, failure.item_kind, failure.item_key, getattr(actor, "pk", None))
    return failure


def open_failures_q(*, job: str, item_kind: str, now: datetime) -> Q:
    """The failures a run at ``now`` skips, as a filter (for a subquery in a job's claim)."""
    return Q(job=job, item_kind=item_kind, resolved_at__isnull=True, object_id__isnull=False) & (
        Q(given_up_at__isnull=False) | Q(next_retry_at__gt=now)
    )


def skipped_ids_sql(*, job: str, item_kind: str, now: datetime) -> tuple[str, dict[str, Any]]:
    """``open_failures_q`` for raw SQL: a subquery of the object ids a run at ``now`` skips, and
    its parameters (``%(skip_job)s`` ...), so a set-based job excludes them at no extra query:
    ``AND id NOT IN ({sql})``."""
    table = JobItemFailure._meta.db_table
    sql = f"""
        SELECT object_id FROM {table}
        WHERE job = %(skip_job)s AND item_kind = %(skip_kind)s AND resolved_at IS NULL
          AND object_id IS NOT NULL AND (given_up_at IS NOT NULL OR next_retry_at > %(skip_now)s)
    """
    return sql, {"skip_job": job, "skip_kind": item_kind, "skip_now": now}


def resolved_ids_sql(
    *, job: str, item_kind: str, now: datetime, ids: str = "= ANY(%(resolve_ids)s::bigint[])"
) -> tuple[str, dict[str, Any]]:
    """An UPDATE that resolves the open failures of the object ids ``object_id {ids}`` (those a
    set-based statement just processed, ``%(resolve_ids)s`` by default, or a subquery), for a
    job to run as a CTE of a statement it runs anyway: no query of its own."""
    table = JobItemFailure._meta.db_table
    sql = f"""
        UPDATE {table} SET resolved_at = %(resolve_now)s, next_retry_at = NULL
        WHERE job = %(resolve_job)s AND item_kind = %(resolve_kind)s AND resolved_at IS NULL
          AND object_id {ids}
    """
    return sql, {"resolve_job": job, "resolve_kind": item_kind, "resolve_now": now}


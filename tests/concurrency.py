"""Running code in real threads at the same instant, for the race tests on PostgreSQL.

Each thread waits at a barrier so all start together, and closes its own database connection
when done (Django opens one per thread). A thread still alive after the timeout means a hang
(a deadlock, a lock never released) and fails the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from django.db import connection


def run_at_once(calls: Sequence[Callable[[], object]], *, timeout: float = 60) -> list:
    """Run each call in its own thread, released together; each result, or the exception raised."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(index: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=20)
            results[index] = call()
        except BaseException as error:  # noqa: BLE001 - the test inspects every outcome
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung (deadlock?)"
    return results


def errors_of(results: list) -> list[BaseException]:
    return [result for result in results if isinstance(result, BaseException)]


def run_in_threads(count: int, target: Callable[[int], object], *, timeout: float = 60) -> list:
    """``target(i)`` for i in range(count), all at once; fails the test if any of them raised."""
    results = run_at_once([lambda i=i: target(i) for i in range(count)], timeout=timeout)
    errors = errors_of(results)
    assert not errors, errors
    return results


class LockRendezvous:
    """Holds each thread at one point until every other thread is there too or waits on a lock.

    A plain barrier at the point a lock protects would hang when the lock works (the others can
    never arrive); this one lets a thread go on as soon as each other party has either arrived
    or is blocked on a PostgreSQL lock of this database. Without the lock every thread reaches
    the point before any goes on, so the race happens on every run, not one in four.
    """

    def __init__(self, parties: int, *, timeout: float = 30):
        self.parties = parties
        self.timeout = timeout
        self.arrivals = 0
        self._mutex = threading.Lock()

    def wait(self) -> None:
        import time

        with self._mutex:
            self.arrivals += 1
        deadline = time.monotonic() + self.timeout
        # The raw driver cursor: Django's would run this query through the caller's wrapper again.
        with connection.connection.cursor() as cursor:
            while True:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                blocked = cursor.fetchone()[0]
                if self.arrivals + blocked >= self.parties:
                    return
                assert time.monotonic() < deadline, "rendezvous timed out: a party neither arrived nor blocked"
                time.sleep(0.005)

    def after_query(self, matches: Callable[[str], bool]):
        """An ``execute_wrapper`` that waits here right after each query for which ``matches(sql)``."""

        def wrapper(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            if matches(sql):
                self.wait()
            return result

        return wrapper

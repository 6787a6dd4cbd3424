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

"""Helpers of the Celery fault tests (tests/test_celery_faults.py, tests/test_worker_kill.py).

- ``FileProcessorCardGateway``: the sandbox card gateway whose voids go to a processor that
  keeps its memory in a directory, so a worker that is killed and restarted (another process)
  meets the same processor, as it would in production: a replayed idempotency key gets the
  first answer back, and every real void is one line in ``voids.log`` (replays go to
  ``replays.log``). It can be armed to stall after the Nth real void, which is how the worker
  test knows the worker is in the middle of a release batch before it kills it.
- ``LostAnswerPayPalGateway``: the PayPal sandbox whose first answer to each authorization key
  is lost after the authorization was made (a timeout), in this process.
- ``Worker``: a real ``celery worker`` subprocess against Redis and the test database.
- ``Broker``: sends messages to that Redis and reads its queue and unacknowledged messages.
- ``kill_own_worker_process``: a test-only task (registered in the worker through
  ``--include tests.celery_helpers``) that kills the process running it: a poison message.

Nothing here is used by production code; the worker selects the gateway through the
``CARD_GATEWAY`` environment variable the settings already read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from celery import Celery, shared_task

from payments.gateways.base import GatewayError, IdempotencyKeyReused, VoidResult
from payments.gateways.simulated import PROCESSOR, SimulatedCardGateway, SimulatedPayPalGateway

ROOT = Path(__file__).resolve().parent.parent
# A Redis database of its own: the worker tests flush it.
REDIS_URL = os.environ.get("CELERY_FAULT_REDIS_URL", "redis://127.0.0.1:6379/14")
PROCESSOR_DIR_ENV = "BILLING_TEST_PROCESSOR_DIR"
STALL_SECONDS = 120  # far longer than any test waits: the worker is killed during the stall
QUEUE = "celery"


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# --- a processor whose memory outlives the worker process ----------------------------------------


class FileProcessor:
    """Voids with idempotency keys, remembered in ``root`` across processes (one worker at a time)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "keys").mkdir(parents=True, exist_ok=True)
        (self.root / "voided").mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_env(cls) -> FileProcessor:
        return cls(Path(os.environ[PROCESSOR_DIR_ENV]))

    # The test's view ---------------------------------------------------------------------------

    def arm_stall(self, *, after_real_voids: int) -> None:
        """The void that brings the real voids to this number stalls (once, in one process)."""
        (self.root / "stall-at").write_text(str(after_real_voids))

    def stalled(self) -> bool:
        return (self.root / "stalled").exists()

    def stalled_pid(self) -> int | None:
        path = self.root / "stalled"
        return int(path.read_text()) if path.exists() else None

    def _lines(self, name: str) -> list[list[str]]:
        path = self.root / name
        return [line.split() for line in path.read_text().splitlines()] if path.exists() else []

    def real_voids(self) -> list[tuple[str, str, int]]:
        """(authorization id, key, pid) of every void the processor really made."""
        return [(auth, key, int(pid)) for auth, key, pid in self._lines("voids.log")]

    def replays(self) -> list[tuple[str, str, int]]:
        """(authorization id, key, pid) of every void answered from a saved key."""
        return [(auth, key, int(pid)) for auth, key, pid in self._lines("replays.log")]

    # The processor ------------------------------------------------------------------------------

    def _append(self, name: str, line: str) -> None:
        # One short write with O_APPEND: lines of concurrent writers never interleave.
        with open(self.root / name, "a", encoding="ascii") as log:
            log.write(line + "\n")

    def void(self, authorization_id: str, key: str) -> VoidResult:
        key_file = self.root / "keys" / hashlib.sha256(key.encode()).hexdigest()
        if key_file.exists():
            saved = json.loads(key_file.read_text())
            if saved["authorization_id"] != authorization_id:
                raise IdempotencyKeyReused(f"idempotency key {key} reused with other parameters")
            self._append("replays.log", f"{authorization_id} {key} {os.getpid()}")
            return VoidResult(voided=saved["voided"], error=saved["error"])
        voided_marker = self.root / "voided" / authorization_id
        if voided_marker.exists():
            result = VoidResult(voided=True, error="already_voided")  # I4: counts as released
        else:
            self._append("voids.log", f"{authorization_id} {key} {os.getpid()}")
            voided_marker.touch()
            result = VoidResult(voided=True)
        temporary = key_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"authorization_id": authorization_id, **dataclasses.asdict(result)}))
        os.replace(temporary, key_file)
        self._maybe_stall()
        return result

    def _maybe_stall(self) -> None:
        """The void is made and saved; its answer never reaches the caller (the worker dies)."""
        arm = self.root / "stall-at"
        try:
            after = int(arm.read_text())
        except FileNotFoundError:
            return
        if len(self.real_voids()) < after:
            return
        try:
            os.rename(arm, self.root / "stall-taken")  # only one process stalls, once
        except FileNotFoundError:
            return
        (self.root / "stalled").write_text(str(os.getpid()))
        time.sleep(STALL_SECONDS)


class FileProcessorCardGateway(SimulatedCardGateway):
    """The sandbox card gateway, voiding at the ``FileProcessor`` named by the environment."""

    def void(self, *, authorization_id: str, idempotency_key: str) -> VoidResult:
        return FileProcessor.from_env().void(authorization_id, idempotency_key)


# --- a PayPal sandbox that loses answers -----------------------------------------------------------


class LostAnswerPayPalGateway(SimulatedPayPalGateway):
    """The first answer to each authorization key is lost after the processor authorized.

    ``authorizations`` lists the authorizations the processor really made (replays of a saved
    key excluded): with the same key on every retry there is one per key.
    """

    lock = threading.Lock()
    authorizations: list[tuple[str, str]] = []  # (idempotency key, authorization id)
    lost: set[str] = set()

    @classmethod
    def reset(cls) -> None:
        with cls.lock:
            cls.authorizations.clear()
            cls.lost.clear()

    def authorize_hold(self, *, idempotency_key: str, **kwargs):
        with self.lock:
            replay = idempotency_key in PROCESSOR.results
        authorization = super().authorize_hold(idempotency_key=idempotency_key, **kwargs)
        with self.lock:
            if not replay:
                self.authorizations.append((idempotency_key, authorization.authorization_id))
            if idempotency_key not in self.lost:
                self.lost.add(idempotency_key)
                raise GatewayError("simulated timeout: the authorization was made, its answer lost")
        return authorization


# --- a poison message ------------------------------------------------------------------------------

KILL_TASK_MAX_RETRIES = 2


@shared_task(
    name="tests.kill_own_worker_process",
    max_retries=KILL_TASK_MAX_RETRIES,
    default_retry_delay=0,  # the retry after a lost worker waits this long
)
def kill_own_worker_process(*, runs_file: str) -> None:
    """Dies with SIGKILL every time it runs, like a task that runs its worker out of memory."""
    with open(runs_file, "a", encoding="ascii") as runs:
        runs.write(f"{os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)


# --- the broker ------------------------------------------------------------------------------------


class Broker:
    """The worker tests' Redis database: send messages, look at what is queued or unacked."""

    def __init__(self, url: str = REDIS_URL) -> None:
        import redis

        self.url = url
        self.redis = redis.Redis.from_url(url)
        self.app = Celery("fault-tests-producer", broker=url, set_as_current=False)

    def available(self) -> bool:
        import redis

        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def flush(self) -> None:
        self.redis.flushdb()

    def send(self, name: str, **kwargs) -> str:
        """Publish one task message, as ``.delay()`` in the web process would; returns its id.

        Through a producer on our own connection: Celery's ``broker_url`` prefers the
        CELERY_BROKER_URL environment variable (CI sets it to another Redis database).
        """
        from kombu import Connection

        with Connection(self.url) as connection:
            producer = self.app.amqp.Producer(connection)
            return self.app.send_task(name, kwargs=kwargs, queue=QUEUE, producer=producer).id

    def queued(self) -> int:
        return self.redis.llen(QUEUE)

    def unacked_task_ids(self) -> list[str]:
        """Ids of the tasks delivered to a worker and not acknowledged yet (kombu's unacked hash)."""
        ids = []
        for raw in self.redis.hvals("unacked"):
            payload = json.loads(raw)[0]
            ids.append(payload["headers"]["id"])
        return ids

    def expire_visibility(self, visibility_timeout: float) -> int:
        """Fast-forward the broker's clock for the unacked messages: they are now older than the
        visibility timeout, so the next restore sweep of any worker redelivers them."""
        entries = self.redis.zrange("unacked_index", 0, -1, withscores=True)
        for tag, score in entries:
            self.redis.zadd("unacked_index", {tag: score - visibility_timeout - 60})
        return len(entries)

    def close(self) -> None:
        self.app.close()
        self.redis.close()


# --- a real worker ---------------------------------------------------------------------------------


def worker_environment(*, database_url: str, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CELERY_")}
    env.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=REDIS_URL,
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "billing_backoffice.settings.test"),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
    )
    env.update(overrides)
    return env


class Worker:
    """``celery -A billing_backoffice worker`` (prefork, one child) in its own process group, so
    ``kill()`` takes the main process and its child down at once, as a host crash would."""

    def __init__(self, *, env: dict[str, str], log_path: Path, name: str) -> None:
        self.env, self.log_path, self.name = env, Path(log_path), name
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 30) -> Worker:
        command = [
            sys.executable, "-m", "celery", "-A", "billing_backoffice", "worker",
            "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--hostname", f"{self.name}@%h", "--include", "tests.celery_helpers",
        ]
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        wait_for(
            lambda: self.assert_alive() or " ready." in self.log(), timeout=timeout, what=f"worker {self.name} ready"
        )
        return self

    def assert_alive(self) -> bool:
        """Fails the test (with the worker's log) if the worker exited; False otherwise."""
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited ({self.process.returncode}):\n{self.log()[-4000:]}")
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, *, timeout: float, count: int = 1) -> None:
        wait_for(lambda: self.assert_alive() or self.log().count(text) >= count, timeout=timeout, what=repr(text))

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown code runs, nothing is acknowledged."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, *, timeout: float = 15) -> None:
        """Warm shutdown (SIGTERM), or SIGKILL if it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # to the main process, which stops its child
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def deployed_celery_settings(*, database_url: str) -> dict:
    """The Celery figures a worker against Redis runs with, read in a fresh process from the
    settings as deployed (the test process may use another broker)."""
    code = (
        "import json, django; django.setup()\n"
        "from django.conf import settings as s\n"
        "print(json.dumps({\n"
        "  'visibility_timeout': s.CELERY_BROKER_TRANSPORT_OPTIONS.get('visibility_timeout'),\n"
        "  'time_limit': s.CELERY_TASK_TIME_LIMIT, 'soft_time_limit': s.CELERY_TASK_SOFT_TIME_LIMIT,\n"
        "  'acks_late': s.CELERY_TASK_ACKS_LATE, 'reject_on_worker_lost': s.CELERY_TASK_REJECT_ON_WORKER_LOST,\n"
        "  'prefetch_multiplier': s.CELERY_WORKER_PREFETCH_MULTIPLIER,\n"
        "  'retry_on_worker_lost': getattr(s, 'CELERY_TASK_RETRY_ON_WORKER_LOST', False),\n"
        "  'hold_release_lease': s.HOLD_RELEASE_LEASE.total_seconds(),\n"
        "}))\n"
    )
    env = worker_environment(database_url=database_url, DJANGO_SETTINGS_MODULE="billing_backoffice.settings")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])

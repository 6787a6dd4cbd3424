"""Embedded PostgreSQL for machines that have nothing but Python.

When ``DATABASE_URL`` is unset, settings call :func:`database_settings`, which starts (or finds
already running) a PostgreSQL server shipped in the ``pgserver`` wheel, with its data under
``.local/pgdata``. The server keeps running after the process that started it exits, so
``manage.py``, the web server, the Celery worker and beat, and the tests all share it; the first
caller pays the start-up cost (a few seconds), later callers find it through ``postmaster.pid``.
"""

from __future__ import annotations

from pathlib import Path


def database_settings(local_dir: Path, *, name: str = "billing") -> dict:
    import pgserver  # imported lazily: production never needs the wheel's server

    pgdata = local_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{name}";')
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port or 5432),
    }

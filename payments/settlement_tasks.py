"""Celery tasks of settlement and overdue marking (SET-1..4, CRED-3)."""

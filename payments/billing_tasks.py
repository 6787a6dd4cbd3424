"""Celery tasks of charging (PAY-1..6, HOLD-4)."""

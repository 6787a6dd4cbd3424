"""Admins of the back office's own models, found by Django's admin autodiscovery (the audit
trail's admin is imported from ``payments/admin/__init__.py`` instead, beside the models it audits)."""

from billing_backoffice import item_failures_admin  # noqa: F401  (registers JobItemFailureAdmin)
from billing_backoffice import scheduled_runs_admin  # noqa: F401  (registers ScheduledRunAdmin)
from billing_backoffice import staff_jobs_admin  # noqa: F401,E402  (registers StaffJobAdmin: recent jobs, progress)

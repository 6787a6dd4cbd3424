import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_backoffice.settings")

app = Celery("billing_backoffice")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# SEC-2: each task runs under an audit context naming it (task_prerun/task_postrun handlers).
import billing_backoffice.audit  # noqa: E402,F401
# Poison messages end visibly failed: one ERROR line per failed or rejected task (task_failure).
import billing_backoffice.celery_failures  # noqa: E402,F401
# Logs: request/task context on every line, Django's LOGGING in workers and beat (log_context).
import billing_backoffice.log_context  # noqa: E402,F401
# Task outcomes and run times, scheduled jobs' last success (only with METRICS_ENABLED).
import billing_backoffice.metrics  # noqa: E402,F401

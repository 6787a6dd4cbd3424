"""Settings shared by every environment; every value comes from the environment (django-environ).

Unset ``DATABASE_URL`` starts the embedded PostgreSQL under ``.local/``; unset
``CELERY_BROKER_URL`` uses kombu's filesystem transport under ``.local/``. See README.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
LOCAL_DIR = Path(environ.Env().str("BILLING_LOCAL_DIR", default=str(BASE_DIR / ".local")))

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)
# Local defaults only; production.py refuses to start without real values.
SECRET_KEY = env.str("SECRET_KEY", default="insecure-local-only-secret-key-do-not-deploy")
# HMAC key for card fingerprints (SEC-1, LINK-1). Changing it orphans every stored fingerprint.
CARD_FINGERPRINT_KEY = env.str("CARD_FINGERPRINT_KEY", default="local-only-card-fingerprint-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    # django.contrib.admin with the OTP-enforcing site as admin.site (SEC-3)
    "billing_backoffice.apps.StaffAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "billing_backoffice",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_filters",
    "django_celery_beat",
    "django_countries",
    "pgtrigger",
    "pghistory",  # audit trail (SEC-2): event tables filled by triggers
    "import_export",
    "payments",
    "remittances",
    "billing_backoffice.demo",  # seed_demo: above both apps, imported by neither
]

MIDDLEWARE = [
    # Outermost: every log line of the request carries its id, every answer echoes it (X-Request-ID).
    "billing_backoffice.log_context.RequestIdMiddleware",
    # /healthz, /readyz (and /metrics): answered before sessions, auth and host checks (health.py).
    "billing_backoffice.health.HealthCheckMiddleware",
    # First, so it sees every answer: under /api/ every error is JSON in the console's shape.
    "billing_backoffice.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified() for the admin site
    "django.contrib.messages.middleware.MessageMiddleware",
    "billing_backoffice.middleware.AuditContextMiddleware",  # who changed what (SEC-2)
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into the lockout page
]

# --- Staff login (SEC-3) ---------------------------------------------------------------------
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "billing_backoffice.staff_login.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# N failed logins (wrong password or wrong one-time code) per username + client IP lock that
# pair out for the cool-off; a success resets the count. Unlock early: manage.py axes_reset_username.
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "billing_backoffice.staff_login.lockout_response"
AXES_CLIENT_IP_CALLABLE = "billing_backoffice.staff_login.client_ip"
# Reverse proxies in front of the app whose X-Forwarded-For is trusted (0: use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token", "csrfmiddlewaretoken"]
# Second factor on every admin page. Off only for the local demo (`make run`) and the tests;
# production.py turns it on, and the admin header says when it is off.
ADMIN_REQUIRE_OTP = env.bool("ADMIN_REQUIRE_OTP", default=False)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Billing back office")
# Staff sessions: a working day at most, and gone with the browser.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE_SECONDS", default=8 * 60 * 60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # the admin's forms carry the token; no script needs the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True

ROOT_URLCONF = "billing_backoffice.urls"
WSGI_APPLICATION = "billing_backoffice.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
else:
    from billing_backoffice.embedded_db import database_settings

    DATABASES = {"default": database_settings(LOCAL_DIR)}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Dates and times shown as 2026-12-03 17:50 (UTC) in every screen: billing_backoffice/formats.
FORMAT_MODULE_PATH = ["billing_backoffice.formats"]

STATIC_URL = "static/"
# `make run` serves through gunicorn too (the Procfile's web): with DEBUG, WhiteNoise finds the
# apps' static files itself, so no collectstatic is needed locally.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(LOCAL_DIR / "media"))

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    _queue_dir = LOCAL_DIR / "celery"
    for _sub in ("queue", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "control_folder": str(_queue_dir / "control"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
    }
else:
    # Every retry countdown in tasks.py stays well below this, so Redis never redelivers a
    # task that is merely waiting for its retry (QUALITY.md, Celery matrix).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another worker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A task that kills its worker process (OOM, segfault) is retried max_retries times, then fails
# visibly, instead of being requeued for ever (needs Celery 5.7).
CELERY_TASK_RETRY_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TIMEZONE = "UTC"
# Task modules beside each app's tasks (autodiscovery only finds ``tasks``; the payments.tasks
# package imports its own modules).
CELERY_IMPORTS = ("payments.tasks.credit_control", "payments.tasks.notifications", "billing_backoffice.health")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Beat writes each entry's last_run_at after every send (not every 3 minutes): /readyz reads the
# heartbeat entry's, and a restarted beat does not fire what it already sent.
CELERY_BEAT_SYNC_EVERY = 1

# Queues by kind of work, so a month-end fan-out never delays a hold release or a charge.
# A worker started without -Q consumes all of them (make run, the tests); production runs one
# worker on `money` and one on `bulk,maintenance,celery` (Procfile, README "Deployment").
# Routed by task name here, never in the task modules; a task not listed goes to `celery`.
from kombu import Queue  # noqa: E402

CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = tuple(Queue(name, routing_key=name) for name in ("money", "bulk", "maintenance", "celery"))
_QUEUE_OF_TASKS = {
    # Moves money or frees a customer's funds: one account, one hold, one charge, one file.
    "money": (
        "payments.release_due_holds", "payments.release_hold", "payments.execute_charge",
        "payments.place_paypal_preauth", "payments.retry_failed_charges", "payments.charge_usage_thresholds",
        "payments.settle_account", "remittances.import_statement_inbox",
        "remittances.import_uploaded_statement",  # a statement finance uploaded (a staff job)
        "remittances.generate_payment_files",  # RFD-1: approved refunds into the next pain.001 file
        # Customer notifications (NOTIFY-2): small, and the customer waits for them.
        "payments.deliver_notifications", "payments.sweep_notifications",
    ),
    # Scans of every account and their fan-out chunks (minutes at month end).
    "bulk": (
        "payments.generate_monthly_bills", "payments.generate_monthly_bills_chunk", "payments.month_end_deduction",
        "payments.settlement_sweep", "payments.settle_chunk", "payments.mark_overdue_bills",
        "payments.run_reminders", "payments.send_reminders_chunk", "payments.notify_expiring_cards",
        "remittances.reconcile_day",  # RCN-1..3: every receiving account, set-based
        "billing_backoffice.run_bulk_action",  # a staff member's bulk admin action (staff_jobs.py)
    ),
    # Housekeeping: nothing waits on it.
    "maintenance": (
        "payments.expire_cards", "payments.fail_abandoned_verifications", "payments.close_silent_accounts",
        "billing_backoffice.prune_scheduled_runs", "billing_backoffice.beat_heartbeat",
        "billing_backoffice.resend_lost_staff_jobs",  # sends each lost job's own task (to its queue)
    ),
}
CELERY_TASK_ROUTES = {task: {"queue": queue} for queue, tasks in _QUEUE_OF_TASKS.items() for task in tasks}

# --- Operations: health, readiness, metrics (billing_backoffice/health.py, metrics.py) ---------
BEAT_HEARTBEAT_INTERVAL = timedelta(seconds=env.int("BEAT_HEARTBEAT_SECONDS", default=30))
# /readyz: beat is "heard from" while its heartbeat is younger than this (3 intervals).
READYZ_BEAT_MAX_AGE = timedelta(seconds=env.int("READYZ_BEAT_MAX_AGE_SECONDS", default=90))
# Prometheus text format on a path of its own; off unless asked for (README "Metrics").
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=False)
METRICS_PATH = env.str("METRICS_PATH", default="/metrics")

# Default beat schedule; installed into django-celery-beat's tables by a migration-safe
# command (`manage.py sync_beat_schedule`, run by `make run`), then editable in the admin.
BILLING_BEAT_SCHEDULE = {
    "release-verification-holds": {"task": "payments.release_due_holds", "every": timedelta(minutes=5)},
    "expire-cards": {"task": "payments.expire_cards", "every": timedelta(hours=1)},
    "fail-abandoned-verifications": {
        "task": "payments.fail_abandoned_verifications",
        "every": timedelta(minutes=5),
    },
    "close-silent-accounts": {"task": "payments.close_silent_accounts", "every": timedelta(hours=1)},
    # Charging (PAY-2, PAY-3). The monthly jobs default to the month just ended, so running them
    # hourly is a cheap no-op once done, and late usage or late chunks are picked up.
    "charge-usage-thresholds": {"task": "payments.charge_usage_thresholds", "every": timedelta(minutes=15)},
    "generate-monthly-bills": {"task": "payments.generate_monthly_bills", "every": timedelta(hours=1)},
    "month-end-deduction": {"task": "payments.month_end_deduction", "every": timedelta(hours=1)},
    "retry-failed-charges": {"task": "payments.retry_failed_charges", "every": timedelta(minutes=30)},
    # Settlement (SET-2) and overdue bills (CRED-3): idempotent; the sweep also runs once per window
    # (billing_backoffice.scheduled_runs), so a double firing is skipped.
    "settlement-sweep": {"task": "payments.settlement_sweep", "every": timedelta(minutes=15)},
    "mark-overdue-bills": {"task": "payments.mark_overdue_bills", "every": timedelta(hours=1)},
    # Credit control (CC-1..3): reminders once per window; NOTIFY-2 outbox sweep; NOTIFY-1 expiring cards.
    "run-reminders": {"task": "payments.run_reminders", "every": timedelta(hours=1)},
    "sweep-notifications": {"task": "payments.sweep_notifications", "every": timedelta(minutes=5)},
    "notify-expiring-cards": {"task": "payments.notify_expiring_cards", "every": timedelta(days=1)},
    "import-statement-inbox": {
        "task": "remittances.import_statement_inbox",
        "every": timedelta(minutes=5),
    },
    # RCN-1..3: yesterday's reconciliation proof; fired hourly, run once per day (the window is the day).
    "reconcile-day": {"task": "remittances.reconcile_day", "every": timedelta(hours=1)},
    # RFD-1: approved refunds go into the next outgoing pain.001 file (finance may also generate now).
    "generate-payment-files": {"task": "remittances.generate_payment_files", "every": timedelta(hours=1)},
    # Staff jobs (statement uploads, bulk actions) whose task message was lost: sent again.
    "resend-lost-staff-jobs": {"task": "billing_backoffice.resend_lost_staff_jobs", "every": timedelta(minutes=5)},
    # Housekeeping: finished scheduled runs (the once-per-window guard) older than 90 days.
    "prune-scheduled-runs": {"task": "billing_backoffice.prune_scheduled_runs", "every": timedelta(days=1)},
    # Beat's own heartbeat (a no-op task): /readyz checks this entry's last send (health.py).
    "beat-heartbeat": {"task": "billing_backoffice.beat_heartbeat", "every": BEAT_HEARTBEAT_INTERVAL},
}

# --- Payment gateways ---------------------------------------------------------------------
CARD_GATEWAY = env.str("CARD_GATEWAY", default="payments.gateways.simulated.SimulatedCardGateway")
PAYPAL_GATEWAY = env.str(
    "PAYPAL_GATEWAY", default="payments.gateways.simulated.SimulatedPayPalGateway"
)
# HOLD-2: holds are voided after this delay and always within 24 hours of being placed.
HOLD_RELEASE_AFTER = timedelta(minutes=env.int("HOLD_RELEASE_AFTER_MINUTES", default=15))
HOLD_RELEASE_DEADLINE = timedelta(hours=24)
HOLD_RELEASE_BATCH_SIZE = env.int("HOLD_RELEASE_BATCH_SIZE", default=200)
# A release run's lease on its batch; longer than the task time limit, so a live run owns it.
HOLD_RELEASE_LEASE = timedelta(minutes=env.int("HOLD_RELEASE_LEASE_MINUTES", default=10))
# LINK-5 / LINK-6: an unanswered 3DS challenge or PayPal agreement fails after this.
VERIFICATION_TIMEOUT = timedelta(minutes=env.int("VERIFICATION_TIMEOUT_MINUTES", default=30))
# LINK-2: a deactivated account keeps its methods linked for this long, then closes.
ACCOUNT_SILENT_PERIOD = timedelta(days=15)
PAYPAL_APPROVAL_BASE_URL = env.str(
    "PAYPAL_APPROVAL_BASE_URL", default="https://www.sandbox.paypal.example/agreements/approve"
)

# --- Credit control and notifications (CC-1..3, NOTIFY-1..2) ---------------------------------
# CC-1: reminder levels 1, 2 and 3 (final notice) this many days after the due date.
CC_REMINDER_DAYS = tuple(env.list("CC_REMINDER_DAYS", cast=int, default=[1, 7, 14]))
CC_REMINDER_CHUNK_SIZE = env.int("CC_REMINDER_CHUNK_SIZE", default=500)
# NOTIFY-1: where the console lets the cardholder complete a 3-D Secure challenge.
THREE_DS_VERIFY_URL = env.str(
    "THREE_DS_VERIFY_URL", default="https://console.example.com/payment-methods/3ds/{challenge_id}"
)
# E-mail (Django's framework): the console backend locally; SMTP from the environment in production.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Billing <billing@example.com>")

# --- Remittances ----------------------------------------------------------------------------
# The bank that holds the receiving accounts; dedicated numbers are issued under it (REM-1).
REMITTANCE_BANK = {
    "name": env.str("REMITTANCE_BANK_NAME", default="Example Bank Europe"),
    "bic": env.str("REMITTANCE_BANK_BIC", default="EXBKDEFFXXX"),
    "country": env.str("REMITTANCE_BANK_COUNTRY", default="DE"),
    "bank_code": env.str("REMITTANCE_BANK_CODE", default="37040044"),
    "currency": env.str("REMITTANCE_CURRENCY", default="USD"),
    "beneficiary": env.str("REMITTANCE_BENEFICIARY", default="Alibaba Cloud (Singapore) Pte. Ltd."),
}
STATEMENT_MAX_BYTES = env.int("STATEMENT_MAX_BYTES", default=200 * 1024 * 1024)
STATEMENT_INBOX_DIR = env.path("STATEMENT_INBOX_DIR", default=str(LOCAL_DIR / "statement-inbox"))

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON nested deeper than 64 levels answers 400 before it is decoded (no RecursionError).
    "DEFAULT_PARSER_CLASSES": ["billing_backoffice.api_parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "billing_backoffice.api_errors.exception_handler",
    # limit/offset validated against documented bounds: out of range answers 400, not a query.
    "DEFAULT_PAGINATION_CLASS": "billing_backoffice.api_pagination.ConsolePagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Billing back office: console API",
    "DESCRIPTION": "Internal API the customer console calls. Errors: {code, rule, detail}.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request components, so uploads (claim proofs) show as binary in the schema.
    "COMPONENT_SPLIT_REQUEST": True,
    # <id:...> path segments: the bigint range the converter accepts (billing_backoffice.url_converters).
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # 400/401/404/413/415 with the Error schema on every operation they can answer.
        "billing_backoffice.api_schema.document_error_responses",
    ],
}

# --- Error pages and reports (SEC-1) ------------------------------------------------------------
# The DEBUG 500 page and the reports mailed to ADMINS hide POST values, card fields, secrets and
# the raw body, and mask card numbers, in every mode (Django's stock filter is off under DEBUG).
DEFAULT_EXCEPTION_REPORTER_FILTER = "billing_backoffice.error_reports.CardSafeExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "billing_backoffice.error_reports.CardSafeExceptionReporter"
# Bodies (files aside) over this answer 413 (JSON under /api/). Console requests are a few kB;
# claim proofs are files (their own 10 MB bound) and statements are uploaded as files.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2621440)  # Django's 2.5 MB

# --- Demo -----------------------------------------------------------------------------------
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="billing-demo-2026")

# --- Logging (billing_backoffice/log_config.py) ----------------------------------------------
# text: one readable line per record (local); json: one JSON object per line (production's default).
# Card numbers are redacted on every handler (SEC-1).
from billing_backoffice.log_config import logging_config  # noqa: E402

LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)

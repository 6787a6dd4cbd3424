"""Production settings: refuse to start without the secrets and hosts that must be real."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import LOG_LEVEL, env
from billing_backoffice.log_config import logging_config

_missing = [name for name in ("SECRET_KEY", "CARD_FINGERPRINT_KEY", "ALLOWED_HOSTS") if not env.str(name, default="")]
if _missing:
    raise ImproperlyConfigured(
        "Production settings need these environment variables: " + ", ".join(_missing)
    )

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
CARD_FINGERPRINT_KEY = env.str("CARD_FINGERPRINT_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Staff access (SEC-3): the second factor on every admin page; `check --deploy` warns when off.
ADMIN_REQUIRE_OTP = env.bool("ADMIN_REQUIRE_OTP", default=True)

# One JSON object per log line for the log pipeline (LOG_FORMAT=text for a terminal).
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)

# Behind PgBouncer in transaction pooling mode (README "Deployment"): a connection serves one
# transaction, then another client's. So no server-side cursors (a named cursor outlives the
# transaction that declared it) and no prepared statements (psycopg prepares a query after 5 runs,
# on a server connection the next transaction may not get).
if env.bool("DATABASE_BEHIND_PGBOUNCER", default=False):
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True  # noqa: F405
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None  # noqa: F405

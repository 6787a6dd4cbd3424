"""Settings for the test suite: the same database engine as production (PostgreSQL)."""

from .base import *  # noqa: F401,F403
from .base import LOCAL_DIR, env

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
CARD_FINGERPRINT_KEY = "test-card-fingerprint-key"
MEDIA_ROOT = LOCAL_DIR / "test-media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# WhiteNoise serves from STATIC_ROOT; tests never collect static files, an empty folder will do.
STATIC_ROOT = LOCAL_DIR / "test-static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Messages that tests publish (on_commit tasks) must not land in the file queue that a local
# `make run` worker consumes; with a real broker configured (CI: Redis) they go there instead.
if not env.str("CELERY_BROKER_URL", default=""):
    CELERY_BROKER_URL = "memory://"

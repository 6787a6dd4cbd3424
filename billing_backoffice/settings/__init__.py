"""Settings for local use (``make run``, ``manage.py``). Production: ``settings.production``."""

from .base import *  # noqa: F401,F403

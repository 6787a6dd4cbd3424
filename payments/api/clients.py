"""Console API clients: a user that exists only to hold a DRF token.

An API client cannot log in anywhere else: unusable password, not staff, no permissions. It
stays ``is_active`` because DRF's TokenAuthentication refuses tokens of inactive users, which
is also how staff revoke a client (untick "active" in the admin).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from payments.errors import ApiClientRefused  # noqa: F401 (raised here)

# "api-" keeps the name valid for Django's username validator, so staff can still edit (or
# deactivate) the client in the admin; a colon would make its change form refuse to save.
USERNAME_PREFIX = "api-"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,59}")


@dataclass(frozen=True)
class IssuedToken:
    key: str
    username: str
    user_created: bool
    key_created: bool


def api_client_username(name: str) -> str:
    return f"{USERNAME_PREFIX}{name}"


@transaction.atomic
def api_client_token_issue(*, name: str, rotate: bool = False) -> IssuedToken:
    """Create (or reuse) the API client ``name`` and return its token; ``rotate`` replaces the key.

    The user row is locked so two runs at once (one rotating) end with a single, known key.
    Refuses to hand a token to a user that is not an API client (staff, or has a password).
    """
    if not NAME_PATTERN.fullmatch(name):
        raise ApiClientRefused(
            "The client name must be 1-60 letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    User = get_user_model()
    username = api_client_username(name)
    user, user_created = User.objects.get_or_create(
        username=username, defaults={"is_staff": False, "is_superuser": False, "is_active": True}
    )
    if user_created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.is_staff or user.is_superuser or user.has_usable_password():
        raise ApiClientRefused(
            f"The user {username} exists and is not an API client (it is staff or has a password)."
        )
    if rotate:
        Token.objects.filter(user=user).delete()
    token, key_created = Token.objects.get_or_create(user=user)
    return IssuedToken(key=token.key, username=username, user_created=user_created, key_created=key_created)

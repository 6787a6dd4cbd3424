"""``manage.py issue_api_token NAME [--rotate]``: the console's token, alone on the last line."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db


def issue(*args: str) -> tuple[str, str]:
    """Run the command; returns (last stdout line, stderr)."""
    out, err = StringIO(), StringIO()
    call_command("issue_api_token", *args, stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert lines, "the command printed nothing"
    return lines[-1], err.getvalue()


def answers(token: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get(f"/api/v1/accounts/{AccountFactory().pk}/").status_code


def test_prints_a_working_token_alone_on_the_last_line():
    token, notes = issue("console")
    assert token == token.strip() and len(token) == 40
    assert Token.objects.get(key=token).user.username == "api-console"
    assert "created" in notes
    assert answers(token) == 200


def test_api_client_user_cannot_log_in_to_the_admin():
    token, _ = issue("console")
    user = get_user_model().objects.get(username="api-console")
    assert not user.is_staff and not user.is_superuser
    assert not user.has_usable_password()
    assert user.is_active  # token authentication needs it; deactivating revokes the client
    assert not APIClient().login(username="api-console", password="")


def test_second_run_reuses_the_client_and_its_key():
    first, _ = issue("console")
    second, notes = issue("console")
    assert first == second
    assert "reused" in notes
    assert get_user_model().objects.filter(username="api-console").count() == 1


def test_rotate_replaces_the_key_and_the_old_one_stops_working():
    old, _ = issue("console")
    new, _ = issue("console", "--rotate")
    assert new != old
    assert Token.objects.filter(user__username="api-console").count() == 1
    assert answers(old) == 401
    assert answers(new) == 200


def test_separate_names_get_separate_clients():
    assert issue("console")[0] != issue("billing-portal")[0]


@pytest.mark.parametrize("name", ["", "bad name", "a:b", "-leading", "x" * 61])
def test_refuses_an_invalid_name(name):
    with pytest.raises(CommandError):
        issue(name)
    assert not Token.objects.exists()


def test_refuses_to_hand_a_token_to_a_staff_user_with_that_name():
    UserFactory(username="api-console", is_staff=True)
    with pytest.raises(CommandError, match="not an API client"):
        issue("console")
    assert not Token.objects.exists()

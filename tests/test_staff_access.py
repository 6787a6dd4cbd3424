"""Staff login hardening (SEC-3): lockout, second factor on every admin URL, CSRF, production settings.

Logins go through the real admin login form (``POST /admin/login/``), so django-axes' backend,
signal handlers and middleware and django-otp's form all run as in production. The second factor
is off in the test settings (as in the local demo); the tests here switch it on with ``settings``.
"""

from __future__ import annotations

import json
import re
from io import StringIO
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing_backoffice.staff_login import OTP_OFF_BANNER
from payments.models import Account
from tests.factories import AccountFactory, UserFactory
from tests.helpers.manage import PRODUCTION_ENV, run_manage
from tests.helpers.roles import confirm_post

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PASSWORD = "correct-horse-battery"
CSRF_INPUT = re.compile(r'<input type="hidden" name="csrfmiddlewaretoken" value="[^"]*">')


@pytest.fixture
def alice():
    return UserFactory(username="alice", is_superuser=True, password=PASSWORD)


@pytest.fixture
def otp_on(settings):
    settings.ADMIN_REQUIRE_OTP = True


def login(client, username, password, ip="10.0.0.1", **extra):
    return client.post(LOGIN, {"username": username, "password": password, **extra}, REMOTE_ADDR=ip)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def current_code(device: TOTPDevice) -> str:
    """The code the user's authenticator app shows now (RFC 6238, django-otp's own helper)."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def page_without_tokens(response, username: str = "") -> str:
    """The page minus what differs between two renders anyway (CSRF token, the typed username)."""
    html = CSRF_INPUT.sub("", response.content.decode())
    return html.replace(f'value="{username}"', 'value=""') if username else html


# --- lockout (django-axes) ------------------------------------------------------------------------


def test_sec_3_sixth_login_with_the_right_password_is_refused_after_five_failures(client, alice):
    for attempt in range(1, 6):
        response = login(client, "alice", f"wrong-{attempt}")
        assert not logged_in(client)
    assert response.status_code == 429  # the fifth failure locks

    response = login(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert not logged_in(client)
    assert "Too many failed login attempts" in response.content.decode()
    assert "locked for 30 minutes" in response.content.decode()
    assert client.get("/admin/").status_code == 302  # still sent to the login page


def test_sec_3_four_failures_do_not_lock_and_a_success_resets_the_count(client, alice):
    for attempt in range(4):
        assert login(client, "alice", f"wrong-{attempt}").status_code == 200
    assert login(client, "alice", PASSWORD).status_code == 302
    assert logged_in(client)
    client.logout()
    # The count started again: four more failures still leave the right password working.
    for attempt in range(4):
        login(client, "alice", f"again-wrong-{attempt}")
    assert login(client, "alice", PASSWORD).status_code == 302


def test_sec_3_lockout_is_per_username_and_ip(client, alice):
    for attempt in range(5):
        login(client, "alice", f"wrong-{attempt}", ip="10.0.0.1")
    assert login(Client(), "alice", PASSWORD, ip="10.0.0.1").status_code == 429
    # Another address is not locked out, and another user at the locked address neither.
    other = Client()
    assert login(other, "alice", PASSWORD, ip="10.0.0.2").status_code == 302 and logged_in(other)
    UserFactory(username="bob", is_superuser=True, password=PASSWORD)
    bob = Client()
    assert login(bob, "bob", PASSWORD, ip="10.0.0.1").status_code == 302 and logged_in(bob)


def test_sec_3_lockout_ends_after_the_cool_off(client, alice):
    for attempt in range(5):
        login(client, "alice", f"wrong-{attempt}")
    assert login(client, "alice", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=29))
    assert login(client, "alice", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=31))
    assert login(client, "alice", PASSWORD).status_code == 302 and logged_in(client)


def test_sec_3_lockout_does_not_tell_whether_the_user_exists(alice):
    real, ghost = Client(), Client()
    for attempt in range(1, 7):
        seen_real = login(real, "alice", f"wrong-{attempt}", ip="10.0.0.7")
        seen_ghost = login(ghost, "nobody-by-this-name", f"wrong-{attempt}", ip="10.0.0.8")
        assert seen_real.status_code == seen_ghost.status_code == (200 if attempt < 5 else 429), attempt
        assert page_without_tokens(seen_real, "alice") == page_without_tokens(seen_ghost, "nobody-by-this-name")
    # The lockout page names nobody: no username to confirm or deny.
    assert "alice" not in seen_real.content.decode()
    assert AccessAttempt.objects.filter(username="nobody-by-this-name", failures_since_start=6).exists()


def test_sec_3_failed_attempts_never_store_the_password(client, alice):
    for attempt in range(2):
        login(client, "alice", f"secret-typo-{attempt}")
    attempt = AccessAttempt.objects.get(username="alice")
    assert "secret-typo" not in attempt.post_data


def test_sec_3_wrong_one_time_codes_count_toward_the_lockout(client, alice, otp_on):
    device = TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    wrong = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"
    for _ in range(5):
        response = login(client, "alice", PASSWORD, otp_token=wrong)
        assert not logged_in(client)
    assert response.status_code == 429
    device.refresh_from_db()
    device.throttling_failure_count = 0  # not django-otp's back-off: the lockout refuses now
    device.save()
    assert login(client, "alice", PASSWORD, otp_token=current_code(device)).status_code == 429
    assert not logged_in(client)


# --- second factor (django-otp) -------------------------------------------------------------------


def _admin_urls():
    """Every named URL of the admin site, with sample arguments: admin_view runs the site's
    permission check before the view, so the objects need not exist."""
    skipped = {"login", "logout", "jsi18n", "view_on_site"}  # public or a bare redirect

    def walk(patterns, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, namespace)
            elif isinstance(pattern, URLPattern) and pattern.name and pattern.name not in skipped:
                groups = pattern.pattern.regex.groupindex
                kwargs = {name: "payments" if name == "app_label" else "1" for name in groups}
                yield reverse(f"{namespace}:{pattern.name}", kwargs=kwargs)

    patterns, _, namespace = admin.site.urls
    return sorted(set(walk(patterns, namespace)))


def test_sec_3_the_url_sweep_covers_changelists_change_pages_and_custom_views():
    urls = _admin_urls()
    assert len(urls) > 60
    for expected in (
        "/admin/", "/admin/payments/", "/admin/payments/account/", "/admin/payments/account/1/change/",
        "/admin/remittances/remittanceclaim/1/approve/", "/admin/remittances/remittanceaccount/issue/",
        "/admin/remittances/creditlimitrequest/1/approve/", "/admin/autocomplete/",
        "/admin/password_change/",
    ):
        assert expected in urls


def test_sec_3_staff_without_a_verified_device_is_refused_on_every_admin_url(client, otp_on):
    user = UserFactory(username="root", is_superuser=True)
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)  # enrolled, not verified
    client.force_login(user)  # a password-only session
    for url in _admin_urls():
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, (method.__name__, url, response.status_code)
            target = urlparse(response["Location"])
            assert target.path == LOGIN, url
            assert parse_qs(target.query)["next"] == [url]
    # The login page is the one place left, and it asks for the one-time code.
    page = client.get(LOGIN)
    assert page.status_code == 200
    assert 'name="otp_token"' in page.content.decode()


def test_sec_3_an_unverified_action_post_changes_nothing(client, otp_on):
    account = AccountFactory()
    client.force_login(UserFactory(username="root", is_superuser=True))
    response = client.post(
        "/admin/payments/account/",
        {"action": "deactivate_selected", "_selected_action": [account.pk], "index": "0"},
    )
    assert response.status_code == 302 and urlparse(response["Location"]).path == LOGIN
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE


def test_sec_3_password_alone_is_not_enough_when_the_second_factor_is_required(client, alice, otp_on):
    TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    response = login(client, "alice", PASSWORD)
    assert response.status_code == 200 and not logged_in(client)
    assert "Please enter your OTP token" in response.content.decode()


def test_sec_3_staff_without_an_enrolled_device_cannot_log_in_and_are_told_why(client, alice, otp_on):
    response = login(client, "alice", PASSWORD, otp_token="123456")
    assert response.status_code == 200 and not logged_in(client)
    assert "No second factor is set up for this login yet" in response.content.decode()
    # A wrong password never gets that far: the page does not say which logins lack a device.
    response = login(Client(), "alice", "wrong", otp_token="123456")
    assert "No second factor" not in response.content.decode()


def test_sec_3_a_verified_totp_code_lets_staff_in(client, alice, otp_on):
    device = TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    account = AccountFactory()
    response = login(client, "alice", PASSWORD, otp_token=current_code(device))
    assert response.status_code == 302 and logged_in(client)
    assert client.get("/admin/payments/account/").status_code == 200
    assert client.get(f"/admin/payments/account/{account.pk}/change/").status_code == 200
    assert client.get("/admin/remittances/remittanceaccount/issue/").status_code == 200
    # Second factor on: no "disabled" banner.
    assert OTP_OFF_BANNER not in client.get("/admin/").content.decode()


def test_sec_3_a_code_is_refused_when_wrong_replayed_or_from_an_unconfirmed_device(alice, otp_on):
    pending = TOTPDevice.objects.create(user=alice, name="not yet confirmed", confirmed=False)
    assert login(Client(), "alice", PASSWORD, otp_token=current_code(pending)).status_code == 200

    device = TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    code = current_code(device)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert login(first := Client(), "alice", PASSWORD, otp_token=wrong).status_code == 200
    assert not logged_in(first)
    device.refresh_from_db()
    device.throttling_failure_count = 0  # skip django-otp's back-off delay after the failure
    device.save()
    assert login(first, "alice", PASSWORD, otp_token=code).status_code == 302
    # The same code a second time (e.g. read over a shoulder) is spent.
    replay = Client()
    assert login(replay, "alice", PASSWORD, otp_token=code).status_code == 200
    assert not logged_in(replay)


def test_sec_3_a_recovery_code_works_once(alice, otp_on):
    TOTPDevice.objects.create(user=alice, name="phone", confirmed=True)
    backup = StaticDevice.objects.create(user=alice, name="Recovery codes", confirmed=True)
    StaticToken.objects.create(device=backup, token="r3cov3ry")
    first = Client()
    assert login(first, "alice", PASSWORD, otp_token="r3cov3ry").status_code == 302 and logged_in(first)
    assert first.get("/admin/").status_code == 200
    again = Client()
    assert login(again, "alice", PASSWORD, otp_token="r3cov3ry").status_code == 200 and not logged_in(again)


def test_sec_3_add_totp_device_prints_an_otpauth_url_that_logs_the_user_in(capsys, alice, otp_on):
    call_command("add_totp_device", "alice", "--recovery-codes", "3")
    out = capsys.readouterr().out
    url = next(line for line in out.splitlines() if line.startswith("otpauth://totp/"))
    assert "issuer=Billing%20back%20office" in url and "alice" in url
    device = TOTPDevice.objects.get(user=alice)
    assert device.confirmed
    assert parse_qs(urlparse(url).query)["secret"][0] in out  # the same secret, for manual entry
    assert len(StaticToken.objects.filter(device__user=alice)) == 3
    client = Client()
    assert login(client, "alice", PASSWORD, otp_token=current_code(device)).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_add_totp_device_refuses_unknown_users_non_staff_and_a_silent_replacement(alice):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("add_totp_device", "nobody")
    UserFactory(username="customer", is_staff=False)
    with pytest.raises(CommandError):
        call_command("add_totp_device", "customer")
    call_command("add_totp_device", "alice")
    first = TOTPDevice.objects.get(user=alice)
    with pytest.raises(CommandError):
        call_command("add_totp_device", "alice")
    call_command("add_totp_device", "alice", "--replace")
    assert list(TOTPDevice.objects.filter(user=alice)) != [first]
    assert TOTPDevice.objects.filter(user=alice).count() == 1


def test_sec_3_local_demo_says_the_second_factor_is_off(client, alice, settings):
    settings.ADMIN_REQUIRE_OTP = False
    assert OTP_OFF_BANNER in client.get(LOGIN).content.decode()
    assert login(client, "alice", PASSWORD).status_code == 302
    for url in ("/admin/", "/admin/payments/account/"):
        assert OTP_OFF_BANNER in client.get(url).content.decode()


def test_sec_3_seed_demo_says_whether_the_second_factor_is_on(settings):
    settings.ADMIN_REQUIRE_OTP = False
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert OTP_OFF_BANNER in out.getvalue()
    settings.ADMIN_REQUIRE_OTP = True
    out = StringIO()
    call_command("seed_demo", stdout=out)  # idempotent: only the message differs
    assert OTP_OFF_BANNER not in out.getvalue() and "add_totp_device" in out.getvalue()


# --- CSRF and response headers --------------------------------------------------------------------


def test_sec_3_admin_posts_without_a_csrf_token_are_refused_and_change_nothing():
    account = AccountFactory(name="Before")
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="root", is_superuser=True))
    action = client.post(
        "/admin/payments/account/",
        {"action": "deactivate_selected", "_selected_action": [account.pk], "index": "0"},
    )
    change = client.post(f"/admin/payments/account/{account.pk}/change/", {"name": "After"})
    assert (action.status_code, change.status_code) == (403, 403)
    account.refresh_from_db()
    assert (account.status, account.name) == (Account.Status.ACTIVE, "Before")

    # With the page's token the same action goes through: the refusal was the missing token.
    page = client.get("/admin/payments/account/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    done = client.post(
        "/admin/payments/account/",
        {"action": "deactivate_selected", "_selected_action": [account.pk], "index": "0",
         "csrfmiddlewaretoken": token},
    )
    assert done.status_code == 200  # the confirmation page (issue 10); its form carries the token too
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', done.content.decode()).group(1)
    assert confirm_post(client, done, data={"csrfmiddlewaretoken": token}).status_code == 302
    account.refresh_from_db()
    assert account.status == Account.Status.DEACTIVATED


def test_sec_3_login_post_without_a_csrf_token_is_refused(alice):
    client = Client(enforce_csrf_checks=True)
    assert login(client, "alice", PASSWORD).status_code == 403
    assert not logged_in(client)


def test_sec_3_admin_pages_forbid_framing_and_cross_site_referrers(client):
    client.force_login(UserFactory(username="root", is_superuser=True))
    response = client.get("/admin/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


# --- production settings ------------------------------------------------------------------------

SHOW_SETTINGS = """
import json
from django.conf import settings as s
print(json.dumps({name: getattr(s, name) for name in (
    "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_AGE",
    "SESSION_EXPIRE_AT_BROWSER_CLOSE", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_SSL_REDIRECT", "X_FRAME_OPTIONS", "SECURE_REFERRER_POLICY", "ADMIN_REQUIRE_OTP",
    "AXES_ENABLED", "AXES_FAILURE_LIMIT", "AXES_LOCKOUT_PARAMETERS",
)} | {"AXES_COOLOFF_MINUTES": s.AXES_COOLOFF_TIME.total_seconds() / 60}))
"""


def production_settings(**env) -> dict:
    result = run_manage("shell", "-c", SHOW_SETTINGS, env={**PRODUCTION_ENV, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sec_3_production_settings_secure_staff_sessions_and_require_the_second_factor():
    values = production_settings()
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"] and values["SESSION_COOKIE_HTTPONLY"]
    assert 0 < values["SESSION_COOKIE_AGE"] <= 8 * 60 * 60
    assert values["SESSION_EXPIRE_AT_BROWSER_CLOSE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 60 * 60 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["SECURE_SSL_REDIRECT"] is True
    assert (values["X_FRAME_OPTIONS"], values["SECURE_REFERRER_POLICY"]) == ("DENY", "same-origin")
    assert values["ADMIN_REQUIRE_OTP"] is True
    assert values["AXES_ENABLED"] is True
    assert (values["AXES_FAILURE_LIMIT"], values["AXES_COOLOFF_MINUTES"]) == (5, 30)
    assert values["AXES_LOCKOUT_PARAMETERS"] == [["username", "ip_address"]]


def test_sec_3_lockout_limits_come_from_the_environment():
    values = production_settings(AXES_FAILURE_LIMIT="3", AXES_COOLOFF_MINUTES="60")
    assert (values["AXES_FAILURE_LIMIT"], values["AXES_COOLOFF_MINUTES"]) == (3, 60)


def test_sec_3_check_deploy_fails_when_production_turns_the_second_factor_off():
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION_ENV, "ADMIN_REQUIRE_OTP": "false"}
    )
    assert result.returncode != 0
    assert "billing.W001" in result.stdout + result.stderr

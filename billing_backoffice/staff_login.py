"""Staff login hardening (SEC-3): a second factor on every admin page, and login lockout.

- ``SecondFactorAdminSite`` is the base of the project's default admin site
  (``billing_backoffice.site.BillingAdminSite``, installed by ``apps.StaffAdminConfig``), so every
  ``@admin.register`` and every custom view wrapped in ``admin_site.admin_view`` goes through its
  ``has_permission``. With ``ADMIN_REQUIRE_OTP`` on, a staff session counts only once a django-otp
  device (TOTP app, or a recovery code) has verified it: anything else is sent to the login page,
  which then asks for the password *and* the one-time code. The admin's URLs and templates stay
  the same; only the site's permission check and its login form change.
- With ``ADMIN_REQUIRE_OTP`` off (the local demo) every admin page says so in its header.
- Lockout is django-axes (settings ``AXES_*``): this module adds the backend that lets non-web
  ``authenticate()`` calls through, the client-IP rule behind a proxy, and the lockout page. A
  wrong one-time code counts as a failed login, so the code cannot be guessed either.

The setting is read on every request (not at import), so tests can switch it with
``override_settings``.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.signals import user_login_failed
from django.core import checks
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.utils.html import format_html

from axes.backends import AxesStandaloneBackend
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

OTP_OFF_BANNER = "Second factor disabled (local demo)"
NO_DEVICE_MESSAGE = (
    "No second factor is set up for this login yet. Ask an administrator to enrol your "
    "authenticator app (manage.py add_totp_device USERNAME)."
)
LOCKOUT_MESSAGE = (
    "Too many failed login attempts from this address. Logging in with this username is locked "
    "for {minutes} minutes. Try again later, or ask an administrator to unlock it."
)


def otp_required() -> bool:
    return bool(getattr(settings, "ADMIN_REQUIRE_OTP", True))


# --- the login form -----------------------------------------------------------------------------


class StaffLoginForm(OTPAdminAuthenticationForm):
    """Username, password and one-time code in one step.

    django-otp wants the device chosen explicitly (a token tried against every device would
    throttle the unused ones). Staff normally have one authenticator app and one set of recovery
    codes, so the device is chosen from the code's shape when the form does not name one: six
    digits -> the TOTP device, anything else -> the recovery codes. Several devices of one kind
    still need the explicit choice (the form then lists them).
    """

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is not None:
            return device
        token = (self.cleaned_data.get("otp_token") or "").strip()
        kind = TOTPDevice if token.isdigit() and len(token) <= 8 else StaticDevice
        candidates = list(kind.objects.devices_for_user(user, confirmed=True)[:2])
        return candidates[0] if len(candidates) == 1 else None

    def clean_otp(self, user):
        try:
            if user is not None and not any(devices_for_user(user, confirmed=True)):
                # Said only after the right password: it names no other account's setup.
                raise ValidationError(NO_DEVICE_MESSAGE, code="no_device")
            super().clean_otp(user)
        except ValidationError:
            # A code was typed and did not verify (wrong, spent, throttled, or no device it could
            # be for). Only the first step without any code is not a failure.
            if self.cleaned_data.get("otp_token"):
                self._count_failure()
            raise

    def _count_failure(self) -> None:
        # The same signal a wrong password sends: axes counts it toward the lockout.
        user_login_failed.send(
            sender=type(self),
            credentials={"username": self.cleaned_data.get("username")},
            request=self.request,
        )


# --- the admin site ------------------------------------------------------------------------------


class SecondFactorAdminSite(admin.AdminSite):
    """The admin site's login hardening; ``billing_backoffice.site.BillingAdminSite`` adds the
    index's figures (kept apart: this module sits below the apps and imports none of them)."""

    site_header = "Billing back office"
    site_title = "Billing back office"
    index_title = "Billing administration"

    def has_permission(self, request) -> bool:
        if not super().has_permission(request):
            return False
        if not otp_required():
            return True
        # OTPMiddleware installs is_verified(); a request that skipped it is never verified.
        is_verified = getattr(request.user, "is_verified", None)
        return bool(is_verified and is_verified())

    def admin_view(self, view, cacheable=False):
        """Every admin view, with action POSTs cleaned of ids that cannot be primary keys.

        Django filters ``pk__in`` with the raw posted ids, so a crafted non-numeric id would be a
        server error; every model here has an integer key, so such ids are simply dropped.
        """
        wrapped = super().admin_view(view, cacheable)

        @functools.wraps(wrapped)
        def inner(request, *args, **kwargs):
            if request.method == "POST" and ACTION_CHECKBOX_NAME in request.POST:
                posted = request.POST.getlist(ACTION_CHECKBOX_NAME)
                kept = [value for value in posted if value.isascii() and value.isdigit()]
                if kept != posted:
                    request.POST = request.POST.copy()
                    request.POST.setlist(ACTION_CHECKBOX_NAME, kept)
            return wrapped(request, *args, **kwargs)

        return inner

    @property
    def login_form(self):
        # None -> Django's own AdminAuthenticationForm (no code field) when OTP is off.
        return StaffLoginForm if otp_required() else None

    def each_context(self, request) -> dict:
        context = super().each_context(request)
        context["otp_required"] = otp_required()
        if not context["otp_required"]:
            # In the header of every admin page, login included: nobody mistakes the demo setup
            # for a production one.
            context["site_header"] = format_html(
                '{} <span class="otp-off-banner" style="margin-left:1em;padding:2px 8px;'
                'border-radius:4px;background:#ba2121;color:#fff;font-size:0.7em;'
                'vertical-align:middle">{}</span>',
                context["site_header"],
                OTP_OFF_BANNER,
            )
        return context


# --- lockout (django-axes) -------------------------------------------------------------------------


class LockoutBackend(AxesStandaloneBackend):
    """Axes' lockout check, first in ``AUTHENTICATION_BACKENDS``.

    Every web login passes the request (the admin's form does). ``authenticate()`` without one
    (a shell, a management command, the test client's ``login()``) has no client to lock out, so
    it is let through to the next backend instead of raising.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_ip(request) -> str | None:
    """The client's address for lockouts: ``REMOTE_ADDR``, or, behind ``TRUSTED_PROXY_COUNT``
    trusted proxies, the address the outermost of them saw (counted from the right of
    ``X-Forwarded-For``, so a client cannot choose it by sending its own header)."""
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if proxies > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")


def lockout_response(request, original_response=None, credentials=None):
    """The admin's login page with the lockout message (HTTP 429).

    The same page whether the username exists or not, and without echoing the username: the
    lockout says nothing about which accounts exist.
    """
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60) if settings.AXES_COOLOFF_TIME else 0
    context = {
        **admin.site.each_context(request),
        "title": "Log in",
        "lockout_message": LOCKOUT_MESSAGE.format(minutes=minutes),
    }
    return TemplateResponse(request, "admin/login.html", context, status=429).render()


# --- deploy check ----------------------------------------------------------------------------------


@checks.register(checks.Tags.security, deploy=True)
def check_admin_second_factor(app_configs, **kwargs):
    """``check --deploy`` warns when the admin runs without its second factor."""
    if otp_required():
        return []
    return [
        checks.Warning(
            "ADMIN_REQUIRE_OTP is off: the admin accepts a password alone (local demo setting).",
            hint="Unset ADMIN_REQUIRE_OTP or set it to true in production.",
            id="billing.W001",
        )
    ]

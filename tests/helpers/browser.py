"""Builders for the browser tests (``tests/browser/``, issue 10 "Proven in a real browser").

Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run`` with apt; never
``playwright install``) driven by Playwright's sync API against pytest-django's live server:

- ``launch_options()``: how the browser starts (headless, nothing fetched from outside).
- ``Steps``: the screenshot of each step of a test, saved under
  ``test-artifacts/browser/<test>/<nn-step>.png`` (gitignored; ``make screenshots`` copies some to
  ``docs/screenshots/``).
- ``login()``: signs a staff user in through the real admin login form, password and one-time
  code (SEC-3, django-otp's TOTP device, the code computed as the user's authenticator app would).
- ``serious_violations()``: axe-core's serious and critical violations of the page, in words.
"""

from __future__ import annotations

import re
from pathlib import Path

from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1440, "height": 900}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
PASSWORD = "browser-pass-1"
SERIOUS = ("serious", "critical")


def launch_options() -> dict:
    return {
        "executable_path": str(CHROMIUM),
        "headless": True,
        "args": [
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ],
    }


def artefact_dir(test_name: str) -> Path:
    return ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)


class Steps:
    """Numbered screenshots of one test's steps: ``steps.shot(page, "claim approved")``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()

    def shot(self, page, name: str, *, full_page: bool = True) -> Path:
        self.count += 1
        target = self.folder / f"{self.count:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-').lower()}.png"
        page.screenshot(path=str(target), full_page=full_page)
        return target


def current_code(device: TOTPDevice) -> str:
    """What the user's authenticator app shows now (RFC 6238, django-otp's own helper)."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def enrol(user) -> TOTPDevice:
    """The user's password and authenticator app, as an administrator sets them up."""
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def login(page, base_url: str, user, device: TOTPDevice) -> None:
    """Through the real login form: username, password and the one-time code (SEC-3)."""
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=otp_token]", current_code(device))
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/$"))


def serious_violations(results) -> list[str]:
    """axe-core's serious and critical violations, one line each: rule, impact, the first nodes."""
    found = []
    for violation in results.response.get("violations", []):
        if violation.get("impact") in SERIOUS:
            targets = [", ".join(node.get("target", [])) for node in violation.get("nodes", [])[:3]]
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return found

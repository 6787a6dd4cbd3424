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


# --- page steps shared by the workflows -----------------------------------------------------------

CONTENT_SUBMIT = "#content form [type=submit]"


def submit_content_form(page, label: str | None = None) -> None:
    """Press the page's own submit button (never the header's log-out form); by its label when
    the page has several."""
    buttons = page.locator(CONTENT_SUBMIT)
    if label is not None:
        buttons = page.locator(f"#content form input[type=submit][value='{label}'], #content form button:has-text('{label}')")
    buttons.first.click()
    page.wait_for_load_state()


def messages_text(page) -> str:
    return " ".join(page.locator("ul.messagelist li").all_inner_texts())


def choose_account(page, field: str, term: str) -> None:
    """Fill an account field by UID or name: through the autocomplete when the field has one
    (Django's select2 widget), else by typing into the field."""
    page.wait_for_load_state("load")
    select2 = page.locator(f"select[name={field}] + .select2 .select2-selection")
    if page.locator(f"select[name={field}]").count():
        select2.first.wait_for()  # the autocomplete widget, once its script has run
        select2.first.click()
        page.locator(".select2-search__field").fill(term)
        option = page.locator(".select2-results__option:not(.loading-results)", has_text=term)
        option.first.click()
        return
    page.fill(f"input[name={field}]", term)
    suggestion = page.locator(f"[data-autocomplete-for={field}] [role=option], #{field}-suggestions [role=option]")
    if suggestion.count():
        suggestion.first.click()


def changelist_count(page) -> int:
    """The row count a changelist states under its table ("12 bills", "1 bill")."""
    text = page.locator("p.paginator").first.inner_text()
    # Page links come first ("1 2 3 ... 12"); the count is the last number followed by a word
    # (or by a name that starts with digits and a hyphen: "1 3-D Secure challenge").
    counts = re.findall(r"(\d[\d,.\u202f\u00a0]*)\s+(?:[^\W\d]|\d+-[^\W\d])", text)
    assert counts, f"no count in the paginator: {text!r}"
    return int(re.sub(r"\D", "", counts[-1]))


def run_action(page, action_label: str, row_ids) -> None:
    """Tick these rows of the changelist, choose the action by its label and press Go."""
    for row_id in row_ids:
        page.check(f"#result_list input[name=_selected_action][value='{row_id}']")
    select = page.locator("#changelist-form select[name=action]")
    value = select.locator("option", has_text=action_label).first.get_attribute("value")
    select.select_option(value)
    page.click("#changelist-form button[name=index], #changelist-form .actions [type=submit]")
    page.wait_for_load_state()


def fill_field(page, name: str, value: str) -> None:
    """Type into a text field, or choose the option of a select, named ``name``."""
    field = page.locator(f"#content [name={name}]").first
    if field.evaluate("element => element.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def confirm(page, steps, what: str) -> str:
    """The confirmation page of an irreversible or money-moving action (issue 10): screenshot it,
    return what it says will happen, and press Confirm."""
    button = page.locator("#content form [type=submit]", has_text="Confirm")
    if not button.count():
        button = page.locator("#content form input[type=submit][value^='Confirm']")
    button.first.wait_for(timeout=5_000)
    steps.shot(page, f"confirm {what}")
    said = page.locator("#content").inner_text()
    button.first.click()
    page.wait_for_load_state()
    return said

"""The browser tests' fixtures (issue 10 "Proven in a real browser"; builders in
``tests/helpers/browser.py``).

- Every test here is marked ``browser``; all are skipped, with the reason, only when
  ``/usr/bin/chromium`` is missing (``.ci/run`` installs it, so CI never skips).
- One Chromium for the package (Playwright's sync API runs an event loop in this thread while it is
  up, so Django's async-unsafe guard is lifted for exactly that time and the browser is closed
  before the rest of the suite runs), a fresh context and page per signed-in user.
- The live server is pytest-django's (a thread of this process, transactional database): what a
  test builds with the factories and services is committed and seen by the server.
- The second factor is on (SEC-3, as in production): ``signed_in(user)`` enrols a TOTP device and
  logs in through the real login form.
- The clock is the wall clock throughout (the browser's, the server's and the test's agree).
"""

from __future__ import annotations

import os

import pytest

from tests.helpers.browser import CHROMIUM, VIEWPORT, Steps, artefact_dir, enrol, launch_options, login


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    missing = pytest.mark.skip(reason=f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does)")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(missing)


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(**launch_options())
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def steps(request) -> Steps:
    return Steps(artefact_dir(request.node.name))


@pytest.fixture
def base_url(live_server) -> str:
    return live_server.url


@pytest.fixture
def otp_on(settings):
    settings.ADMIN_REQUIRE_OTP = True


@pytest.fixture
def signed_in(browser, base_url, otp_on, transactional_db):
    """``signed_in(user)`` -> a page of a fresh browser context, logged in as that user."""
    contexts = []

    def sign_in(user):
        device = enrol(user)
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, locale="en-GB")
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        login(page, base_url, user, device)
        return page

    yield sign_in
    for context in contexts:
        context.close()


@pytest.fixture
def eager_tasks():
    """Tasks a page starts run at once, in the live server's thread (no worker in these tests)."""
    from billing_backoffice.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous

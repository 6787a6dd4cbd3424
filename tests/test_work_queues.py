"""The admin index's figures (``templates/admin/dashboard/figures.html``): every figure links to
the filtered list behind it, and that list counts what the figure shows (issue 10: "Failed charges
(last 24 hours)" linked to every failed charge, "Funds credited today" to the whole ledger).

Each test builds data with rows just outside the figure's window, renders the index, follows the
figure's link and compares the changelist's result count with the figure's ``data-count``. It
fails if the link loses its filter (the list would then count the rows outside the window too).
"""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.helpers.dashboard_day import build_day

pytestmark = pytest.mark.django_db


def figure_of(page: str, key: str) -> tuple[int, str]:
    """(data-count, link) of the figure ``data-figure=key`` on the rendered index."""
    match = re.search(
        rf'<table[^>]*data-figure="{key}"[^>]*data-count="(\d+)"[^>]*>\s*<caption><a href="([^"]+)"', page
    )
    assert match, f"figure {key} not on the index"
    return int(match.group(1)), html.unescape(match.group(2))


def followed_count(client, link: str) -> int:
    response = client.get(link)
    assert response.status_code == 200
    return response.context["cl"].result_count


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("failed-charges", 2),  # CRED-3 day figures: 2 failed in 24 h (a third is 25 h old)
        ("credited-today", 3),  # two USD credits and one EUR credit today (one is yesterday's)
        ("overdue", 3),  # CRED-3: bills marked overdue (a past-due one not yet marked is not)
        ("due-this-week", 2),
    ],
)
def test_cred_3_index_figure_equals_the_list_it_links_to(client, superuser, now, key, expected):
    build_day(now)
    client.force_login(superuser)
    page = client.get(reverse("admin:index")).content.decode()
    count, link = figure_of(page, key)
    assert count == expected
    assert followed_count(client, link) == count


def test_failed_charges_link_keeps_its_24_hour_window(client, superuser, now):
    """The known bug: the link showed every failed charge (the 25-hour-old one too)."""
    build_day(now)
    client.force_login(superuser)
    count, link = figure_of(client.get(reverse("admin:index")).content.decode(), "failed-charges")
    unwindowed = followed_count(client, reverse("admin:payments_charge_changelist") + "?status__exact=failed")
    assert "created=24h" in link and unwindowed == count + 1


def test_credited_today_link_is_not_the_whole_ledger(client, superuser, now):
    """The known bug: the link opened the whole ledger (yesterday's credit, an adjustment)."""
    build_day(now)
    client.force_login(superuser)
    count, link = figure_of(client.get(reverse("admin:index")).content.decode(), "credited-today")
    whole = followed_count(client, reverse("admin:payments_ledgerentry_changelist"))
    assert "credited=today" in link and whole > count


def test_index_costs_the_same_queries_whatever_the_data(client, superuser, now):
    """QUALITY.md admin budgets: the index makes a fixed number of queries (one per figure)."""
    client.force_login(superuser)
    client.get(reverse("admin:index"))  # session and content types warmed
    with CaptureQueriesContext(connection) as empty:
        client.get(reverse("admin:index"))
    build_day(now)
    build_day(now)
    with CaptureQueriesContext(connection) as full:
        page = client.get(reverse("admin:index")).content.decode()
    assert figure_of(page, "failed-charges")[0] == 4
    assert len(full) == len(empty) <= 17  # the figures, and the charts: one grouped query each (ageing: two)

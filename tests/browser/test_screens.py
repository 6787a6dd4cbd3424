"""Issue 10, in Chromium at 1440x900: no serious or critical accessibility violations (axe-core)
on the index, the account page and the main lists, for both roles; and the lists fit 1440 px
(the action column is not hidden behind a horizontal scrollbar, names do not wrap)."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.helpers import browser_world
from tests.helpers.browser import serious_violations

ROLES = {"manager": browser_world.manager, "finance": browser_world.finance}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_sec_3_no_serious_accessibility_violations_on_index_account_page_and_main_lists(
    role, signed_in, base_url, steps
):
    """SEC-3 (the roles' pages, signed in with the second factor): axe-core finds no serious or
    critical violation on the index, the account page and every main list."""
    world = browser_world.world()
    user = ROLES[role]()
    page = signed_in(user)
    pages = {
        "index": "/admin/", "account page": f"/admin/payments/account/{world.account.pk}/change/",
        **browser_world.lists_for(user),
    }
    axe = Axe()
    found = {}
    for name, path in pages.items():
        response = page.goto(base_url + path)
        assert response.status == 200, f"{name}: {path} answered {response.status}"
        steps.shot(page, f"{role} {name}")
        violations = serious_violations(axe.run(page))
        if violations:
            found[name] = violations
    assert not found, "\n".join(f"{name}: {v}" for name, vs in found.items() for v in vs)


# How a changelist fits: the page's width, whether the action select is in the viewport without
# scrolling sideways, whether the results table is clipped behind its own horizontal scrollbar,
# and the name cells (the row's link and every name or account column) whose text takes more than
# one line.
FIT_SCRIPT = """() => {
  const select = document.querySelector('#changelist-form select[name=action]');
  const box = select ? select.getBoundingClientRect() : null;
  const results = document.querySelector('#changelist-form .results');
  const lines = (cell) => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
    return tops.size;
  };
  const names = document.querySelectorAll(
    '#result_list tbody th, #result_list tbody td[class*=name], #result_list tbody td[class*=account]');
  const wrapped = [...names].filter(cell => cell.innerText.trim() && lines(cell) > 1).map(c => c.innerText.trim());
  return {
    scrollWidth: document.documentElement.scrollWidth,
    hasActions: !!select,
    actionVisible: !!box && box.width > 0 && box.right <= window.innerWidth,
    clipped: !!results && results.scrollWidth > results.clientWidth + 1,
    wrapped: wrapped.slice(0, 5),
  };
}"""


def test_main_lists_fit_1440_px_without_hiding_the_action_column_or_wrapping_names(signed_in, base_url, steps):
    """Issue 10 "Screens that fit": on each main changelist (as each role sees it) the page is at
    most 1440 px wide or the action select is visible, no column hides behind the table's
    scrollbar, and no name wraps."""
    browser_world.world()
    problems = []
    for user in (browser_world.manager(), browser_world.finance()):
        page = signed_in(user)
        problems += lists_that_do_not_fit(page, base_url, steps, browser_world.lists_for(user), user.username)
    assert not problems, "\n".join(problems)


def lists_that_do_not_fit(page, base_url, steps, lists, who) -> list[str]:
    problems = []
    for name, path in lists.items():
        page.goto(base_url + path)
        steps.shot(page, f"{who} fit {name}", full_page=False)
        fit = page.evaluate(FIT_SCRIPT)
        if fit["scrollWidth"] > 1440 and not (fit["hasActions"] and fit["actionVisible"]):
            problems.append(f"{name}: {fit['scrollWidth']} px wide, action select not visible")
        if fit["clipped"]:
            problems.append(f"{name}: columns hidden behind the table's horizontal scrollbar")
        if fit["wrapped"]:
            problems.append(f"{name}: wrapped cells {fit['wrapped']}")
    return [f"{who}, {problem}" for problem in problems]

"""Issue 10 workflow 5, in Chromium: each role's index is its work queue, and every figure equals
the list it links to (the figure's ``data-count``, then the linked changelist's own count)."""

from __future__ import annotations

import pytest

from tests.helpers import browser_world
from tests.helpers.browser import changelist_count

ROLES = {"manager": browser_world.manager, "finance": browser_world.finance}
FIGURE = "[data-figure][data-count]"


def figures_of(page) -> list[dict]:
    return page.eval_on_selector_all(FIGURE, """elements => elements.map(element => {
        const link = element.matches('a[href]') ? element : element.querySelector('a[href]');
        return {name: element.dataset.figure, count: element.dataset.count, href: link && link.href};
    })""")


@pytest.mark.parametrize("role", sorted(ROLES))
def test_sec_3_each_work_queue_figure_equals_the_list_it_links_to(role, signed_in, base_url, steps):
    """SEC-3 (each role's own queue): every figure on the index links to a filtered list whose
    count is the figure; the world gives each role figures above zero."""
    browser_world.world()
    page = signed_in(ROLES[role]())
    page.goto(f"{base_url}/admin/")
    steps.shot(page, f"{role} work queue")
    figures = figures_of(page)
    assert figures, "the index shows no work-queue figure"
    assert any(int(f["count"]) > 0 for f in figures), figures
    mismatches = []
    for figure in figures:
        assert figure["href"], f"figure {figure['name']} links nowhere"
        page.goto(figure["href"])
        steps.shot(page, f"{role} {figure['name']}", full_page=False)
        shown = changelist_count(page)
        if shown != int(figure["count"]):
            mismatches.append(f"{figure['name']}: figure {figure['count']}, list {shown} ({figure['href']})")
    assert not mismatches, "\n".join(mismatches)

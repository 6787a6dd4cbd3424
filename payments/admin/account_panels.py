"""The panels of the account page ("one customer, one page", issue 10) and how apps add theirs.

The account page is payments' (``AccountAdmin``), but part of a customer's story lives in the
remittances app (credit limits, the dedicated account, claims), and payments never imports
remittances (the layering, pyproject ``[tool.importlinter]``). So the page is a list of panels
that any app registers into, the way Django apps register ModelAdmins with the site:

- this module owns the registry (``register_account_panel``) and the panel shape: a title, the
  permission a viewer needs (SEC-3: a role sees only what it may view), and a ``load`` function
  ``load(account, now) -> PanelTable`` that makes at most a fixed number of queries and returns
  at most a bounded number of rows with a "see all" link to the filtered changelist;
- payments registers its own panels in ``payments/admin/account_page.py``; remittances registers
  its panels from ``remittances/admin/account_panels.py`` (imported by Django's admin
  autodiscovery with the rest of ``remittances.admin``). The dependency points the allowed way:
  remittances imports this registry, payments knows nothing of remittances.

Every panel renders through one template (``admin/payments/account/_panel.html``): a table whose
cells are plain text (auto-escaped) or ``format_html`` output, so a panel needs no template.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from payments.models import Account


@dataclass
class PanelTable:
    """What a panel shows: a table (``columns`` and ``rows`` of cells), or only ``lines``."""

    columns: list[str] = field(default_factory=list)
    rows: list[list[object]] = field(default_factory=list)
    lines: list[object] = field(default_factory=list)  # sentences above the table
    empty: str = "None."
    see_all_url: str = ""
    see_all_text: str = "See all"
    more: bool = False  # more rows exist than are shown


@dataclass(frozen=True)
class AccountPanel:
    key: str
    title: str
    order: int
    load: Callable[[Account, datetime], PanelTable]
    permission: str = ""  # "app.codename" the viewer needs; empty: whoever sees the account


_PANELS: dict[str, AccountPanel] = {}


def register_account_panel(panel: AccountPanel) -> AccountPanel:
    """Add (or replace, by key) a panel of the account page."""
    _PANELS[panel.key] = panel
    return panel


def account_panels() -> list[AccountPanel]:
    return sorted(_PANELS.values(), key=lambda panel: (panel.order, panel.key))


def bounded(rows: list, limit: int) -> tuple[list, bool]:
    """A selector's ``limit + 1`` rows -> (the first ``limit``, whether there were more)."""
    return rows[:limit], len(rows) > limit


def panels_for(request, account: Account, now: datetime) -> list[dict]:
    """The panels this viewer may see, loaded: ``[{"key", "title", "table"}]``."""
    shown = []
    for panel in account_panels():
        if panel.permission and not request.user.has_perm(panel.permission):
            continue
        table = panel.load(account, now)
        if table.see_all_text == "See all":
            table.see_all_text = f"See all: {panel.title.split(' (')[0].lower()}"
        shown.append({"key": panel.key, "title": panel.title, "table": table})
    return shown

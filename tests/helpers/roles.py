"""The staff roles of migration payments 0002 (SEC-3) and the admin requests the role tests make.

The users of each role are fixtures of ``tests/conftest.py`` (``superuser``, ``manager``,
``finance``, ``as_role``).
"""

from __future__ import annotations

import importlib

from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.urls import reverse

from tests.factories import UserFactory

staff_groups = importlib.import_module("payments.migrations.0002_staff_groups")

MANAGERS = "Account managers"
FINANCE = "Finance staff"


def role_group(name: str) -> Group:
    # The migrations made the groups; a transactional test flushes the database (permissions come
    # back through post_migrate, groups do not), also for the next session on a reused database
    # (--reuse-db, as `make mutate` runs), so give the roles back what the migrations give them.
    if not Group.objects.filter(name=name).exists():
        restore_staff_roles()
    return Group.objects.get(name=name)


ROLE_APPS = ("billing_backoffice", "payments", "remittances")


def restore_staff_roles() -> None:
    """Every role the migrations make, with the permissions they leave it (SEC-3), after a flush.

    Replays, in migration order, the ``grant``/``revoke`` calls (``billing_backoffice.staff_roles``)
    of our apps' data migrations into one tally, then grants the end result: re-running only
    payments 0002 left finance staff without ``pay_bill`` (payments 0007), and re-running each
    migration against today's models would fail on a codename a later one renamed (0015).
    """
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Permission
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.operations import RunPython

    roles: dict[str, set[tuple[str, str]]] = {}

    def tally_grant(apps, app_label, granted):
        for role, codenames in granted.items():
            roles.setdefault(role, set()).update((app_label, c) for c in codenames)

    def tally_revoke(apps, app_label, revoked):
        for role, codenames in revoked.items():
            roles.setdefault(role, set()).difference_update((app_label, c) for c in codenames)

    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    plan = list(dict.fromkeys(n for leaf in graph.leaf_nodes() for n in graph.forwards_plan(leaf)))
    for node in plan:
        if node[0] not in ROLE_APPS:
            continue
        for operation in graph.nodes[node].operations:
            code = getattr(operation, "code", None)
            if not isinstance(operation, RunPython) or not {"grant", "revoke"} & set(code.__code__.co_names):
                continue
            module = code.__globals__
            saved = module.get("grant"), module.get("revoke")
            module["grant"], module["revoke"] = tally_grant, tally_revoke
            try:
                code(django_apps, None)  # only the tallies run; anything else in it finds nothing to do
            finally:
                module["grant"], module["revoke"] = saved
    for config in django_apps.get_app_configs():
        create_permissions(config, verbosity=0)
    for role, wanted in roles.items():
        group, _ = Group.objects.get_or_create(name=role)
        found = [p for p in Permission.objects.select_related("content_type")
                 if (p.content_type.app_label, p.codename) in wanted]
        missing = wanted - {(p.content_type.app_label, p.codename) for p in found}
        if missing:
            raise RuntimeError(f"role {role!r}: permissions missing after a flush: {sorted(missing)}")
        group.permissions.add(*found)


def changelist(model: str) -> str:
    return reverse(f"admin:payments_{model}_changelist")


def action_post(client, model: str, action: str, ids, *, reason: str = ""):
    """What the changelist's action form posts (also what a crafted request would post). An
    action behind a confirmation page (``billing_backoffice.admin_confirm``) is confirmed at once,
    as a crafted POST would, even when the page's Confirm is disabled: the service decides."""
    response = action_page(client, model, action, ids)
    return confirm_post(client, response, reason=reason) if is_confirm_page(response) else response


def action_page(client, model: str, action: str, ids):
    """The first POST of an action only: its confirmation page, where it has one."""
    return client.post(
        changelist(model), {"action": action, "_selected_action": [str(i) for i in ids], "index": "0"}
    )


def is_confirm_page(response) -> bool:
    return response.status_code == 200 and response.context is not None and "confirm_field" in response.context


def confirm_post(client, page, *, reason: str = "", url: str | None = None, data: dict | None = None):
    """Press Confirm on a confirmation page: what its form posts (hidden fields, token, digest)."""
    ctx, extra = page.context, data
    data: dict[str, list[str]] = {}
    for name, value in ctx["hidden"]:
        data.setdefault(name, []).append(value)
    data.update({
        ctx["confirm_field"]: ["yes"], ctx["token_field"]: [ctx["token"]], ctx["digest_field"]: [ctx["digest"]],
        "reason": [reason],
    })
    data.update({name: [value] for name, value in (extra or {}).items()})
    return client.post(url or ctx["action_url"] or page.wsgi_request.get_full_path(), data)


def in_group(name: str, username: str):
    """A member of the real role group, with the permissions our migrations grant it (``role_group``
    restores them all after a flush)."""
    group = role_group(name)
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(group)
    return type(user).objects.get(pk=user.pk)

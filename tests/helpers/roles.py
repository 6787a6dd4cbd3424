"""The staff roles of migration payments 0002 (SEC-3) and the admin requests the role tests make.

The users of each role are fixtures of ``tests/conftest.py`` (``superuser``, ``manager``,
``finance``, ``as_role``).
"""

from __future__ import annotations

import importlib

from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.urls import reverse

staff_groups = importlib.import_module("payments.migrations.0002_staff_groups")

MANAGERS = "Account managers"
FINANCE = "Finance staff"


def role_group(name: str) -> Group:
    # The migration made the groups; a transactional test elsewhere in the session flushes the
    # database (permissions come back through post_migrate, groups do not), so re-run it then.
    if not Group.objects.filter(name=name).exists():
        staff_groups.create_staff_groups(django_apps, None)
    return Group.objects.get(name=name)


def changelist(model: str) -> str:
    return reverse(f"admin:payments_{model}_changelist")


def action_post(client, model: str, action: str, ids):
    """What the changelist's action form posts (also what a crafted request would post)."""
    return client.post(
        changelist(model), {"action": action, "_selected_action": [str(i) for i in ids], "index": "0"}
    )

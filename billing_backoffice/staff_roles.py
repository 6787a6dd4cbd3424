"""Grant and take back role permissions from data migrations (SEC-3).

The two staff roles are groups ("Account managers", "Finance staff"), created by the payments
migration ``0002_staff_groups``; each app's migrations add the permissions of its own models.
Permissions are created inside the migration (``create_permissions``) because on a fresh
database they would otherwise only appear in ``post_migrate``, after the migration ran.
"""

from __future__ import annotations

from django.contrib.auth.management import create_permissions


def _ensure_permissions(apps, app_label: str) -> None:
    # The historical app config has no models module; create_permissions skips such apps, so
    # mark it as having models for the duration of the call.
    app_config = apps.get_app_config(app_label)
    previous = getattr(app_config, "models_module", None)
    app_config.models_module = previous or True
    try:
        create_permissions(app_config, apps=apps, verbosity=0)
    finally:
        app_config.models_module = previous


def grant(apps, app_label: str, roles: dict[str, list[str]]) -> None:
    _ensure_permissions(apps, app_label)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in roles.items():
        found = list(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
        missing = set(codenames) - {p.codename for p in found}
        if missing:
            raise RuntimeError(f"{app_label} permissions missing: {sorted(missing)}")
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*found)


def revoke(apps, app_label: str, roles: dict[str, list[str]]) -> None:
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in roles.items():
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
            )

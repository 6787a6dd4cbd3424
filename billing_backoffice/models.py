"""Permission changes in the audit trail (SEC-2).

Who may do what is decided by two many-to-many tables of ``django.contrib.auth``: a staff
user's groups (``auth_user_groups``) and a group's permissions (``auth_group_permissions``).
A row added or removed there grants or takes away a role, so each one is audited like a money
or status row.

pghistory tracks a many-to-many through a proxy of its through table (its documented way):
the triggers sit on the auth tables themselves, so the admin's user and group pages,
``user.groups.add``/``.remove``/``.set``, ``group.permissions.set`` and raw SQL are all
recorded, with the actor of the request, task or ``audit_context`` block.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from billing_backoffice import audit


@audit.track("usergrp")
class UserGroupMembership(User.groups.through):
    """A staff user's membership of a group (a row of ``auth_user_groups``)."""

    class Meta:
        proxy = True
        verbose_name = "group membership"
        verbose_name_plural = "group memberships"


@audit.track("grpperm")
class GroupPermissionGrant(Group.permissions.through):
    """A permission granted to a group (a row of ``auth_group_permissions``)."""

    class Meta:
        proxy = True
        verbose_name = "group permission"
        verbose_name_plural = "group permissions"

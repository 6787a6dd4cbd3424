"""One permission policy for every staff-facing service (SEC-3).

The admin hides an action from a role that lacks its permission, but the admin is a thin layer:
a crafted POST, a new view or a shell must meet the same check. So every service a staff member
can trigger takes the ``actor`` and calls ``staff_require`` first, before it reads or changes
anything; a refusal changes nothing.

Who the actor is:
- a staff user (``request.user`` in the admin): must be active and hold the permission (one of
  them, when several are given). Superusers hold every permission.
- ``SYSTEM`` (``None``): a scheduled job, a Celery task or a management command acting on its
  own, never on a person's behalf. Only services that jobs also run accept it
  (``system_allowed``); decisions that need a person (approving a claim or a credit limit,
  issuing a remittance account) refuse it. Staff-facing callers always pass the user.

A refusal is ``StaffPermissionDenied`` (403, code ``permission_denied``, rule SEC-3 unless the
service names its own): the one staff-permission error, which the older per-app names
(``PermissionRefused``, ``ClaimPermissionDenied``, ``CreditDecisionNotPermitted``) alias.
"""

from __future__ import annotations

from collections.abc import Iterable

from billing_backoffice.errors import StaffPermissionDenied  # noqa: F401 (raised here)

# A scheduled job or command acting on its own (see the module docstring).
SYSTEM = None


def staff_require(
    actor,
    *,
    permission: str | Iterable[str],
    action: str,
    rule: str = "SEC-3",
    system_allowed: bool = True,
) -> None:
    """SEC-3: refuse unless ``actor`` may ``action`` (holds ``permission``, or one of several).

    ``actor`` ``SYSTEM``/``None`` passes only where ``system_allowed``. ``action`` completes
    "<who> may not ...", e.g. ``"pay bills from the balance"``.
    """
    permissions = (permission,) if isinstance(permission, str) else tuple(permission)
    needed = f"permission {' or '.join(permissions)}"
    if actor is SYSTEM:
        if system_allowed:
            return
        raise StaffPermissionDenied(f"Only a staff member may {action} ({needed}).", rule=rule)
    if getattr(actor, "is_active", False) and any(actor.has_perm(p) for p in permissions):
        return
    who = getattr(actor, "username", "") or "This user"
    raise StaffPermissionDenied(f"{who} may not {action} ({needed}).", rule=rule)

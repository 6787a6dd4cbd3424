"""One catalogue per concern (issue 14): every business error's ``code`` names one error class.

The console and the admin tell errors apart by ``code`` alone, so two classes with one code
(``invalid_currency`` and ``permission_denied`` were defined twice) would make a client handle
two different refusals as one. The test imports every module of the project package and the
apps, so an error class defined anywhere is seen.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import defaultdict

import billing_backoffice
import payments
import remittances
from billing_backoffice.errors import BillingError

# Settings modules read the environment of their deployment; migrations define no errors.
SKIPPED = (".settings", ".migrations")


def import_every_module() -> None:
    for package in (billing_backoffice, payments, remittances):
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if any(part in module.name for part in SKIPPED):
                continue
            importlib.import_module(module.name)


def error_classes(root: type = BillingError) -> set[type]:
    found, todo = set(), [root]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def duplicate_codes(classes) -> dict[str, list[str]]:
    """``{code: [classes defining it]}`` for every code that more than one class defines.

    Only a class's own ``code`` counts: a subclass that inherits its parent's code (``AlreadyLinked``
    of ``LinkRefused``) is the same refusal, more specific.
    """
    owners: dict[str, set[type]] = defaultdict(set)
    for cls in classes:
        if "code" in vars(cls):
            owners[cls.code].add(cls)
    return {
        code: sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in found)
        for code, found in owners.items()
        if len(found) > 1
    }


def test_error_codes_are_unique_across_the_project():
    import_every_module()
    classes = error_classes()
    assert len(classes) > 50  # every app's catalogue was imported
    assert duplicate_codes(classes) == {}


def test_duplicate_codes_names_both_classes():
    # The check itself, on classes outside the hierarchy the project's test walks.
    class First(Exception):
        code = "same"

    class Second(Exception):
        code = "same"

    class Inherits(First):
        pass

    class Other(Exception):
        code = "other"

    duplicates = duplicate_codes([First, Second, Inherits, Other])
    assert list(duplicates) == ["same"]
    assert [name.rsplit(".", 1)[-1] for name in duplicates["same"]] == ["First", "Second"]


def test_the_staff_permission_error_is_one_class_under_every_name():
    from billing_backoffice.errors import StaffPermissionDenied
    from billing_backoffice.permissions import StaffPermissionDenied as from_permissions
    from remittances.errors import ClaimPermissionDenied, CreditDecisionNotPermitted, PermissionRefused

    assert from_permissions is StaffPermissionDenied
    assert {ClaimPermissionDenied, CreditDecisionNotPermitted, PermissionRefused} == {StaffPermissionDenied}

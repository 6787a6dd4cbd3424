"""The suite's shape (issue 14): a test module never imports another test module or a conftest.

Shared builders live in ``tests/helpers/`` (and ``tests/factories/``, ``tests/payments/invariants.py``);
fixtures in the ``conftest.py`` files, which pytest loads itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def is_test_module_or_conftest(dotted: str) -> bool:
    last = dotted.rsplit(".", 1)[-1]
    return dotted.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def test_no_test_module_imports_another_test_module_or_a_conftest():
    offenders = sorted(
        f"{path.relative_to(TESTS.parent)} imports {name}"
        for path in TESTS.rglob("*.py")
        for name in imported_modules(path)
        if is_test_module_or_conftest(name) and (TESTS.parent / (name.replace(".", "/") + ".py")).exists()
    )
    assert not offenders, "move the shared helper to tests/helpers/ or a conftest fixture:\n" + "\n".join(offenders)


def test_the_shape_check_sees_an_import_of_a_test_module(tmp_path):
    module = tmp_path / "test_example.py"
    module.write_text("from tests.payments.test_charging import card_account\nimport tests.conftest\n")
    names = imported_modules(module)
    assert {"tests.payments.test_charging", "tests.conftest"} <= names
    assert is_test_module_or_conftest("tests.payments.test_charging")
    assert not is_test_module_or_conftest("tests.helpers.charging")

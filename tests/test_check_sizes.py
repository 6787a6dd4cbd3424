"""scripts/check_sizes.py (issue 14): modules over 400 lines and functions over 60 are named."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_sizes.py"


@pytest.fixture(scope="module")
def sizes():
    spec = importlib.util.spec_from_file_location("check_sizes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def function_of(lines: int, name: str = "long") -> str:
    body = "\n".join("    x = 1" for _ in range(lines - 2))
    return f"def {name}():\n{body}\n    return x\n"


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def tree(tmp_path):
    for package in ("billing_backoffice", "payments", "remittances"):
        write(tmp_path, f"{package}/__init__.py", "")
    return tmp_path


def run(sizes, root: Path, capsys, allowlist: str | None = None) -> tuple[int, str]:
    allowlist_path = root / "allow.txt"
    if allowlist is not None:
        allowlist_path.write_text(allowlist, encoding="utf-8")
    status = sizes.main(["--root", str(root), "--allowlist", str(allowlist_path)])
    return status, capsys.readouterr().out


def test_a_module_over_400_lines_fails_by_name(sizes, tree, capsys):
    write(tree, "payments/big.py", "x = 1\n" * 401)
    write(tree, "payments/fine.py", "x = 1\n" * 400)
    status, out = run(sizes, tree, capsys)
    assert status == 1
    assert "payments/big.py: 401 lines (max 400)" in out
    assert "fine.py" not in out


def test_a_function_over_60_lines_fails_by_its_dotted_name(sizes, tree, capsys):
    method = "\n".join("    " + line for line in function_of(61, "run").splitlines())
    write(tree, "remittances/jobs.py", f"class Job:\n{method}\n\n{function_of(60, 'short')}")
    status, out = run(sizes, tree, capsys)
    assert status == 1
    assert "remittances/jobs.py::Job.run: 61 lines (max 60)" in out
    assert "short" not in out


def test_a_size_line_in_the_module_docstring_makes_it_one_piece(sizes, tree, capsys):
    docstring = '"""The audit log query.\n\nSize: one piece because the query reads as one statement.\n"""\n'
    write(tree, "billing_backoffice/audit_query.py", docstring + function_of(90) + "x = 1\n" * 400)
    status, out = run(sizes, tree, capsys)
    assert (status, "size check: ok") == (0, out.strip().splitlines()[-1])


def test_a_size_word_elsewhere_is_no_reason(sizes, tree, capsys):
    write(tree, "payments/other.py", '"""Sizes of bills: see Size of the world."""\n' + "x = 1\n" * 401)
    status, out = run(sizes, tree, capsys)
    assert status == 1 and "payments/other.py: 402 lines" in out


def test_migrations_and_other_trees_are_not_checked(sizes, tree, capsys):
    write(tree, "payments/migrations/0001_initial.py", "x = 1\n" * 900)
    write(tree, "tests/test_big.py", "x = 1\n" * 900)
    status, _ = run(sizes, tree, capsys)
    assert status == 0


def test_the_allowlist_lets_a_listed_offender_pass_and_reports_stale_entries(sizes, tree, capsys):
    write(tree, "payments/big.py", "x = 1\n" * 401 + function_of(70))
    allowlist = (
        "# being split\n"
        "payments/big.py  h11 splits it\n"
        "payments/big.py::long  h11 splits it\n"
        "payments/gone.py  split already\n"
    )
    status, out = run(sizes, tree, capsys, allowlist)
    assert status == 0
    assert "stale entry (no longer over its limit, remove it): payments/gone.py" in out
    status, out = run(sizes, tree, capsys, "payments/big.py  h11 splits it\n")
    assert status == 1 and "payments/big.py::long: 70 lines" in out


def test_an_allowlist_entry_without_a_reason_is_refused(sizes, tree, capsys):
    with pytest.raises(SystemExit, match="needs a reason"):
        run(sizes, tree, capsys, "payments/big.py\n")

"""Size checker (issue 14): no production module over 400 lines, no function over 60 lines.

Run by ``make test`` before pytest. A module may be one piece on purpose: it says so in its
module docstring with a line starting ``Size:`` (``Size: one piece because ...``), and then none
of its sizes are checked. Modules being split while the check is new are listed in
``scripts/size_allowlist.txt`` (``path  reason`` for the module's length, ``path::function  reason``
for one function); the list only shrinks: an entry that no longer matches an offender is reported
as stale so it can be removed.

Exit status 1 names every offender (``path: 512 lines (max 400)``,
``path::Class.method: 74 lines (max 60)``); 0 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
PACKAGES = ("billing_backoffice", "payments", "remittances")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ALLOWLIST = ROOT / "scripts" / "size_allowlist.txt"
# How far into the docstring the reason may sit: "in its first lines".
REASON_WITHIN_LINES = 15


@dataclass(frozen=True)
class Offender:
    key: str  # "path" for the module, "path::qualname" for a function
    lines: int
    limit: int

    def __str__(self) -> str:
        return f"{self.key}: {self.lines} lines (max {self.limit})"


def production_modules(root: Path) -> list[Path]:
    modules = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" not in path.relative_to(root).parts:
                modules.append(path)
    return modules


def says_why_one_piece(tree: ast.Module) -> bool:
    docstring = ast.get_docstring(tree, clean=True) or ""
    first_lines = docstring.splitlines()[:REASON_WITHIN_LINES]
    return any(line.strip().lower().startswith("size:") for line in first_lines)


def _functions(node: ast.AST, prefix: str = ""):
    """Every function and method with its dotted name (nested ones included)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{child.name}"
            yield name, child
            yield from _functions(child, f"{name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")


def module_offenders(path: Path, root: Path) -> list[Offender]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    if says_why_one_piece(tree):
        return []
    relative = path.relative_to(root).as_posix()
    offenders = []
    line_count = len(source.splitlines())
    if line_count > MAX_MODULE_LINES:
        offenders.append(Offender(relative, line_count, MAX_MODULE_LINES))
    for name, function in _functions(tree):
        # From the ``def`` line to the last line of the body; decorators are not counted.
        length = function.end_lineno - function.lineno + 1
        if length > MAX_FUNCTION_LINES:
            offenders.append(Offender(f"{relative}::{name}", length, MAX_FUNCTION_LINES))
    return offenders


def read_allowlist(path: Path) -> dict[str, str]:
    """``{key: reason}``; blank lines and ``#`` comments are skipped, a key without a reason is refused."""
    if not path.exists():
        return {}
    entries = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: an allow-list entry needs a reason: {line!r}")
        entries[key] = reason.strip()
    return entries


def check(root: Path, allowlist: dict[str, str]) -> tuple[list[Offender], list[Offender], list[str]]:
    """(offenders not allowed, offenders allowed, stale allow-list keys)."""
    found = [offender for path in production_modules(root) for offender in module_offenders(path, root)]
    failing = [offender for offender in found if offender.key not in allowlist]
    allowed = [offender for offender in found if offender.key in allowlist]
    allowed_keys = {offender.key for offender in allowed}
    stale = sorted(key for key in allowlist if key not in allowed_keys)
    return failing, allowed, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--allowlist", type=Path, default=DEFAULT_ALLOWLIST)
    parser.add_argument("--all", action="store_true", help="ignore the allow-list: list every offender")
    args = parser.parse_args(argv)
    allowlist = {} if args.all else read_allowlist(args.allowlist)
    failing, allowed, stale = check(args.root.resolve(), allowlist)
    for key in stale:
        print(f"size allow-list: stale entry (no longer over its limit, remove it): {key}")
    if allowed:
        print(f"size check: {len(allowed)} offender(s) allowed while being split (scripts/size_allowlist.txt)")
    if failing:
        print(
            f"size check FAILED: over {MAX_MODULE_LINES} lines per module or {MAX_FUNCTION_LINES} per function "
            "(split it, or say why it is one piece with a 'Size:' line in the module docstring):"
        )
        for offender in failing:
            print(f"  {offender}")
        return 1
    print("size check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

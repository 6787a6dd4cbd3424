"""Issue 14: the layering holds and no two modules import each other, checked the way CI does."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def load_cycle_checker():
    spec = importlib.util.spec_from_file_location("check_import_cycles", ROOT / "scripts" / "check_import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cycle_checker_finds_a_cycle_and_names_its_modules():
    checker = load_cycle_checker()
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d"), ("p.e", "p.d")]:
        graph.add_import(importer=importer, imported=imported)
    assert checker.import_cycles(graph) == [["p.a", "p.b", "p.c"]]
    graph.remove_import(importer="p.c", imported="p.a")
    assert checker.import_cycles(graph) == []


def test_no_import_cycle_between_the_project_modules():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_import_cycles.py")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_layering_contracts_kept():
    """payments never imports remittances; apps never import composition modules; services never
    import admin, API or task modules; no cycles between an app's siblings (pyproject.toml)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout

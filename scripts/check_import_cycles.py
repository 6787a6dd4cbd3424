"""No import cycle between any two modules of the project (issue 14), beside `lint-imports`.

import-linter's ``acyclic_siblings`` contract (pyproject.toml) sees cycles between the sibling
packages of an app; this finds every cycle between modules, in and across the packages: the
strongly connected components of grimp's import graph (the same graph import-linter builds,
imports inside functions included, ``if TYPE_CHECKING:`` imports excluded since they never run).
Exit 1 naming each cycle and the imports that close it; run by ``make test`` before pytest.
"""

from __future__ import annotations

import sys

import grimp

PACKAGES = ("billing_backoffice", "payments", "remittances")


def import_cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def main() -> int:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    cycles = import_cycles(graph)
    for cycle in cycles:
        members = set(cycle)
        print(f"Import cycle between {len(cycle)} modules: {', '.join(cycle)}")
        for importer in cycle:
            for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
                for detail in graph.get_import_details(importer=importer, imported=imported):
                    print(f"  {importer} -> {imported} (l.{detail['line_number']}: {detail['line_contents']})")
    if cycles:
        return 1
    print(f"No import cycles between the {len(graph.modules)} modules of {', '.join(PACKAGES)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

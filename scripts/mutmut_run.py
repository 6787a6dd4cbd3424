"""mutmut's command line, also mutating functions whose only decorators are known to be safe.

mutmut 3 skips every decorated function, because copying one can register it twice (routes) or
run a decorator's arguments. Here nearly every rule is a service under ``@transaction.atomic``
(and card validation under ``@sensitive_variables``), so without this the DEF, DEL, CLM and
ledger rules would not be mutated at all. Copies of these functions only add a savepoint or mark
variables as sensitive, so they behave like the original. Any other decorator is still skipped.

``MUTATE_TESTS`` (space-separated test paths), when set, replaces
``pytest_add_cli_args_test_selection`` from pyproject: scripts/mutate.sh gives each rule group the
test files written for it, so a mutant runs in seconds instead of paying for the whole selection.

Used by scripts/mutate.sh: ``.venv/bin/python scripts/mutmut_run.py run ...``.
"""

from __future__ import annotations

import os

import libcst as cst
from mutmut import configuration
from mutmut.__main__ import cli
from mutmut.mutation import file_mutation

SAFE_DECORATORS = {"transaction.atomic", "atomic", "sensitive_variables"}
_original_skip = file_mutation.MutationVisitor._skip_node_and_children


def _decorator_name(decorator: cst.Decorator) -> str:
    target = decorator.decorator.func if isinstance(decorator.decorator, cst.Call) else decorator.decorator
    return cst.Module(body=[]).code_for_node(target)


def _skip_node_and_children(self, node: cst.CSTNode) -> bool:
    if (
        isinstance(node, cst.FunctionDef)
        and node.decorators
        and all(_decorator_name(d) in SAFE_DECORATORS for d in node.decorators)
    ):
        position = self.get_metadata(file_mutation.PositionProvider, node, None)
        pragma_skipped = position is not None and position.start.line in self._ignored_node_lines
        if not pragma_skipped and node.name.value not in file_mutation.NEVER_MUTATE_FUNCTION_NAMES:
            return False  # its body is mutated; the decorators themselves are still never touched
    return _original_skip(self, node)


file_mutation.MutationVisitor._skip_node_and_children = _skip_node_and_children

if __name__ == "__main__":
    if os.environ.get("MUTATE_TESTS"):
        configuration.config().pytest_add_cli_args_test_selection = os.environ["MUTATE_TESTS"].split()
    cli()

"""Score of a `make mutate` run, per rule group, from mutmut's result files under mutants/.

Usage: mutation_score.py [--save] GROUP=GLOB[ GLOB...] ...  (scripts/mutate.sh passes its groups).
``--save`` keeps each group's results in mutants/results/GROUP.json right after its run: mutmut
forgets earlier results when the next group's test selection differs (its cache is keyed on it).
Score = (killed + timeout) / mutants that were run; "no tests" (no selected test reaches the
function) and "not checked" (run stopped early) are listed apart, never counted as killed.
Exit code 0 always: survivors are explained in README.md, not a build failure.
"""

from __future__ import annotations

import fnmatch
import json
import sys
from collections import Counter
from pathlib import Path

# mutmut's exit codes (mutmut/stats.py): what each mutant's test run ended with.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}


def results() -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for meta in Path("mutants").rglob("*.py.meta"):
        found.update(json.loads(meta.read_text())["exit_code_by_key"])
    return found


def picked_results(every: dict, globs: str) -> dict:
    return {k: v for k, v in every.items() if any(fnmatch.fnmatch(k, g) for g in globs.split())}


def save(groups: list[str]) -> None:
    Path("mutants/results").mkdir(parents=True, exist_ok=True)
    every = results()
    for spec in groups:
        name, _, globs = spec.partition("=")
        Path(f"mutants/results/{name}.json").write_text(json.dumps(picked_results(every, globs), indent=1))


def saved(name: str) -> dict | None:
    path = Path(f"mutants/results/{name}.json")
    return json.loads(path.read_text()) if path.exists() else None


def main(groups: list[str]) -> None:
    every = results()
    total = Counter()
    for spec in groups:
        name, _, globs = spec.partition("=")
        picked = saved(name)
        if picked is None:
            picked = picked_results(every, globs)
        counts = Counter(STATUS.get(code, "suspicious") for code in picked.values())
        total.update(counts)
        run = sum(n for status, n in counts.items() if status not in ("not checked", "no tests", "skipped"))
        score = 100 * (counts["killed"] + counts["timeout"]) / run if run else 0.0
        print(f"{name:16} {score:5.1f}%  killed {counts['killed']}, timeout {counts['timeout']}, "
              f"survived {counts['survived']}, no tests {counts['no tests']}, not checked {counts['not checked']}"
              f" (of {len(picked)})")
        for key in sorted(k for k, v in picked.items() if STATUS.get(v) == "survived"):
            print(f"    survived: {key}   (see: mutmut show {key})")
    run = sum(n for status, n in total.items() if status not in ("not checked", "no tests", "skipped"))
    if run:
        print(f"{'all groups':16} {100 * (total['killed'] + total['timeout']) / run:5.1f}%  of {run} mutants run")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save"]:
        save(sys.argv[2:])
    else:
        main(sys.argv[1:])

"""Mutation testing of the pure cores and their second lines of defence (cosmic-ray).

Each module is mutated on a copy of the tracked tree (never the working tree: an interrupted run
would leave a mutant behind) and tested with the tests that own it; modules run two at a time.
A mutant is *killed* when its tests fail, *survives* when they pass; the score is killed /
(killed + survived). Mutants that time out count as killed (cosmic-ray's convention); mutants
cosmic-ray cannot apply, the operators in ``EQUIVALENT``, lines marked ``# pragma: no mutate``
(each with its reason) and mutations of a signature's keyword-only ``*`` are left out. Writes
``bench/results/mutation.json``.

    python -m bench.mutation [--modules shared/dlq.py ...] [--lanes 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import machine, write_result

ROOT = Path(__file__).resolve().parents[1]

TARGETS: dict[str, tuple[str, ...]] = {
    "services/grading/store.py": ("tests/integration/test_second_lines.py",),
    "shared/dlq.py": ("tests/unit/test_dlq.py", "tests/unit/test_fuzz_decode.py"),
    "shared/memory/writer.py": (
        "tests/unit/test_memory_plan.py",
        "tests/integration/test_second_lines.py",
    ),
    "services/generation/prompts/fencing.py": (
        "tests/unit/test_prompt_injection.py",
        "tests/unit/test_prompts.py",
    ),
    "shared/signing.py": ("tests/unit/test_signing.py",),
    "services/generation/inflight.py": ("tests/unit/test_inflight.py",),
    "services/grading/extract.py": ("tests/unit/test_grading_extract.py",),
    "shared/memory/search.py": (
        "tests/unit/test_search.py",
        "tests/unit/test_hybrid.py",
        "tests/integration/test_second_lines.py",
    ),
    "shared/memory/jurisdictions.py": ("tests/unit/test_jurisdictions.py",),
    "shared/memory/lexical.py": ("tests/unit/test_hybrid.py",),
    "services/grading/stats.py": ("tests/unit/test_grading_stats.py",),
}
"""Each module under test and the tests that own it."""

TARGET_SCORE = 0.90

EQUIVALENT = ("core/ReplaceBinaryOperator_BitOr_.*",)
"""Operators left out: ``|`` here is almost only in type unions, which postponed annotations
never evaluate (every such mutant would survive without meaning anything)."""


def _keyword_marker(line: str, column: int) -> bool:
    """Whether the mutated ``*`` is a signature's keyword-only marker (``def f(a, *, b)``):
    cosmic-ray treats it as a multiplication, and ``/`` there changes no behaviour."""
    rest = line[column:].lstrip()
    return rest.startswith("*") and rest[1:].lstrip()[:1] in (",", ")", "")


def copy_tree(into: Path) -> Path:
    """The tracked files (with uncommitted changes) in a folder of their own."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


def run_module(module: str, tests: tuple[str, ...], workdir: Path) -> dict[str, Any]:
    tree = copy_tree(workdir / "tree")
    python = ROOT / ".venv" / "bin" / "python"
    cosmic = ROOT / ".venv" / "bin" / "cosmic-ray"
    command = f"{python} -m pytest -x -q -p no:cacheprovider {' '.join(tests)}"
    config = workdir / "config.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{module}"\n'
        "timeout = 30.0\n"
        "excluded-modules = []\n"
        f'test-command = "{command}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = {json.dumps(list(EQUIVALENT))}\n"
    )
    session = workdir / "session.sqlite"
    # The copy's modules come first; the property test runs fewer examples per mutant.
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "ALIGNSTREAM_FUZZ_EXAMPLES": "40"}
    started = time.perf_counter()
    subprocess.run([str(cosmic), "init", str(config), str(session)], cwd=tree, check=True,
                   env=env)  # fmt: skip
    tools = ROOT / ".venv" / "bin"
    subprocess.run([str(tools / "cr-filter-operators"), str(session), str(config)], cwd=tree,
                   check=True, env=env)  # fmt: skip
    subprocess.run([str(tools / "cr-filter-pragma"), str(session)], cwd=tree, check=True,
                   env=env)  # fmt: skip
    subprocess.run([str(cosmic), "exec", str(config), str(session)], cwd=tree, check=True,
                   env=env)  # fmt: skip
    result = summarize(module, tests, tree, session)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def summarize(module: str, tests: tuple[str, ...], tree: Path, session: Path) -> dict[str, Any]:
    """The outcomes of a module's session so far; ``partial`` when mutants are left to run
    (a run cut short, e.g. by a session's time)."""
    cosmic = ROOT / ".venv" / "bin" / "cosmic-ray"
    dump = subprocess.run([str(cosmic), "dump", str(session)], cwd=tree, check=True,
                          capture_output=True, text=True).stdout  # fmt: skip
    source = (tree / module).read_text().splitlines()
    pending = 0
    outcomes: dict[str, int] = {}
    survivors: list[str] = []
    for line in dump.splitlines():
        work, result = json.loads(line)
        if result is None:
            pending += 1
            continue
        outcome = result.get("test_outcome") or result.get("worker_outcome")
        mutation = work["mutations"][0]
        row, column = mutation["start_pos"]
        if outcome == "survived" and _keyword_marker(source[row - 1], column):
            outcome = "equivalent"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == "survived":
            text = source[row - 1].strip()[:80]
            survivors.append(f"{mutation['operator_name']} line {row}: {text}")
    killed = outcomes.get("killed", 0) + outcomes.get("timeout", 0)
    survived = outcomes.get("survived", 0)
    return {
        "tests": list(tests),
        "mutants": sum(outcomes.values()),
        "killed": killed,
        "survived": survived,
        "outcomes": outcomes,
        "mutation_score": round(killed / max(killed + survived, 1), 4),
        "survivors": survivors[:50],
        "partial": pending > 0,
        "not_yet_run": pending,
    }


def collect(scratch: Path) -> dict[str, dict[str, Any]]:
    """Every module's outcomes from the sessions in a run's scratch folder."""
    found = {}
    for module, tests in TARGETS.items():
        folder = scratch / module.replace("/", "_")
        if (folder / "session.sqlite").exists():
            found[module] = summarize(module, tests, folder / "tree", folder / "session.sqlite")
    return found


def summary(modules: dict[str, dict[str, Any]], wanted: list[str]) -> dict[str, Any]:
    killed = sum(m["killed"] for m in modules.values())
    survived = sum(m["survived"] for m in modules.values())
    return {
        "tool": "cosmic-ray 8.7.0",
        "machine": machine(),
        "target": TARGET_SCORE,
        "mutation_score": round(killed / max(killed + survived, 1), 4),
        "killed": killed,
        "survived": survived,
        "complete": sorted(modules) == sorted(wanted)
        and not any(m.get("partial") for m in modules.values()),
        "not_run": [m for m in wanted if m not in modules],
        "modules": modules,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", nargs="*", default=list(TARGETS))
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument(
        "--partial",
        metavar="SCRATCH",
        type=Path,
        help="only summarize the sessions left in a cut-short run's folder",
    )
    args = parser.parse_args()
    modules: dict[str, dict[str, Any]] = {}
    if args.partial is not None:
        write_result("mutation", summary(collect(args.partial), list(TARGETS)))
        return
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:

        def one(module: str) -> None:
            folder = Path(scratch) / module.replace("/", "_")
            folder.mkdir()
            result = run_module(module, TARGETS[module], folder)
            modules[module] = result
            # Written after every module: a run cut short still reports what it measured.
            write_result("mutation", summary(modules, args.modules))
            print(
                f"{module}: {result['mutation_score']:.3f} "
                f"({result['killed']}/{result['killed'] + result['survived']})",
                flush=True,
            )

        with ThreadPoolExecutor(max_workers=args.lanes) as pool:
            list(pool.map(one, args.modules))
    result = summary(modules, args.modules)
    print(f"overall mutation score {result['mutation_score']:.3f} (target {TARGET_SCORE})")
    if result["mutation_score"] < TARGET_SCORE:
        sys.exit(1)


if __name__ == "__main__":
    main()

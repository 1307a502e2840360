"""Mutation testing of the pure cores, the gateway's guards and the second lines of defence.

Each module is mutated on a copy of the tracked tree (never the working tree: an interrupted run
would leave a mutant behind) and tested with the tests that own it; modules run two at a time.
Python is mutated by cosmic-ray; the comparisons inside Lua scripts by ``bench.mutation_lua``.

First the module's tests run once unmutated (the baseline: they must pass); a mutant's tests
then get ``max(20 s, 4 x baseline)``. A mutant is *killed* when its tests fail, *survives* when
they pass, and *times out* when they run past that limit: time-outs are counted and listed
apart, in neither the kills nor the survivors. The score is killed / (killed + survived).
Left out: mutants cosmic-ray cannot apply, the operators in ``EQUIVALENT``, lines marked
``# pragma: no mutate`` (Lua: ``-- no mutate``), each with its reason, and mutations of a
signature's keyword-only ``*``. Integration tests run against one local stack started for the
whole run. Every survivor and time-out is listed; writes ``bench/results/mutation.json``.

    python -m bench.mutation [--modules shared/dlq.py ...] [--lanes 2] [--merge]

``--merge`` keeps the other modules' results of the JSON already there (each module records the
commit and time it was measured at), e.g. to re-measure a module after its tests were improved.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import RESULTS, machine, write_result
from bench.mutation_lua import run_lua_mutants, run_tests
from bench.mutation_targets import TARGETS, Target

ROOT = Path(__file__).resolve().parents[1]


TARGET_SCORE = 0.90
REVISION = ".mutation-revision"
"""The commit a run's snapshot was copied from, in the snapshot."""
MIN_TIMEOUT_S = 20.0
TIMEOUT_FACTOR = 4.0

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


def test_command(tests: tuple[str, ...]) -> list[str]:
    python = ROOT / ".venv" / "bin" / "python"
    return [str(python), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]


def mutant_env(tree: Path, servers: Mapping[str, str]) -> dict[str, str]:
    # The copy's modules come first; the property test runs fewer examples per mutant.
    return {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
            "ALIGNSTREAM_FUZZ_EXAMPLES": "40", **servers}  # fmt: skip


def revision() -> str:
    """The commit measured, ``+changes`` when the working tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout.strip()  # fmt: skip

    changed = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("+changes" if changed else "")


def run_module(
    module: str, target: Target, workdir: Path, snapshot: Path, servers: Mapping[str, str]
) -> dict[str, Any]:
    tree = Path(shutil.copytree(snapshot, workdir / "tree"))
    env = mutant_env(tree, servers)
    command = test_command(target.tests)
    started = time.perf_counter()
    if run_tests(command, tree, env, timeout_s=600) != "survived":
        raise RuntimeError(f"{module}: its tests fail unmutated: {' '.join(target.tests)}")
    baseline_s = time.perf_counter() - started
    timeout_s = max(MIN_TIMEOUT_S, TIMEOUT_FACTOR * baseline_s)
    session = workdir / "session.sqlite"
    if target.python:
        run_cosmic_ray(module, command, timeout_s, workdir, tree, env)
    lua = run_lua_mutants(tree, module, command, env, timeout_s)
    (workdir / "lua.json").write_text(json.dumps([(m.name, o) for m, o in lua]))
    result = summarize(module, target, tree, session, lua=[(m.name, o) for m, o in lua])
    result.update(baseline_s=round(baseline_s, 1), timeout_s=round(timeout_s, 1),
                  seconds=round(time.perf_counter() - started, 1),
                  commit=(snapshot / REVISION).read_text(), measured_at=time.time())  # fmt: skip
    return result


def run_cosmic_ray(module: str, command: list[str], timeout_s: float, workdir: Path, tree: Path,
                   env: dict[str, str]) -> None:  # fmt: skip
    config = workdir / "config.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{module}"\n'
        f"timeout = {timeout_s:.1f}\n"
        "excluded-modules = []\n"
        f'test-command = "{" ".join(command)}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = {json.dumps(list(EQUIVALENT))}\n"
    )
    session = workdir / "session.sqlite"
    tools = ROOT / ".venv" / "bin"
    for step in (["cosmic-ray", "init", str(config), str(session)],
                 ["cr-filter-operators", str(session), str(config)],
                 ["cr-filter-pragma", str(session)],
                 ["cosmic-ray", "exec", str(config), str(session)]):  # fmt: skip
        subprocess.run([str(tools / step[0]), *step[1:]], cwd=tree, check=True, env=env)


def cosmic_outcomes(module: str, tree: Path, session: Path) -> tuple[list[tuple[str, str]], int]:
    """(mutant, outcome) of a module's cosmic-ray session, and how many are not yet run."""
    if not session.exists():
        return [], 0
    cosmic = ROOT / ".venv" / "bin" / "cosmic-ray"
    dump = subprocess.run([str(cosmic), "dump", str(session)], cwd=tree, check=True,
                          capture_output=True, text=True).stdout  # fmt: skip
    source = (tree / module).read_text().splitlines()
    found, pending = [], 0
    for line in dump.splitlines():
        work, result = json.loads(line)
        if result is None:
            pending += 1
            continue
        outcome = result.get("test_outcome") or result.get("worker_outcome")
        if outcome == "killed" and result.get("output") == "timeout":
            outcome = "timeout"  # cosmic-ray counts a time-out as a kill; here it is apart
        mutation = work["mutations"][0]
        row, column = mutation["start_pos"]
        if outcome == "survived" and _keyword_marker(source[row - 1], column):
            outcome = "equivalent"
        text = source[row - 1].strip()[:80]
        found.append((f"{mutation['operator_name']} line {row}: {text}", outcome))
    return found, pending


def summarize(module: str, target: Target, tree: Path, session: Path,
              lua: list[tuple[str, str]]) -> dict[str, Any]:  # fmt: skip
    """The outcomes of a module's mutants so far; ``partial`` when some are left to run (a run
    cut short, e.g. by a session's time)."""
    python, pending = cosmic_outcomes(module, tree, session)
    outcomes: dict[str, int] = {}
    for _, outcome in (*python, *lua):
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    killed, survived = outcomes.get("killed", 0), outcomes.get("survived", 0)
    lua_outcomes = [o for _, o in lua]
    return {
        "tests": list(target.tests),
        "mutants": len(python) + len(lua),
        "killed": killed,
        "survived": survived,
        "timeouts": outcomes.get("timeout", 0),
        "outcomes": outcomes,
        "mutation_score": round(killed / max(killed + survived, 1), 4),
        "lua": {o: lua_outcomes.count(o) for o in ("killed", "survived", "timeout")},
        "survivors": [name for name, o in (*python, *lua) if o == "survived"],
        "timed_out": [name for name, o in (*python, *lua) if o == "timeout"],
        "partial": pending > 0,
        "not_yet_run": pending,
    }


def collect(scratch: Path) -> dict[str, dict[str, Any]]:
    """Every module's outcomes from the sessions in a run's scratch folder."""
    found = {}
    for module, target in TARGETS.items():
        folder = scratch / module.replace("/", "_")
        lua_file = folder / "lua.json"
        if (folder / "session.sqlite").exists() or lua_file.exists():
            lua = [(n, o) for n, o in json.loads(lua_file.read_text())] if lua_file.exists() else []
            found[module] = summarize(module, target, folder / "tree", folder / "session.sqlite",
                                      lua=lua)  # fmt: skip
    return found


def summary(modules: dict[str, dict[str, Any]], wanted: list[str]) -> dict[str, Any]:
    killed = sum(m["killed"] for m in modules.values())
    survived = sum(m["survived"] for m in modules.values())
    return {
        "tool": "cosmic-ray 8.7.0 (Python), bench.mutation_lua (Lua comparisons)",
        "machine": machine(),
        "target": TARGET_SCORE,
        "mutation_score": round(killed / max(killed + survived, 1), 4),
        "killed": killed,
        "survived": survived,
        "timeouts": sum(m["timeouts"] for m in modules.values()),
        "lua_mutants": sum(sum(m["lua"].values()) for m in modules.values()),
        "complete": sorted(modules) == sorted(wanted)
        and not any(m.get("partial") for m in modules.values()),
        "not_run": [m for m in wanted if m not in modules],
        "modules": modules,
    }


@contextlib.contextmanager
def integration_servers(scratch: Path, modules: list[str]) -> Iterator[dict[str, str]]:
    """One local stack for every mutant whose tests need Kafka or Redis (none otherwise)."""
    if not any(t.startswith("tests/integration") for m in modules for t in TARGETS[m].tests):
        yield {}
        return
    from shared.devstack.servers import servers_for_testing

    with servers_for_testing(scratch / "stack") as servers:
        yield dict(servers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--merge", action="store_true",
                        help="keep the other modules' results already in the JSON")  # fmt: skip
    parser.add_argument(
        "--partial",
        metavar="SCRATCH",
        type=Path,
        help="only summarize the sessions left in a cut-short run's folder",
    )
    args = parser.parse_args()
    if args.partial is not None:
        write_result("mutation", summary(collect(args.partial), list(TARGETS)))
        return
    if shutil.which("cosmic-ray", path=str(ROOT / ".venv" / "bin")) is None:
        sys.exit("cosmic-ray is not installed: run ./scripts/mutation.sh (it installs it)")
    modules: dict[str, dict[str, Any]] = {}
    wanted = list(args.modules)
    if args.merge and (RESULTS / "mutation.json").exists():
        kept = json.loads((RESULTS / "mutation.json").read_text())["modules"]
        modules = {m: r for m, r in kept.items() if m in TARGETS and m not in args.modules}
        wanted = [m for m in TARGETS if m in modules or m in args.modules]
    with (
        tempfile.TemporaryDirectory(prefix="mutation-") as scratch,
        integration_servers(Path(scratch), args.modules) as servers,
    ):
        print(f"scratch folder {scratch} (for --partial)", flush=True)
        # One copy of the tree for the whole run: edits made while it runs measure nothing.
        snapshot = copy_tree(Path(scratch) / "snapshot")
        (snapshot / REVISION).write_text(revision())

        def one(module: str) -> None:
            folder = Path(scratch) / module.replace("/", "_")
            folder.mkdir()
            result = run_module(module, TARGETS[module], folder, snapshot, servers)
            modules[module] = result
            # Written after every module: a run cut short still reports what it measured.
            write_result("mutation", summary(modules, wanted))
            print(f"{module}: {result['mutation_score']:.3f} ({result['killed']}/"
                  f"{result['killed'] + result['survived']}, {result['timeouts']} timeouts)",
                  flush=True)  # fmt: skip

        with ThreadPoolExecutor(max_workers=args.lanes) as pool:
            list(pool.map(one, args.modules))
    result = summary(modules, wanted)
    print(f"overall mutation score {result['mutation_score']:.3f} (target {TARGET_SCORE})")
    if result["mutation_score"] < TARGET_SCORE:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Write deploy/constraints.txt: the exact versions of alignstream's runtime dependencies (the
closure of pyproject's `dependencies`, extras they ask for included), read from this machine's
.venv. bootstrap.sh and both Dockerfiles install with it, so the images run what the tests ran.

    .venv/bin/python scripts/lock.py            # rewrite it after changing a dependency
    .venv/bin/python scripts/lock.py --check    # exit 1 when it differs from the .venv
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "deploy" / "constraints.txt"
HEADER = """\
# The runtime dependencies of alignstream at the versions its tests ran with (scripts/lock.py
# writes it from the .venv; tests/unit/test_lock.py checks it). Used as pip constraints by
# scripts/bootstrap.sh and deploy/docker/Dockerfile*; the generation image keeps the packages
# its vLLM base already has at the base's versions (deploy/docker/image_constraints.py).
"""


def _wanted(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    # The current interpreter's environment, with each extra asked for in turn.
    return any(requirement.marker.evaluate({"extra": e}) for e in extras or {""})


def closure(root: str = "alignstream") -> dict[str, str]:
    """Every installed distribution the root's runtime requirements reach: name -> version."""
    found: dict[str, str] = {}
    todo: list[tuple[str, set[str]]] = [
        (r.name, set(r.extras))
        for r in map(Requirement, metadata.requires(root) or [])
        if r.marker is None  # pyproject's dependencies, not its extras
    ]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        new = key not in found
        found[key] = dist.version
        for requirement in map(Requirement, dist.requires or []):
            if _wanted(requirement, extras) and (new or requirement.extras):
                todo.append((requirement.name, set(requirement.extras)))
    return dict(sorted(found.items()))


def render() -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in closure().items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        same = OUT.is_file() and OUT.read_text() == text
        print("deploy/constraints.txt is current" if same else "deploy/constraints.txt differs")
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {text.count('==')} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())

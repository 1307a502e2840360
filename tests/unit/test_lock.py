"""The lock (deploy/constraints.txt) pins every runtime dependency at the version the tests run
with, and every installer uses it: bootstrap.sh and both Dockerfiles."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.unit.chart import ROOT

LOCK = ROOT / "deploy" / "constraints.txt"


def pins() -> dict[str, str]:
    lines = [line for line in LOCK.read_text().splitlines() if line and line[0] != "#"]
    return {canonicalize_name(n): v for n, _, v in (line.partition("==") for line in lines)}


def test_every_direct_dependency_is_pinned_within_its_range_at_the_tested_version() -> None:
    locked = pins()
    for requirement in map(Requirement, metadata.requires("alignstream") or []):
        if requirement.marker is not None:  # an extra (dev, local, gpu): not shipped
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, requirement.name
        assert requirement.specifier.contains(locked[name], prereleases=True), requirement
    drifted = {name: (version, metadata.version(name)) for name, version in locked.items()
               if metadata.version(name) != version}  # fmt: skip
    assert drifted == {}, "the .venv differs from the lock: run scripts/lock.py"


def test_the_lock_is_what_scripts_lock_writes() -> None:
    run = subprocess.run([sys.executable, "scripts/lock.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_bootstrap_and_both_images_install_with_the_lock() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert '-c deploy/constraints.txt -e ".[dev]"' in bootstrap
    assert "deploy/constraints.txt" in bootstrap.split("stamp=", 1)[1].splitlines()[0]
    cpu = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert "-c deploy/constraints.txt ." in cpu
    gpu = (ROOT / "deploy" / "docker" / "Dockerfile.generation").read_text()
    assert "image_constraints.py deploy/constraints.txt > /tmp/constraints.txt" in gpu
    assert "-c /tmp/constraints.txt ." in gpu


def test_an_image_keeps_the_versions_it_has_and_takes_the_rest_from_the_lock(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "constraints.txt"
    lock.write_text("# a lock\nnumpy==0.0.1\nnot-in-this-image==1.2.3\n")
    script = ROOT / "deploy" / "docker" / "image_constraints.py"
    run = subprocess.run([sys.executable, str(script), str(lock)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    # This environment plays the image: numpy stays at its version, the rest is the lock's.
    assert run.stdout.splitlines() == [f"numpy=={metadata.version('numpy')}",
                                       "not-in-this-image==1.2.3"]  # fmt: skip

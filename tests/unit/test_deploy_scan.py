"""The policy scan CI runs: checkov over every rendered value set, the Dockerfiles and the
compose files finds nothing the chart does not skip with a written reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.chart import ROOT, VALUE_SETS, set_id

CHECKOV = ROOT / ".venv" / "scan" / "bin" / "checkov"


@pytest.mark.timeout(600)
def test_the_policy_scan_finds_no_failed_check(tmp_path: Path) -> None:
    if not CHECKOV.exists():
        pytest.fail("checkov is missing: ./scripts/bootstrap.sh installs it into .venv/scan")
    out = tmp_path / "deploy_scan.json"
    run = subprocess.run(
        [sys.executable, "scripts/deploy_scan.py", "--checkov", str(CHECKOV), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["failed"] == [], run.stdout[-4000:]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert result["value_sets"] == [set_id(files) for files in VALUE_SETS]
    assert result["checks_failed"] == 0
    assert result["by_framework"]["kubernetes"]["passed"] > 1000
    assert result["by_framework"]["dockerfile"]["passed"] > 0
    assert all(skip["reason"] for skip in result["skips"])

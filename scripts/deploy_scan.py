"""Scan the deployment with checkov: the chart rendered with every bundled value set
(Kubernetes checks), the Dockerfiles (Dockerfile checks) and docker-compose.yml with its env
example (secrets checks; checkov has no compose policies, tests/unit/test_deploy.py checks
compose). Writes bench/results/deploy_scan.json; exit 1 on a failed check or on a skip without
its written reason.

    scripts/deploy_scan.sh            # what CI runs (via tests/unit/test_deploy_scan.py)
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from tests.unit.chart import VALUE_SETS, render, set_id  # noqa: E402

COMPOSE_FILES = ("docker-compose.yml", ".env.example")


def render_sets(into: Path) -> list[str]:
    names = []
    for files in VALUE_SETS:
        name = set_id(files)
        folder = into / "kubernetes" / name
        folder.mkdir(parents=True)
        for i, doc in enumerate(render(None, *files)):
            (folder / f"{i:02d}-{doc['kind']}.yaml").write_text(yaml.safe_dump(doc))
        names.append(name)
    return names


def checkov(binary: str, framework: str, target: Path, *extra: str) -> list[dict[str, Any]]:
    """checkov's JSON reports (one per framework it ran)."""
    run = subprocess.run(
        [binary, "-d", str(target), "--framework", framework, "-o", "json",
         "--compact", "--skip-download", *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if not run.stdout.strip():
        raise SystemExit(f"checkov gave no report ({framework}): {run.stderr[-2000:]}")
    parsed = json.loads(run.stdout)
    # A clean report of some frameworks (secrets) is its summary alone.
    return parsed if isinstance(parsed, list) else [parsed]


def summarize(reports: dict[str, list[dict[str, Any]]], root: Path) -> dict[str, Any]:
    passed = failed = skipped = 0
    failures: list[dict[str, str]] = []
    reasons: Counter[tuple[str, str]] = Counter()
    unexplained: list[dict[str, str]] = []
    per_framework: dict[str, dict[str, int]] = {}
    for framework, framework_reports in reports.items():
        counts = Counter[str]()
        for report in framework_reports:
            results = report.get("results", {})
            counts["resources"] += report.get("summary", report).get("resource_count", 0)
            counts["passed"] += len(results.get("passed_checks", []))
            counts["failed"] += len(results.get("failed_checks", []))
            counts["skipped"] += len(results.get("skipped_checks", []))
            for check in results.get("failed_checks", []):
                failures.append({"check": check["check_id"], "name": check["check_name"],
                                 "resource": check["resource"],
                                 "file": str(Path(check["file_abs_path"]).relative_to(root))
                                 if check["file_abs_path"].startswith(str(root))
                                 else check["file_path"]})  # fmt: skip
            for check in results.get("skipped_checks", []):
                reason = (check.get("check_result") or {}).get("suppress_comment") or ""
                if reason.strip() and reason.strip() != "No comment provided":
                    reasons[(check["check_id"], reason.strip())] += 1
                else:
                    unexplained.append({"check": check["check_id"], "resource": check["resource"]})
        per_framework[framework] = dict(counts)
        passed += counts["passed"]
        failed += counts["failed"]
        skipped += counts["skipped"]
    return {
        "checks_passed": passed,
        "checks_failed": failed + len(unexplained),
        "checks_skipped_with_reason": skipped - len(unexplained),
        "by_framework": per_framework,
        "failed": failures + [{**u, "name": "skipped without a reason"} for u in unexplained],
        "skips": [
            {"check": check, "reason": reason, "resources": count}
            for (check, reason), count in sorted(reasons.items())
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkov", default=str(ROOT / ".venv" / "scan" / "bin" / "checkov"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "deploy_scan.json")
    args = parser.parse_args()
    version = subprocess.run([args.checkov, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="deploy-scan-") as tmp:
        work = Path(tmp)
        value_sets = render_sets(work)
        (work / "dockerfile").mkdir()
        for dockerfile in sorted((ROOT / "deploy" / "docker").glob("Dockerfile*")):
            shutil.copy(dockerfile, work / "dockerfile" / dockerfile.name)
        (work / "compose").mkdir()
        for name in COMPOSE_FILES:
            shutil.copy(ROOT / name, work / "compose" / name)
        reports = {
            "kubernetes": checkov(args.checkov, "kubernetes", work / "kubernetes"),
            "dockerfile": checkov(args.checkov, "dockerfile", work / "dockerfile"),
            # Secrets are reported as findings only (nothing "passes"); every file is read.
            "secrets": checkov(
                args.checkov, "secrets", work / "compose", "--enable-secret-scan-all-files"
            ),
        }
        summary = summarize(reports, work)
    result = {
        "value_sets": value_sets,
        **summary,
        "scanner": f"checkov {version}",
        "scanned": {
            "kubernetes": "the chart rendered with each value set",
            "dockerfile": "deploy/docker/Dockerfile*",
            "secrets": ", ".join(COMPOSE_FILES),
        },
        "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(value_sets)} value sets: {result['checks_passed']} passed, "
          f"{result['checks_failed']} failed, {result['checks_skipped_with_reason']} skipped "
          f"with a reason -> {args.out}")  # fmt: skip
    for failure in result["failed"]:
        print(f"FAILED {failure['check']} {failure['name']}: {failure['resource']} "
              f"({failure.get('file', '')})")  # fmt: skip
    return 1 if result["checks_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# The deployment policy scan (checkov over every rendered value set, the Dockerfiles and the
# compose files) -> bench/results/deploy_scan.json; exit 1 on a failed check. Needs
# ./scripts/bootstrap.sh (it installs checkov into .venv/scan).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/scan/bin/checkov ] || { echo "run ./scripts/bootstrap.sh first (.venv/scan)" >&2; exit 2; }
exec .venv/bin/python scripts/deploy_scan.py --checkov .venv/scan/bin/checkov "$@"

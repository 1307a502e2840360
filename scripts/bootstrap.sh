#!/usr/bin/env bash
# Create .venv and install alignstream with its dev and local-stack extras. Idempotent: does
# nothing when pyproject.toml has not changed since the last successful run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.bootstrap-$(sha256sum pyproject.toml | cut -c1-16)
if [ -f "$stamp" ]; then
  exit 0
fi
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "alignstream needs Python >= 3.11"'
[ -d .venv ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
# redis-om depends on types-redis: stubs for redis 4 that would shadow the inline types of the
# redis>=5 client we use. They are obsolete upstream; remove them so mypy sees the real types.
.venv/bin/python -m pip uninstall -q -y types-redis
rm -f .venv/.bootstrap-*
touch "$stamp"

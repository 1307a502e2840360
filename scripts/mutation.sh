#!/usr/bin/env bash
# Mutation testing of the pure cores, the gateway and the second lines of defence (cosmic-ray
# for Python, bench/mutation_lua.py for the Lua scripts' comparisons); writes
# bench/results/mutation.json with mutation_score per module and overall. About 75 minutes on
# 2 cores. Exits non-zero when the overall score is under the target (0.90).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/python -c 'import cosmic_ray' 2>/dev/null || .venv/bin/python -m pip install -q cosmic-ray==8.7.0
exec .venv/bin/python -m bench.mutation "$@"

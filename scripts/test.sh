#!/usr/bin/env bash
# The test command (README.md): set up (idempotent), lint for Python 3.8, run the test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k tracker -x
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
# shellcheck source=/dev/null
source "$ROOT/build/env.sh"
cd "$ROOT"

echo "[test] ruff (target Python 3.8)"
ruff check .
echo "[test] vermin (minimum Python version 3.8)"
vermin --quiet --no-tips --violations --target=3.8- --exclude-regex '^(\.venv|build)/' asymtrack_ros launch scripts/asymtrack_node setup.py

echo "[test] pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "[test] pytest collected no tests"
  rc=0
fi
exit $rc

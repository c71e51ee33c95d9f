#!/usr/bin/env bash
# The whole test suite: lint, types, import contracts, then unit and integration tests (pytest).
# pytest's exit code 5 ("no tests collected") is not a failure of the suite. Skipped tests are
# listed with their reason (-rs): e.g. the container tier (integration-tests/containers/, nodes
# in docker containers on a private dockerd it starts itself) where dockerd cannot run.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bin=.venv/bin
status=0
echo "== ruff";         $bin/ruff check . || status=1
echo "== mypy";         $bin/mypy || status=1
echo "== import-linter"; $bin/lint-imports --no-cache || status=1
echo "== pytest"
$bin/python -m pytest -rs "$@"
rc=$?
[ $rc -eq 5 ] && { echo "pytest collected no tests"; rc=0; }
[ $rc -ne 0 ] && status=$rc
exit $status

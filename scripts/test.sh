#!/usr/bin/env bash
# Set up, then run the linters, the type checker and the whole test suite (unit, integration, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
# Three workers on two cores, one test file each at a time (a module's deployment and repositories stay in one
# process): the suite waits on restic, S3, the broker and databases more than it computes (two workers kept the cores
# ~65% busy: 11.9 minutes of pytest against 8.4 with three, 2026-11-27).
# The deployments' catalogs are SQLite files (REPLICA_TEST_CATALOG=postgresql puts them all on PostgreSQL); the
# daemon's e2e tests also run on PostgreSQL, in this same run (tests/e2e/test_daemon_on_postgresql.py).
exec .venv/bin/python -m pytest -n "${REPLICA_TEST_WORKERS:-3}" --dist loadfile "$@"

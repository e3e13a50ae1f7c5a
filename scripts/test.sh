#!/usr/bin/env bash
# Set up, then run the linters, the type checker and the whole test suite (unit, integration, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

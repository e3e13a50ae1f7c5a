#!/usr/bin/env bash
# Set up, then run replica's sample job on embedded defaults: a local SeaweedFS S3 endpoint, a SQLite catalog
# and a sample SQLite store; init, backup, copy, verify both destinations, then print the status table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/replica demo "$@"

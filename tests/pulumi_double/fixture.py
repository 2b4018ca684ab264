"""`pulumi_double` fixture: the double on PATH, a scratch copy of the project (stack files are
written by `stack init` and `config set`), a private PULUMI_HOME and blob root, and a small real
rotation archive (the engine hashes every FileArchive when the program registers it).

The double speaks the current CLI (events over gRPC). A test marked `cli_versions` runs once per
version in backend.VERSIONS (tests/conftest.py parametrizes `pulumi_cli_version`), the older one
reading events from a file; see docs/ci.md for which tests carry the marker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fake_rds_ca import write_good_bundle
from tests.pulumi_double.backend import CURRENT_VERSION

DOUBLE_DIR = Path(__file__).resolve().parent
ROOT = DOUBLE_DIR.parents[1]
LINKED = ("__main__.py", "Pulumi.yaml", "components", "bootstrap")
# Not the checkout's certs/ (whatever this clone fetched): a generated bundle named like the RDS
# one, where `ca-bundle fetch` puts it, so every stack's verify-full default finds a usable bundle.
CA_BUNDLE = "certs/rds-global-bundle.pem"
COPIED = ("Pulumi.dev.yaml", "Pulumi.prod.yaml", "policy")


@dataclass
class Double:
    project: Path
    tmp: Path

    @property
    def log(self) -> Path:
        return self.tmp / "calls.jsonl"

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def commands(self) -> list[list[str]]:
        """argv of every call, without the flags the SDK adds to all of them."""
        return [[a for a in c["argv"] if a != "--non-interactive"] for c in self.calls()]

    def ops(self, op: str) -> list[dict[str, Any]]:
        return [c for c in self.calls() if op in c["argv"][:2]]

    def file_backend(self, name: str = "state") -> str:
        return f"file://{self.tmp / name}"

    def checkpoint(self, stack: str = "dev", backend: str = "state") -> dict[str, Any]:
        path = self.tmp / backend / ".pulumi" / "stacks" / "pghome" / f"{stack}.json"
        return dict(json.loads(path.read_text()))

    def resources(self, stack: str = "dev", backend: str = "state") -> list[dict[str, Any]]:
        return list(self.checkpoint(stack, backend)["checkpoint"].get("latest", {}).get("resources") or [])

    def lock(self, stack: str = "dev", backend: str = "state") -> Path:
        d = self.tmp / backend / ".pulumi" / "locks" / "organization" / "pghome" / stack
        d.mkdir(parents=True, exist_ok=True)
        lock = d / "0b5e7c1d-lock.json"
        lock.write_text(json.dumps({"pid": 4242, "username": "ci", "hostname": "runner-7", "timestamp": "2026-11-23T10:00:00Z"}))
        return lock

    def cloud(self, overlay: dict[str, Any]) -> None:
        """What the cloud looks like now (console edits); seen only by refresh."""
        path = self.tmp / "cloud.json"
        path.write_text(json.dumps(overlay))
        os.environ["PULUMI_DOUBLE_CLOUD"] = str(path)


@pytest.fixture(scope="session")
def pulumi_double_server() -> Iterator[str]:
    """One fork server per test session (tests/pulumi_double/forkserver.py): the double's calls
    fork from a process that has the SDK loaded. PULUMI_DOUBLE_FORK=0 runs each call cold."""
    if os.environ.get("PULUMI_DOUBLE_FORK", "1") == "0":
        yield ""
        return
    with tempfile.TemporaryDirectory(prefix="pulumi-double-") as tmp:
        path = str(Path(tmp) / "fork.sock")
        server = subprocess.Popen([sys.executable, str(DOUBLE_DIR / "forkserver.py"), "--serve", path], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready", "the double's fork server did not start"
            yield path
        finally:
            server.kill()
            server.wait()


@pytest.fixture
def pulumi_cli_version(request: pytest.FixtureRequest) -> str:
    """The CLI version the double reports and speaks (backend.VERSIONS)."""
    return str(getattr(request, "param", CURRENT_VERSION))


def rotation_archive(directory: Path) -> Path:
    """A small, real rotation-function archive (the program's FileArchive must exist and hash)."""
    path = directory / "rotation-function.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("rotation_function/handler.py", date_time=(2026, 1, 1, 0, 0, 0))
        zf.writestr(info, "def handler(event, context):\n    raise NotImplementedError('test archive')\n")
    return path


@pytest.fixture(scope="session")
def kms_endpoint() -> Iterator[str]:
    """A moto server for the CLI's KMS calls (the double runs in another process than the test, so
    moto's in-process mock cannot serve it): its URL, for AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def pulumi_double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pulumi_double_server: str, pulumi_cli_version: str) -> Iterator[Double]:
    project = tmp_path / "project"
    project.mkdir()
    for name in LINKED:
        if (ROOT / name).exists():
            (project / name).symlink_to(ROOT / name)
    for name in COPIED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("venv", "__pycache__"))
        else:
            shutil.copy(ROOT / name, project / name)
    write_good_bundle(project / CA_BUNDLE)
    monkeypatch.setenv("PATH", f"{DOUBLE_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PULUMI_DOUBLE_PYTHON", sys.executable)
    monkeypatch.setenv("PULUMI_DOUBLE_SERVER", pulumi_double_server)
    monkeypatch.setenv("PULUMI_DOUBLE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("PULUMI_DOUBLE_BLOB_ROOT", str(tmp_path / "blobs"))
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    monkeypatch.setenv("PULUMI_DOUBLE_VERSION", pulumi_cli_version)
    monkeypatch.setenv("PGHOME_ROTATION_ARCHIVE", str(rotation_archive(tmp_path)))
    for var in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ACCESS_TOKEN",
                "PULUMI_DOUBLE_FAIL_ON", "PULUMI_DOUBLE_FAIL_MESSAGE", "PULUMI_DOUBLE_CLOUD", "PULUMI_DOUBLE_STEP_SECONDS",
                "PULUMI_SKIP_CONFIRMATIONS", "PGPASSWORD", "PGOPTIONS"):
        monkeypatch.delenv(var, raising=False)
    yield Double(project, tmp_path)

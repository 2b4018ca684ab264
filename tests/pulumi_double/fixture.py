"""`pulumi_double` fixture: the double on PATH, a scratch copy of the project (stack files are
written by `stack init` and `config set`), and a private PULUMI_HOME and blob root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DOUBLE_DIR = Path(__file__).resolve().parent
ROOT = DOUBLE_DIR.parents[1]
LINKED = ("__main__.py", "Pulumi.yaml", "components", "bootstrap", "certs")
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
def pulumi_double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pulumi_double_server: str) -> Iterator[Double]:
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
    monkeypatch.setenv("PATH", f"{DOUBLE_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PULUMI_DOUBLE_PYTHON", sys.executable)
    monkeypatch.setenv("PULUMI_DOUBLE_SERVER", pulumi_double_server)
    monkeypatch.setenv("PULUMI_DOUBLE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("PULUMI_DOUBLE_BLOB_ROOT", str(tmp_path / "blobs"))
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    for var in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ACCESS_TOKEN",
                "PULUMI_DOUBLE_FAIL_ON", "PULUMI_DOUBLE_FAIL_MESSAGE", "PULUMI_DOUBLE_CLOUD", "PGPASSWORD", "PGOPTIONS"):
        monkeypatch.delenv(var, raising=False)
    yield Double(project, tmp_path)

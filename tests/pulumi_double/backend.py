"""The double's backend: where stacks live, in the layout of the CLI's DIY ("file", "s3") backend.

Layout under the backend root (pkg/backend/diy in pulumi/pulumi):
  .pulumi/meta.yaml                                        version: 1 (project-scoped stacks)
  .pulumi/stacks/<project>/<stack>.json                    {"version": 3, "checkpoint": {...}}
  .pulumi/locks/organization/<project>/<stack>/<id>.json   one file per lock holder
  .pulumi/history/<project>/<stack>/<stack>-<ns>.history.json

`s3://bucket/prefix` and `https://api.pulumi.com` are mapped onto directories under
$PULUMI_DOUBLE_BLOB_ROOT, after the checks the real backends make (AWS credentials, an access token).
Secrets are "encrypted" reversibly (base64) behind a real passphrase check: the point is the
contract (which env is needed, which error without it), not the cryptography.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets as pysecrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"
# The CLI versions the double speaks as. `events`: how engine events reach the SDK, which serves gRPC
# to versions after 3.205.0 and reads a file from the others (pulumi/automation/_stack.py
# `_setup_event_log`; events.py). `exit_codes`: since 3.245.0 the CLI exits with a code per kind of
# error (pkg/cmd/pulumi/cmd/exit_codes.go `ExitCodeFor`); before, every error exited 255.
# PULUMI_DOUBLE_VERSION selects one; docs/ci.md says how to add a version.
@dataclass(frozen=True)
class CliVersion:
    events: str
    exit_codes: bool


CURRENT_VERSION = "3.272.0"
VERSIONS = {"3.272.0": CliVersion("grpc", True), "3.205.0": CliVersion("file", False)}
# exit_codes.go: bail (an engine failure already reported) and unclassified errors 1, bad invocation 2,
# auth 3, stack not found 6, --expect-no-changes 7, a declined or cancelled confirmation 8.
EXIT_CODES = {"error": 1, "bail": 1, "config": 2, "auth": 3, "stack-not-found": 6, "no-changes": 7, "cancelled": 8}
NO_LOGIN = "PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions"
NO_PASSPHRASE = ("getting secrets manager: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or "
                 "PULUMI_CONFIG_PASSPHRASE_FILE environment variables")


class CliError(Exception):
    """Printed as `error: <message>` on stderr; the exit status follows `kind` (EXIT_CODES)."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


def exit_code(kind: str, env: dict[str, str]) -> int:
    version = VERSIONS.get(env.get("PULUMI_DOUBLE_VERSION") or CURRENT_VERSION)
    return EXIT_CODES[kind] if version is None or version.exit_codes else 255


def cli_version(env: dict[str, str]) -> str:
    version = env.get("PULUMI_DOUBLE_VERSION") or CURRENT_VERSION
    if version not in VERSIONS:
        raise CliError(f"the pulumi double does not speak version {version!r}; it speaks {', '.join(sorted(VERSIONS))}")
    return version


def pulumi_home(env: dict[str, str]) -> Path:
    return Path(env.get("PULUMI_HOME") or Path.home() / ".pulumi")


def project_doc(cwd: Path) -> dict[str, Any]:
    path = cwd / "Pulumi.yaml"
    if not path.is_file():
        raise CliError(f"no Pulumi.yaml project file found (searching upwards from {cwd})")
    return dict(yaml.safe_load(path.read_text()) or {})


def backend_url(cwd: Path, env: dict[str, str]) -> str:
    """PULUMI_BACKEND_URL, then `backend.url` in Pulumi.yaml, then the current `pulumi login`."""
    if env.get("PULUMI_BACKEND_URL"):
        return env["PULUMI_BACKEND_URL"]
    backend = project_doc(cwd).get("backend") or {}
    if isinstance(backend, dict) and backend.get("url"):
        return str(backend["url"])
    creds = pulumi_home(env) / "credentials.json"
    if creds.is_file():
        current = json.loads(creds.read_text()).get("current")
        if current:
            return str(current)
    raise CliError(NO_LOGIN, "auth")


def backend_root(url: str, env: dict[str, str]) -> Path:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = url[len("file://"):]
        return Path(os.path.expanduser(path)) if path else Path.home()
    blob = env.get("PULUMI_DOUBLE_BLOB_ROOT")
    if parsed.scheme in ("s3", "gs", "azblob"):
        if parsed.scheme == "s3" and not any(env.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI")):
            raise CliError(f"unable to open bucket {url}: blob (code=Unknown): NoCredentialProviders: no valid providers in chain")
        if not blob:
            raise CliError(f"the pulumi double has no PULUMI_DOUBLE_BLOB_ROOT to stand in for {url}")
        return Path(blob) / parsed.scheme / parsed.netloc / parsed.path.lstrip("/")
    if parsed.scheme in ("https", "http"):
        if not env.get("PULUMI_ACCESS_TOKEN"):
            raise CliError(NO_LOGIN, "auth")
        if not blob:
            raise CliError(f"the pulumi double has no PULUMI_DOUBLE_BLOB_ROOT to stand in for {url}")
        return Path(blob) / "cloud" / parsed.netloc
    raise CliError(f"unknown backend URL scheme in {url!r}")


def stack_name(name: str) -> str:
    """tokens.ParseStackName (sdk/go/common/tokens/stack_name.go)."""
    if not name:
        raise CliError("a stack name may not be empty")
    if len(name) > 100:
        raise CliError("a stack name cannot exceed 100 characters")
    bad = next((i for i, c in enumerate(name) if not (c.isascii() and (c.isalnum() or c in "-_."))), -1)
    if bad >= 0:
        raise CliError("a stack name may only contain alphanumeric, hyphens, underscores, or periods: "
                       f"invalid character {name[bad]!r} at position {bad}")
    return name


@dataclass(frozen=True)
class StackRef:
    org: str
    project: str
    name: str

    @property
    def fq(self) -> str:
        return f"{self.org}/{self.project}/{self.name}"


def parse_ref(text: str, project: str, url: str) -> StackRef:
    """A stack reference as the backend reads it. DIY backends (pkg/backend/diy/store.go,
    `projectReferenceStore.ParseReference`): `stack`, `org/stack` or `org/project/stack`, the org
    always `organization`; the service: `stack`, `org/stack`, `org/project/stack`."""
    if not text:
        raise CliError("stack name must not be empty")
    parts = text.split("/")
    org, name, proj = "", parts[-1] if len(parts) <= 3 else "", project
    if len(parts) == 2:
        org = parts[0]
    elif len(parts) == 3:
        org, proj = parts[0], parts[1]
    if url.startswith("http"):
        return StackRef(org or "organization", proj, name)
    if (org or "organization") != "organization":
        raise CliError("organization name must be 'organization'")
    return StackRef("organization", proj, stack_name(name))


class Backend:
    def __init__(self, cwd: Path, env: dict[str, str]):
        self.cwd, self.env = cwd, env
        self.project = str(project_doc(cwd)["name"])
        self.url = backend_url(cwd, env)
        self.root = backend_root(self.url, env)
        (self.root / ".pulumi").mkdir(parents=True, exist_ok=True)
        meta = self.root / ".pulumi" / "meta.yaml"
        if not meta.exists():
            meta.write_text("version: 1\n")

    def ref(self, text: str) -> StackRef:
        ref = parse_ref(text, self.project, self.url)
        if ref.project != self.project:
            raise CliError(f"provided project name \"{ref.project}\" doesn't match Pulumi.yaml")
        return ref

    # files -----------------------------------------------------------------------------------
    def checkpoint_path(self, ref: StackRef) -> Path:
        return self.root / ".pulumi" / "stacks" / ref.project / f"{ref.name}.json"

    def lock_dir(self, ref: StackRef) -> Path:
        return self.root / ".pulumi" / "locks" / "organization" / ref.project / ref.name

    def history_dir(self, ref: StackRef) -> Path:
        return self.root / ".pulumi" / "history" / ref.project / ref.name

    def exists(self, ref: StackRef) -> bool:
        return self.checkpoint_path(ref).is_file()

    def require(self, ref: StackRef, given: str) -> None:
        if not self.exists(ref):
            raise CliError(f"no stack named '{given}' found", "stack-not-found")

    def stacks(self) -> list[StackRef]:
        base = self.root / ".pulumi" / "stacks" / self.project
        return [StackRef("organization", self.project, p.stem) for p in sorted(base.glob("*.json"))] if base.is_dir() else []

    def read_deployment(self, ref: StackRef) -> dict[str, Any]:
        doc = json.loads(self.checkpoint_path(ref).read_text())
        return dict(doc["checkpoint"].get("latest") or {})

    def write_deployment(self, ref: StackRef, deployment: dict[str, Any]) -> None:
        path = self.checkpoint_path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"version": 3, "checkpoint": {"stack": ref.fq, "latest": deployment}}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=4))
        tmp.replace(path)

    # locks -----------------------------------------------------------------------------------
    def check_unlocked(self, ref: StackRef) -> None:
        locks = sorted(self.lock_dir(ref).glob("*.json")) if self.lock_dir(ref).is_dir() else []
        if locks:
            lines = [f"the stack is currently locked by {len(locks)} lock(s). Either wait for the other process(es) to end "
                     "or delete the lock file with `pulumi cancel`."]
            for lock in locks:
                info = json.loads(lock.read_text() or "{}")
                lines.append(f"  {self.url.rstrip('/')}/.pulumi/locks/organization/{ref.project}/{ref.name}/{lock.name}: created by "
                             f"{info.get('username', '?')}@{info.get('hostname', '?')} (pid {info.get('pid', 0)}) at {info.get('timestamp', '?')}")
            raise CliError("\n".join(lines))

    def lock(self, ref: StackRef) -> Path:
        self.check_unlocked(ref)
        path = self.lock_dir(ref) / f"{pysecrets.token_hex(16)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pid": os.getpid(), "username": "double", "hostname": "localhost", "timestamp": "now"}))
        return path

    def cancel(self, ref: StackRef) -> None:
        for lock in self.lock_dir(ref).glob("*.json") if self.lock_dir(ref).is_dir() else []:
            lock.unlink()

    # history ---------------------------------------------------------------------------------
    def add_history(self, ref: StackRef, entry: dict[str, Any]) -> None:
        d = self.history_dir(ref)
        d.mkdir(parents=True, exist_ok=True)
        n = len(list(d.glob("*.history.json"))) + 1
        (d / f"{ref.name}-{n:06d}.history.json").write_text(json.dumps({**entry, "version": n}))

    def history(self, ref: StackRef) -> list[dict[str, Any]]:
        d = self.history_dir(ref)
        files = sorted(d.glob("*.history.json"), reverse=True) if d.is_dir() else []
        return [json.loads(f.read_text()) for f in files]


# --------------------------------------------------------------------------------------------
# Stack settings file and secrets
# --------------------------------------------------------------------------------------------


class Secrets:
    """The stack's secrets provider as recorded in its settings file (passphrase or a KMS URL)."""

    def __init__(self, settings: dict[str, Any], env: dict[str, str]):
        self.provider = str(settings.get("secretsprovider") or "passphrase")
        self.salt = str(settings.get("encryptionsalt") or "")
        self.encrypted_key = str(settings.get("encryptedkey") or "")
        self.env = env
        self._key: bytes | None = None

    def _passphrase(self) -> str:
        if "PULUMI_CONFIG_PASSPHRASE" in self.env:
            return self.env["PULUMI_CONFIG_PASSPHRASE"]
        if self.env.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
            return Path(self.env["PULUMI_CONFIG_PASSPHRASE_FILE"]).read_text()
        raise CliError(NO_PASSPHRASE)

    def check(self) -> None:
        if self.provider.startswith("awskms://"):
            if self._key is None:  # the CLI decrypts the data key once per command
                from tests.pulumi_double import kms

                self._key = kms.data_key(self.provider, self.encrypted_key, self.env)
            return
        if self.provider != "passphrase":
            raise CliError(f"the pulumi double speaks the passphrase and awskms:// secrets providers, not {self.provider!r}")
        phrase = self._passphrase()
        if self.salt:
            salt = self.salt.split(":")[1]
            if self.salt != salt_for(phrase, salt):
                raise CliError("incorrect passphrase")

    def encrypt(self, plaintext: str) -> str:
        self.check()
        return "v1:" + base64.b64encode(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        self.check()
        try:
            return base64.b64decode(ciphertext.split(":", 1)[1]).decode()
        except (IndexError, ValueError):
            raise CliError("failed to decrypt: invalid ciphertext") from None


def salt_for(passphrase: str, salt: str | None = None) -> str:
    salt = salt or base64.b64encode(pysecrets.token_bytes(8)).decode()
    return f"v1:{salt}:v1:double:{hashlib.sha256((salt + passphrase).encode()).hexdigest()[:24]}"


def settings_path(cwd: Path, ref: StackRef, config_file: str | None) -> Path:
    return Path(config_file) if config_file else cwd / f"Pulumi.{ref.name}.yaml"


def read_settings(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CliError(f"could not read {path.name}: {exc}") from None
    if not isinstance(doc, dict):
        raise CliError(f"could not read {path.name}: not a mapping")
    return doc


def write_settings(path: Path, doc: dict[str, Any]) -> None:
    """Save the settings the way the CLI does (pkg/workspace/project.go saves through a yaml.v3
    node of the file as read): the file's own text, comments and key order kept, only the keys that
    changed rewritten; a new file is written plainly."""
    from ruamel.yaml import YAML

    rt = YAML()  # round-trip mode: keeps comments, order and quoting of what it does not touch
    rt.width = 4096
    rt.indent(mapping=2, sequence=4, offset=2)  # the stack files' own style (`  key:` then `    - item`)
    current = rt.load(path.read_text(encoding="utf-8")) if path.is_file() else None
    if not isinstance(current, dict):
        path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
        return
    _merge(current, doc, top=True)
    with path.open("w", encoding="utf-8") as f:
        rt.dump(current, f)


def _merge(node: Any, want: dict[str, Any], top: bool = False) -> None:
    for key in [k for k in node if k not in want]:
        del node[key]
    new_at = 0
    for key, value in want.items():
        if isinstance(value, dict) and isinstance(node.get(key), dict):
            _merge(node[key], value)
        elif key in node:
            if node[key] != value:
                node[key] = value
        elif top:  # the provider's keys (secretsprovider, encryptedkey, encryptionsalt) go first, as ProjectStack orders them
            node.insert(new_at, key, value)
            new_at += 1
        else:
            node[key] = value

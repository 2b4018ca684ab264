"""Reaching the Pulumi CLI: which backend, which secrets provider, selecting (or, for a first deploy
only, creating) the stack, and turning CLI failures into one sentence.

Backend precedence is the CLI's own: `--backend`, then PULUMI_BACKEND_URL, then `backend.url` in
Pulumi.yaml, then the current `pulumi login` (PULUMI_HOME/credentials.json). Only when none is
configured do we use the local file backend `file://<project>/.pulumi-state` (gitignored).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from config.stack_file import PROJECT_DIR, InputError, StackFile, load_strict_yaml

INSTALL_HINT = "curl -fsSL https://get.pulumi.com | sh"
CLI_MISSING = f"the Pulumi CLI is not installed (no `pulumi` on PATH); install it with `{INSTALL_HINT}` and re-run"
BACKEND_RE = re.compile(r"^(file|s3|azblob|gs|https?)://")
PROVIDER_RE = re.compile(r"^(passphrase|(awskms|azurekeyvault|gcpkms|hashivault)://.+)$")


class DeployError(RuntimeError):
    """One sentence for the user; exit status 1, no traceback."""


class CliMissingError(DeployError):
    def __init__(self) -> None:
        super().__init__(CLI_MISSING)


@dataclass(frozen=True)
class Backend:
    url: str
    source: str  # where it came from, for messages
    env: dict[str, str]  # what to add to the CLI's environment (only when we chose the URL)


def resolve_backend(flag: str | None, environ: Mapping[str, str], project_dir: Path = PROJECT_DIR) -> Backend:
    if flag:
        if not BACKEND_RE.match(flag):
            raise InputError(f"--backend {flag!r} is not a backend URL; use file://<dir>, s3://<bucket>[/prefix] or https://api.pulumi.com")
        return Backend(flag, "--backend", {"PULUMI_BACKEND_URL": flag})
    if environ.get("PULUMI_BACKEND_URL"):
        return Backend(environ["PULUMI_BACKEND_URL"], "PULUMI_BACKEND_URL", {})
    project = load_strict_yaml(project_dir / "Pulumi.yaml") or {}
    url = (project.get("backend") or {}).get("url") if isinstance(project.get("backend"), dict) else None
    if url:
        return Backend(str(url), "backend.url in Pulumi.yaml", {})
    creds = Path(environ.get("PULUMI_HOME") or Path.home() / ".pulumi") / "credentials.json"
    if creds.is_file():
        try:
            current = json.loads(creds.read_text()).get("current")
        except ValueError:
            current = None
        if current:
            return Backend(str(current), "pulumi login", {})
    default = f"file://{project_dir / '.pulumi-state'}"  # created by the first `stack init`, not before (Workspace.create)
    return Backend(default, "default (no backend configured)", {"PULUMI_BACKEND_URL": default})


def check_secrets(sf: StackFile, provider_flag: str | None, environ: Mapping[str, str]) -> str | None:
    """The secrets provider to hand `stack init` (None: the stack file already records one).
    A passphrase is needed only for passphrase stacks; an empty one is valid (as for the CLI)."""
    if provider_flag and not PROVIDER_RE.match(provider_flag):
        raise InputError(f"--secrets-provider {provider_flag!r} is not supported; use passphrase or awskms://alias/<name>?region=<region>")
    provider = sf.secrets_provider or provider_flag or "passphrase"
    if provider == "passphrase" and "PULUMI_CONFIG_PASSPHRASE" not in environ and not environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        raise DeployError(f"stack file {sf.path.name} uses the passphrase secrets provider and PULUMI_CONFIG_PASSPHRASE is not set; "
                          "export it (or PULUMI_CONFIG_PASSPHRASE_FILE), or create the stack with --secrets-provider awskms://...")
    return None if sf.secrets_provider else provider


class StackLike(Protocol):
    name: str

    def up(self, **kw: Any) -> Any: ...
    def preview(self, **kw: Any) -> Any: ...
    def refresh(self, **kw: Any) -> Any: ...
    def preview_refresh(self, **kw: Any) -> Any: ...
    def destroy(self, **kw: Any) -> Any: ...
    def preview_destroy(self, **kw: Any) -> Any: ...
    def outputs(self) -> Mapping[str, Any]: ...
    def get_all_config(self) -> Mapping[str, Any]: ...
    def export_stack(self) -> Any: ...
    def import_stack(self, state: Any) -> None: ...


class Workspace:
    """The Automation API over the project directory. `open` selects; `create` is for a first deploy."""

    def __init__(self, stack: str, backend: Backend, secrets_provider: str | None, project_dir: Path = PROJECT_DIR):
        self.stack, self.backend, self.secrets_provider, self.project_dir = stack, backend, secrets_provider, project_dir

    def _opts(self, extra_env: Mapping[str, str]) -> Any:
        from pulumi import automation as auto

        env = {"PULUMI_SKIP_UPDATE_CHECK": "true", **self.backend.env, **extra_env}
        return auto.LocalWorkspaceOptions(work_dir=str(self.project_dir), env_vars=env, secrets_provider=self.secrets_provider)

    def _missing_local_root(self) -> Path | None:
        """A file:// backend directory that does not exist yet: no stack can be in it."""
        if not self.backend.url.startswith("file://"):
            return None
        root = Path(self.backend.url[len("file://"):]).expanduser()
        return None if root.is_dir() else root

    def _not_found(self) -> DeployError:
        return DeployError(f"stack {self.stack!r} does not exist in the backend {self.backend.url} (from {self.backend.source}); "
                           f"check --stack and the backend, or create it with `python -m bootstrap deploy --stack {self.stack}`")

    def open(self, extra_env: Mapping[str, str] | None = None) -> StackLike:
        from pulumi import automation as auto

        require_cli()
        if self._missing_local_root() is not None:
            raise self._not_found()
        try:
            return auto.select_stack(self.stack, work_dir=str(self.project_dir), opts=self._opts(extra_env or {}))  # type: ignore[return-value]
        except auto.StackNotFoundError:
            raise self._not_found() from None
        except Exception as exc:
            raise DeployError(explain(exc, self.stack)) from None

    def exists(self) -> bool:
        from pulumi import automation as auto

        require_cli()
        if self._missing_local_root() is not None:
            return False
        try:
            auto.select_stack(self.stack, work_dir=str(self.project_dir), opts=self._opts({}))
            return True
        except auto.StackNotFoundError:
            return False
        except Exception as exc:
            raise DeployError(explain(exc, self.stack)) from None

    def create(self) -> StackLike:
        from pulumi import automation as auto

        require_cli()
        root = self._missing_local_root()
        if root is not None:
            root.mkdir(parents=True)
        try:
            return auto.create_stack(self.stack, work_dir=str(self.project_dir), opts=self._opts({}))  # type: ignore[return-value]
        except Exception as exc:
            raise DeployError(explain(exc, self.stack)) from None


def open_existing(stack: str, project_dir: Path, backend_flag: str | None, provider_flag: str | None, environ: Mapping[str, str]) -> StackLike:
    """Select an existing stack on the configured backend (never create it): for commands that
    only read it (the tunnel's outputs). A missing stack, backend or passphrase is one sentence."""
    from config.stack_file import read_stack_file

    require_cli()
    sf = read_stack_file(stack, project_dir)
    provider = check_secrets(sf, provider_flag, environ)
    return Workspace(stack, resolve_backend(backend_flag, environ, project_dir), provider, project_dir).open()


def require_cli() -> None:
    if shutil.which("pulumi") is None:
        raise CliMissingError()


def first_error_line(text: str) -> str:
    """The first `error:` line of CLI output (the cause), else the first non-empty line. The SDK's
    CommandError text is ` code: N\n stdout: ...\n stderr: ...`: those labels are not content."""
    lines = []
    for ln in text.splitlines():
        ln = ln.strip()
        for label in ("code:", "stdout:", "stderr:"):
            if ln.startswith(label):
                ln = "" if label == "code:" else ln[len(label):].strip()
        if ln:
            lines.append(ln)
    for ln in lines:
        if ln.startswith("error:"):
            return ln[len("error:"):].strip()[:400]
    return (lines[0] if lines else "unknown error")[:400]


def interrupted(op: str, stack: str) -> DeployError:
    """Ctrl-C while `pulumi <op>` runs: the CLI in the same process group got the SIGINT too and
    cancels gracefully (finishes the steps in flight, saves a partial state), so what is known is
    only that the update may be partial or still running; say so and name the way back."""
    return DeployError(f"interrupted during `pulumi {op}` of stack {stack}: the Pulumi CLI finishes the steps in flight and saves "
                       f"what it did, so the stack may be partly updated or still updating; once it has stopped, run "
                       f"`pulumi cancel --stack {stack} --yes` if the stack is still locked, then `python -m bootstrap refresh --stack {stack}` "
                       "to bring the state in line with AWS, and re-run")


@contextlib.contextmanager
def changing(op: str, stack: str) -> Iterator[None]:
    """Around a CLI call that changes the stack: Ctrl-C becomes the `interrupted` sentence."""
    try:
        yield
    except KeyboardInterrupt:
        raise interrupted(op, stack) from None


def resumable() -> tuple[type[BaseException], ...]:
    """The failures of phases 2-5 that leave a deploy to resume (not bugs): AWS, the database, the tunnel, rotation."""
    import psycopg
    from botocore.exceptions import BotoCoreError, ClientError

    from bootstrap.access.tunnel import TunnelError
    from dbcore.pgconn import ConnectionSettingsError
    from dbcore.secret import RotationError

    return (RotationError, TunnelError, ConnectionSettingsError, ClientError, BotoCoreError, psycopg.Error)


def cause_of(exc: BaseException) -> str:
    """One clause for a resumable failure."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"AWS {getattr(exc, 'operation_name', '')} failed: {err.get('Code', '')}: {err.get('Message', '')}".rstrip(": ")
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__).rstrip(".")


def explain(exc: BaseException, stack: str) -> str:
    """One sentence for a failed CLI call."""
    from pulumi import automation as auto

    if isinstance(exc, FileNotFoundError):
        return CLI_MISSING
    text = str(exc)
    if isinstance(exc, auto.ConcurrentUpdateError):
        holder = next((ln.strip() for ln in text.splitlines() if "created by" in ln), "")
        where = f" ({holder.split(': ', 1)[-1]})" if holder else ""
        return (f"the stack {stack} is locked by another update{where}; wait for it to finish, or if that process is gone "
                f"run `pulumi cancel --stack {stack} --yes` to remove the lock, then re-run")
    if isinstance(exc, auto.StackNotFoundError):
        return f"stack {stack!r} does not exist in this backend; check --stack and the backend"
    cause = first_error_line(text)
    if "incorrect passphrase" in text:  # pkg/secrets/passphrase/manager.go: ErrIncorrectPassphrase
        return (f"PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) is not the passphrase of stack {stack}: the CLI cannot "
                "decrypt its secrets; set the one the stack was created with")
    if "failed to decrypt" in text:  # sdk/go/common/resource/config/crypt.go
        return (f"a secret of stack {stack} cannot be decrypted ({cause}); re-set it with `pulumi config set --secret <key> --stack {stack}` "
                "or restore the stack file's `secure:` value")
    return cause


def export_with_secrets(stack: Any) -> dict[str, Any]:
    """The live state with secrets decrypted (`pulumi stack export --show-secrets`, which is what the
    SDK's export_stack runs)."""
    try:
        deployment = stack.export_stack()
    except Exception as exc:
        raise DeployError(f"pulumi stack export failed: {explain(exc, getattr(stack, 'name', ''))}") from None
    return {"version": deployment.version, "deployment": deployment.deployment}

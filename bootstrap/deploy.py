"""Deploy orchestration over the Pulumi Automation API, and the state audit.

`python -m bootstrap deploy --stack S` runs the phased deploy that leaves no live credential in the
Pulumi state:

  first deploy:  (1) up with appDbEnabled=false  (2) rotate master  (3) up with appDbEnabled=true,
                 PGPASSWORD from Secrets Manager in the workspace env only  (4) rotate login roles
                 (their first passwords)  (5) audit the state
  later deploys: (3) - (5), rotating only with --rotate or when --rotate-after-days N is due
                 (and always finishing an interrupted rotation).

`preview|up|refresh|destroy|drift` are single operations; `audit` exports the state (or reads
--state-file) and checks every credential-like value in it against the database.

The Automation API is reached through one seam, a `StackOpener` (extra env -> stack object), so
the orchestration is tested with a recording fake and nothing here needs the CLI until it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from components.settings import Settings
from components.stackfile import PROJECT_DIR

INSTALL_HINT = "curl -fsSL https://get.pulumi.com | sh"
CLI_MISSING = f"the Pulumi CLI is not installed (no `pulumi` on PATH); install it with `{INSTALL_HINT}` and re-run"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"
APP_DB_KEY = "pghome:appDbEnabled"


class DeployError(RuntimeError):
    """One sentence for the user; exit status 1, no traceback."""


class CliMissingError(DeployError):
    def __init__(self) -> None:
        super().__init__(CLI_MISSING)


# --------------------------------------------------------------------------------------------
# Backend and workspace
# --------------------------------------------------------------------------------------------


def backend_env(backend: str | None, secrets_provider: str | None, environ: Mapping[str, str], project_dir: Path = PROJECT_DIR) -> tuple[dict[str, str], str | None]:
    """Env vars for the workspace and the secrets provider to pass to it.

    Default: local file backend inside the project (`.pulumi-state`, gitignored) and the
    passphrase provider, whose passphrase must come from PULUMI_CONFIG_PASSPHRASE(_FILE).
    """
    url = backend or f"file://{project_dir / '.pulumi-state'}"
    if not re.match(r"^(file|s3|azblob|gs|https?)://", url):
        raise DeployError(f"--backend {url!r} is not a backend URL; use file://<dir>, s3://<bucket>[/prefix] or https://api.pulumi.com")
    if url.startswith("file://"):
        Path(url[len("file://"):]).mkdir(parents=True, exist_ok=True)
    env = {"PULUMI_BACKEND_URL": url, "PULUMI_SKIP_UPDATE_CHECK": "true"}
    if secrets_provider in (None, "", "passphrase"):
        for key in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
            if environ.get(key):
                env[key] = environ[key]
                break
        else:
            raise DeployError("PULUMI_CONFIG_PASSPHRASE is not set; export it (the passphrase that encrypts this stack's secrets) or pass --secrets-provider awskms://<key>")
        return env, "passphrase"
    if not re.match(r"^(awskms|azurekeyvault|gcpkms|hashivault)://", secrets_provider):
        raise DeployError(f"--secrets-provider {secrets_provider!r} is not supported; use passphrase or awskms://alias/<name>?region=<region>")
    return env, secrets_provider


class StackLike(Protocol):
    def set_config(self, key: str, value: Any, path: bool = False) -> None: ...
    def up(self, **kw: Any) -> Any: ...
    def preview(self, **kw: Any) -> Any: ...
    def refresh(self, **kw: Any) -> Any: ...
    def destroy(self, **kw: Any) -> Any: ...
    def outputs(self) -> Mapping[str, Any]: ...


StackOpener = Callable[[dict[str, str]], StackLike]


def automation_opener(stack_name: str, base_env: dict[str, str], secrets_provider: str | None, project_dir: Path = PROJECT_DIR) -> StackOpener:
    """The real seam: a LocalWorkspace over the project directory with the given env vars."""

    def open_stack(extra_env: dict[str, str]) -> StackLike:
        if shutil.which("pulumi") is None:
            raise CliMissingError()
        from pulumi import automation as auto

        opts = auto.LocalWorkspaceOptions(work_dir=str(project_dir), env_vars={**base_env, **extra_env}, secrets_provider=secrets_provider)
        try:
            return auto.create_or_select_stack(stack_name=stack_name, work_dir=str(project_dir), opts=opts)  # type: ignore[return-value]
        except FileNotFoundError:
            raise CliMissingError() from None

    return open_stack


def config_value(value: str, secret: bool = False) -> Any:
    try:
        from pulumi.automation import ConfigValue

        return ConfigValue(value=value, secret=secret)
    except ImportError:  # pragma: no cover - pulumi is a dependency
        return value


# --------------------------------------------------------------------------------------------
# Progress and outputs
# --------------------------------------------------------------------------------------------


def _event_line(event: Any) -> str | None:
    pre = getattr(event, "resource_pre_event", None)
    if pre is not None and getattr(pre, "metadata", None) is not None:
        md = pre.metadata
        op = getattr(md.op, "value", md.op)
        if op != "same":
            return f"  {op:<8} {md.type} {str(md.urn).rsplit('::', 1)[-1]}"
    diag = getattr(event, "diagnostic_event", None)
    if diag is not None and getattr(diag, "severity", "") in ("error", "warning"):
        return f"  {diag.severity}: {str(diag.message).strip()}"
    return None


def masked_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for key, ov in outputs.items():
        secret = getattr(ov, "secret", False)
        value = getattr(ov, "value", ov)
        shown[key] = "[secret]" if secret else value
    return shown


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


class RotatorLike(Protocol):
    def rotate(self, role: str) -> None: ...
    def current_password(self, role: str) -> str: ...
    def needs_first_rotation(self, role: str) -> bool: ...
    def last_rotated_days(self, role: str) -> float | None: ...


class Deployer:
    def __init__(
        self,
        settings: Settings,
        open_stack: StackOpener,
        rotator_factory: Callable[[], RotatorLike],
        auditor: Callable[[], int],
        *,
        out: Callable[[str], None] = print,
    ):
        self.settings = settings
        self.open_stack = open_stack
        self.rotator_factory = rotator_factory
        self.auditor = auditor
        self.out = out
        self._rotator: RotatorLike | None = None

    @property
    def rotator(self) -> RotatorLike:
        if self._rotator is None:
            self._rotator = self.rotator_factory()
        return self._rotator

    def _stream(self) -> dict[str, Any]:
        def on_event(event: Any) -> None:
            line = _event_line(event)
            if line:
                self.out(line)

        return {"on_output": lambda line: None, "on_event": on_event}

    def _up(self, stack: StackLike, phase: str, app_db: bool, secret_values: tuple[str, ...] = ()) -> Mapping[str, Any]:
        stack.set_config(APP_DB_KEY, config_value("true" if app_db else "false"))
        self.out(f"[{phase}] pulumi up ({APP_DB_KEY}={'true' if app_db else 'false'})")
        try:
            stack.up(**self._stream())
        except CliMissingError:
            raise
        except Exception as exc:
            raise DeployError(
                f"{phase} failed ({_first_line(exc)}); nothing was rotated in this run, fix the cause and re-run "
                f"`python -m bootstrap deploy --stack {self.settings.stack}` to resume from this phase"
            ) from None
        outputs = stack.outputs()
        for key, ov in outputs.items():  # PGPASSWORD must never leak into outputs
            if str(getattr(ov, "value", ov)) in secret_values:
                raise DeployError(f"stack output {key!r} holds the master password; remove that export and rotate the master (--rotate)")
        return outputs

    def _rotate(self, phase: str, roles: tuple[str, ...]) -> None:
        from bootstrap.rotation import RotationError

        for role in roles:
            self.out(f"[{phase}] rotate {role}")
            try:
                self.rotator.rotate(role)
            except RotationError as exc:
                raise DeployError(f"{phase} failed: {exc}; the infrastructure is deployed, re-run `python -m bootstrap rotate --stack {self.settings.stack} --role {role}` then the deploy") from None

    def deploy(self, *, rotate: bool = False, rotate_after_days: int | None = None) -> int:
        stack = self.open_stack({})
        first = not stack.outputs()
        self.out(f"deploy {self.settings.stack}: {'first deploy (phases 1-5)' if first else 'later deploy (phases 3-5)'}")
        if first:
            self._up(stack, "phase 1/5", app_db=False)
        if first or self.rotator.needs_first_rotation("master") or (rotate and not first):
            self._rotate("phase 2/5", ("master",))
        master_pw = self.rotator.current_password("master")
        if not master_pw:
            raise DeployError(f"secret {self.settings.secret_name('master')} holds no password; run phase 1 first")
        app_stack = self.open_stack({"PGPASSWORD": master_pw})
        outputs = self._up(app_stack, "phase 3/5", app_db=True, secret_values=(master_pw,))
        due = [r for r in ("app", "migrator") if self._due(r, first, rotate, rotate_after_days)]
        if due:
            self._rotate("phase 4/5", tuple(due))
        else:
            self.out("[phase 4/5] login roles: rotation not due (use --rotate or --rotate-after-days N)")
        self.out("[phase 5/5] audit")
        live = self.auditor()
        self.out(json.dumps(masked_outputs(outputs), indent=2, default=str))
        if live:
            raise DeployError(f"the audit found {live} credential(s) in the state that still log in; run `python -m bootstrap rotate --stack {self.settings.stack} --role all`")
        return 0

    def _due(self, role: str, first: bool, rotate: bool, after_days: int | None) -> bool:
        if first or rotate or self.rotator.needs_first_rotation(role):
            return True
        if after_days is not None:
            age = self.rotator.last_rotated_days(role)
            return age is None or age >= after_days
        return False

    def single(self, op: str, env: dict[str, str]) -> int:
        stack = self.open_stack(env)
        self.out(f"pulumi {op} {self.settings.stack}")
        kw = self._stream()
        try:
            if op == "preview":
                stack.preview(**kw)
            elif op == "drift":
                stack.preview(expect_no_changes=True, **kw)
            elif op == "up":
                stack.up(**kw)
            elif op == "refresh":
                stack.refresh(**kw)
            elif op == "destroy":
                stack.destroy(**kw)
        except CliMissingError:
            raise
        except Exception as exc:
            if op == "drift":
                raise DeployError(f"drift detected: the stack {self.settings.stack} differs from the program/config ({_first_line(exc)})") from None
            raise DeployError(f"pulumi {op} failed: {_first_line(exc)}") from None
        if op == "drift":
            self.out("no drift: the deployed stack matches the program")
        if op in ("up", "refresh"):
            self.out(json.dumps(masked_outputs(stack.outputs()), indent=2, default=str))
        return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    lines = [ln.strip() for ln in text if ln.strip() and "stderr" not in ln.lower()]
    msg = lines[-1] if lines else type(exc).__name__
    return msg[:300]


# --------------------------------------------------------------------------------------------
# Audit
# --------------------------------------------------------------------------------------------


@dataclass
class Credential:
    where: str  # urn#path, never the value
    value: str | None  # None: encrypted in the export, cannot be checked
    usernames: tuple[str, ...] = ()


_CRED_KEY = re.compile(r"(password|passwd|token|secret_?key|private_?key)$", re.I)


def _unwrap(value: Any) -> tuple[Any, bool, bool]:
    """(plain value, was_secret, encrypted)."""
    if isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_MARK:
        if "plaintext" in value:
            try:
                return json.loads(value["plaintext"]), True, False
            except (TypeError, ValueError):
                return value["plaintext"], True, False
        if "value" in value:
            return value["value"], True, False
        return None, True, True
    return value, False, False


def find_credentials(state: Mapping[str, Any]) -> list[Credential]:
    """Every credential-like value in an exported state (`pulumi stack export` JSON)."""
    deployment = state.get("deployment", state)
    found: list[Credential] = []

    def visit(urn: str, rtype: str, path: str, value: Any, in_secret: bool) -> None:
        plain, secret, encrypted = _unwrap(value)
        secret = secret or in_secret
        key = path.rsplit(".", 1)[-1]
        if encrypted:
            found.append(Credential(f"{urn}#{path}", None))
            return
        if isinstance(plain, dict):
            for k, v in plain.items():
                visit(urn, rtype, f"{path}.{k}", v, secret)
            return
        if isinstance(plain, list):
            for i, v in enumerate(plain):
                visit(urn, rtype, f"{path}.{i}", v, secret)
            return
        if not isinstance(plain, str) or not plain:
            return
        if key == "secretString" or key == "secret_string":
            try:
                doc = json.loads(plain)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                if doc.get("password"):
                    users = (str(doc["username"]),) if doc.get("username") else ()
                    found.append(Credential(f"{urn}#{path}.password", str(doc["password"]), users))
                return
        is_stack = rtype == "pulumi:pulumi:Stack"
        if (rtype == "random:index/randomPassword:RandomPassword" and key == "result") or _CRED_KEY.search(key) or (is_stack and secret):
            found.append(Credential(f"{urn}#{path}", plain))

    for res in deployment.get("resources") or []:
        urn, rtype = str(res.get("urn", "")), str(res.get("type", ""))
        for section in ("inputs", "outputs"):
            for k, v in (res.get(section) or {}).items():
                visit(urn, rtype, f"{section}.{k}", v, False)
    # one check per distinct value; keep the first place it was seen plus the count
    unique: dict[str | None, Credential] = {}
    for c in found:
        if c.value is None:
            unique[f"enc:{c.where}"] = c
        elif c.value not in unique:
            unique[c.value] = c
        else:
            unique[c.value].usernames = tuple(dict.fromkeys(unique[c.value].usernames + c.usernames))
    return list(unique.values())


def audit_state(
    state: Mapping[str, Any],
    users: tuple[str, ...],
    try_login: Callable[[str, str], bool],
    out: Callable[[str], None] = print,
) -> tuple[int, int]:
    """Report, per credential, whether it still authenticates. Returns (live, unverifiable)."""
    creds = find_credentials(state)
    live = unverifiable = 0
    out(f"audit: {len(creds)} credential-like value(s) in the state")
    for c in creds:
        if c.value is None:
            unverifiable += 1
            out(f"  ENCRYPTED {c.where}: cannot check (export with --show-secrets or use `audit` without --state-file)")
            continue
        hits = [u for u in dict.fromkeys(c.usernames + users) if try_login(u, c.value)]
        if hits:
            live += 1
            out(f"  LIVE      {c.where}: authenticates as {', '.join(hits)}")
        else:
            out(f"  dead      {c.where}")
    out(f"audit: {live} live, {unverifiable} unverifiable")
    return live, unverifiable


def login_users(settings: Settings) -> tuple[str, ...]:
    return tuple(settings.db_username(role) for role in settings.SECRET_ROLES)


def export_with_secrets(stack_name: str, env: dict[str, str], project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """`pulumi stack export --show-secrets`: the Automation API's export_stack() keeps secrets
    encrypted, and the audit must see the values to test them."""
    if shutil.which("pulumi") is None:
        raise CliMissingError()
    proc = subprocess.run(
        ["pulumi", "stack", "export", "--show-secrets", "--stack", stack_name, "--non-interactive"],
        cwd=project_dir, env={**os.environ, **env}, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise DeployError(f"pulumi stack export failed: {(proc.stderr.strip().splitlines() or ['unknown error'])[-1]}")
    return dict(json.loads(proc.stdout))


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml)")


def _db_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="", help="connect here instead of the host in the master secret (tunnel, bastion)")
    p.add_argument("--port", type=int, default=0, help="port to use with --host")
    p.add_argument("--sslmode", choices=["require", "verify-ca", "verify-full"], default="", help="TLS mode (default: appDbSslMode)")
    p.add_argument("--ca-file", default="", help="CA bundle for verify-ca/verify-full (the RDS global bundle)")


def _backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="", help="state backend URL (default file://<project>/.pulumi-state), e.g. s3://bucket/prefix")
    p.add_argument("--secrets-provider", default="", help="passphrase (default, PULUMI_CONFIG_PASSPHRASE) or awskms://alias/<name>?region=<r>")


def register(sub: Any) -> None:
    p = sub.add_parser("rotate", help="rotate the master and/or login role passwords (Secrets Manager protocol)")
    _common(p)
    p.add_argument("--role", choices=["master", "app", "migrator", "all"], default="all")
    _db_args(p)
    p.set_defaults(func=_cmd_rotate)

    p = sub.add_parser("deploy", help="phased deploy: up, rotate master, up with app db, rotate logins, audit")
    _common(p)
    _backend_args(p)
    _db_args(p)
    p.add_argument("--rotate", action="store_true", help="rotate the login roles (and master) even if not due")
    p.add_argument("--rotate-after-days", type=int, default=None, metavar="N", help="rotate login roles whose AWSCURRENT is N days old or older")
    p.set_defaults(func=_cmd_deploy)

    for op, help_ in (("preview", "pulumi preview"), ("up", "pulumi up (no rotation; prefer deploy)"), ("refresh", "pulumi refresh"),
                      ("destroy", "pulumi destroy"), ("drift", "fail if the deployed stack differs (preview --expect-no-changes)")):
        p = sub.add_parser(op, help=help_)
        _common(p)
        _backend_args(p)
        _db_args(p)
        p.set_defaults(func=_cmd_single, op=op)

    p = sub.add_parser("audit", help="check every credential in the state against the database; non-zero if any still works")
    _common(p)
    _backend_args(p)
    _db_args(p)
    p.add_argument("--state-file", default="", help="an exported state JSON (pulumi stack export --show-secrets) instead of the live stack")
    p.set_defaults(func=_cmd_audit)


def _settings(stack: str) -> Settings:
    from components.config import load_settings
    from components.stackfile import stack_config

    return load_settings(stack_config(stack), stack=stack)


def _real_rotator(settings: Settings, args: argparse.Namespace) -> Any:
    import boto3

    from bootstrap.rotation import Endpoint, RdsAdmin, Rotator

    session = boto3.session.Session(region_name=settings.region)
    endpoint = Endpoint(
        host=args.host or None, port=args.port or None,
        sslmode=args.sslmode or str(getattr(settings.app_database.ssl_mode, "value", settings.app_database.ssl_mode)),
        sslrootcert=args.ca_file or None,
    )
    return Rotator(settings, secrets_client=session.client("secretsmanager"), admin=RdsAdmin(session.client("rds")), endpoint=endpoint)


def _guard(fn: Callable[[], int]) -> int:
    from bootstrap.rotation import RotationError

    try:
        return fn()
    except (DeployError, RotationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _cmd_rotate(args: argparse.Namespace) -> int:
    from bootstrap.rotation import roles_for

    settings = _settings(args.stack)

    def run() -> int:
        rot = _real_rotator(settings, args)
        for role in roles_for(args.role):
            rot.rotate(role)
        print("rotation complete")
        return 0

    return _guard(run)


def _workspace(args: argparse.Namespace) -> tuple[dict[str, str], StackOpener]:
    env, provider = backend_env(args.backend or None, args.secrets_provider or None, os.environ)
    return env, automation_opener(args.stack, env, provider)


def _auditor(settings: Settings, args: argparse.Namespace, env: dict[str, str], rot: Any) -> Callable[[], int]:
    def run() -> int:
        state = json.loads(Path(args.state_file).read_text()) if getattr(args, "state_file", "") else export_with_secrets(args.stack, env)
        live, unverifiable = audit_state(state, login_users(settings), rot.accepts)
        return live + unverifiable

    return run


def _cmd_deploy(args: argparse.Namespace) -> int:
    settings = _settings(args.stack)

    def run() -> int:
        if shutil.which("pulumi") is None:
            raise CliMissingError()
        env, opener = _workspace(args)
        rot = _real_rotator(settings, args)
        return Deployer(settings, opener, lambda: rot, _auditor(settings, args, env, rot)).deploy(rotate=args.rotate, rotate_after_days=args.rotate_after_days)

    return _guard(run)


def _cmd_single(args: argparse.Namespace) -> int:
    settings = _settings(args.stack)

    def run() -> int:
        if shutil.which("pulumi") is None:
            raise CliMissingError()
        env, opener = _workspace(args)
        extra: dict[str, str] = {}
        if settings.app_database.enabled and args.op != "destroy":
            extra["PGPASSWORD"] = _real_rotator(settings, args).current_password("master")
        return Deployer(settings, opener, lambda: _real_rotator(settings, args), lambda: 0).single(args.op, extra)

    return _guard(run)


def _cmd_audit(args: argparse.Namespace) -> int:
    settings = _settings(args.stack)

    def run() -> int:
        env: dict[str, str] = {}
        if not args.state_file:
            if shutil.which("pulumi") is None:
                raise CliMissingError()
            env, _ = backend_env(args.backend or None, args.secrets_provider or None, os.environ)
        rot = _real_rotator(settings, args)
        return 1 if _auditor(settings, args, env, rot)() else 0

    return _guard(run)


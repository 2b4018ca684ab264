"""The state audit: every credential-like value in an exported stack state, tried against the
database. Non-zero when one still logs in, or when nothing could be audited."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.stack_file import InputError

SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"


@dataclass
class Credential:
    where: str  # urn#path, never the value
    value: str | None  # None: encrypted in the export, cannot be checked
    usernames: tuple[str, ...] = ()


_CRED_KEY = re.compile(r"(password|passwd|pwd|token|secret_?key|private_?key)$", re.I)
# A connection URI with a password in its userinfo: postgres://user:pw@host/db, DATABASE_URL=...
_URI = re.compile(r"^[a-z][a-z0-9+.\-]*://(?P<user>[^:/@\s]*):(?P<pw>[^@\s]+)@", re.I)


def _uri_credential(text: str) -> tuple[str, str] | None:
    """(user, password) of a URI carrying a password, else None."""
    from urllib.parse import unquote

    m = _URI.match(text.strip())
    return (unquote(m["user"]), unquote(m["pw"])) if m else None


def _json_container(text: str) -> Any:
    """A JSON object or array held in a string (containerDefinitions, a policy, a secret), else None."""
    t = text.strip()
    if not t or t[0] not in "{[":
        return None
    try:
        doc = json.loads(t)
    except ValueError:
        return None
    return doc if isinstance(doc, (dict, list)) else None


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


def read_state_file(path: str) -> dict[str, Any]:
    """A `pulumi stack export` file, or one sentence saying why it is not one."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--state-file {path}: no such file")
    try:
        doc = json.loads(p.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"--state-file {path} is not JSON ({exc}); pass the output of `pulumi stack export --show-secrets`") from None
    check_deployment(doc, f"--state-file {path}")
    return dict(doc)


def check_deployment(doc: Any, what: str) -> None:
    deployment = doc.get("deployment") if isinstance(doc, dict) else None
    if not isinstance(deployment, dict) or not isinstance(deployment.get("resources"), list):
        raise InputError(f"{what} is not a Pulumi stack export: expected {{\"version\": 3, \"deployment\": {{\"resources\": [...]}}}}")


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
            # an ECS environment entry {"name": "DB_PASSWORD", "value": "..."}: the name is the key
            if isinstance(plain.get("name"), str) and isinstance(plain.get("value"), str) and set(plain) <= {"name", "value"}:
                visit(urn, rtype, f"{path}.{plain['name']}", plain["value"], secret)
                return
            for k, v in plain.items():
                visit(urn, rtype, f"{path}.{k}", v, secret)
            return
        if isinstance(plain, list):
            for i, v in enumerate(plain):
                visit(urn, rtype, f"{path}.{i}", v, secret)
            return
        if not isinstance(plain, str) or not plain:
            return
        if key in ("secretString", "secret_string"):
            try:
                doc = json.loads(plain)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                if doc.get("password"):
                    users = (str(doc["username"]),) if doc.get("username") else ()
                    found.append(Credential(f"{urn}#{path}.password", str(doc["password"]), users))
                return
        inner = _json_container(plain)
        if inner is not None and key not in ("secretString", "secret_string"):  # containerDefinitions and other JSON text
            visit(urn, rtype, f"{path}(json)", inner, secret)
            return
        uri = _uri_credential(plain)
        if uri is not None:
            found.append(Credential(f"{urn}#{path}", uri[1], (uri[0],) if uri[0] else ()))
            return
        is_stack = rtype == "pulumi:pulumi:Stack"
        if (rtype == "random:index/randomPassword:RandomPassword" and key == "result") or _CRED_KEY.search(key) or (is_stack and secret):
            found.append(Credential(f"{urn}#{path}", plain))

    for res in deployment.get("resources") or []:
        urn, rtype = str(res.get("urn", "")), str(res.get("type", ""))
        for section in ("inputs", "outputs"):
            for k, v in (res.get(section) or {}).items():
                visit(urn, rtype, f"{section}.{k}", v, False)
    return _unique(found)


def find_config_credentials(config: Mapping[str, Any], where: str) -> list[Credential]:
    """Credential-like values of a stack's config (`pulumi config --show-secrets`, or one update's
    config from `pulumi stack history --show-secrets`): secret values, password-like keys, URIs
    with a password. `config` maps key -> value, or key -> {"value", "secret"} as the CLI prints."""
    found: list[Credential] = []
    for key, raw in config.items():
        value, secret = (raw.get("value"), bool(raw.get("secret"))) if isinstance(raw, Mapping) else (getattr(raw, "value", raw), bool(getattr(raw, "secret", False)))
        if not isinstance(value, str) or not value:
            continue
        uri = _uri_credential(value)
        if uri is not None:
            found.append(Credential(f"{where}#{key}", uri[1], (uri[0],) if uri[0] else ()))
        elif secret or _CRED_KEY.search(key.rsplit(":", 1)[-1]):
            found.append(Credential(f"{where}#{key}", value))
    return found


def _unique(found: list[Credential]) -> list[Credential]:
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
    config: Mapping[str, Any] | None = None,
    history: Sequence[Mapping[str, Any]] = (),
) -> tuple[int, int]:
    """Report, per credential, whether it still authenticates. Returns (live, unverifiable).
    A state with no resources counts as one unverifiable item: nothing was audited. `config` and
    `history` (update summaries with their config) are searched too: a password set with
    `pulumi config set --secret` lives there, and in every update that recorded it."""
    check_deployment(state, "the state")
    extra = find_config_credentials(config or {}, "config")
    for i, update in enumerate(history):
        extra += find_config_credentials(update.get("config") or {}, f"history[{update.get('version', i)}].config")
    creds = _unique(find_credentials(state) + extra)
    resources = state["deployment"]["resources"]
    live = unverifiable = 0
    out(f"audit: {len(creds)} credential-like value(s) in {len(resources)} resource(s)")
    if not resources:
        out("  NOTHING   the state has no resources: nothing was audited")
        return 0, 1
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


def login_users(settings: Any) -> tuple[str, ...]:
    """Every user a leaked password could open: the master, the login roles, and the clone the
    rotation alternates the app login with (`<prefix>_app_clone`, components/pgmodel.py)."""
    from components.pgmodel import clone_of

    users = [settings.db_username(role) for role in settings.SECRET_ROLES]
    users.append(clone_of(settings.db_username("app")))
    return tuple(users)


def config_and_history(stack: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The stack's config and every recorded update's config, secrets shown (the Automation API runs
    `pulumi config --show-secrets` and `pulumi stack history --show-secrets`), as plain mappings."""

    def plain(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: {"value": getattr(v, "value", v), "secret": bool(getattr(v, "secret", False))} for k, v in (cfg or {}).items()}

    config = plain(stack.get_all_config())
    history = [{"version": getattr(u, "version", i), "config": plain(getattr(u, "config", None))} for i, u in enumerate(stack.history(show_secrets=True) or [])]
    return config, history

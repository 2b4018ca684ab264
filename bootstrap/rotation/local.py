"""Rotate the RDS master and the app login roles' passwords outside Pulumi.

Follows the Secrets Manager rotation protocol, one secret at a time:

1. createSecret  put an AWSPENDING version with a new password (reuse an existing AWSPENDING: resumable);
2. setSecret     make the database accept it (master: RDS ModifyDBInstance, waited on; login roles:
                 `ALTER ROLE ... PASSWORD '<SCRAM verifier>'` computed here, so the clear password
                 never reaches the server, its logs or pg_stat_statements); skipped if the database
                 already accepts AWSPENDING;
3. testSecret    connect with AWSPENDING over TLS;
4. finishSecret  move AWSCURRENT to the pending version, then drop the AWSPENDING label.

The app login alternates exactly as the rotation function does (dbcore/alternating.py): the new
version names the other user of `<prefix>_app` / `<prefix>_app_clone`, so the password running
tasks hold never changes. Before it, the rotation refuses while the service's last deployment is
unfinished (dbcore/rollout.py, the function's createSecret rule); after it, a new deployment of the
service is forced and waited for, with progress, so every task holds the new user on exit 0.

Every step is idempotent: killing the process anywhere leaves AWSCURRENT or AWSPENDING working, and
re-running finishes the rotation. Secrets are never printed.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql

from bootstrap.rotation.app_service import AppService
from config.settings import Settings
from dbcore import pgconn
from dbcore.alternating import ALTERNATING_ROLE, pending_user, refuse_active_user, rollout_since
from dbcore.pgadmin import ensure_rds_password, pin_search_path, require_admin
from dbcore.rds_admin import DatabaseAdmin
from dbcore.rotation_lock import DEFAULT_WAIT_S, rotation_lock
from dbcore.secret import RotationError, is_auth_failure, new_password, secret_json
from dbcore.verifier import scram_verifier

ROLES = ("master", "app", "migrator")
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


# --------------------------------------------------------------------------------------------
# Seams: how the master password is set, and how we reach the database
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect. host/port None = the values in the master secret."""

    host: str | None = None
    port: int | None = None
    sslmode: str = "verify-full"
    sslrootcert: str | None = None
    connect_timeout: int = 5
    hostaddr: str | None = None  # dial this address but verify `host` (a tunnel: bootstrap/access/tunnel.py)


class StepHook(Protocol):
    def __call__(self, role: str, step: str) -> None: ...


def _no_hook(role: str, step: str) -> None:
    return None


# --------------------------------------------------------------------------------------------
# The rotator
# --------------------------------------------------------------------------------------------


@dataclass
class _Versions:
    current_id: str
    current: dict[str, Any]
    pending_id: str | None
    pending: dict[str, Any] | None


class Rotator:
    def __init__(
        self,
        settings: Settings,
        *,
        secrets_client: Any,
        admin: DatabaseAdmin,
        endpoint: Endpoint = Endpoint(),
        hook: StepHook = _no_hook,
        out: Callable[[str], None] = print,
        master_test_timeout_s: float = 120.0,
        lock_wait_s: float = DEFAULT_WAIT_S,
        service: AppService | None = None,
    ):
        self.settings = settings
        self.service = service  # None: no service reads the app login (tests of the protocol alone)
        self.sm = secrets_client
        self.admin = admin
        self.endpoint = endpoint
        self.hook = hook
        self.out = out
        # RDS reports the modification applied slightly before logins see it; give the master a grace period
        self.master_test_timeout_s = master_test_timeout_s
        self.lock_wait_s = lock_wait_s

    # names -----------------------------------------------------------------------------------
    def secret_name(self, role: str) -> str:
        return self.settings.secret_name(role)

    def username(self, role: str) -> str:
        return self.settings.db_username(role)

    # secrets ---------------------------------------------------------------------------------
    def _describe(self, role: str) -> dict[str, Any]:
        name = self.secret_name(role)
        try:
            desc = self.sm.describe_secret(SecretId=name)
        except self.sm.exceptions.ResourceNotFoundException:
            raise RotationError(f"secret {name} does not exist; deploy the stack {self.settings.stack!r} first (python -m bootstrap deploy --stack {self.settings.stack})") from None
        except Exception as exc:  # botocore errors: credentials, region, network
            raise RotationError(f"cannot read secret {name} from Secrets Manager ({type(exc).__name__})") from None
        tags = {t["Key"]: t["Value"] for t in desc.get("Tags") or []}
        if desc.get("Name") != name or ("Stack" in tags and tags["Stack"] != self.settings.stack):
            raise RotationError(f"secret {desc.get('Name')} is tagged for stack {tags.get('Stack')!r}, not {self.settings.stack!r}; check --stack and the AWS account/region")
        return desc

    def _value(self, name: str, **version: str) -> dict[str, Any]:
        return secret_json(self.sm, name, **version)

    def _versions(self, role: str) -> _Versions:
        name = self.secret_name(role)
        desc = self._describe(role)
        stages: dict[str, list[str]] = desc.get("VersionIdsToStages") or {}
        current_id = next((v for v, s in stages.items() if "AWSCURRENT" in s), None)
        if current_id is None:
            raise RotationError(f"secret {name} has no AWSCURRENT version; deploy the stack first")
        pending_id = next((v for v, s in stages.items() if "AWSPENDING" in s), None)
        current = self._value(name, VersionStage="AWSCURRENT")
        pending = self._value(name, VersionId=pending_id) if pending_id else None
        return _Versions(current_id, current, pending_id, pending)

    def last_rotated_days(self, role: str) -> float | None:
        """Days since AWSCURRENT was created (None if never rotated: only Pulumi's first version)."""
        desc = self._describe(role)
        stages = desc.get("VersionIdsToStages") or {}
        if len(stages) < 2:
            return None
        versions = self.sm.list_secret_version_ids(SecretId=self.secret_name(role))["Versions"]
        cur = next((v for v in versions if "AWSCURRENT" in v.get("VersionStages", [])), None)
        if not cur or "CreatedDate" not in cur:
            return None
        import datetime as dt

        return (dt.datetime.now(dt.UTC) - cur["CreatedDate"]).total_seconds() / 86400

    def current_password(self, role: str) -> str:
        """AWSCURRENT password (for PGPASSWORD of the postgresql provider; never printed)."""
        return str(self._versions(role).current.get("password") or "")

    def connection_fields(self) -> dict[str, Any]:
        """host/port of the master secret, with the endpoint overrides applied (for the audit)."""
        cur = self._versions("master").current
        return {"host": self.endpoint.host or cur.get("host"), "port": self.endpoint.port or cur.get("port")}

    def accepts(self, user: str, password: str, dbname: str = "postgres") -> bool:
        """Does the database accept this login? (RotationError if it cannot be reached.)"""
        return self._accepts({"username": user, "dbname": dbname, **self.connection_fields()}, password)

    def needs_first_rotation(self, role: str) -> bool:
        v = self._versions(role)
        if v.pending_id and v.pending_id != v.current_id:
            return True  # an interrupted rotation: finish it
        if role == "master":
            return self.last_rotated_days(role) is None
        return not v.current.get("password")

    def check_admin(self, roles: Sequence[str] = ("app", "migrator")) -> None:
        """Prepare the master before the app-db `up` or a rotation changes roles: join rds_password
        unless already a member (dbcore/pgadmin.py ensure_rds_password), then, on 16+, it must hold
        ADMIN OPTION on the login roles (checked before anything else changes; one sentence + repair).
        On the same connection, the master's search_path in the app database is pinned (issue 24:
        the Pulumi path has no resource for it; the SQL script sets the same)."""
        with self._master_connection() as conn:
            # rds_password before any role or password change (issue 23 item 4), then ADMIN OPTION
            ensure_rds_password(conn, RotationError)
            require_admin(conn, [self.username(r) for r in roles if r != "master"], RotationError)
            pin_search_path(conn, self.settings.app_database.name)

    def check_settings(self) -> None:
        """The connection settings are usable (TLS only; verify-* needs a CA file that exists):
        checked before any probe or tunnel, so a bad setting costs no task."""
        ep = self.endpoint
        try:
            pgconn.build_conninfo(pgconn.Endpoint(host=ep.host or "localhost", port=int(ep.port or 5432), sslmode=ep.sslmode,
                                                  sslrootcert=ep.sslrootcert, connect_timeout=ep.connect_timeout), "-", "")
        except pgconn.ConnectionSettingsError as exc:
            raise RotationError(f"refusing to connect to the database: {exc}") from None

    # connections -----------------------------------------------------------------------------
    def _connect(self, secret: dict[str, Any], password: str, user: str | None = None, dbname: str | None = None) -> psycopg.Connection:
        """Through dbcore/pgconn.py (TLS only, verify-* needs an existing CA file), at the
        endpoint overrides (a tunnel) or the host/port of the secret."""
        ep = self.endpoint
        target = pgconn.Endpoint(
            host=str(ep.host or secret.get("host") or ""),
            port=int(ep.port or secret.get("port") or 5432),
            dbname=str(dbname or secret.get("dbname") or "postgres"),
            sslmode=ep.sslmode,
            sslrootcert=ep.sslrootcert,
            connect_timeout=ep.connect_timeout,
            hostaddr=ep.hostaddr,
        )
        try:
            return pgconn.connect(target, str(user or secret.get("username")), password)
        except pgconn.ConnectionSettingsError as exc:
            raise RotationError(f"refusing to connect to the database: {exc}") from None

    def _accepts(self, secret: dict[str, Any], password: str) -> bool:
        """True if the DB accepts the password; False if rejected; RotationError if unreachable."""
        if not password:
            return False
        try:
            with self._connect(secret, password) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError as exc:
            if is_auth_failure(exc):
                return False
            where = f"{self.endpoint.host or secret.get('host')}:{self.endpoint.port or secret.get('port')}"
            raise RotationError(f"database at {where} is unreachable over TLS (sslmode={self.endpoint.sslmode}); check the network path and CA bundle") from None

    def _master_connection(self) -> psycopg.Connection:
        """As master with AWSCURRENT, else AWSPENDING (a master rotation interrupted mid-way)."""
        v = self._versions("master")
        for label, value in (("AWSCURRENT", v.current), ("AWSPENDING", v.pending)):
            if value and self._accepts(value, value.get("password", "")):
                self.out(f"  connected as master using {label}")
                return self._connect(value, value["password"])
        raise RotationError(f"the database rejected both AWSCURRENT and AWSPENDING of {self.secret_name('master')}; rotate the master first (--role master)")

    # the protocol ----------------------------------------------------------------------------
    def rotate(self, role: str) -> None:
        if role not in ROLES:
            raise RotationError(f"unknown role {role!r}; use one of {', '.join(ROLES)} or all")
        name = self.secret_name(role)
        self.out(f"rotate {role} ({name})")
        v = self._versions(role)
        alternating = role == ALTERNATING_ROLE

        if v.pending_id and v.pending_id == v.current_id:
            # killed after promotion, before the AWSPENDING label was dropped (and maybe before the redeploy)
            deployment = self._force_redeploy() if alternating else None
            self._drop_pending(name, v.pending_id)
            self.out("  finishSecret: AWSPENDING label removed (rotation had already been promoted)")
            self._await_redeploy(deployment)
            return

        if alternating:  # the user this rotation changes may still be held by tasks of an unfinished (or never started) rollout
            check, since = rollout_since(self.sm, name, v.current)
            if check:
                self._check_rollout(since)
        pending_id, pending = self._create(role, name, v)
        self.hook(role, "createSecret")
        if alternating:
            refuse_active_user(pending, v.current)  # never the password running tasks hold
        with self._serialised(role):
            self._set(role, name, pending)
        self.hook(role, "setSecret")
        self._test(role, name, pending)
        self.hook(role, "testSecret")
        self.sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=pending_id, RemoveFromVersionId=v.current_id)
        self.hook(role, "promote")
        # Forced before the label goes (as the function's finishSecret): a re-run after a crash here redeploys again.
        deployment = self._force_redeploy() if alternating else None
        self._drop_pending(name, pending_id)
        self.out(f"  finishSecret: AWSCURRENT now points at the new version (user {pending.get('username')})")
        self.hook(role, "finishSecret")
        self._await_redeploy(deployment)

    # the app's service (bootstrap/rotation/app_service.py); None: no service reads the app login
    def _check_rollout(self, since: Any) -> None:
        if self.service is not None:
            self.service.check_rollout(since)

    def _force_redeploy(self) -> str | None:
        return self.service.force_redeploy(self.out) if self.service is not None else None

    def _await_redeploy(self, deployment: str | None) -> None:
        if self.service is not None and deployment is not None:
            self.service.await_redeploy(deployment, self.out)

    @contextlib.contextmanager
    def _serialised(self, role: str) -> Iterator[None]:
        """setSecret under the database's rotation lock (dbcore/rotation_lock.py), shared with the
        rotation function, so this never changes a password while a scheduled rotation does."""
        try:
            conn = self._master_connection()
        except RotationError:
            if role != "master":
                raise
            yield  # the database rejects the master secret: nothing can connect as master to race this
            return
        with conn, rotation_lock(conn, f"  setSecret ({role})", error=RotationError, wait_s=self.lock_wait_s, out=self.out):
            yield

    def _create(self, role: str, name: str, v: _Versions) -> tuple[str, dict[str, Any]]:
        # app: the other user of the pair than AWSCURRENT's, exactly as the function (dbcore/alternating.py)
        user = pending_user(v.current, self.username(role)) if role == ALTERNATING_ROLE else self.username(role)
        if v.pending_id and v.pending and v.pending.get("password"):
            if role == "master" or v.pending.get("username") == user:
                self.out("  createSecret: reusing the existing AWSPENDING version (resuming)")
                return v.pending_id, v.pending
            # e.g. left by an older in-process rotation that named the active user: never resumed
            self._drop_pending(name, v.pending_id)
            self.out(f"  createSecret: the AWSPENDING version names user {v.pending.get('username')}, not {user}: replaced")
        value = dict(v.current)
        if role != "master":
            # keep the connection fields right: they follow the master secret and config
            master = self._versions("master").current
            value.update(
                engine="postgres",
                host=master.get("host", value.get("host")),
                port=master.get("port", value.get("port")),
                username=user,
                dbname=self.settings.app_database.name,
            )
        value["password"] = new_password()
        token = str(uuid.uuid4())
        self.sm.put_secret_value(SecretId=name, ClientRequestToken=token, SecretString=json.dumps(value), VersionStages=["AWSPENDING"])
        self.out("  createSecret: new AWSPENDING version stored")
        return token, value

    def _set(self, role: str, name: str, pending: dict[str, Any]) -> None:
        if self._accepts(pending, pending["password"]):
            self.out("  setSecret: database already accepts AWSPENDING, skipped")
            return
        if role == "master":
            instance = pending.get("dbInstanceIdentifier") or self.settings.name("db")
            self.admin.set_master_password(instance, pending["password"])
            self.out(f"  setSecret: master password of RDS instance {instance} changed and applied")
            return
        with self._master_connection() as conn:
            exists = conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (pending["username"],)).fetchone()
            if not exists:
                raise RotationError(f"role {pending['username']} does not exist in the database; run the deploy with the app database enabled first")
            require_admin(conn, [pending["username"]], RotationError)  # 16+: a role carried over by an upgrade needs repair first
            verifier = scram_verifier(conn, pending["username"], pending["password"])  # by libpq: the password is not sent
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(pending["username"]), sql.Literal(verifier)))
        self.out(f"  setSecret: role {pending['username']} now accepts AWSPENDING (SCRAM verifier sent, not the password)")

    def _test(self, role: str, name: str, pending: dict[str, Any]) -> None:
        deadline = time.monotonic() + (self.master_test_timeout_s if role == "master" else 0)
        ok = self._accepts(pending, pending["password"])
        while not ok and time.monotonic() < deadline:
            time.sleep(min(5.0, self.master_test_timeout_s / 10))
            ok = self._accepts(pending, pending["password"])
        if not ok:
            raise RotationError(f"the database rejected the AWSPENDING password of {name}; re-run the rotation (AWSCURRENT is unchanged)")
        self.out(f"  testSecret: login as {pending.get('username')} with AWSPENDING over TLS succeeded")

    def _drop_pending(self, name: str, version_id: str) -> None:
        self.sm.update_secret_version_stage(SecretId=name, VersionStage="AWSPENDING", RemoveFromVersionId=version_id)


def roles_for(choice: str) -> tuple[str, ...]:
    return ROLES if choice == "all" else (choice,)

"""The four Secrets Manager rotation steps for one secret and one token, each idempotent.

The same protocol as `python -m bootstrap rotate` (bootstrap/rotation/local.py: new passwords, SCRAM
verifiers computed here so the clear password never reaches the server), split into the steps Secrets Manager invokes one at a time, and retries with the
same token after a failure:

  createSecret  store the new value under the token, staged AWSPENDING (kept if already stored);
  setSecret     make the database accept it (skipped when it already does);
  testSecret    log in with it over TLS;
  finishSecret  move AWSCURRENT to the token's version, for the alternating secret force a new
                deployment of the app's ECS service (tasks read the secret only at start), then
                drop the AWSPENDING label (last: a retry after a crash still redeploys).

Three kinds of secret:
  master       the RDS master; setSecret is ALTER ROLE by the master itself (AWSCURRENT, or
               AWSPENDING after a crash), like AWS's single-user template: no rds:ModifyDBInstance;
  single       a login role (the migrator); setSecret is ALTER ROLE as the master;
  alternating  the app login ("multi-user" strategy): the new version names the *other* of the two
               users `<role>` / `<role>_clone`, which gets the new password; the user named by
               AWSCURRENT keeps its password, so a task that read the secret at start keeps
               connecting until the next-but-one rotation. The rules live in dbcore/alternating.py,
               shared with the in-process rotation (bootstrap/rotation/local.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from dbcore import pgconn
from dbcore.alternating import other_user, pending_user, refuse_active_user, rollout_since  # noqa: F401 (other_user: re-exported for tests)
from dbcore.pgadmin import require_admin
from dbcore.rds_admin import DatabaseAdmin
from dbcore.rollout import check_service
from dbcore.rotation_lock import DEFAULT_WAIT_S, rotation_lock
from dbcore.secret import RotationError, aws_error_code, is_auth_failure, new_password, secret_json
from dbcore.verifier import scram_verifier

log = logging.getLogger("pghome.rotation")

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


@dataclass(frozen=True)
class FunctionConfig:
    """What the function knows besides the event: set from its environment (handler.config_from_env)."""

    master_secret_arn: str
    db_instance_id: str
    login_secret_arns: frozenset[str] = frozenset()
    alternating_secret_arns: frozenset[str] = frozenset()
    sslmode: str = "verify-full"
    sslrootcert: str | None = None
    host_override: str | None = None  # tests: the local server instead of the secret's host
    port_override: int | None = None
    connect_timeout: int = 5
    master_test_timeout_s: float = 60.0  # RDS reports the change before every login sees it
    ecs_cluster: str = ""  # the app's service, redeployed after an alternating rotation ("" = none)
    ecs_service: str = ""
    lock_wait_s: float = DEFAULT_WAIT_S  # how long setSecret waits for another rotation's lock

    def kind(self, arn: str) -> str:
        if arn == self.master_secret_arn:
            return "master"
        if arn in self.alternating_secret_arns:
            return "alternating"
        if arn in self.login_secret_arns:
            return "single"
        raise RotationError(f"secret {arn} is not one this function rotates (master or a login secret of this stack)")


@dataclass
class StepRunner:
    config: FunctionConfig
    sm: Any  # boto3 secretsmanager client
    admin: DatabaseAdmin
    out: Callable[[str], None] = field(default=log.info)
    ecs: Any = None  # boto3 ecs client (the redeploy after an alternating rotation)
    warn: Callable[[str], None] = field(default=log.warning)

    # secrets -------------------------------------------------------------------------------
    def value(self, arn: str, **version: str) -> dict[str, Any]:
        return secret_json(self.sm, arn, **version)

    def pending(self, arn: str, token: str) -> dict[str, Any] | None:
        try:
            return self.value(arn, VersionId=token, VersionStage="AWSPENDING")
        except self.sm.exceptions.ResourceNotFoundException:
            return None

    # database ------------------------------------------------------------------------------
    def endpoint(self, secret: dict[str, Any], dbname: str | None = None) -> pgconn.Endpoint:
        c = self.config
        return pgconn.Endpoint(
            host=c.host_override or str(secret.get("host") or ""),
            port=int(c.port_override or secret.get("port") or 5432),
            dbname=dbname or str(secret.get("dbname") or "postgres"),
            sslmode=c.sslmode,
            sslrootcert=c.sslrootcert,
            connect_timeout=c.connect_timeout,
        )

    def accepts(self, secret: dict[str, Any]) -> bool:
        """True if the database accepts the secret's login; RotationError if it cannot be reached."""
        password = str(secret.get("password") or "")
        if not password:
            return False
        ep = self.endpoint(secret)
        try:
            with pgconn.connect(ep, str(secret.get("username")), password) as conn:
                conn.execute("SELECT 1")
            return True
        except pgconn.ConnectionSettingsError as exc:
            raise RotationError(f"cannot connect to the database: {exc}") from None
        except psycopg.OperationalError as exc:
            if is_auth_failure(exc):
                return False
            if "does not exist" in str(exc):
                raise RotationError(f"database {ep.dbname!r} or user {secret.get('username')!r} named by the secret does not exist on {ep.host}:{ep.port}") from None
            raise RotationError(f"database at {ep.host}:{ep.port} is unreachable over TLS (sslmode={ep.sslmode}); check the function's security group and subnets") from None

    def master_connection(self) -> psycopg.Connection:
        """As master with AWSCURRENT, else AWSPENDING (a master rotation stopped after setSecret)."""
        arn = self.config.master_secret_arn
        candidates = [("AWSCURRENT", self.value(arn, VersionStage="AWSCURRENT"))]
        try:
            candidates.append(("AWSPENDING", self.value(arn, VersionStage="AWSPENDING")))
        except self.sm.exceptions.ResourceNotFoundException:
            pass
        for label, secret in candidates:
            if self.accepts(secret):
                self.out(f"connected as master using {label}")
                return pgconn.connect(self.endpoint(secret), str(secret["username"]), str(secret["password"]))
        raise RotationError(f"the database rejected both AWSCURRENT and AWSPENDING of the master secret {arn}; the master must be rotated first")

    # the steps -----------------------------------------------------------------------------
    def run(self, step: str, arn: str, token: str) -> None:
        action = getattr(self, {"createSecret": "create", "setSecret": "set", "testSecret": "test", "finishSecret": "finish"}[step])
        if step != "setSecret":
            action(arn, token)
            return
        with self.serialised(arn):
            action(arn, token)

    @contextlib.contextmanager
    def serialised(self, arn: str) -> Iterator[None]:
        """Hold the database's rotation lock (dbcore/rotation_lock.py) on a master connection, so
        two rotations Secrets Manager runs at once never change passwords at the same time. A master
        whose secret the database rejects (both labels) is set through RDS without it: nothing else
        can connect as the master to race it."""
        try:
            conn = self.master_connection()
        except RotationError:
            if self.config.kind(arn) != "master":
                raise
            self.out("setSecret: the database rejects the master secret, so no other rotation can run; changing it without the lock")
            yield
            return
        with conn, rotation_lock(conn, "setSecret", error=RotationError, wait_s=self.config.lock_wait_s, out=self.out):
            yield

    def create(self, arn: str, token: str) -> None:
        kind = self.config.kind(arn)
        current = self.value(arn, VersionStage="AWSCURRENT")
        if self.pending(arn, token) is not None:
            self.out(f"createSecret: version {token} already holds the new value (retry)")
            return
        if kind == "alternating":
            check, since = rollout_since(self.sm, arn, current)
            if check:
                self._check_rollout(since)
        value = dict(current)
        if kind != "master":
            # connection fields follow the master secret (the endpoint may have changed)
            master = self.value(self.config.master_secret_arn, VersionStage="AWSCURRENT")
            value.update(engine="postgres", host=master.get("host", value.get("host")), port=master.get("port", value.get("port")))
            if kind == "alternating":
                value["username"] = pending_user(current)
        value["password"] = new_password()
        self.sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(value), VersionStages=["AWSPENDING"])
        self.out(f"createSecret: new value stored as AWSPENDING for user {value.get('username')}")

    def _check_rollout(self, since: Any = None) -> None:
        """Refuse (a RotationError, so Secrets Manager retries later) while the app service's last
        forced deployment is unfinished, or started before AWSCURRENT (`since`: the redeploy of the
        last rotation failed): its tasks may still hold the user this rotation changes."""
        c = self.config
        if not (c.ecs_cluster and c.ecs_service and self.ecs is not None):
            return
        problem = check_service(self.ecs, c.ecs_cluster, c.ecs_service, since)
        if problem:
            self.warn(f"createSecret: refused: {problem}")
            raise RotationError(f"createSecret: {problem}")

    def _pending_or_fail(self, arn: str, token: str, step: str) -> dict[str, Any]:
        pending = self.pending(arn, token)
        if pending is None or not pending.get("password"):
            raise RotationError(f"{step}: version {token} of {arn} holds no new password; createSecret must run first")
        return pending

    def set(self, arn: str, token: str) -> None:
        kind = self.config.kind(arn)
        pending = self._pending_or_fail(arn, token, "setSecret")
        if self.accepts(pending):
            self.out("setSecret: the database already accepts AWSPENDING, skipped")
            return
        if kind == "master":
            # As AWS's single-user template does: the master changes its own password in SQL, so the
            # function needs no rds:ModifyDBInstance (which could also switch off deletion protection
            # or backups); ModifyDBInstance stays an operator's break-glass (issue 28 item 8).
            user = str(pending["username"])
            with self.master_connection() as conn:
                verifier = scram_verifier(conn, user, str(pending["password"]))  # computed by libpq: the password is not sent
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), sql.Literal(verifier)))
            self.out(f"setSecret: master {user} now accepts AWSPENDING (ALTER ROLE as the master itself, SCRAM verifier sent)")
            return
        user = str(pending["username"])
        if kind == "alternating":
            try:  # would kill every task holding AWSCURRENT: the pair must alternate
                refuse_active_user(pending, self.value(arn, VersionStage="AWSCURRENT"))
            except RotationError as exc:
                raise RotationError(f"setSecret: {exc}") from None
        with self.master_connection() as conn:
            if not conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (user,)).fetchone():
                raise RotationError(f"setSecret: role {user} does not exist in the database; deploy the app database first")
            require_admin(conn, [user], RotationError)  # 16+: the master must hold ADMIN on the role
            verifier = scram_verifier(conn, user, str(pending["password"]))  # by libpq: the password is not sent
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), sql.Literal(verifier)))
        self.out(f"setSecret: role {user} now accepts AWSPENDING (SCRAM verifier sent, not the password)")

    def test(self, arn: str, token: str) -> None:
        kind = self.config.kind(arn)
        pending = self._pending_or_fail(arn, token, "testSecret")
        deadline = time.monotonic() + (self.config.master_test_timeout_s if kind == "master" else 0)
        ok = self.accepts(pending)
        while not ok and time.monotonic() < deadline:
            time.sleep(min(5.0, max(self.config.master_test_timeout_s / 10, 0.01)))
            ok = self.accepts(pending)
        if not ok:
            raise RotationError(f"testSecret: the database rejected the AWSPENDING login of {pending.get('username')}; AWSCURRENT is unchanged")
        self.out(f"testSecret: login as {pending.get('username')} with AWSPENDING over TLS succeeded")

    def finish(self, arn: str, token: str) -> None:
        kind = self.config.kind(arn)
        stages: dict[str, list[str]] = self.sm.describe_secret(SecretId=arn).get("VersionIdsToStages") or {}
        current = next((v for v, s in stages.items() if "AWSCURRENT" in s), None)
        if current != token:
            self.sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current)
            self.out(f"finishSecret: AWSCURRENT moved to version {token}")
        if kind == "alternating":
            self.redeploy()
        if "AWSPENDING" in stages.get(token, []):
            self.sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=token)
        self.out("finishSecret: done, no AWSPENDING left")

    def redeploy(self) -> None:
        """Force a new deployment of the app's service, so a scheduled rotation (no CLI waiting on it)
        also reaches the tasks. A failure does not fail the step: the secret is rotated, and tasks
        holding the previous user keep working until the next-but-one rotation; it is said in the log."""
        c = self.config
        if not (c.ecs_cluster and c.ecs_service):
            return
        try:
            self.ecs.update_service(cluster=c.ecs_cluster, service=c.ecs_service, forceNewDeployment=True)
        except Exception as exc:  # noqa: BLE001 - never fails the rotation; the code is enough to act on
            self.warn(f"finishSecret: the secret is rotated, but forcing a new deployment of service {c.ecs_service} in cluster {c.ecs_cluster} "
                      f"did not succeed ({aws_error_code(exc) or type(exc).__name__}); running tasks keep working until the next-but-one rotation, "
                      "redeploy the service before then")
            return
        self.out(f"finishSecret: new deployment of service {c.ecs_service} forced, so every task reads the new credentials")

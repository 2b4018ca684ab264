"""Test doubles for the rotation steps' unit tests (tests/test_rotation_steps_unit.py): an
in-memory Secrets Manager checked against botocore's model of the API, a database behind the
`dbcore.pgconn.connect` seam, and a `World` that installs them with recorders of the helpers the
steps call (SCRAM verifier, ADMIN check, rotation lock, rollout check)."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import psycopg
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import ParamValidator
from psycopg import sql

from dbcore import pgconn
from rotation_function import steps
from rotation_function.steps import FunctionConfig, StepRunner

MASTER, APP, MIG = "arn:master", "arn:app", "arn:mig"
HOST = "db.internal"


def version(name: str) -> str:
    """A version id as Secrets Manager makes them (a UUID: the API wants 32 to 64 characters), readable in a failure."""
    return f"00000000-0000-4000-8000-{name.encode().hex()[-12:]:0>12}"


a1 = version("a1")
g1 = version("g1")
m1 = version("m1")
m2 = version("m2")
t1 = version("t1")
t2 = version("t2")
t3 = version("t3")
t9 = version("t9")


class NotFoundError(Exception):
    """Stands for botocore's ResourceNotFoundException (what GetSecretValue raises for a missing stage)."""


# botocore's own model of the Secrets Manager API: every call's parameters are checked against it,
# as the real client does before sending (a None value or a misspelt name is a ParamValidationError).
_MODEL = botocore.session.get_session().get_service_model("secretsmanager")
_OPERATIONS = {"get": "GetSecretValue", "put": "PutSecretValue", "describe": "DescribeSecret", "stage": "UpdateSecretVersionStage"}


class FakeSecretsManager:
    """Versions and stages per secret, as Secrets Manager keeps them; every call is recorded."""

    class exceptions:  # noqa: N801 - the boto3 client's attribute name
        ResourceNotFoundException = NotFoundError

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}
        self.created: dict[tuple[str, str], dt.datetime] = {}  # each version's CreatedDate, a minute apart
        self.stages: dict[str, dict[str, list[str]]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _call(self, name: str, kw: dict[str, Any]) -> None:
        self.calls.append((name, kw))
        report = ParamValidator().validate(kw, _MODEL.operation_model(_OPERATIONS[name]).input_shape)
        if report.has_errors():
            raise ParamValidationError(report=report.generate_report())

    def add(self, arn: str, version: str, value: dict[str, Any], *stages: str) -> None:
        self.values[(arn, version)] = json.dumps(value)
        self.created.setdefault((arn, version), dt.datetime(2026, 12, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=len(self.created)))
        self.stages.setdefault(arn, {})[version] = list(stages)

    def get_secret_value(self, **kw: Any) -> dict[str, Any]:
        self._call("get", kw)
        versions = self.stages[kw["SecretId"]]
        stage = kw.get("VersionStage") or "AWSCURRENT"
        vid = kw.get("VersionId") or next((v for v, s in versions.items() if stage in s), None)
        if vid not in versions or stage not in versions[vid]:
            raise NotFoundError(f"no version {vid} staged {stage}")
        # GetSecretValue's response fields (AWS Secrets Manager API reference): CreatedDate is what
        # the rollout check compares the service's last deployment with
        return {"SecretString": self.values[(kw["SecretId"], vid)], "VersionId": vid, "VersionStages": list(versions[vid]),
                "CreatedDate": self.created[(kw["SecretId"], vid)]}

    def put_secret_value(self, **kw: Any) -> None:
        self._call("put", kw)
        self.add(kw["SecretId"], kw["ClientRequestToken"], json.loads(kw["SecretString"]), *kw["VersionStages"])

    def describe_secret(self, **kw: Any) -> dict[str, Any]:
        self._call("describe", kw)
        return {"VersionIdsToStages": copy.deepcopy(self.stages[kw["SecretId"]])}

    def update_secret_version_stage(self, **kw: Any) -> None:
        self._call("stage", kw)
        versions = self.stages[kw["SecretId"]]
        if kw.get("RemoveFromVersionId"):
            versions[kw["RemoveFromVersionId"]].remove(kw["VersionStage"])
        if kw.get("MoveToVersionId"):
            versions[kw["MoveToVersionId"]].append(kw["VersionStage"])

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class FakeConn:
    def __init__(self, db: FakeDb, user: str) -> None:
        self.db, self.user, self.closed = db, user, False

    def __enter__(self) -> FakeConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def execute(self, query: Any, params: Any = None) -> Any:
        self.db.executed.append((self.user, query, params))
        for user, password, verifier in self.db.verifiers:  # ALTER ROLE ... PASSWORD <the verifier of that password>
            if query == sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), sql.Literal(verifier)):
                self.db.passwords[user] = password
        rows = [(1,)] if query != steps_role_query or (params and params[0] in self.db.passwords) else []
        return type("Cursor", (), {"fetchone": lambda _self: rows[0] if rows else None})()


steps_role_query = "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s"


class FakeDb:
    """The database behind `pgconn.connect`: users and their passwords, what was run, by whom."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = dict(passwords)
        self.opened: list[tuple[pgconn.Endpoint, str, str]] = []
        self.executed: list[tuple[str, Any, Any]] = []
        self.verifiers: list[tuple[str, str, str]] = []
        self.error: Exception | None = None
        self.conns: list[FakeConn] = []

    def connect(self, endpoint: pgconn.Endpoint, user: str, password: str) -> FakeConn:
        self.opened.append((endpoint, user, password))
        if self.error is not None:
            raise self.error
        if user not in self.passwords or self.passwords[user] != password:
            raise psycopg.OperationalError(f'cannot connect to host={endpoint.host}: FATAL:  password authentication failed for user "{user}"')
        conn = FakeConn(self, user)
        self.conns.append(conn)
        return conn

    def verifier(self, conn: FakeConn, user: str, password: str) -> str:
        assert isinstance(conn, FakeConn) and conn.user == "master" and not conn.closed, "the verifier is computed on the open master connection"
        v = f"SCRAM-SHA-256$of:{password}"
        self.verifiers.append((user, password, v))
        return v


class World:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sm = FakeSecretsManager()
        self.db = FakeDb({"master": "m-old", "shop_mig": "mig-old", "shop_app": "app-old"})
        self.log: list[str] = []
        self.warnings: list[str] = []
        self.admin_checks: list[tuple[Any, list[str], type[Exception]]] = []
        self.locks: list[tuple[Any, str, dict[str, Any]]] = []
        self.rollout: list[tuple[Any, str, str]] = []
        self.rollout_since: list[Any] = []  # the `since` each check got (AWSCURRENT's CreatedDate)
        self.problem: str | None = None
        self.passwords = iter(f"new-{i}" for i in range(1, 100))
        monkeypatch.setattr(pgconn, "connect", self.db.connect)
        monkeypatch.setattr(steps, "scram_verifier", self.db.verifier)
        monkeypatch.setattr(steps, "require_admin", lambda conn, roles, error: self.admin_checks.append((conn, roles, error)))
        monkeypatch.setattr(steps, "new_password", lambda: next(self.passwords))
        monkeypatch.setattr(steps, "rotation_lock", self.lock)
        monkeypatch.setattr(steps, "check_service", self.check_service)
        endpoint = {"engine": "postgres", "host": HOST, "port": 5432, "dbname": "shop"}
        self.sm.add(MASTER, m1, {**endpoint, "dbname": "postgres", "username": "master", "password": "m-old"}, "AWSCURRENT")
        self.sm.add(MIG, g1, {**endpoint, "host": "old.internal", "port": 6432, "username": "shop_mig", "password": "mig-old"}, "AWSCURRENT")
        self.sm.add(APP, a1, {**endpoint, "username": "shop_app", "password": "app-old"}, "AWSCURRENT")
        self.config = FunctionConfig(master_secret_arn=MASTER, db_instance_id="shop-dev-db", login_secret_arns=frozenset({MIG}),
                                     alternating_secret_arns=frozenset({APP}), sslmode="verify-ca", sslrootcert="/ca.pem", connect_timeout=7,
                                     master_test_timeout_s=60.0, lock_wait_s=33.0)

    @contextlib.contextmanager
    def lock(self, conn: Any, what: str, **kw: Any) -> Iterator[None]:
        self.locks.append((conn, what, kw))
        yield

    def check_service(self, ecs: Any, cluster: str, service: str, since: Any = None) -> str | None:
        self.rollout.append((ecs, cluster, service))
        self.rollout_since.append(since)
        return self.problem

    def runner(self, config: FunctionConfig | None = None, ecs: Any = None) -> StepRunner:
        return StepRunner(config or self.config, self.sm, None, out=self.log.append, ecs=ecs, warn=self.warnings.append)  # type: ignore[arg-type]

    def pending(self, arn: str, token: str, value: dict[str, Any]) -> None:
        self.sm.add(arn, token, value, "AWSPENDING")

    def value(self, arn: str, version: str) -> dict[str, Any]:
        return dict(json.loads(self.sm.values[(arn, version)]))

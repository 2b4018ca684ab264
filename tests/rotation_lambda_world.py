"""The rotation function's world for tests: rotation_world's moto + local PostgreSQL, plus what
Secrets Manager does around the function (enable rotation, start a rotation with a fresh token,
then invoke the four steps)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from rotation_function.handler import run_event
from rotation_function.steps import STEPS, FunctionConfig, StepRunner, other_user
from tests.pgserver import PgServer
from tests.rotation_world import World, make_world

ACCOUNT = "123456789012"  # moto's default account


class LambdaWorld:
    def __init__(self, world: World):
        self.w = world
        self.arns = {role: world.sm.describe_secret(SecretId=f"{world.settings.prefix}/db/{role}")["ARN"] for role in ("master", "app", "migrator")}
        self.app_user = f"{world.settings.app_database.role_prefix}_app"
        self.clone_user = other_user(self.app_user)
        # the model's clone (components/pgmodel.py) exists: World creates it as the master, as on RDS
        for arn in self.arns.values():
            # What SecretRotation (RotateSecret with a function) turns on; moto's rotate_secret without
            # a function would instead promote a copy, and with one it needs Docker.
            self.enable(arn)
        master = world.secret("master") or {}
        for role in ("app", "migrator"):  # the initial value components/app_database.py writes
            arn = self.arns[role]
            vid = world.sm.put_secret_value(SecretId=arn, VersionStages=["PGHOME_INITIAL"], SecretString=json.dumps({
                "engine": "postgres", "host": master["host"], "port": master["port"], "password": "",
                "username": f"{world.settings.app_database.role_prefix}_{role}", "dbname": world.settings.app_database.name,
            }))["VersionId"]
            # (stage moves, not a default put: moto keeps two AWSCURRENT after earlier stage moves)
            stages = world.sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
            current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
            world.sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=vid, RemoveFromVersionId=current)
        self.config = FunctionConfig(
            master_secret_arn=self.arns["master"],
            db_instance_id=world.instance,
            login_secret_arns=frozenset({self.arns["migrator"]}),
            alternating_secret_arns=frozenset({self.arns["app"]}),
            sslmode="verify-full",
            sslrootcert=str(world.pg.ca_file),
            host_override="localhost",
            port_override=world.pg.port,
            master_test_timeout_s=1.0,
        )
        self.log: list[str] = []

    def runner(self, out: Any = None) -> StepRunner:
        return StepRunner(self.config, self.w.sm, self.w.admin, out=out or self.log.append)

    def enable(self, arn: str) -> None:
        secret = self._moto_secret(arn)
        secret.rotation_requested = secret.rotation_enabled = True
        secret.rotation_lambda_arn = f"arn:aws:lambda:{self.w.settings.region}:{ACCOUNT}:function:{self.w.settings.prefix}-db-rotation"
        secret.auto_rotate_after_days = 30

    def _moto_secret(self, arn: str) -> Any:
        from moto.secretsmanager.models import secretsmanager_backends

        return secretsmanager_backends[ACCOUNT][self.w.settings.region].secrets[arn]

    def start(self, role: str) -> str:
        """What RotateSecret does before invoking the function: a valueless version, staged AWSPENDING.
        (moto only does this when it can invoke a Lambda, which needs Docker.)"""
        secret = self._moto_secret(self.arns[role])
        token = str(uuid.uuid4())
        for v in secret.versions.values():
            if "AWSPENDING" in v["version_stages"]:
                v["version_stages"].remove("AWSPENDING")
        secret.versions[token] = {"createdate": int(time.time()), "version_id": token, "version_stages": ["AWSPENDING"]}
        return token

    def event(self, role: str, step: str, token: str) -> dict[str, str]:
        return {"SecretId": self.arns[role], "ClientRequestToken": token, "Step": step}

    def step(self, role: str, step: str, token: str, runner: StepRunner | None = None) -> str:
        return run_event(self.event(role, step, token), runner or self.runner())

    def rotate(self, role: str) -> str:
        token = self.start(role)
        for step in STEPS:
            self.step(role, step, token)
        return token


@pytest.fixture
def lw(pg: PgServer) -> Iterator[LambdaWorld]:
    """The rotation function's world on the test server (moto Secrets Manager and ECS, the real
    PostgreSQL), dropped afterwards (a plugin of tests/conftest.py: every test module may ask for it)."""
    with make_world(pg) as w:
        yield LambdaWorld(w)

"""`python -m bootstrap rotate --stack dev` through the stack's rotation function: the runner calls
RotateSecret and waits, with AWS API access only (no tunnel, no database connection of its own).

The seam `bootstrap.deploy_cli.make_remote_rotator` is replaced by the real `RemoteRotator` over a
Secrets Manager that plays the service's part around the function (tests/rotation_lambda_world.py):
RotateSecret stages a new AWSPENDING version and invokes the handler's four steps against moto
and the real PostgreSQL. ECS (the redeploy after a login rotation) is a Stubber, shaped from the
ECS API reference. The stack and its outputs come from a deploy through the `pulumi` double."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bootstrap.rotate_remote import RemoteRotator
from rotation_function.steps import STEPS
from tests.deploy_world import DeployWorld, deploy_world, stack_outputs
from tests.pgserver import PgServer
from tests.pulumi_double.fixture import Double
from tests.rotation_lambda_world import LambdaWorld
from tests.test_rotate_remote import FakeClock


class PlayedSecretsManager:
    """Secrets Manager around the function: DescribeSecret from moto; RotateSecret stages a new
    AWSPENDING version, then invokes the four steps. A failing step leaves the version AWSPENDING
    (the service would retry it later) and its one sentence in the function's log (`lw.log`)."""

    def __init__(self, lw: LambdaWorld):
        self.lw = lw
        self.rotated: list[str] = []
        self.broken: str = ""  # a step that fails (the function cannot reach the database)

    def _arn(self, secret_id: str) -> str:
        # The stack's (mock) ARN names the secret; moto's ARN of the same name has its own suffix.
        name = secret_id.split(":secret:", 1)[-1].rsplit("-", 1)[0]
        return self.lw.arns[name.rsplit("/", 1)[-1]]

    def describe_secret(self, SecretId: str) -> dict[str, Any]:  # noqa: N803 - boto3's keyword
        return dict(self.lw.w.sm.describe_secret(SecretId=self._arn(SecretId)))

    def rotate_secret(self, SecretId: str, RotateImmediately: bool = True) -> dict[str, Any]:  # noqa: N803
        role = self._arn(SecretId).split(":secret:", 1)[-1].rsplit("-", 1)[0].rsplit("/", 1)[-1]
        token = self.lw.start(role)
        self.rotated.append(role)
        for step in STEPS:
            runner = self.lw.runner()
            if step == self.broken:
                runner = dataclasses.replace(runner, config=dataclasses.replace(runner.config, port_override=1))
            try:
                self.lw.step(role, step, token, runner)
            except Exception:  # noqa: BLE001 - the Lambda invocation failed; the log holds the sentence
                break
        return {"ARN": self._arn(SecretId), "Name": role, "VersionId": token}


@pytest.fixture
def deployed(pg: PgServer, pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[DeployWorld, LambdaWorld]]:
    with deploy_world(pg, pulumi_double, monkeypatch, capsys) as w:
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 0, err + out
        lw = LambdaWorld(w.world)
        try:
            yield w, lw
        finally:
            lw.drop()


def _seam(monkeypatch: pytest.MonkeyPatch, lw: LambdaWorld, ecs: Any) -> tuple[PlayedSecretsManager, list[dict[str, Any]]]:
    sm = PlayedSecretsManager(lw)
    seen: list[dict[str, Any]] = []

    def make(region: str, outputs: dict[str, Any]) -> RemoteRotator:
        seen.append(outputs)
        return RemoteRotator(sm, ecs, outputs, clock=FakeClock(), timeout_s=60)  # type: ignore[arg-type]

    def forbidden(*a: Any) -> Any:
        raise AssertionError("the remote path must not reach the database or open a tunnel")

    monkeypatch.setattr("bootstrap.deploy_cli.make_remote_rotator", make)
    monkeypatch.setattr("bootstrap.deploy_cli.make_db_admin", forbidden)
    monkeypatch.setattr("bootstrap.deploy_cli.make_tunnel_seams", forbidden)
    return sm, seen


def _stub_redeploy(ecs: Any, cluster: str, service: str) -> Stubber:
    stubber = Stubber(ecs)
    stubber.add_response("update_service", {"service": {"serviceName": service}},
                         {"cluster": cluster, "service": service, "forceNewDeployment": True})
    stubber.add_response("describe_services", {"services": [{"serviceName": service, "desiredCount": 2, "runningCount": 2,
                                                               "deployments": [{"id": "ecs-svc/1", "status": "PRIMARY"}]}], "failures": []},
                         {"cluster": cluster, "services": [service]})
    stubber.activate()
    return stubber


def test_rotate_goes_through_the_rotation_function(deployed: tuple[DeployWorld, LambdaWorld], pulumi_double: Double, monkeypatch: pytest.MonkeyPatch) -> None:
    w, lw = deployed
    outputs = stack_outputs(pulumi_double)
    ecs = boto3.client("ecs", region_name=w.world.settings.region)
    stubber = _stub_redeploy(ecs, str(outputs["clusterName"]), str(outputs["serviceName"]))
    sm, seen = _seam(monkeypatch, lw, ecs)
    old_master = w.master_password()
    old_migrator = w.world.secret("migrator")

    rc, out, err = w.run("rotate", "--stack", "dev")
    assert rc == 0, err + out
    assert sm.rotated == ["master", "app", "migrator"]  # master first: the login steps connect as the master
    assert seen and seen[0]["rotationFunctionArn"] == outputs["rotationFunctionArn"]
    stubber.assert_no_pending_responses()  # the redeploy after the login rotation was started and awaited
    assert out.index("rotate master through Secrets Manager") < out.index("is AWSCURRENT") < out.index("stable, every task holds")
    # the old passwords stop working; the new AWSCURRENT ones work; nothing is left AWSPENDING
    pg = w.world.pg
    assert not pg.can_login(w.world.master, old_master, "postgres") and pg.can_login(w.world.master, w.master_password(), "postgres")
    assert old_migrator is not None
    new_migrator = w.world.secret("migrator")
    assert new_migrator and new_migrator["password"] != old_migrator["password"]
    assert not pg.can_login(old_migrator["username"], old_migrator["password"], old_migrator["dbname"])
    for role in ("app", "migrator"):
        assert w.world.secret(role, "AWSPENDING") is None
        s = w.world.secret(role)
        assert s and pg.can_login(s["username"], s["password"], s["dbname"])
    assert (w.world.secret("app") or {})["username"] == lw.clone_user  # alternating: the clone took over


def test_rotate_errors_are_one_sentence_and_local_still_works(deployed: tuple[DeployWorld, LambdaWorld], monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    w, lw = deployed
    sm, _ = _seam(monkeypatch, lw, ecs=None)

    # a step fails inside the function: the wait ends with the function's log group named
    sm.broken = "setSecret"
    rc, out, err = w.run("rotate", "--stack", "dev", "--role", "migrator")
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "did not finish within 60s" in err and f"/aws/lambda/{w.world.settings.prefix}-db-rotation" in err
    assert "setSecret failed for" in caplog.text and "unreachable" in caplog.text  # the function's log: one sentence
    # the version it left AWSPENDING: a second rotate refuses, naming it, without calling RotateSecret
    sm.broken, before = "", list(sm.rotated)
    rc, out, err = w.run("rotate", "--stack", "dev", "--role", "migrator")
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "has a rotation in progress" in err and "AWSPENDING" in err
    assert sm.rotated == before
    # Secrets Manager's retry of the same token finishes it (what the service does on its own)
    stages = lw.w.sm.describe_secret(SecretId=lw.arns["migrator"])["VersionIdsToStages"]
    token = next(v for v, s in stages.items() if "AWSPENDING" in s)
    for step in STEPS:
        lw.step("migrator", step, token)
    assert w.world.secret("migrator", "AWSPENDING") is None

    # --local: today's in-process path, straight to the database (the seams are back to the world's)
    monkeypatch.setattr("bootstrap.deploy_cli.make_db_admin", lambda rds: w.world.admin)
    old = w.world.secret("migrator")
    assert old is not None
    rc, out, err = w.run("rotate", "--stack", "dev", "--local", "--role", "migrator", "--tunnel", "never")
    assert rc == 0, err + out
    new = w.world.secret("migrator")
    assert new and new["password"] != old["password"] and w.world.pg.can_login(new["username"], new["password"], new["dbname"])
    assert not w.world.pg.can_login(old["username"], old["password"], old["dbname"])


def test_remote_rotator_needs_the_stack_secrets() -> None:
    rot = RemoteRotator(None, None, {"rotationFunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:shop-dev-db-rotation"})
    from bootstrap.rotation import RotationError

    with pytest.raises(RotationError, match="exports no secret for master"):
        rot.rotate(["master"])
    assert not RemoteRotator.available({}) and RemoteRotator.available(rot.outputs)



def test_deploy_rotates_the_logins_through_the_function(pg: PgServer, pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Without --local-rotation, phase 4 has Secrets Manager run the function (master stays phase 2's)."""
    from botocore.stub import ANY

    with deploy_world(pg, pulumi_double, monkeypatch, capsys) as w:
        lw = LambdaWorld(w.world)
        try:
            ecs = boto3.client("ecs", region_name=w.world.settings.region)
            stubber = Stubber(ecs)
            stubber.add_response("update_service", {"service": {}}, {"cluster": ANY, "service": ANY, "forceNewDeployment": True})
            stubber.add_response("describe_services", {"services": [{"desiredCount": 1, "runningCount": 1, "deployments": [{"id": "d"}]}],
                                                       "failures": []}, {"cluster": ANY, "services": ANY})
            stubber.activate()
            sm = PlayedSecretsManager(lw)
            monkeypatch.setattr("bootstrap.deploy_cli.make_remote_rotator",
                                lambda region, outputs: RemoteRotator(sm, ecs, outputs, clock=FakeClock(), timeout_s=60))  # type: ignore[arg-type]
            rc, out, err = w.run("deploy", "--stack", "dev", "--yes")
            assert rc == 0, err + out
            assert sm.rotated == ["app", "migrator"]
            assert out.index("[phase 2/5] rotate master") < out.index("[phase 4/5] rotate app, migrator through the stack's rotation function")
            stubber.assert_no_pending_responses()
            for role in ("app", "migrator"):
                s = w.world.secret(role)
                assert s and s["password"] and w.world.pg.can_login(s["username"], s["password"], s["dbname"])
        finally:
            lw.drop()

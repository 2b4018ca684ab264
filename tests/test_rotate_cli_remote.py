"""`python -m bootstrap rotate --stack dev` through the stack's rotation function: the runner calls
RotateSecret and waits, with AWS API access only (no tunnel, no database connection of its own).

The seam `bootstrap.cli.deploy.make_remote_rotator` is replaced by the real `RemoteRotator` over a
Secrets Manager that plays the service's part around the function (tests/rotation_lambda_world.py):
RotateSecret stages a new AWSPENDING version and invokes the handler's four steps against moto
and the real PostgreSQL; a failed step's sentence goes to the function's log group in moto's
CloudWatch Logs. ECS (the redeploy after a login rotation) is a Stubber, shaped from the ECS API
reference. The stack and its outputs come from a deploy through the `pulumi` double."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bootstrap.rotation.remote import RemoteRotator
from rotation_function.steps import STEPS
from tests.deploy_world import DeployWorld, deploy_world, stack_outputs
from tests.helpers import FakeClock
from tests.pgserver import PgServer
from tests.pulumi_double.fixture import Double
from tests.rotation_lambda_world import LambdaWorld


class PlayedSecretsManager:
    """Secrets Manager around the function: DescribeSecret from moto; RotateSecret stages a new
    AWSPENDING version (or, given the pending version as ClientRequestToken, runs that rotation
    again), then invokes the four steps. A failing step leaves the version AWSPENDING (the service
    would retry it later) and its one sentence in the function's log group (`logs`, as Lambda writes it)."""

    def __init__(self, lw: LambdaWorld, logs: Any = None, log_group: str = ""):
        self.lw = lw
        self.rotated: list[str] = []
        self.resumed: list[str] = []
        self.broken: str = ""  # a step that fails (the function cannot reach the database)
        self.logs, self.log_group = logs, log_group
        if logs is not None:
            logs.create_log_group(logGroupName=log_group)
            logs.create_log_stream(logGroupName=log_group, logStreamName="played")

    def _arn(self, secret_id: str) -> str:
        # The stack's (mock) ARN names the secret; moto's ARN of the same name has its own suffix.
        name = secret_id.split(":secret:", 1)[-1].rsplit("-", 1)[0]
        return self.lw.arns[name.rsplit("/", 1)[-1]]

    def describe_secret(self, SecretId: str) -> dict[str, Any]:  # noqa: N803 - boto3's keyword
        return dict(self.lw.w.sm.describe_secret(SecretId=self._arn(SecretId)))

    def list_secret_version_ids(self, SecretId: str, IncludeDeprecated: bool = False) -> dict[str, Any]:  # noqa: N803
        return dict(self.lw.w.sm.list_secret_version_ids(SecretId=self._arn(SecretId), IncludeDeprecated=IncludeDeprecated))

    def rotate_secret(self, SecretId: str, RotateImmediately: bool = True, ClientRequestToken: str = "") -> dict[str, Any]:  # noqa: N803
        role = self._arn(SecretId).split(":secret:", 1)[-1].rsplit("-", 1)[0].rsplit("/", 1)[-1]
        stages = self.describe_secret(SecretId)["VersionIdsToStages"]
        if ClientRequestToken and "AWSPENDING" in stages.get(ClientRequestToken, []):
            token = ClientRequestToken  # the same rotation again: no new version
            self.resumed.append(role)
        else:
            token = self.lw.start(role)
            self.rotated.append(role)
        for step in STEPS:
            runner = self.lw.runner()
            if step == self.broken:
                runner = dataclasses.replace(runner, config=dataclasses.replace(runner.config, port_override=1))
            try:
                self.lw.step(role, step, token, runner)
            except Exception as exc:  # noqa: BLE001 - the Lambda invocation failed; the log holds the sentence
                self._log(str(exc).replace(self._arn(SecretId), SecretId))  # the function sees the secret's own ARN
                break
        return {"ARN": self._arn(SecretId), "Name": role, "VersionId": token}

    def _log(self, sentence: str) -> None:
        if self.logs is not None:
            self.logs.put_log_events(logGroupName=self.log_group, logStreamName="played", logEvents=[
                {"timestamp": int(time.time() * 1000), "message": f"[ERROR]\t2026-11-23T15:00:00.000Z\treq-1\t{sentence}\n"}])


@pytest.fixture
def deployed(pg: PgServer, pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[DeployWorld, LambdaWorld]]:
    with deploy_world(pg, pulumi_double, monkeypatch, capsys) as w:
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 0, err + out
        yield w, LambdaWorld(w.world)


def _seam(monkeypatch: pytest.MonkeyPatch, lw: LambdaWorld, ecs: Any, logs: Any = None) -> tuple[PlayedSecretsManager, list[dict[str, Any]]]:
    sm = PlayedSecretsManager(lw, logs, f"/aws/lambda/{lw.w.settings.prefix}-db-rotation")
    seen: list[dict[str, Any]] = []

    def make(region: str, outputs: dict[str, Any]) -> RemoteRotator:
        seen.append(outputs)
        return RemoteRotator(sm, ecs, outputs, clock=FakeClock(wall0=time.time()).clock(), timeout_s=60, logs=logs)  # type: ignore[arg-type]

    def forbidden(*a: Any) -> Any:
        raise AssertionError("the remote path must not reach the database or open a tunnel")

    monkeypatch.setattr("bootstrap.cli.deploy.make_remote_rotator", make)
    monkeypatch.setattr("bootstrap.cli.deploy.make_db_admin", forbidden)
    monkeypatch.setattr("bootstrap.cli.deploy.make_tunnel_seams", forbidden)
    return sm, seen


def _stub_redeploy(ecs: Any, cluster: str, service: str) -> Stubber:
    stubber = Stubber(ecs)
    # the CLI's check that the last rollout finished (dbcore/rollout.py): it has
    stubber.add_response("describe_services", {"services": [{"serviceName": service, "deployments": [
        {"id": "ecs-svc/0", "status": "PRIMARY", "rolloutState": "COMPLETED"}]}], "failures": []}, {"cluster": cluster, "services": [service]})
    # the played function does not redeploy (it has no ECS): the PRIMARY deployment predates the rotation
    stubber.add_response("describe_services", {"services": [{"serviceName": service, "deployments": [
        {"id": "ecs-svc/0", "status": "PRIMARY", "createdAt": datetime(2026, 1, 1, tzinfo=UTC)}]}], "failures": []}, {"cluster": cluster, "services": [service]})
    # UpdateService answers with the service, its new deployment PRIMARY (ECS API reference, UpdateService)
    stubber.add_response("update_service", {"service": {"serviceName": service, "deployments": [
        {"id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": "IN_PROGRESS", "desiredCount": 2, "runningCount": 0},
        {"id": "ecs-svc/0", "status": "ACTIVE", "rolloutState": "COMPLETED", "desiredCount": 2, "runningCount": 2}]}},
                         {"cluster": cluster, "service": service, "forceNewDeployment": True})
    stubber.add_response("describe_services", {"services": [{"serviceName": service, "desiredCount": 2, "runningCount": 2, "deployments": [
        {"id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": "COMPLETED", "desiredCount": 2, "runningCount": 2}]}], "failures": []},
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
    assert out.index("rotate master through Secrets Manager") < out.index("is AWSCURRENT") < out.index("rollout completed")
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


def test_rotate_errors_are_one_sentence_and_local_still_works(deployed: tuple[DeployWorld, LambdaWorld], monkeypatch: pytest.MonkeyPatch) -> None:
    w, lw = deployed
    logs = boto3.client("logs", region_name=w.world.settings.region)
    sm, _ = _seam(monkeypatch, lw, ecs=None, logs=logs)
    group = f"/aws/lambda/{w.world.settings.prefix}-db-rotation"

    # a step fails inside the function: its sentence in the log group ends the wait at once
    sm.broken = "setSecret"
    rc, out, err = w.run("rotate", "--stack", "dev", "--role", "migrator")
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "the rotation function failed at setSecret for " in err and "unreachable over TLS" in err and group in err
    assert "AWSCURRENT still works" in err and "did not finish within" not in err
    stages = lw.w.sm.describe_secret(SecretId=lw.arns["migrator"])["VersionIdsToStages"]
    token = next(v for v, s in stages.items() if "AWSPENDING" in s)
    assert f"resume version {token}" in err
    # fixed: a second rotate resumes that version with its own token (no new version), and finishes
    sm.broken, before = "", list(sm.rotated)
    rc, out, err = w.run("rotate", "--stack", "dev", "--role", "migrator")
    assert rc == 0, err + out
    assert sm.rotated == before and sm.resumed == ["migrator"] and f"resuming the rotation of version {token}" in out
    stages = lw.w.sm.describe_secret(SecretId=lw.arns["migrator"])["VersionIdsToStages"]
    assert "AWSCURRENT" in stages[token] and w.world.secret("migrator", "AWSPENDING") is None
    mig = w.world.secret("migrator")
    assert mig and w.world.pg.can_login(mig["username"], mig["password"], mig["dbname"])

    # --local: today's in-process path, straight to the database (the seams are back to the world's)
    monkeypatch.setattr("bootstrap.cli.deploy.make_db_admin", lambda rds: w.world.admin)
    old = w.world.secret("migrator")
    assert old is not None
    rc, out, err = w.run("rotate", "--stack", "dev", "--local", "--role", "migrator", "--tunnel", "never")
    assert rc == 0, err + out
    new = w.world.secret("migrator")
    assert new and new["password"] != old["password"] and w.world.pg.can_login(new["username"], new["password"], new["dbname"])
    assert not w.world.pg.can_login(old["username"], old["password"], old["dbname"])


def test_remote_rotator_needs_the_stack_secrets() -> None:
    rot = RemoteRotator(None, None, {"rotationFunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:shop-dev-db-rotation"})
    from dbcore.secret import RotationError

    with pytest.raises(RotationError, match="exports no secret for master"):
        rot.rotate(["master"])
    assert not RemoteRotator.available({}) and RemoteRotator.available(rot.outputs)



def test_deploy_rotates_the_logins_through_the_function(pg: PgServer, pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Without --local-rotation, phases 2 and 4 have Secrets Manager run the function: the master
    (never rotated: the double runs no SecretRotation) in phase 2, the logins in phase 4."""
    from botocore.stub import ANY

    with deploy_world(pg, pulumi_double, monkeypatch, capsys) as w:
        lw = LambdaWorld(w.world)
        ecs = boto3.client("ecs", region_name=w.world.settings.region)
        stubber = Stubber(ecs)
        for _ in range(2):  # the rollout check (dbcore/rollout.py), then the redeploy's "since" probe
            stubber.add_response("describe_services", {"services": [{"deployments": [{"id": "d0", "status": "PRIMARY"}]}], "failures": []},
                                 {"cluster": ANY, "services": ANY})
        stubber.add_response("update_service", {"service": {"deployments": [{"id": "d1", "status": "PRIMARY", "rolloutState": "IN_PROGRESS"}]}},
                             {"cluster": ANY, "service": ANY, "forceNewDeployment": True})
        stubber.add_response("describe_services", {"services": [{"desiredCount": 1, "runningCount": 1, "deployments": [
            {"id": "d1", "status": "PRIMARY", "rolloutState": "COMPLETED", "desiredCount": 1, "runningCount": 1}]}],
                                                   "failures": []}, {"cluster": ANY, "services": ANY})
        stubber.activate()
        sm = PlayedSecretsManager(lw)
        monkeypatch.setattr("bootstrap.cli.deploy.make_remote_rotator",
                            lambda region, outputs: RemoteRotator(sm, ecs, outputs, clock=FakeClock().clock(), timeout_s=60))  # type: ignore[arg-type]
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes")
        assert rc == 0, err + out
        assert sm.rotated == ["master", "app", "migrator"]
        assert out.index("[phase 2/5] master: rotate through the stack's rotation function") < out.index("[phase 3/5]") \
            < out.index("[phase 4/5] rotate app, migrator through the stack's rotation function")
        assert "[phase 2/5] rotate master" not in out  # nothing in-process
        master = w.world.secret("master")
        assert master and w.world.pg.can_login(w.world.master, master["password"], "postgres")
        stubber.assert_no_pending_responses()
        for role in ("app", "migrator"):
            s = w.world.secret(role)
            assert s and s["password"] and w.world.pg.can_login(s["username"], s["password"], s["dbname"])


def test_rotate_refuses_an_app_rotation_that_would_outrun_the_redeploy(deployed: tuple[DeployWorld, LambdaWorld], pulumi_double: Double,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 28 item 3 through the CLI: before RotateSecret, `rotate` refuses (exit 1, one sentence,
    nothing started) while the service's last deployment is unfinished, or when it started before the
    app secret's current version (the function's forced redeploy never happened: its UpdateService failed)."""
    w, lw = deployed
    outputs = stack_outputs(pulumi_double)
    cluster, service = str(outputs["clusterName"]), str(outputs["serviceName"])
    ecs = boto3.client("ecs", region_name=w.world.settings.region)
    stubber = Stubber(ecs)
    for deployments in ([{"id": "ecs-svc/2", "status": "PRIMARY", "rolloutState": "IN_PROGRESS", "createdAt": datetime.now(UTC)},
                         {"id": "ecs-svc/1", "status": "ACTIVE", "rolloutState": "COMPLETED", "createdAt": datetime(2026, 1, 1, tzinfo=UTC)}],
                        [{"id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": "COMPLETED", "createdAt": datetime(2026, 1, 1, tzinfo=UTC)}]):
        stubber.add_response("describe_services", {"services": [{"serviceName": service, "deployments": deployments}], "failures": []},
                             {"cluster": cluster, "services": [service]})
    stubber.activate()
    sm, _ = _seam(monkeypatch, lw, ecs)
    before = w.world.secret("app")
    for why in ("has not completed (its newest deployment is IN_PROGRESS)", "(ecs-svc/1) started before the login's current version was created"):
        rc, out, err = w.run("rotate", "--stack", "dev", "--role", "app")
        assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err + out
        assert err.startswith(f"error: not rotating app: the last deployment of service {service} in cluster {cluster}") and why in err
    stubber.assert_no_pending_responses()
    assert sm.rotated == [] and w.world.secret("app") == before  # nothing started

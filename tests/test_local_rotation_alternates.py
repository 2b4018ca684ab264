"""Issue 28 items 2 and 3 for the in-process rotation (`rotate --local`, `deploy --local-rotation`).

Item 2: the local path used to write `<prefix>_app` on every app rotation; once the rotation
function had alternated back to that user, a local rotation changed the password the running tasks
held. Now both paths take the user from dbcore/alternating.py, and the local one forces a new
deployment of the service and waits for it. Item 3: it refuses while the service's last deployment
is unfinished, as the function's createSecret does.

The database is the real PostgreSQL of the tests (the function's world, tests/rotation_lambda_world.py);
ECS is a real boto3 client behind botocore's Stubber, responses shaped from the ECS API reference
(UpdateService and DescribeServices return `service.deployments[]` with id, status PRIMARY/ACTIVE,
rolloutState IN_PROGRESS/COMPLETED/FAILED, rolloutStateReason, desiredCount, runningCount).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bootstrap.rotation.app_service import AppService
from bootstrap.rotation.local import Rotator
from config import naming
from dbcore.rollout import rollout_progress
from dbcore.secret import RotationError
from tests.deploy_world import DeployWorld, deploy_world, stubbed_ecs
from tests.pgserver import PgServer
from tests.pulumi_double.fixture import Double
from tests.rotation_lambda_world import LambdaWorld
from tests.rotation_world import World, make_world

REGION = "eu-west-1"
TD = f"arn:aws:ecs:{REGION}:123456789012:task-definition/shop-dev-app:3"


def deployment(id_: str, status: str, rollout: str, running: int, desired: int = 2, reason: str = "", created: dt.datetime | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"id": id_, "status": status, "taskDefinition": TD, "desiredCount": desired, "runningCount": running,
                         "pendingCount": desired - running, "rolloutState": rollout, "launchType": "FARGATE",
                         "createdAt": created or dt.datetime.now(dt.UTC)}
    if reason:
        d["rolloutStateReason"] = reason
    return d


def service(name: str, cluster: str, *deployments: dict[str, Any]) -> dict[str, Any]:
    return {"serviceName": name, "clusterArn": f"arn:aws:ecs:{REGION}:123456789012:cluster/{cluster}", "status": "ACTIVE",
            "desiredCount": 2, "runningCount": sum(d["runningCount"] for d in deployments), "deployments": list(deployments)}


class Ecs:
    """The app service's ECS answers, queued in the order the rotation asks."""

    def __init__(self, cluster: str = "shop-dev", name: str = "shop-dev-app", client: Any = None, stub: Stubber | None = None):
        self.cluster, self.name = cluster, name
        self.client = client or boto3.client("ecs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
        self.stub = stub or Stubber(self.client)

    def describe(self, *deployments: dict[str, Any]) -> Ecs:
        self.stub.add_response("describe_services", {"services": [service(self.name, self.cluster, *deployments)], "failures": []},
                               {"cluster": self.cluster, "services": [self.name]})
        return self

    def force(self, *deployments: dict[str, Any]) -> Ecs:
        self.stub.add_response("update_service", {"service": service(self.name, self.cluster, *deployments)},
                               {"cluster": self.cluster, "service": self.name, "forceNewDeployment": True})
        return self

    def settled_then_redeployed(self, check: bool = True) -> Ecs:
        """Completed before (started now, after the secret's current version: queue it after the
        last rotation); the forced deployment rolls out over two polls, then completes. No check
        when the secret has never held a password (dbcore/alternating.py rollout_since)."""
        if check:
            self.describe(deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 2))
        return (self
                .force(deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", 0), deployment("ecs-svc/1", "ACTIVE", "COMPLETED", 2))
                .describe(deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", 1), deployment("ecs-svc/1", "ACTIVE", "COMPLETED", 1))
                .describe(deployment("ecs-svc/2", "PRIMARY", "COMPLETED", 2)))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def local_rotator(w: World, ecs: Ecs, lines: list[str]) -> Rotator:
    clock = Clock()
    return Rotator(w.settings, secrets_client=w.sm, admin=w.admin, endpoint=w.endpoint, out=lines.append, master_test_timeout_s=1.0,
                   service=AppService(ecs.client, ecs.cluster, ecs.name, timeout_s=600, interval_s=15, clock=clock.now, sleep=clock.sleep))


def current(w: World) -> dict[str, Any]:
    value = w.secret("app")
    assert value is not None
    return value


@pytest.mark.parametrize("function_rotations", [1, 2])
def test_local_rotation_after_the_function_never_changes_the_tasks_login(lw: LambdaWorld, pg: PgServer, function_rotations: int) -> None:
    """The issue's observation: the function rotates (to _app_clone, then back to _app); a local
    rotation then must change the *other* user, force a deployment and wait for it."""
    w = lw.w
    lw.rotate("master")
    for _ in range(function_rotations):
        lw.rotate("app")
    held = current(w)  # what the running tasks read at start
    assert held["username"] == (lw.clone_user if function_rotations == 1 else lw.app_user)

    lines: list[str] = []
    ecs = Ecs().settled_then_redeployed()
    with ecs.stub:
        local_rotator(w, ecs, lines).rotate("app")
        ecs.stub.assert_no_pending_responses()  # checked, forced, polled until complete

    new = current(w)
    assert new["username"] == (lw.app_user if function_rotations == 1 else lw.clone_user)
    assert pg.can_login(held["username"], held["password"], held["dbname"]), "the tasks' login was changed: they are locked out"
    assert pg.can_login(new["username"], new["password"], new["dbname"])
    assert w.secret("app", "AWSPENDING") is None
    text = "\n".join(lines)
    assert "new deployment ecs-svc/2 forced" in text and "1/2 new task(s) running, 1 older deployment(s) draining" in text
    assert "deployment ecs-svc/2 completed (15s): every task holds the new login" in text
    assert held["password"] not in text and new["password"] not in text

    # and the function carries on from there: its next rotation changes the user the local one left
    lw.rotate("app")
    assert current(w)["username"] == held["username"]
    assert pg.can_login(new["username"], new["password"], new["dbname"])


def test_refuses_while_the_last_rollout_is_unfinished_and_changes_nothing(lw: LambdaWorld, pg: PgServer) -> None:
    w = lw.w
    lw.rotate("master")
    lw.rotate("app")
    held = current(w)
    versions = w.sm.describe_secret(SecretId=lw.arns["app"])["VersionIdsToStages"]
    ecs = Ecs().describe(deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", 1), deployment("ecs-svc/1", "ACTIVE", "COMPLETED", 1))
    with ecs.stub, pytest.raises(RotationError) as err:
        local_rotator(w, ecs, []).rotate("app")
    assert str(err.value).startswith("not rotating app: the last deployment of service shop-dev-app in cluster shop-dev has not completed "
                                     "(its newest deployment is IN_PROGRESS)")
    assert "\n" not in str(err.value)
    assert w.sm.describe_secret(SecretId=lw.arns["app"])["VersionIdsToStages"] == versions  # no AWSPENDING stored
    assert current(w) == held and pg.can_login(held["username"], held["password"], held["dbname"])


def test_refuses_when_the_last_redeploy_never_happened(lw: LambdaWorld, pg: PgServer) -> None:
    """The function's finishSecret could not force a deployment (UpdateService failed): the service
    is settled, but on a deployment older than the secret's current version, so its tasks may hold
    the user the next rotation would change. Refused, naming the command that fixes it."""
    w = lw.w
    lw.rotate("master")
    lw.rotate("app")
    held = current(w)
    old = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ecs = Ecs().describe(deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 2, created=old))
    with ecs.stub, pytest.raises(RotationError) as err:
        local_rotator(w, ecs, []).rotate("app")
    assert str(err.value).startswith("not rotating app: the last deployment of service shop-dev-app in cluster shop-dev (ecs-svc/1) started "
                                     "before the login's current version was created")
    assert "aws ecs update-service --cluster shop-dev --service shop-dev-app --force-new-deployment" in str(err.value)
    assert current(w) == held and w.secret("app", "AWSPENDING") is None


def test_a_failed_rollout_after_the_rotation_is_one_sentence_and_the_tasks_keep_working(lw: LambdaWorld, pg: PgServer) -> None:
    w = lw.w
    lw.rotate("master")
    lw.rotate("app")
    held = current(w)
    ecs = (Ecs().describe(deployment("ecs-svc/1", "PRIMARY", "COMPLETED", 2))
           .force(deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", 0), deployment("ecs-svc/1", "ACTIVE", "COMPLETED", 2))
           .describe(deployment("ecs-svc/2", "PRIMARY", "FAILED", 0, reason="ECS deployment circuit breaker: tasks failed to start."),
                     deployment("ecs-svc/1", "ACTIVE", "COMPLETED", 2)))
    with ecs.stub, pytest.raises(RotationError) as err:
        local_rotator(w, ecs, []).rotate("app")
    message = str(err.value)
    assert message.startswith("the app login is rotated, but deployment ecs-svc/2 of service shop-dev-app in cluster shop-dev failed "
                              "(ECS deployment circuit breaker: tasks failed to start); tasks still on the previous user keep working")
    assert "aws ecs describe-services --cluster shop-dev --services shop-dev-app" in message and "\n" not in message
    assert current(w)["username"] != held["username"] and w.secret("app", "AWSPENDING") is None
    assert pg.can_login(held["username"], held["password"], held["dbname"])


def test_a_stale_pending_version_naming_the_active_user_is_replaced_not_resumed(lw: LambdaWorld, pg: PgServer) -> None:
    """What the old in-process rotation left after a crash: AWSPENDING naming the user AWSCURRENT
    names. Resuming it would change the tasks' password; it is replaced by one for the other user."""
    import json

    w = lw.w
    lw.rotate("master")
    lw.rotate("app")
    held = current(w)
    w.sm.put_secret_value(SecretId=lw.arns["app"], SecretString=json.dumps({**held, "password": "stale-Pending-1"}), VersionStages=["AWSPENDING"])
    lines: list[str] = []
    ecs = Ecs().settled_then_redeployed()
    with ecs.stub:
        local_rotator(w, ecs, lines).rotate("app")
    assert f"the AWSPENDING version names user {held['username']}, not {lw.app_user}: replaced" in "\n".join(lines)
    assert current(w)["username"] == lw.app_user
    assert pg.can_login(held["username"], held["password"], held["dbname"])


def test_no_service_in_the_account_means_nothing_to_redeploy(pg: PgServer) -> None:
    """moto has no such cluster (DescribeServices/UpdateService: ClusterNotFoundException): no task
    can hold the login, so the rotation goes ahead and says there is nothing to redeploy."""
    lines: list[str] = []
    with make_world(pg) as world:
        ecs = Ecs(client=boto3.client("ecs", region_name=world.settings.region))
        local_rotator(world, ecs, lines).rotate("app")
    assert "  service shop-dev-app does not run in cluster shop-dev: no task holds the app login, nothing to redeploy" in lines


def test_rollout_progress_rule() -> None:
    mine = deployment("d2", "PRIMARY", "COMPLETED", 2)
    assert rollout_progress("s", "c", [mine], "d2") is None
    assert rollout_progress("s", "c", [deployment("d2", "PRIMARY", "COMPLETED", 1)], "d2") == "1/2 new task(s) running, 0 older deployment(s) draining"
    assert rollout_progress("s", "c", [deployment("d3", "PRIMARY", "COMPLETED", 2)], "d2") is None  # a newer deployment replaced ours
    assert rollout_progress("s", "c", [deployment("d1", "PRIMARY", "COMPLETED", 2), deployment("d2", "ACTIVE", "IN_PROGRESS", 0)], "d2") is not None
    with pytest.raises(RotationError, match="deployment d2 of service s in cluster c failed"):
        rollout_progress("s", "c", [deployment("d2", "PRIMARY", "FAILED", 0)], "d2")


@pytest.fixture
def cli_world(pg: PgServer, pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[DeployWorld]:
    """`python -m bootstrap rotate --local` in-process: the project's stack file, moto, the real
    PostgreSQL; the app service polled without sleeping (the seam keeps its real names and client)."""
    from bootstrap.cli import deploy as deploy_cli

    real = deploy_cli.make_app_service
    monkeypatch.setattr("bootstrap.cli.deploy.make_app_service", lambda ecs, prefix: dataclasses.replace(real(ecs, prefix), interval_s=0.0))
    with deploy_world(pg, pulumi_double, monkeypatch, capsys) as w:
        yield w


def test_cli_rotate_local_alternates_redeploys_and_waits(cli_world: DeployWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    w = cli_world
    prefix = w.world.settings.prefix
    argv = ("rotate", "--stack", "dev", "--local", "--role", "app", "--tunnel", "never")
    with stubbed_ecs(monkeypatch) as stub:
        ecs = Ecs(naming.cluster(prefix), naming.ecs_service(prefix), stub=stub)
        ecs.settled_then_redeployed(check=False)  # the first password: no task holds a working login yet
        rc, out, err = w.run(*argv)
        assert rc == 0, err + out
        held = current(w.world)  # what the tasks of the completed deployment hold
        ecs.settled_then_redeployed()  # checked, forced and awaited
        rc, out, err = w.run(*argv)
        assert rc == 0, err + out
    new = current(w.world)
    assert (held["username"], new["username"]) == (f"{w.world.settings.app_database.role_prefix}_app_clone", f"{w.world.settings.app_database.role_prefix}_app")
    assert w.world.pg.can_login(held["username"], held["password"], held["dbname"]), "the tasks' login was changed"
    assert w.world.pg.can_login(new["username"], new["password"], new["dbname"])
    # forced once AWSCURRENT moved and before the AWSPENDING label goes (a re-run after a crash forces again), then awaited
    assert out.index("testSecret: login as") < out.index("new deployment ecs-svc/2 forced") < out.index("finishSecret: AWSCURRENT now points") \
        < out.index("rolling out: 1/2 new task(s) running") < out.index("deployment ecs-svc/2 completed") < out.index("rotation complete")


def test_cli_rotate_local_refuses_during_an_unfinished_rollout(cli_world: DeployWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    w = cli_world
    prefix = w.world.settings.prefix
    with stubbed_ecs(monkeypatch) as stub:
        ecs = Ecs(naming.cluster(prefix), naming.ecs_service(prefix), stub=stub).settled_then_redeployed(check=False)
        rc, out, err = w.run("rotate", "--stack", "dev", "--local", "--role", "app", "--tunnel", "never")
        assert rc == 0, err + out
        before = current(w.world)
        ecs.describe(
            deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", 1), deployment("ecs-svc/1", "ACTIVE", "COMPLETED", 1))
        rc, out, err = w.run("rotate", "--stack", "dev", "--local", "--role", "app", "--tunnel", "never")
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err + out
    assert err.startswith(f"error: not rotating app: the last deployment of service {naming.ecs_service(prefix)} in cluster "
                          f"{naming.cluster(prefix)} has not completed (its newest deployment is IN_PROGRESS)")
    assert current(w.world) == before and w.world.secret("app", "AWSPENDING") is None

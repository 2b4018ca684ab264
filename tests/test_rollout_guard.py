"""Issue 28 item 3: an alternating rotation must not outrun the redeploy it needs.

createSecret of the app secret (the function) and `rotate` (the CLI, before RotateSecret) refuse
while the app service's last deployment has not completed. ECS is a real boto3 client behind
botocore's Stubber; responses shaped from the ECS API reference (DescribeServices, Deployment:
status PRIMARY/ACTIVE, rolloutState COMPLETED/IN_PROGRESS/FAILED)."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import Stubber

from dbcore.rollout import check_service, rollout_problem
from dbcore.secret import RotationError
from rotation_function.steps import FunctionConfig, StepRunner

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def deployment(status: str, state: str | None, n: int) -> dict:
    d = {"id": f"ecs-svc/{n}", "status": status, "taskDefinition": f"arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-dev:{n}",
         "desiredCount": 2, "runningCount": 1, "pendingCount": 1, "createdAt": NOW, "updatedAt": NOW}
    if state:
        d["rolloutState"] = state
    return d


def ecs_with(*deployments: dict) -> tuple[object, Stubber]:
    client = boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("describe_services", {"services": [{"serviceName": "shop-dev", "clusterArn": "arn:aws:ecs:eu-west-1:123456789012:cluster/shop-dev",
                                                          "deployments": list(deployments)}], "failures": []},
                      {"cluster": "shop-dev", "services": ["shop-dev"]})
    stub.activate()
    return client, stub


@pytest.mark.parametrize(
    ("deployments", "expect"),
    [
        ([deployment("PRIMARY", "COMPLETED", 2)], None),
        ([deployment("PRIMARY", None, 2)], None),  # no rollout tracking: one deployment is all there is
        ([deployment("PRIMARY", "IN_PROGRESS", 3), deployment("ACTIVE", "COMPLETED", 2)], "newest deployment is IN_PROGRESS"),
        ([deployment("PRIMARY", "FAILED", 3)], "newest deployment is FAILED"),
        ([deployment("PRIMARY", "COMPLETED", 3), deployment("ACTIVE", "COMPLETED", 2)], "1 older deployment(s) still run tasks"),
    ],
)
def test_rollout_problem(deployments, expect):
    client, stub = ecs_with(*deployments)
    problem = check_service(client, "shop-dev", "shop-dev")
    stub.assert_no_pending_responses()
    assert (problem is None) if expect is None else (expect in problem and "shop-dev" in problem)


class NoAdmin:
    """The DatabaseAdmin seam: createSecret never changes the master password."""

    def set_master_password(self, instance_id: str, password: str) -> None:
        raise AssertionError(f"createSecret changed the master password of {instance_id}")


class Secrets:
    """Just what createSecret reads: AWSCURRENT of the app and master secrets, AWSPENDING absent."""

    class exceptions:  # noqa: N801 - boto3's shape
        class ResourceNotFoundException(Exception):  # noqa: N818 - boto3's name
            pass

    def __init__(self, password: str = "p", created: dt.datetime = NOW - dt.timedelta(days=1)) -> None:
        self.put: list[dict] = []
        self.password, self.created = password, created

    def get_secret_value(self, SecretId: str, **kw: str) -> dict:  # noqa: N803 - boto3's names
        if kw.get("VersionStage") == "AWSPENDING":
            raise self.exceptions.ResourceNotFoundException()
        return {"SecretString": f'{{"username": "shop_app", "password": "{self.password}", "host": "h", "port": 5432}}', "CreatedDate": self.created}

    def describe_secret(self, SecretId: str) -> dict:  # noqa: N803 - what the handler checks before a step
        return {"RotationEnabled": True, "VersionIdsToStages": {"v0": ["AWSCURRENT"], "token-1": ["AWSPENDING"]}}

    def put_secret_value(self, **kw: str) -> None:
        self.put.append(kw)


def test_create_secret_refuses_while_the_rollout_is_unfinished():
    client, stub = ecs_with(deployment("PRIMARY", "IN_PROGRESS", 3), deployment("ACTIVE", "COMPLETED", 2))
    warned: list[str] = []
    sm = Secrets()
    cfg = FunctionConfig(master_secret_arn="m", db_instance_id="db", alternating_secret_arns=frozenset({"app"}), ecs_cluster="shop-dev", ecs_service="shop-dev")
    runner = StepRunner(cfg, sm, admin=NoAdmin(), ecs=client, out=lambda s: None, warn=warned.append)
    with pytest.raises(RotationError, match="createSecret: the last deployment of service shop-dev in cluster shop-dev has not completed"):
        runner.create("app", "token-1")
    assert sm.put == [] and warned and "refused" in warned[0]  # nothing stored; said in the function's log


def test_create_secret_goes_ahead_after_a_completed_rollout():
    client, stub = ecs_with(deployment("PRIMARY", "COMPLETED", 3))
    sm = Secrets()
    cfg = FunctionConfig(master_secret_arn="m", db_instance_id="db", alternating_secret_arns=frozenset({"app"}), ecs_cluster="shop-dev", ecs_service="shop-dev")
    StepRunner(cfg, sm, admin=NoAdmin(), ecs=client, out=lambda s: None).create("app", "token-1")
    assert len(sm.put) == 1 and '"username": "shop_app_clone"' in sm.put[0]["SecretString"]


def test_create_secret_refuses_when_the_last_redeploy_never_happened():
    """finishSecret's UpdateService failed last time: the service is settled on a deployment older
    than AWSCURRENT, whose tasks may hold the user this rotation would change."""
    client, stub = ecs_with(deployment("PRIMARY", "COMPLETED", 2))  # created at NOW
    warned: list[str] = []
    sm = Secrets(created=NOW + dt.timedelta(minutes=5))
    cfg = FunctionConfig(master_secret_arn="m", db_instance_id="db", alternating_secret_arns=frozenset({"app"}), ecs_cluster="shop-dev", ecs_service="shop-dev")
    runner = StepRunner(cfg, sm, admin=NoAdmin(), ecs=client, out=lambda s: None, warn=warned.append)
    with pytest.raises(RotationError, match=r"createSecret: the last deployment of service shop-dev in cluster shop-dev \(ecs-svc/2\) started before"):
        runner.create("app", "token-1")
    assert sm.put == [] and "--force-new-deployment" in warned[0]


def test_create_secret_checks_nothing_before_the_first_password():
    """AWSCURRENT holds no password (as the app database creates it): no task holds a working
    login, so the first rotation never waits on a service that cannot start without one."""
    client = boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    sm = Secrets(password="")
    cfg = FunctionConfig(master_secret_arn="m", db_instance_id="db", alternating_secret_arns=frozenset({"app"}), ecs_cluster="shop-dev", ecs_service="shop-dev")
    with Stubber(client) as stub:  # no answer queued: any ECS call fails the test
        StepRunner(cfg, sm, admin=NoAdmin(), ecs=client, out=lambda s: None).create("app", "token-1")
        stub.assert_no_pending_responses()
    assert len(sm.put) == 1


def test_the_cli_refuses_before_starting_any_rotation():
    from bootstrap.rotation.remote import rotate_stack

    client, stub = ecs_with(deployment("PRIMARY", "IN_PROGRESS", 3))

    class NoSecretsManager:
        def __getattr__(self, name):
            raise AssertionError(f"secretsmanager.{name} called: the refusal must come first")

    with pytest.raises(RotationError, match="not rotating app: the last deployment of service shop-dev"):
        rotate_stack(NoSecretsManager(), {"app": "arn:app"}, ("app",), ecs=client, cluster="shop-dev", service="shop-dev", out=lambda s: None)


def test_a_missing_service_has_no_task_to_cut_off():
    client = boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response("describe_services", {"services": [], "failures": [{"arn": "arn:aws:ecs:eu-west-1:123456789012:service/shop-dev/gone", "reason": "MISSING"}]})
        assert check_service(client, "shop-dev", "gone") is None


def test_pure_rule_names_the_command_to_look():
    assert "aws ecs describe-services --cluster c --services s" in rollout_problem("s", "c", [])


def test_the_functions_log_says_why_in_one_line(caplog: pytest.LogCaptureFixture):
    """What CloudWatch Logs shows for the refused step (rotation_function/handler.py): the WARNING,
    then the step's one-sentence failure, the same text Secrets Manager gets and `rotate` reads back."""
    import logging

    from rotation_function.handler import RotationStepError, run_event

    client, stub = ecs_with(deployment("PRIMARY", "IN_PROGRESS", 3), deployment("ACTIVE", "COMPLETED", 2))
    cfg = FunctionConfig(master_secret_arn="m", db_instance_id="db", alternating_secret_arns=frozenset({"app"}), ecs_cluster="shop-dev", ecs_service="shop-dev")
    runner = StepRunner(cfg, Secrets(), admin=NoAdmin(), ecs=client)
    with caplog.at_level(logging.INFO, logger="pghome.rotation"), pytest.raises(RotationStepError) as err:
        run_event({"Step": "createSecret", "SecretId": "app", "ClientRequestToken": "token-1"}, runner)
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "pghome.rotation"]
    assert records[0][0] == "WARNING" and records[0][1].startswith("createSecret: refused: the last deployment of service shop-dev")
    assert records[-1] == ("ERROR", str(err.value))
    assert str(err.value).startswith("createSecret failed for app: createSecret: the last deployment of service shop-dev in cluster shop-dev "
                                     "has not completed (its newest deployment is IN_PROGRESS)") and "\n" not in str(err.value)

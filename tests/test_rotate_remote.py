"""RotateSecret + wait, at the botocore seam (Stubber): moto runs a rotation Lambda only in Docker.
Responses shaped from the Secrets Manager and ECS API references. The function's log is moto's
CloudWatch Logs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from bootstrap.rotation.remote import Clock, redeploy_service, rotate_stack, run_rotation
from dbcore.secret import RotationError
from tests.helpers import FakeClock

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-dev/db/app-AbCdEf"
OLD, NEW = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


def _describe(stages: dict[str, list[str]]) -> dict[str, Any]:
    return {"ARN": ARN, "Name": "shop-dev/db/app", "RotationEnabled": True, "VersionIdsToStages": stages}


def _client() -> Any:
    return boto3.client("secretsmanager", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_waits_until_new_version_is_current_and_no_pending_is_left() -> None:
    sm = _client()
    fake = FakeClock()
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"]}), {"SecretId": ARN})
        stub.add_response("rotate_secret", {"ARN": ARN, "Name": "shop-dev/db/app", "VersionId": NEW}, {"SecretId": ARN, "RotateImmediately": True})
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        stub.add_response("describe_secret", _describe({OLD: ["AWSPREVIOUS"], NEW: ["AWSCURRENT", "AWSPENDING"]}), {"SecretId": ARN})
        stub.add_response("describe_secret", _describe({OLD: ["AWSPREVIOUS"], NEW: ["AWSCURRENT"]}), {"SecretId": ARN})
        lines: list[str] = []
        assert run_rotation(sm, ARN, out=lines.append, clock=Clock(fake, fake.sleep), interval_s=5).token == NEW
        stub.assert_no_pending_responses()
    assert any("AWSPENDING" in ln and "(0s)" in ln for ln in lines)
    assert any("AWSPENDING label not yet removed" in ln for ln in lines)
    assert lines[-1].endswith("is AWSCURRENT (15s)")


def test_times_out_with_one_sentence() -> None:
    sm = _client()
    fake = FakeClock()
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"]}), {"SecretId": ARN})
        stub.add_response("rotate_secret", {"ARN": ARN, "VersionId": NEW}, {"SecretId": ARN, "RotateImmediately": True})
        for _ in range(4):
            stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        with pytest.raises(RotationError, match=r"did not finish within 10s .*see /aws/lambda/shop-dev-db-rotation; .*AWSCURRENT still works") as err:
            run_rotation(sm, ARN, function_log_group="/aws/lambda/shop-dev-db-rotation", out=lambda s: None, clock=Clock(fake, fake.sleep), timeout_s=10, interval_s=5)
        assert "\n" not in str(err.value)
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"]}), {"SecretId": ARN})
        stub.add_client_error("rotate_secret", "InvalidRequestException", "no rotation function configured")
        with pytest.raises(RotationError, match=r"RotateSecret .* failed \(InvalidRequestException\)"):
            run_rotation(sm, ARN, out=lambda s: None)


def test_a_pending_rotation_is_resumed_with_its_own_token_never_stacked_upon() -> None:
    """A failed rotation leaves its version AWSPENDING; RotateSecret with that version as
    ClientRequestToken runs it again (no second version). If Secrets Manager refuses, its own
    retries are waited for."""
    sm = _client()
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        stub.add_response("rotate_secret", {"ARN": ARN, "VersionId": NEW}, {"SecretId": ARN, "ClientRequestToken": NEW, "RotateImmediately": True})
        stub.add_response("describe_secret", _describe({OLD: ["AWSPREVIOUS"], NEW: ["AWSCURRENT"]}), {"SecretId": ARN})
        lines: list[str] = []
        assert run_rotation(sm, ARN, out=lines.append, clock=FakeClock().clock()).token == NEW
        stub.assert_no_pending_responses()
    assert f"resuming the rotation of version {NEW}" in lines[0]
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        stub.add_client_error("rotate_secret", "InvalidRequestException", "A previous rotation isn't complete.")
        stub.add_response("list_secret_version_ids", {"Versions": [{"VersionId": NEW, "VersionStages": ["AWSPENDING"], "CreatedDate": datetime(2026, 1, 1, tzinfo=UTC)}]},
                          {"SecretId": ARN, "IncludeDeprecated": True})
        stub.add_response("describe_secret", _describe({OLD: ["AWSPREVIOUS"], NEW: ["AWSCURRENT"]}), {"SecretId": ARN})
        lines = []
        assert run_rotation(sm, ARN, out=lines.append, clock=FakeClock().clock()).token == NEW
        stub.assert_no_pending_responses()
    assert "would not resume it (InvalidRequestException): waiting for its retries" in lines[0]


def test_nothing_started_when_not_due_and_nothing_pending() -> None:
    sm = _client()
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSPREVIOUS"], NEW: ["AWSCURRENT"]}), {"SecretId": ARN})
        lines: list[str] = []
        assert rotate_stack(sm, {"master": ARN}, ["master"], out=lines.append, join_pending=True, start=False) == []
        stub.assert_no_pending_responses()  # no RotateSecret
    assert "no rotation in progress and none due" in lines[-1]


GROUP = "/aws/lambda/shop-dev-db-rotation"


@pytest.fixture
def logs() -> Iterator[Any]:
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("logs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
        client.create_log_group(logGroupName=GROUP)
        client.create_log_stream(logGroupName=GROUP, logStreamName="2026/11/23/[$LATEST]abc")
        yield client


def _log(logs: Any, at: float, message: str) -> None:
    """A line as the Lambda Python runtime writes it (Text format): level, time, request id, message."""
    logs.put_log_events(logGroupName=GROUP, logStreamName="2026/11/23/[$LATEST]abc",
                        logEvents=[{"timestamp": int(at * 1000), "message": f"[ERROR]\t2026-11-23T15:00:00.000Z\treq-1\t{message}\n"}])


def test_a_failure_in_the_function_log_ends_the_wait_at_once(logs: Any) -> None:
    fake = FakeClock(wall0=time.time())
    other = ARN.replace("/app-", "/migrator-")
    _log(logs, fake.wall() - 120, f"setSecret failed for {ARN}: an older rotation's failure")  # before this rotation began
    _log(logs, fake.wall() + 1, f"testSecret failed for {other}: another secret's failure")
    sm = _client()
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"]}), {"SecretId": ARN})
        stub.add_response("rotate_secret", {"ARN": ARN, "VersionId": NEW}, {"SecretId": ARN, "RotateImmediately": True})
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})

        def sleep(s: float) -> None:  # the function fails while we wait
            fake.sleep(s)
            _log(logs, fake.wall(), f"setSecret failed for {ARN}: database at db.internal:5432 is unreachable over TLS (sslmode=verify-full); "
                                    "check the function's security group and subnets")

        with pytest.raises(RotationError) as err:
            run_rotation(sm, ARN, function_log_group=GROUP, logs=logs, out=lambda s: None, clock=Clock(fake, sleep, fake.wall),
                          timeout_s=900, interval_s=5)
        stub.assert_no_pending_responses()
    text = str(err.value)
    assert fake() == 5  # one poll after the failure was logged, not the 900 s timeout
    assert text.startswith(f"the rotation function failed at setSecret for {ARN}: database at db.internal:5432 is unreachable over TLS")
    assert "AWSCURRENT still works" in text and f"resume version {NEW}" in text and GROUP in text and "\n" not in text
    assert "older rotation" not in text and "another secret" not in text


def test_an_unreadable_log_is_said_once_and_the_wait_goes_on() -> None:
    sm = _client()
    denied = boto3.client("logs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(sm) as stub, Stubber(denied) as log_stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"]}), {"SecretId": ARN})
        stub.add_response("rotate_secret", {"ARN": ARN, "VersionId": NEW}, {"SecretId": ARN, "RotateImmediately": True})
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        stub.add_response("describe_secret", _describe({OLD: ["AWSPREVIOUS"], NEW: ["AWSCURRENT"]}), {"SecretId": ARN})
        log_stub.add_client_error("filter_log_events", "AccessDeniedException", "no logs:FilterLogEvents")
        lines: list[str] = []
        assert run_rotation(sm, ARN, function_log_group=GROUP, logs=denied, out=lines.append, clock=FakeClock().clock()).token == NEW
    assert sum("cannot read the function's log" in ln and "AccessDeniedException" in ln for ln in lines) == 1


def test_rotate_stack_master_first_then_logins_then_redeploys_and_waits() -> None:
    sm = _client()
    ecs = boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    ids = {r: ARN.replace("/app-", f"/{r}-") for r in ("master", "app", "migrator")}
    fake = FakeClock()
    with Stubber(sm) as stub, Stubber(ecs) as ecs_stub:
        for role in ("master", "app"):  # order matters: the login rotation connects as the master
            stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"]}), {"SecretId": ids[role]})
            stub.add_response("rotate_secret", {"VersionId": NEW}, {"SecretId": ids[role], "RotateImmediately": True})
            stub.add_response("describe_secret", _describe({OLD: ["AWSPREVIOUS"], NEW: ["AWSCURRENT"]}), {"SecretId": ids[role]})
        stable = {"services": [{"serviceName": "shop-dev", "deployments": [{"id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": "COMPLETED"}],
                                "runningCount": 2, "desiredCount": 2, "status": "ACTIVE"}], "failures": []}
        ecs_stub.add_response("describe_services", stable, {"cluster": "c", "services": ["shop-dev"]})  # the last rollout finished (dbcore/rollout.py)
        ecs_stub.add_response("describe_services", stable, {"cluster": "c", "services": ["shop-dev"]})  # no deployment since the rotation began
        forced = {"serviceName": "shop-dev", "deployments": [{"id": "ecs-svc/2", "status": "PRIMARY", "rolloutState": "IN_PROGRESS", "runningCount": 0, "desiredCount": 2},
                                                              {"id": "ecs-svc/1", "status": "ACTIVE", "rolloutState": "COMPLETED", "runningCount": 2, "desiredCount": 2}]}
        ecs_stub.add_response("update_service", {"service": forced}, {"cluster": "c", "service": "shop-dev", "forceNewDeployment": True})
        done_ = {"services": [{"serviceName": "shop-dev", "status": "ACTIVE", "deployments": [
            {"id": "ecs-svc/2", "status": "PRIMARY", "rolloutState": "COMPLETED", "runningCount": 2, "desiredCount": 2}]}], "failures": []}
        ecs_stub.add_response("describe_services", done_, {"cluster": "c", "services": ["shop-dev"]})
        lines: list[str] = []
        done = rotate_stack(sm, ids, ["app", "master"], ecs=ecs, cluster="c", service="shop-dev", out=lines.append, clock=fake.clock())
        stub.assert_no_pending_responses()
        ecs_stub.assert_no_pending_responses()
    assert done == ["master", "app"]
    assert lines.index("rotate master through Secrets Manager") < lines.index("rotate app through Secrets Manager")
    assert "  service shop-dev: new deployment ecs-svc/2 started, waiting for its rollout ..." in lines
    assert lines[-1].startswith("  service shop-dev: rollout completed")
    with pytest.raises(RotationError, match="unknown role"):
        rotate_stack(sm, ids, ["root"])


def test_redeploy_failure_is_one_sentence() -> None:
    ecs = boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ecs) as stub:
        stub.add_client_error("update_service", "ServiceNotFoundException", "gone", expected_params={"cluster": "c", "service": "s", "forceNewDeployment": ANY})
        with pytest.raises(RotationError, match=r"redeploying service s in c failed \(ServiceNotFoundException\)"):
            redeploy_service(ecs, "c", "s", out=lambda s: None)


def _service(created: datetime, running: int = 2, state: str = "COMPLETED", deployment: str = "ecs-svc/42", **more: Any) -> dict[str, Any]:
    """DescribeServices as ECS answers it (ECS API reference, Service and Deployment: per-deployment
    rolloutState, rolloutStateReason, runningCount, desiredCount, createdAt)."""
    return {"services": [{"serviceName": "s", "status": "ACTIVE", "desiredCount": 2, "runningCount": running,
                          "deployments": [{"id": deployment, "status": "PRIMARY", "createdAt": created, "rolloutState": state,
                                           "runningCount": running, "desiredCount": 2, **more}]}], "failures": []}


def test_redeploy_waits_only_when_the_function_already_started_a_deployment() -> None:
    """The function forces a deployment in the app secret's finishSecret: no second one."""
    ecs = boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    began = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", _service(began + timedelta(seconds=40), running=1, state="IN_PROGRESS"), {"cluster": "c", "services": ["s"]})
        stub.add_response("describe_services", _service(began + timedelta(seconds=40), running=1, state="IN_PROGRESS"), {"cluster": "c", "services": ["s"]})
        stub.add_response("describe_services", _service(began + timedelta(seconds=40)), {"cluster": "c", "services": ["s"]})
        lines: list[str] = []
        redeploy_service(ecs, "c", "s", since=began.timestamp(), out=lines.append, clock=FakeClock().clock())
        stub.assert_no_pending_responses()  # no UpdateService
    assert "the rotation function started deployment ecs-svc/42" in lines[0] and "rollout completed" in lines[-1]
    assert any("deployment ecs-svc/42 rolling out: 1/2 new task(s) running" in ln for ln in lines)


def test_redeploy_forces_one_when_the_primary_deployment_is_older_than_the_rotation() -> None:
    ecs = boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    began = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", _service(began - timedelta(days=3)), {"cluster": "c", "services": ["s"]})
        stub.add_response("update_service", {"service": {"serviceName": "s"}}, {"cluster": "c", "service": "s", "forceNewDeployment": True})
        fresh = _service(began + timedelta(seconds=5), deployment="ecs-svc/43")
        stub.add_response("describe_services", fresh, {"cluster": "c", "services": ["s"]})  # the reply had no deployments: read back
        stub.add_response("describe_services", fresh, {"cluster": "c", "services": ["s"]})
        lines: list[str] = []
        redeploy_service(ecs, "c", "s", since=began.timestamp(), out=lines.append, clock=FakeClock().clock())
        stub.assert_no_pending_responses()
    assert lines[0] == "  service s: new deployment ecs-svc/43 started, waiting for its rollout ..."


def test_a_rollout_rolled_back_by_the_circuit_breaker_is_a_failed_redeploy_not_a_stable_service() -> None:
    """The services_stable waiter this replaced said "stable" here: the breaker put the old tasks
    back, steady, on the login the next-but-one rotation changes. Mutation tried: following the
    service instead of the deployment id (rollout_progress without the FAILED check) passes it."""
    ecs = boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    began = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    failed = _service(began + timedelta(seconds=40), state="FAILED", rolloutStateReason="ECS deployment circuit breaker: tasks failed to start.")
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", failed, {"cluster": "c", "services": ["s"]})
        stub.add_response("describe_services", failed, {"cluster": "c", "services": ["s"]})
        lines: list[str] = []
        with pytest.raises(RotationError) as err:
            redeploy_service(ecs, "c", "s", since=began.timestamp(), out=lines.append, clock=FakeClock().clock())
        stub.assert_no_pending_responses()
    assert str(err.value) == ("redeploying service s in c failed: deployment ecs-svc/42 of service s in cluster c failed "
                              "(ECS deployment circuit breaker: tasks failed to start); running tasks keep working until the next-but-one rotation")
    assert not any("completed" in ln for ln in lines)


def test_join_pending_waits_for_the_rotation_in_progress_instead_of_starting_one() -> None:
    sm = boto3.client("secretsmanager", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        stub.add_response("list_secret_version_ids", {"Versions": [{"VersionId": NEW, "CreatedDate": datetime(2026, 1, 1, tzinfo=UTC)}]}, {"SecretId": ARN, "IncludeDeprecated": True})
        stub.add_response("describe_secret", _describe({OLD: ["AWSPREVIOUS"], NEW: ["AWSCURRENT"]}), {"SecretId": ARN})
        lines: list[str] = []
        assert run_rotation(sm, ARN, out=lines.append, clock=FakeClock().clock(), join_pending=True).token == NEW  # no RotateSecret call
        stub.assert_no_pending_responses()
    assert "a rotation is in progress" in lines[0] and "is AWSCURRENT" in lines[-1]

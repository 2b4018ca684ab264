"""RotateSecret + wait, at the botocore seam (Stubber): moto runs a rotation Lambda only in Docker.
Responses shaped from the Secrets Manager and ECS API references."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from bootstrap.rotate_remote import Clock, redeploy_service, rotate_secret, rotate_stack
from bootstrap.rotation import RotationError

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-dev/db/app-AbCdEf"
OLD, NEW = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


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
        assert rotate_secret(sm, ARN, out=lines.append, clock=Clock(fake.now, fake.sleep), interval_s=5) == NEW
        stub.assert_no_pending_responses()
    assert any("AWSPENDING" in ln and "(0s)" in ln for ln in lines)
    assert any("AWSPENDING label not yet removed" in ln for ln in lines)
    assert lines[-1].endswith("is AWSCURRENT (15s)")


def test_times_out_with_one_sentence_and_refuses_to_stack_rotations() -> None:
    sm = _client()
    fake = FakeClock()
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"]}), {"SecretId": ARN})
        stub.add_response("rotate_secret", {"ARN": ARN, "VersionId": NEW}, {"SecretId": ARN, "RotateImmediately": True})
        for _ in range(4):
            stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        with pytest.raises(RotationError, match=r"did not finish within 10s .*see /aws/lambda/shop-dev-db-rotation; .*AWSCURRENT still works") as err:
            rotate_secret(sm, ARN, function_log_group="/aws/lambda/shop-dev-db-rotation", out=lambda s: None, clock=Clock(fake.now, fake.sleep), timeout_s=10, interval_s=5)
        assert "\n" not in str(err.value)
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        with pytest.raises(RotationError, match="has a rotation in progress"):
            rotate_secret(sm, ARN, out=lambda s: None)
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"]}), {"SecretId": ARN})
        stub.add_client_error("rotate_secret", "InvalidRequestException", "no rotation function configured")
        with pytest.raises(RotationError, match=r"RotateSecret .* failed \(InvalidRequestException\)"):
            rotate_secret(sm, ARN, out=lambda s: None)


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
        ecs_stub.add_response("update_service", {"service": {"serviceName": "shop-dev"}}, {"cluster": "c", "service": "shop-dev", "forceNewDeployment": True})
        stable = {"services": [{"serviceName": "shop-dev", "deployments": [{"status": "PRIMARY"}], "runningCount": 2, "desiredCount": 2, "status": "ACTIVE"}], "failures": []}
        ecs_stub.add_response("describe_services", stable, {"cluster": "c", "services": ["shop-dev"]})
        lines: list[str] = []
        done = rotate_stack(sm, ids, ["app", "master"], ecs=ecs, cluster="c", service="shop-dev", out=lines.append, clock=Clock(fake.now, fake.sleep))
        stub.assert_no_pending_responses()
        ecs_stub.assert_no_pending_responses()
    assert done == ["master", "app"]
    assert lines.index("rotate master through Secrets Manager") < lines.index("rotate app through Secrets Manager")
    assert lines[-1].startswith("  service shop-dev: stable")
    with pytest.raises(RotationError, match="unknown role"):
        rotate_stack(sm, ids, ["root"])


def test_redeploy_failure_is_one_sentence() -> None:
    ecs = boto3.client("ecs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ecs) as stub:
        stub.add_client_error("update_service", "ServiceNotFoundException", "gone", expected_params={"cluster": "c", "service": "s", "forceNewDeployment": ANY})
        with pytest.raises(RotationError, match=r"redeploying service s in c failed \(ServiceNotFoundException\)"):
            redeploy_service(ecs, "c", "s", out=lambda s: None)


def test_join_pending_waits_for_the_rotation_in_progress_instead_of_starting_one() -> None:
    sm = boto3.client("secretsmanager", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")
    with Stubber(sm) as stub:
        stub.add_response("describe_secret", _describe({OLD: ["AWSCURRENT"], NEW: ["AWSPENDING"]}), {"SecretId": ARN})
        stub.add_response("describe_secret", _describe({OLD: ["AWSPREVIOUS"], NEW: ["AWSCURRENT"]}), {"SecretId": ARN})
        lines: list[str] = []
        assert rotate_secret(sm, ARN, out=lines.append, clock=FakeClock(), join_pending=True) == NEW  # no RotateSecret call
        stub.assert_no_pending_responses()
    assert "a rotation is in progress" in lines[0] and "is AWSCURRENT" in lines[-1]

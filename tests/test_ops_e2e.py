"""Releases, migrations and rollback end to end: `python -m bootstrap release|rollback|status` in-process
through the `pulumi` double (tests/pulumi_double/) and the real Automation API; ECR, DynamoDB (the
release ledger) and CloudWatch Logs on moto; ECS on botocore's Stubber (moto 5.2.5 crashes on RunTask
with awsvpc networking)."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
import yaml

from bootstrap.deploy.ledger import Ledger
from tests.deploy_world import DESCRIBE, DOUBLE_TD, edit_stack_file, queue_first_rollout, queue_verification, run, stubbed_ecs
from tests.pulumi_double.fixture import Double
from tests.test_image_tag_carry import stack_outputs
from tests.test_ops_migrate import LOG_GROUP, STREAM, create_ledger, queue_migration, task
from tests.test_recreate_double import aws, dev  # noqa: F401 (fixtures)
from tests.test_release import REGION, deployment, push, scan_result, services


def image_tag(d: Double) -> str:
    return str(yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())["config"].get("pghome:imageTag", ""))


def next_rollout(stub: Any, digest: str, new: str, old: str) -> None:
    """ECS answers for a release onto a running service: the new deployment rolls out, then the check of what runs."""
    stub.add_response("describe_services", services(deployment(new, "PRIMARY", DOUBLE_TD, "IN_PROGRESS", desired=1),
                                                    deployment(old, "ACTIVE", DOUBLE_TD, "COMPLETED", desired=1, running=1), desired=1), DESCRIBE)
    stub.add_response("describe_services", services(deployment(new, "PRIMARY", DOUBLE_TD, "COMPLETED", desired=1, running=1), desired=1), DESCRIBE)
    queue_verification(stub, digest)


def test_migrations_gate_releases_and_rollback_refuses_to_cross_one(dev: Double, aws: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    d = dev
    edit_stack_file(d.project / "Pulumi.dev.yaml", migrationCommand="python manage.py migrate --noinput")
    create_ledger()  # the double provisions nothing: the table the stack declares, made on moto
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=LOG_GROUP)
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0, err + out
    outputs = stack_outputs(d)
    assert outputs["migrationTaskDefinitionArn"] == f"arn:aws:ecs:{REGION}:123456789012:task-definition/shop-dev-migrate:1"
    subnets, groups = list(outputs["privateSubnetIds"]), [outputs["serviceSecurityGroupId"]]

    # 1.4.2: the migration runs (its log streamed), then the first rollout, verified on the digest
    d142 = push(aws, "1.4.2")
    scan_result("1.4.2")
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=STREAM)
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, logEvents=[{"timestamp": int(time.time() * 1000), "message": "Applying shop.0001_initial... OK"}])
    with stubbed_ecs(monkeypatch) as stub:
        queue_migration(stub, d142, task("RUNNING"), task("STOPPED", 0), subnets=subnets, security_groups=groups)
        queue_first_rollout(stub, "ecs-svc/1000", digest=d142)
        rc, out, err = run(d, capsys, "release", "--stack", "dev", "--image-tag", "1.4.2", "--yes")
        assert rc == 0, err + out
    assert "  | Applying shop.0001_initial... OK" in out and "migration: exit 0" in out
    assert out.index("migration: exit 0") < out.index("pulumi up with imageTag=1.4.2")
    assert "verified: 1 running task(s) of shop-dev-app:1" in out and image_tag(d) == "1.4.2"

    # 1.4.3 migrates too
    d143 = push(aws, "1.4.3")
    scan_result("1.4.3")
    with stubbed_ecs(monkeypatch) as stub:
        queue_migration(stub, d143, task("STOPPED", 0), subnets=subnets, security_groups=groups)
        next_rollout(stub, d143, "ecs-svc/2000", "ecs-svc/1000")
        rc, out, err = run(d, capsys, "release", "--stack", "dev", "--image-tag", "1.4.3", "--yes")
        assert rc == 0, err + out
    ups = len(d.ops("up"))

    # 1.4.4's migration fails: no `pulumi up`, the stack file keeps 1.4.3, ECS saw only the migration
    d144 = push(aws, "1.4.4")
    scan_result("1.4.4")
    with stubbed_ecs(monkeypatch) as stub:
        queue_migration(stub, d144, task("STOPPED", 2, stopCode="EssentialContainerExited", stoppedReason="Essential container in task exited"), subnets=subnets, security_groups=groups)
        rc, out, err = run(d, capsys, "release", "--stack", "dev", "--image-tag", "1.4.4", "--yes")
    assert rc == 1 and "error: the migration exited 2" in err and "the service was not changed" in err
    assert len(d.ops("up")) == ups and image_tag(d) == "1.4.3"
    history = Ledger(boto3.client("dynamodb", region_name=REGION), "shop-dev").history()
    assert [(r.tag, r.outcome, r.migration.exit_code if r.migration else None) for r in history] == [
        ("1.4.4", "failed", 2), ("1.4.3", "succeeded", 0), ("1.4.2", "succeeded", 0)]
    assert history[1].digest == d143 and history[1].task_definition == DOUBLE_TD
    assert Ledger(boto3.client("dynamodb", region_name=REGION), "shop-dev").lock_holder() is None

    # rollback to 1.4.2 crosses 1.4.3's migration (and 1.4.4's failed one, which may have half-applied): refused, nothing changes
    rc, out, err = run(d, capsys, "rollback", "--stack", "dev", "--yes")
    assert rc == 1 and "refusing to roll back to 1.4.2: migrations ran after it was released (release 1.4.4 at" in err
    assert "(exit 2); release 1.4.3 at" in err and "--allow-newer-schema" in err
    assert len(d.ops("up")) == ups and image_tag(d) == "1.4.3"

    # without a terminal and without --yes: refused after the preview
    rc, out, err = run(d, capsys, "rollback", "--stack", "dev", "--allow-newer-schema")
    assert rc == 1 and "no terminal to ask on" in err and "-> 1.4.2" in out and "WARNING: the schema is newer than 1.4.2" in out

    # told the migrations are backward compatible: back to 1.4.2 through the verified path, no migration
    with stubbed_ecs(monkeypatch) as stub:
        next_rollout(stub, d142, "ecs-svc/3000", "ecs-svc/2000")
        rc, out, err = run(d, capsys, "rollback", "--stack", "dev", "--allow-newer-schema", "--yes")
        assert rc == 0, err + out
    assert "migration: none (a rollback never migrates)" in out and image_tag(d) == "1.4.2" and len(d.ops("up")) == ups + 1
    newest = Ledger(boto3.client("dynamodb", region_name=REGION), "shop-dev").history(1)[0]
    assert (newest.kind, newest.tag, newest.digest, newest.outcome, newest.migration) == ("rollback", "1.4.2", d142, "succeeded", None)

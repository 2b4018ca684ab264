"""The release's migration gate and ledger (bootstrap/deploy/migrate.py): the lock and the records on moto's
DynamoDB, the migration task on botocore's Stubber (moto 5.2.5 crashes on RunTask with awsvpc
networking; responses shaped from the ECS API reference: DescribeTaskDefinition,
RegisterTaskDefinition, RunTask, DescribeTasks, StopTask) with its log on moto's CloudWatch Logs,
and the whole gated release through bootstrap/deploy/release.py's Releaser."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from bootstrap.deploy.ledger import Ledger, LedgerError, Migration
from bootstrap.deploy.migrate import MigrationError, MigrationRunner, MigrationTarget
from bootstrap.deploy.release import ReleaseError, ReleaseOptions, Releaser
from bootstrap.deploy.releasing import ReleaseGate, run_gated
from bootstrap.deploy.rollback import RollbackError, plan_rollback
from tests.helpers import FakeClock as Clock
from tests.test_release import CLUSTER, DESCRIBE, NEW_TD, REGION, SERVICE, RecordingUpdate, deployment, push, scan_result, services, settings

ACCOUNT = "123456789012"
MIGRATE_TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/shop-dev-migrate:1"
PINNED_TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/shop-dev-migrate:2"
TASK = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
LOG_GROUP = "/ecs/shop-dev/app"
STREAM = "migrate/migrate/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
REPO = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shop-dev"
TARGET = MigrationTarget(CLUSTER, MIGRATE_TD, ["subnet-a", "subnet-b"], ["sg-app"], LOG_GROUP)
OUTPUTS = {"clusterName": CLUSTER, "serviceName": SERVICE, "migrationTaskDefinitionArn": MIGRATE_TD, "privateSubnetIds": ["subnet-a", "subnet-b"],
           "serviceSecurityGroupId": "sg-app", "appLogGroupName": LOG_GROUP, "repositoryUrl": REPO, "appTaskDefinitionArn": NEW_TD}


def create_ledger(region: str = REGION, prefix: str = "shop-dev") -> Any:
    """The table components/migration.py `release_ledger` declares (pk/sk strings, on demand)."""
    db = boto3.client("dynamodb", region_name=region)
    db.create_table(TableName=f"{prefix}-releases", BillingMode="PAY_PER_REQUEST",
                    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    return db


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_repository(repositoryName="shop-dev", imageTagMutability="IMMUTABLE", imageScanningConfiguration={"scanOnPush": True})
        logs = boto3.client("logs", region_name=REGION)
        logs.create_log_group(logGroupName=LOG_GROUP)
        yield {"ecr": ecr, "logs": logs, "dynamodb": create_ledger()}


def write_log(logs: Any, *lines: str) -> None:
    start_ms = int(time.time() * 1000) - 60_000  # CloudWatch (and moto) refuse events older than 14 days
    try:
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=STREAM)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=STREAM, logEvents=[{"timestamp": start_ms + i, "message": m} for i, m in enumerate(lines)])


def migrate_td() -> dict[str, Any]:
    """DescribeTaskDefinition's answer for the stack's migration family (read-only fields included)."""
    return {"taskDefinition": {
        "taskDefinitionArn": MIGRATE_TD, "family": "shop-dev-migrate", "revision": 1, "status": "ACTIVE", "networkMode": "awsvpc",
        "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-dev-mig-task", "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-dev-mig-exec",
        "requiresCompatibilities": ["FARGATE"], "compatibilities": ["EC2", "FARGATE"], "cpu": "256", "memory": "512", "volumes": [{"name": "tmp"}],
        "containerDefinitions": [{"name": "migrate", "image": f"{REPO}:1.4.1", "command": ["python", "manage.py", "migrate"], "essential": True,
                                  "secrets": [{"name": "PGPASSWORD", "valueFrom": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:shop-dev/db/migrator-AbCdEf:password::"}]}],
        "registeredAt": "2026-12-01T10:00:00Z"}, "tags": [{"key": "stack", "value": "dev"}]}


def task(status: str, exit_code: int | None = None, **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "migrate", "lastStatus": status}
    if exit_code is not None:
        container["exitCode"] = exit_code
    return {"tasks": [{"taskArn": TASK, "lastStatus": status, "taskDefinitionArn": PINNED_TD, "containers": [container], **extra}], "failures": []}


def queue_migration(stub: Stubber, digest: str, *answers: dict[str, Any], run_answer: dict[str, Any] | None = None,
                    subnets: list[str] | None = None, security_groups: list[str] | None = None) -> None:
    """DescribeTaskDefinition, RegisterTaskDefinition (the image pinned by digest, the rest kept), RunTask
    (plain FARGATE, the service's subnets and security group, no public IP), then DescribeTasks per poll."""
    stub.add_response("describe_task_definition", migrate_td(), {"taskDefinition": MIGRATE_TD, "include": ["TAGS"]})
    register = migrate_td()["taskDefinition"]
    expected = {k: register[k] for k in ("family", "taskRoleArn", "executionRoleArn", "networkMode", "volumes", "requiresCompatibilities", "cpu", "memory")}
    expected["containerDefinitions"] = [{**register["containerDefinitions"][0], "image": f"{REPO}@{digest}"}]  # pinned by digest, command kept
    expected["tags"] = [{"key": "stack", "value": "dev"}]
    stub.add_response("register_task_definition", {"taskDefinition": {**register, "taskDefinitionArn": PINNED_TD, "revision": 2}}, expected)
    stub.add_response("run_task", run_answer or {"tasks": [{"taskArn": TASK, "lastStatus": "PROVISIONING"}], "failures": []}, {
        "cluster": CLUSTER, "taskDefinition": PINNED_TD, "count": 1, "startedBy": "pghome-release",
        "capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1, "base": 1}],
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": subnets or ["subnet-a", "subnet-b"], "securityGroups": security_groups or ["sg-app"],
                                                  "assignPublicIp": "DISABLED"}},
        "propagateTags": "TASK_DEFINITION"})
    for a in answers:
        stub.add_response("describe_tasks", a, {"cluster": CLUSTER, "tasks": [TASK]})


# --- the lock ----------------------------------------------------------------------------------------


def test_the_lock_names_its_holder_survives_a_killed_cli_and_expires(aws: dict[str, Any]) -> None:
    now = [1_000_000.0]
    ledger = Ledger(aws["dynamodb"], "shop-dev", clock=lambda: now[0])
    token = ledger.acquire("ci@runner-7 pid 42", lease_seconds=3600)
    ledger.note_task(token, TASK)
    # the CLI that took it is killed: nothing gives it back, a second release is refused with the holder named
    other = Ledger(aws["dynamodb"], "shop-dev", clock=lambda: now[0])
    with pytest.raises(LedgerError, match=r"holds the lock of shop-dev: ci@runner-7 pid 42 since .*migration task 0f1e2d3c4b5a69788796a5b4c3d2e1f0"):
        other.acquire("alice@laptop pid 7", lease_seconds=3600)
    # --break-lock refuses while the holder's migration task still runs, removes the lock once it stopped
    with pytest.raises(LedgerError, match="still running"):
        other.break_lock(lambda arn: True)
    assert "removed the lock held by ci@runner-7 pid 42" in other.break_lock(lambda arn: False)
    second = other.acquire("alice@laptop pid 7", lease_seconds=60)
    ledger.release(token)  # the old holder's late give-back must not free alice's lock
    assert (ledger.lock_holder() or {})["holder"] == "alice@laptop pid 7"
    now[0] += 61  # lease over: the next release takes it over
    third = ledger.acquire("bob@desk pid 9", lease_seconds=60)
    assert third != second and (ledger.lock_holder() or {})["holder"] == "bob@desk pid 9"


def test_missing_release_table_is_one_sentence() -> None:
    with mock_aws():
        ledger = Ledger(boto3.client("dynamodb", region_name=REGION), "shop-dev")
        with pytest.raises(LedgerError, match="release table shop-dev-releases does not exist"):
            ledger.history()


# --- the migration task -------------------------------------------------------------------------------


def test_migration_runs_pinned_on_the_new_digest_and_streams_its_log(aws: dict[str, Any]) -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    digest = "sha256:" + "c" * 64
    write_log(aws["logs"], "Operations to perform: Apply all migrations", "Applying shop.0042_orders... OK")
    queue_migration(stub, digest, task("PENDING"), task("RUNNING"), task("STOPPED", 0, stopCode="EssentialContainerExited", stoppedReason="Essential container in task exited"))
    lines: list[str] = []
    clock = Clock()
    started: list[str] = []
    with stub:
        result = MigrationRunner(ecs, aws["logs"], out=lines.append, clock=clock, sleep=clock.sleep).run(TARGET, f"{REPO}@{digest}", 600, started.append)
    stub.assert_no_pending_responses()
    assert result == Migration(TASK, PINNED_TD, f"{REPO}@{digest}", 0, 10.0, "EssentialContainerExited; Essential container in task exited")
    assert started == [TASK]
    text = "\n".join(lines)
    assert text.count("  | Applying shop.0042_orders... OK") == 1  # each line once, as it arrives
    assert "migration: exit 0 after 10s" in text


def test_non_zero_exit_and_a_task_that_never_started_abort_with_the_reason(aws: dict[str, Any]) -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    digest = "sha256:" + "d" * 64
    queue_migration(stub, digest, task("STOPPED", 3, stopCode="EssentialContainerExited", stoppedReason="Essential container in task exited"))
    queue_migration(stub, digest, task("STOPPED", None, stopCode="TaskFailedToStart",
                                       stoppedReason="ResourceInitializationError: unable to pull secrets or registry auth"))
    queue_migration(stub, digest, run_answer={"tasks": [], "failures": [{"arn": PINNED_TD, "reason": "RESOURCE:ENI", "detail": "no free IP in subnet-a"}]})
    runner = MigrationRunner(ecs, aws["logs"], out=lambda _: None, clock=Clock(), sleep=lambda _: None)
    with stub:
        with pytest.raises(MigrationError, match=r"the migration exited 3 after .*Essential container in task exited.*service was not changed") as e:
            runner.run(TARGET, f"{REPO}@{digest}", 600)
        assert e.value.result is not None and e.value.result.exit_code == 3
        with pytest.raises(MigrationError, match=r"stopped without running its command \(TaskFailedToStart; ResourceInitializationError"):
            runner.run(TARGET, f"{REPO}@{digest}", 600)
        with pytest.raises(MigrationError, match=r"did not start \(RESOURCE:ENI: no free IP in subnet-a\)"):
            runner.run(TARGET, f"{REPO}@{digest}", 600)
    stub.assert_no_pending_responses()


def test_migration_timeout_stops_the_task(aws: dict[str, Any]) -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    digest = "sha256:" + "e" * 64
    queue_migration(stub, digest, task("RUNNING"), task("RUNNING"), task("RUNNING"))
    stub.add_response("stop_task", {"task": {"taskArn": TASK}}, {"cluster": CLUSTER, "task": TASK, "reason": "pghome release: migration timeout after 10s"})
    clock = Clock()
    with stub, pytest.raises(MigrationError, match=r"did not finish in 10s \(migrationTimeoutSeconds\); its task .* was stopped"):
        MigrationRunner(ecs, aws["logs"], out=lambda _: None, clock=clock, sleep=clock.sleep).run(TARGET, f"{REPO}@{digest}", 10)
    stub.assert_no_pending_responses()


# --- the gated release ----------------------------------------------------------------------------------


def gated(aws: dict[str, Any], ecs: Any, update: RecordingUpdate, kind: str = "release", **overrides: Any) -> tuple[Releaser, ReleaseGate, list[str]]:
    s = settings(**{"migrationCommand": "python manage.py migrate", **overrides})
    lines: list[str] = []
    clock = Clock()
    ledger = Ledger(aws["dynamodb"], s.prefix)
    runner = MigrationRunner(ecs, aws["logs"], out=lines.append, clock=clock, sleep=clock.sleep)
    releaser: Releaser | None = None
    gate = ReleaseGate(s, ecs, ledger, runner, lambda: (releaser.outputs if releaser and releaser.outputs else OUTPUTS), kind=kind,
                       holder="ci@runner pid 1", out=lines.append)
    releaser = Releaser(s, aws["ecr"], ecs, update, out=lines.append, clock=clock, sleep=clock.sleep, gate=gate)
    return releaser, gate, lines


def test_a_failed_migration_leaves_the_service_untouched_and_is_recorded(aws: dict[str, Any]) -> None:
    digest = push(aws["ecr"], "1.5.0")
    scan_result("1.5.0")
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    queue_migration(stub, digest, task("STOPPED", 1, stopCode="EssentialContainerExited", stoppedReason="Essential container in task exited"))
    update = RecordingUpdate(OUTPUTS)
    releaser, gate, lines = gated(aws, ecs, update)
    with stub, pytest.raises(ReleaseError, match="the migration exited 1"):
        run_gated(releaser, gate, ReleaseOptions("1.5.0"))
    stub.assert_no_pending_responses()  # no DescribeServices, no UpdateService: ECS saw only the migration
    assert update.calls == []  # no `pulumi up`: the service and its task definition are untouched
    [record] = Ledger(aws["dynamodb"], "shop-dev").history()
    assert (record.tag, record.digest, record.outcome) == ("1.5.0", digest, "failed")
    assert record.migration is not None and record.migration.exit_code == 1 and record.migration.image == f"{REPO}@{digest}"
    assert Ledger(aws["dynamodb"], "shop-dev").lock_holder() is None  # the lock was given back


def test_a_release_succeeds_only_on_the_exact_digest_and_records_it(aws: dict[str, Any]) -> None:
    digest = push(aws["ecr"], "1.5.0")
    scan_result("1.5.0")
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    queue_migration(stub, digest, task("STOPPED", 0))
    stub.add_response("describe_services", services(deployment("ecs-svc/2", "PRIMARY", NEW_TD, "COMPLETED", running=2)), DESCRIBE)
    stub.add_response("describe_services", services(deployment("ecs-svc/2", "PRIMARY", NEW_TD, "COMPLETED", running=2)), DESCRIBE)
    arns = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{i}" for i in ("t1", "t2")]
    stub.add_response("list_tasks", {"taskArns": arns}, {"cluster": CLUSTER, "serviceName": SERVICE, "desiredStatus": "RUNNING"})
    stub.add_response("describe_tasks", {"tasks": [{"taskArn": a, "taskDefinitionArn": NEW_TD, "containers": [{"name": "app", "imageDigest": digest}]} for a in arns]},
                      {"cluster": CLUSTER, "tasks": arns})
    update = RecordingUpdate(OUTPUTS)
    releaser, gate, lines = gated(aws, ecs, update)
    with stub:
        assert run_gated(releaser, gate, ReleaseOptions("1.5.0")) == 0
    stub.assert_no_pending_responses()
    assert update.calls == [{"imageTag": "1.5.0"}]
    text = "\n".join(lines)
    assert text.index("migration: exit 0") < text.index("pulumi up with imageTag=1.5.0")  # migrated before the service changed
    assert "verified: 2 running task(s) of shop-dev-app:7" in text
    [record] = Ledger(aws["dynamodb"], "shop-dev").history()
    assert (record.outcome, record.task_definition, record.digest) == ("succeeded", NEW_TD, digest)
    assert record.migration is not None and record.migration.exit_code == 0 and record.migration.task_arn == TASK


def test_steady_on_another_image_is_a_failure(aws: dict[str, Any]) -> None:
    push(aws["ecr"], "1.5.0")
    scan_result("1.5.0")
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    stub.add_response("describe_services", services(deployment("ecs-svc/2", "PRIMARY", NEW_TD, "COMPLETED", running=1, desired=1), desired=1), DESCRIBE)
    stub.add_response("describe_services", services(deployment("ecs-svc/2", "PRIMARY", NEW_TD, "COMPLETED", running=1, desired=1), desired=1), DESCRIBE)
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/old1"
    stub.add_response("list_tasks", {"taskArns": [arn]}, {"cluster": ANY, "serviceName": ANY, "desiredStatus": "RUNNING"})
    stub.add_response("describe_tasks", {"tasks": [{"taskArn": arn, "taskDefinitionArn": NEW_TD, "containers": [{"name": "app", "imageDigest": "sha256:" + "9" * 64}]}]},
                      {"cluster": ANY, "tasks": [arn]})
    releaser, gate, lines = gated(aws, ecs, RecordingUpdate(OUTPUTS), migrationCommand="")
    with stub, pytest.raises(ReleaseError, match=r"reports steady state but does not run only sha256:.*old1 \(shop-dev-app:7, sha256:9999"):
        run_gated(releaser, gate, ReleaseOptions("1.5.0"))
    assert "migration: none (no migrationCommand)" in lines
    assert Ledger(aws["dynamodb"], "shop-dev").history()[0].outcome == "failed"


# --- rollback's plan ---------------------------------------------------------------------------------------


def rec(tag: str, at: str, migrated: bool = False, outcome: str = "succeeded", kind: str = "release") -> Any:
    from bootstrap.deploy.ledger import ReleaseRecord

    m = Migration(TASK, PINNED_TD, f"{REPO}@sha256:x", 0, 12.0) if migrated else None
    return ReleaseRecord(kind, tag, "sha256:" + tag.replace(".", "") * 8, at, "ci", outcome, "", NEW_TD, m)


def test_rollback_picks_the_previous_release_and_refuses_across_a_migration() -> None:
    history = [rec("1.5.0", "2026-12-03T10:00:00Z", migrated=True), rec("1.4.9", "2026-12-02T10:00:00Z", outcome="failed"),
               rec("1.4.2", "2026-12-01T10:00:00Z"), rec("1.4.1", "2026-11-30T10:00:00Z")]
    with pytest.raises(RollbackError, match=r"refusing to roll back to 1.4.2: migrations ran after it was released \(release 1.5.0 at 2026-12-03T10:00:00 \(exit 0\)\).*--allow-newer-schema"):
        plan_rollback(history)
    plan = plan_rollback(history, allow_newer_schema=True)
    assert plan.target.tag == "1.4.2" and plan.current is not None and plan.current.tag == "1.5.0"
    assert "WARNING: the schema is newer than 1.4.2: release 1.5.0 ran a migration" in plan.render("dev")
    assert plan_rollback(history[2:], "1.4.1").target.tag == "1.4.1"  # no migration in between: allowed
    with pytest.raises(RollbackError, match=r"--to 1.4.9: no succeeded release of that tag is recorded; recorded tags: 1.5.0, 1.4.2, 1.4.1"):
        plan_rollback(history, "1.4.9")
    with pytest.raises(RollbackError, match="no earlier release than 1.4.1"):
        plan_rollback(history[3:])


def test_an_interrupted_migration_keeps_the_lock_while_its_task_runs(aws: dict[str, Any]) -> None:
    digest = push(aws["ecr"], "1.5.0")
    scan_result("1.5.0")
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    queue_migration(stub, digest, task("RUNNING"))
    releaser, gate, lines = gated(aws, ecs, RecordingUpdate(OUTPUTS))
    assert gate.runner is not None

    def ctrl_c(_: float) -> None:
        raise KeyboardInterrupt

    gate.runner.sleep = ctrl_c
    with stub, pytest.raises(KeyboardInterrupt):
        run_gated(releaser, gate, ReleaseOptions("1.5.0"))
    held = Ledger(aws["dynamodb"], "shop-dev").lock_holder()
    assert held is not None and held["holder"] == "ci@runner pid 1" and held["task_arn"] == TASK
    assert any("is still running: the lock of shop-dev stays" in ln for ln in lines)
    assert Ledger(aws["dynamodb"], "shop-dev").history()[0].reason == "interrupted: KeyboardInterrupt"


def test_a_second_rollback_goes_further_back_not_to_the_image_rolled_away_from() -> None:
    history = [rec("1.4.2", "2026-12-04T10:00:00Z", kind="rollback"), rec("1.4.3", "2026-12-03T10:00:00Z"),
               rec("1.4.2", "2026-12-02T10:00:00Z"), rec("1.4.1", "2026-12-01T10:00:00Z")]
    plan = plan_rollback(history)
    assert (plan.current.tag if plan.current else "", plan.target.tag) == ("1.4.2", "1.4.1")  # not 1.4.3, the broken one
    assert plan_rollback(history, "1.4.3").target.tag == "1.4.3"  # still reachable when named


def test_a_long_migration_says_so_every_minute(aws: dict[str, Any]) -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    digest = "sha256:" + "f" * 64
    queue_migration(stub, digest, *[task("RUNNING")] * 30, task("STOPPED", 0))
    lines: list[str] = []
    clock = Clock()
    with stub:
        MigrationRunner(ecs, aws["logs"], out=lines.append, clock=clock, sleep=clock.sleep).run(TARGET, f"{REPO}@{digest}", 600)
    assert [ln for ln in lines if ln.startswith("migration: task running")] == [
        "migration: task running (0s)", "migration: task running (60s)", "migration: task running (120s)"]
    assert lines[-1] == "migration: exit 0 after 150s"

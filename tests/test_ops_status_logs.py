"""`status` and `logs` (bootstrap/ops/): RDS, Secrets Manager, DynamoDB, CloudWatch, ELBv2 and
CloudWatch Logs on moto; ECS on botocore's Stubber (DescribeServices, ListTasks, DescribeTasks
shaped from the ECS API reference), as the release tests do."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from bootstrap.deploy.ledger import Ledger
from bootstrap.ops.logs import LogsError, parse_since, tail
from bootstrap.ops.status import gather, render
from tests.test_ops_migrate import create_ledger
from tests.test_release import CLUSTER, REGION, SERVICE, deployment, settings

ACCOUNT = "123456789012"
TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/shop-dev-app:7"
DIGEST = "sha256:" + "a" * 64


class Session:
    """What bootstrap/ops/status.py asks of a boto3 session: moto clients, the stubbed ECS one, and
    any service made to fail (an API that cannot be reached)."""

    def __init__(self, ecs: Any, broken: tuple[str, ...] = ()):
        self.ecs, self.broken = ecs, broken

    def client(self, name: str) -> Any:
        if name in self.broken:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": f"not authorized to call {name}"}}, "Describe")
        if name == "rds":
            return Rds(boto3.client("rds", region_name=REGION))
        return self.ecs if name == "ecs" else boto3.client(name, region_name=REGION)


class Rds:
    """moto's RDS, plus DescribePendingMaintenanceActions (moto 5.2.5 does not implement it),
    answered as the RDS API reference shapes it."""

    def __init__(self, real: Any):
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def describe_pending_maintenance_actions(self, ResourceIdentifier: str) -> dict[str, Any]:  # noqa: N803 - boto3's spelling
        return {"PendingMaintenanceActions": [{"ResourceIdentifier": ResourceIdentifier, "PendingMaintenanceActionDetails": [
            {"Action": "system-update", "Description": "New Operating System update is available", "AutoAppliedAfterDate": "2026-12-20T00:00:00Z"}]}]}


@pytest.fixture
def world() -> Iterator[dict[str, Any]]:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        elbv2 = boto3.client("elbv2", region_name=REGION)
        tg = elbv2.create_target_group(Name="shop-dev-app", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        rds = boto3.client("rds", region_name=REGION)
        rds.create_db_instance(DBInstanceIdentifier="shop-dev-db", DBInstanceClass="db.t4g.micro", Engine="postgres", AllocatedStorage=20,
                               MasterUsername="pgadmin", MasterUserPassword="x" * 20, PreferredBackupWindow="03:00-04:00")
        sm = boto3.client("secretsmanager", region_name=REGION)
        for role in ("master", "app", "migrator"):
            sm.create_secret(Name=f"shop-dev/db/{role}", SecretString=json.dumps({"password": "p"}))
        cw = boto3.client("cloudwatch", region_name=REGION)
        for name in ("shop-dev-app-5xx", "shop-dev-db-cpu", "other-stack-cpu"):
            cw.put_metric_alarm(AlarmName=name, MetricName="CPUUtilization", Namespace="AWS/RDS", Statistic="Average", Period=60,
                                EvaluationPeriods=1, Threshold=80, ComparisonOperator="GreaterThanThreshold")
        cw.set_alarm_state(AlarmName="shop-dev-app-5xx", StateValue="ALARM", StateReason="Threshold Crossed: 12 5xx in 1 minute")
        cw.set_alarm_state(AlarmName="other-stack-cpu", StateValue="ALARM", StateReason="not ours")
        ledger = Ledger(create_ledger(), "shop-dev")
        r = ledger.new_record("release", "1.4.2", DIGEST, "ci@runner pid 1")
        r.outcome = "succeeded"
        ledger.save(r)
        yield {"tg": tg}


def stub_service(ecs: Any, tg: str) -> Stubber:
    stub = Stubber(ecs)
    svc = {"serviceName": SERVICE, "status": "ACTIVE", "desiredCount": 2, "runningCount": 2, "pendingCount": 0, "taskDefinition": TD,
           "loadBalancers": [{"targetGroupArn": tg, "containerName": "app", "containerPort": 8080}],
           "deployments": [deployment("ecs-svc/2", "PRIMARY", TD, "COMPLETED", running=2)]}
    stub.add_response("describe_services", {"services": [svc], "failures": []}, {"cluster": CLUSTER, "services": [SERVICE]})
    arns = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/t{i}" for i in (1, 2)]
    stub.add_response("list_tasks", {"taskArns": arns}, {"cluster": CLUSTER, "serviceName": SERVICE, "desiredStatus": "RUNNING"})
    stub.add_response("describe_tasks", {"tasks": [{"taskArn": a, "containers": [{"name": "app", "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shop-dev:1.4.2",
                                                                             "imageDigest": DIGEST}]} for a in arns]}, {"cluster": CLUSTER, "tasks": arns})
    return stub


def test_status_is_one_screen_of_every_part(world: dict[str, Any]) -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    with stub_service(ecs, world["tg"]) as stub:
        report = gather(settings(), Session(ecs))
    stub.assert_no_pending_responses()
    text = render(report)
    assert "service    2/2 running, 0 pending, shop-dev-app:7, image " in text and DIGEST[:19] in text
    assert "  deploy   PRIMARY  COMPLETED   shop-dev-app:7 2/2" in text
    assert "targets    no targets registered" in text
    assert "database   available, db.t4g.micro, postgres" in text and "window 03:00-04:00" in text
    assert "  pending  system-update (New Operating System update is available) after 2026-12-20" in text
    assert "rotation   master" in text and "rotation   migrator" in text
    assert "1.4.2 succeeded by ci@runner" in text
    assert "ALARM      shop-dev-app-5xx" in text and "12 5xx in 1 minute" in text and "other-stack" not in text
    assert len(text.splitlines()) < 25  # one screen
    json.dumps(report, default=str)  # --json prints it


def test_each_unreachable_part_degrades_to_one_line(world: dict[str, Any]) -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    with stub_service(ecs, world["tg"]):
        report = gather(settings(), Session(ecs, broken=("rds", "cloudwatch", "dynamodb")))
    text = render(report)
    assert "database   unreachable: AccessDenied: not authorized to call rds" in text
    assert "releases   unreachable: AccessDenied: not authorized to call dynamodb" in text
    assert "alarms     unreachable: AccessDenied: not authorized to call cloudwatch" in text
    assert "service    2/2 running" in text and "rotation   app" in text  # the rest still shows
    ecs2 = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs2)
    stub.add_client_error("describe_services", "AccessDeniedException", "no ecs:DescribeServices")
    with stub:
        text = render(gather(settings(), Session(ecs2)))
    assert "service    unreachable: AccessDeniedException: no ecs:DescribeServices" in text
    assert "targets    unreachable: LookupError" in text


# --- logs ----------------------------------------------------------------------------------------------


def test_since_is_parsed_or_refused() -> None:
    assert parse_since("10m") == 600 and parse_since("2h") == 7200 and parse_since("30s") == 30 and parse_since("1d") == 86400
    for bad in ("10", "ten minutes", "0m", "5w"):
        with pytest.raises(LogsError, match="is not a duration"):
            parse_since(bad)


def test_logs_newest_last_with_task_ids_filtered_and_followed() -> None:
    with mock_aws():
        logs = boto3.client("logs", region_name=REGION)
        group = "/ecs/shop-dev/app"
        logs.create_log_group(logGroupName=group)
        now = int(time.time() * 1000)
        for stream, events in {"app/app/task1": [(now - 50_000, "GET /healthz 200"), (now - 10_000, "ERROR boom")],
                               "app/app/task2": [(now - 30_000, "ERROR db timeout")],
                               "migrate/migrate/mig9": [(now - 20_000, "Applying 0042")]}.items():
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[{"timestamp": t, "message": m} for t, m in events])
        lines: list[str] = []
        assert tail(logs, "shop-dev", "app", since_seconds=600, out=lines.append) == 0
        assert [ln.split(" ", 2)[2].split(None, 1) for ln in lines] == [["task1", "GET /healthz 200"], ["task2", "ERROR db timeout"], ["task1", "ERROR boom"]]
        lines.clear()
        tail(logs, "shop-dev", "migrate", since_seconds=600, out=lines.append)
        assert len(lines) == 1 and "mig9" in lines[0] and "Applying 0042" in lines[0]
        lines.clear()
        tail(logs, "shop-dev", "app", since_seconds=600, pattern="ERROR", out=lines.append)
        assert [ln.rsplit(" ", 2)[-2:] for ln in lines] == [["db", "timeout"], ["ERROR", "boom"]]
        # --follow: a second poll prints only what arrived since, once
        lines.clear()
        def more(_: float) -> None:
            logs.put_log_events(logGroupName=group, logStreamName="app/app/task2", logEvents=[{"timestamp": now, "message": "late line"}])
        tail(logs, "shop-dev", "app", since_seconds=600, follow=True, polls=2, sleep=more, out=lines.append)
        assert len(lines) == 4 and lines[-1].endswith("late line")
        with pytest.raises(LogsError, match=r"log group /aws/rds/instance/shop-dev-db/postgresql \(PostgreSQL's own log\) does not exist"):
            tail(logs, "shop-dev", "db", since_seconds=600, out=lines.append)


def test_cli_status_json_and_logs_arguments(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.main import main

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        # nothing deployed: every part says why on its own line, the command still answers (exit 0)
        assert main(["status", "--stack", "dev"]) == 0
        text = capsys.readouterr().out
        assert "service    unreachable:" in text and "database   unreachable:" in text and "alarms     none in ALARM" in text
        assert main(["status", "--stack", "dev", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["prefix"] == "shop-dev" and "error" in report["service"] and report["alarms"] == []
        assert main(["logs", "--stack", "dev", "--since", "ten minutes"]) == 2
        assert capsys.readouterr().err.strip() == "error: --since 'ten minutes' is not a duration; use a number and a unit: 30s, 10m, 2h or 7d"
        assert main(["logs", "--stack", "dev", "migrate"]) == 2
        assert "log group /ecs/shop-dev/app (the release migrations) does not exist" in capsys.readouterr().err

"""One end-to-end world for `python -m bootstrap <command>`: the `pulumi` double on PATH (the CLI),
moto (Secrets Manager, RDS) in-process, and the real PostgreSQL standing in for the RDS instance.

The double records state but provisions nothing, so the secrets, the RDS instance and the roles the
program declares are made by `tests.rotation_world.World` (what phases 1 and 3 create on AWS). The
project's stack file (a scratch copy) points the rotation at the local server through the stack's own
connection settings (appDbHostOverride/appDbPortOverride/appDbSslMode/appDbSslRootCert): the master
secret's host is an unresolvable moto address, so a rotation that ignored them could not connect.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from moto import mock_aws

from config.load import settings_for
from config.stack_file import read_stack_file
from tests.pgserver import PgServer
from tests.pulumi_double.fixture import Double
from tests.rotation_world import World
from tests.test_release import CLUSTER, DESCRIBE, REGION, SERVICE, deployment, push, scan_result, services

# What a team replaces in the shipped Pulumi.prod.yaml before its first deploy (preflight refuses the
# example values: bootstrap/deploy/preflight.py): a certificate, reader roles and an on-call address of its own.
OWN_PROD: dict[str, Any] = {
    "certificateArn": "arn:aws:acm:eu-west-1:210987654321:certificate/4b1c9a57-3f8e-4d5a-9c2b-7e6f5a4d3c2b",
    "dbDeployRoleArn": "arn:aws:iam::210987654321:role/shop-prod-deploy",
    "dbBreakGlassRoleArn": "arn:aws:iam::210987654321:role/shop-break-glass",
    "alarmEmails": ["oncall@shop.io"],
}


def edit_stack_file(path: Path, **values: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    for key, value in values.items():
        full = key if ":" in key else f"pghome:{key}"
        if value is None:
            doc["config"].pop(full, None)
        else:
            doc["config"][full] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def run(d: Double, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`python -m bootstrap <argv> -C <project>` in-process: (exit code, stdout, stderr), never a traceback."""
    from bootstrap.cli.main import main

    capsys.readouterr()
    rc = main([*argv, "-C", str(d.project)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return rc, out.out, out.err


@contextlib.contextmanager
def stubbed_ecs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """For the block, every boto3 session hands out one ECS client answered by a Stubber (moto cannot
    run the service's deployments); other services stay on moto. Every queued answer must be used."""
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    real_client = boto3.session.Session.client
    monkeypatch.setattr(boto3.session.Session, "client", lambda self, name, *a, **kw: ecs if name == "ecs" else real_client(self, name, *a, **kw))
    try:
        with stub:
            yield stub
        stub.assert_no_pending_responses()
    finally:
        monkeypatch.setattr(boto3.session.Session, "client", real_client)


# The app's task definition ARN the double's program answers (bootstrap/mockanswers.py: revision 1),
# i.e. the `appTaskDefinitionArn` output release checks the settled service against.
DOUBLE_TD = f"arn:aws:ecs:{REGION}:123456789012:task-definition/{SERVICE}:1"


def queue_verification(stub: Stubber, digest: str, td: str = DOUBLE_TD, tasks: int = 1) -> None:
    """What ECS answers when release checks the settled service: its running tasks (ListTasks,
    DescribeTasks with the app container's imageDigest, as the ECS API reference shapes them)."""
    arns = [f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/run{i}" for i in range(tasks)]
    stub.add_response("list_tasks", {"taskArns": arns}, {"cluster": CLUSTER, "serviceName": SERVICE, "desiredStatus": "RUNNING"})
    stub.add_response("describe_tasks", {"tasks": [{"taskArn": a, "taskDefinitionArn": td, "lastStatus": "RUNNING",
                                                    "containers": [{"name": "app", "imageDigest": digest, "lastStatus": "RUNNING"}]} for a in arns],
                                         "failures": []}, {"cluster": CLUSTER, "tasks": arns})


def queue_first_rollout(stub: Stubber, deployment_id: str = "ecs-svc/1000", *, digest: str) -> None:
    """What ECS answers to the first release of a stack: the service has no task yet, so release
    starts one (desiredCount 1), follows the deployment to steady state and checks what runs."""
    stub.add_response("describe_services", services(deployment(deployment_id, "PRIMARY", DOUBLE_TD, "COMPLETED", desired=0), desired=0), DESCRIBE)
    stub.add_response("update_service", {"service": {"serviceName": SERVICE}}, {"cluster": CLUSTER, "service": SERVICE, "desiredCount": 1})
    stub.add_response("describe_services", services(deployment(deployment_id, "PRIMARY", DOUBLE_TD, "COMPLETED", desired=1, running=1), desired=1), DESCRIBE)
    queue_verification(stub, digest)


def first_release(d: Double, ecr: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tag: str,
                  deployment_id: str = "ecs-svc/1000", counts: dict[str, int] | None = None) -> str:
    """The one release set-up of the end-to-end tests: push and scan `tag` (moto ECR), then
    `release --image-tag tag` through the double on a stack whose service has no task yet; its output."""
    digest = push(ecr, tag)
    scan_result(tag, counts=counts)
    with stubbed_ecs(monkeypatch) as stub:
        queue_first_rollout(stub, deployment_id, digest=digest)
        rc, out, err = run(d, capsys, "release", "--stack", "dev", "--image-tag", tag, "--yes")
        assert rc == 0, err + out
    return out


def app_images(d: Double) -> list[str]:
    """The images of the app's task definition in the double's state."""
    td = next(r for r in d.resources() if r["type"] == "aws:ecs/taskDefinition:TaskDefinition" and r["inputs"]["family"] == "shop-dev-app")
    return [c["image"] for c in json.loads(td["inputs"]["containerDefinitions"])]


@dataclass
class DeployWorld:
    d: Double
    world: World
    capsys: pytest.CaptureFixture[str]

    def run(self, *argv: str) -> tuple[int, str, str]:
        from bootstrap.cli.main import main

        self.capsys.readouterr()
        rc = main([*argv, "-C", str(self.d.project)])
        out = self.capsys.readouterr()
        return rc, out.out, out.err

    def master_password(self) -> str:
        secret = self.world.secret("master")
        assert secret is not None
        return str(secret["password"])

    def up_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.d.calls() if "up" in c["argv"][1:2]]

    def config_file_app_db(self, call: dict[str, Any]) -> str:
        argv = call["argv"]
        doc = yaml.safe_load(Path(argv[argv.index("--config-file") + 1]).read_text()) if Path(argv[argv.index("--config-file") + 1]).exists() else None
        return str(doc["config"]["pghome:appDbEnabled"]) if doc else "(temp file removed)"


@contextlib.contextmanager
def deploy_world(pg: PgServer, d: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], app_name: str = "") -> Iterator[DeployWorld]:
    stack_file = d.project / "Pulumi.dev.yaml"
    edit_stack_file(stack_file, appName=app_name or f"t{uuid.uuid4().hex[:6]}", appDbHostOverride="localhost", appDbPortOverride=pg.port,
                    appDbSslMode="verify-full", appDbSslRootCert=str(pg.ca_file))
    settings = settings_for(read_stack_file("dev", d.project), "dev")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "e2e passphrase")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", settings.region)
    with mock_aws():
        world = World(pg, settings)
        monkeypatch.setattr("bootstrap.cli.deploy.make_db_admin", lambda rds: world.admin)
        try:
            yield DeployWorld(d, world, capsys)
        finally:
            world.drop()


def stack_outputs(d: Double) -> dict[str, Any]:
    """The stack's outputs in the default backend the deploy chose (the project's .pulumi-state)."""
    path = d.project / ".pulumi-state/.pulumi/stacks/pghome/dev.json"
    res = json.loads(path.read_text())["checkpoint"]["latest"]["resources"]
    stack = next(r for r in res if r["type"] == "pulumi:pulumi:Stack")
    return dict(stack.get("outputs") or {})


def pretty(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)

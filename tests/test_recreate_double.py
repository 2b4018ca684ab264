"""Issue 16, under the `pulumi` double with its model of AWS names (tests/pulumi_double/aws_names.py):
destroy -> up reuses every stable name with no collision, a replace-on-change property replaces
create-before-delete under a generated name, and `release` sets the image through the real `up`.
Through `python -m bootstrap ...` (main()) and the real Automation API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from pulumi import automation as auto

from tests.deploy_world import DOUBLE_TD, app_images, edit_stack_file, first_release, queue_verification, run, stubbed_ecs
from tests.pulumi_double.aws_names import physical_name
from tests.pulumi_double.fixture import Double
from tests.test_release import DESCRIBE, REGION, deployment, push, scan_result, services

PASS = "recreate passphrase"
STABLE = {
    "aws:secretsmanager/secret:Secret": "secrets",
    "aws:ecr/repository:Repository": "ECR repository",
    "aws:ecs/cluster:Cluster": "cluster",
    "aws:ecs/service:Service": "service",
    "aws:cloudwatch/logGroup:LogGroup": "log groups",
    "aws:rds/instance:Instance": "DB identifier",
}
GENERATED = ("aws:lb/targetGroup:TargetGroup", "aws:ec2/securityGroup:SecurityGroup", "aws:rds/parameterGroup:ParameterGroup",
             "aws:rds/subnetGroup:SubnetGroup", "aws:iam/role:Role")


@pytest.fixture
def dev(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch) -> Double:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_CONFIG_PASSPHRASE": PASS}))
    return d


def names(d: Double, types: Any) -> dict[str, str]:
    """urn -> physical name for the resources of the given types."""
    return {r["urn"]: str(physical_name(r)) for r in d.resources() if r["type"] in types and physical_name(r)}


def only(d: Double, type_: str) -> dict[str, Any]:
    found = [r for r in d.resources() if r["type"] == type_]
    assert len(found) == 1, type_
    return found[0]


def account(d: Double) -> dict[str, Any]:
    return dict(json.loads((d.tmp / "state/.pulumi-double-aws.json").read_text()))


def test_destroy_then_up_reuses_the_stable_names_and_collides_nowhere(dev: Double, capsys: pytest.CaptureFixture[str]) -> None:
    d = dev
    edit_stack_file(d.project / "Pulumi.dev.yaml", dbFinalSnapshot=True)  # exercise the final snapshot too
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0, err
    stable1, generated1 = names(d, STABLE), names(d, GENERATED)
    assert {STABLE[r["type"]] for r in d.resources() if r["urn"] in stable1} == set(STABLE.values())
    assert "shop-dev/db/master" in stable1.values() and "shop-dev-db" in stable1.values() and "/ecs/shop-dev/app" in stable1.values()
    secrets = [r for r in d.resources() if r["type"] == "aws:secretsmanager/secret:Secret"]
    assert secrets and all(r["inputs"]["recoveryWindowInDays"] == 0 for r in secrets)  # outside prod: deleted at once
    snapshot1 = only(d, "aws:rds/instance:Instance")["inputs"]["finalSnapshotIdentifier"]
    assert snapshot1.startswith("shop-dev-db-final-") and len(snapshot1) == len("shop-dev-db-final-") + 8

    rc, out, err = run(d, capsys, "destroy", "--stack", "dev", "--yes", "--allow-data-loss")
    assert rc == 0, err
    assert d.resources() == []
    assert account(d) == {"secretsPendingDeletion": {}, "dbSnapshots": [snapshot1]}

    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0, err  # no "scheduled for deletion", no duplicate name
    assert names(d, STABLE) == stable1  # the same stable physical names, resource by resource
    generated2 = names(d, GENERATED)
    assert generated2.keys() == generated1.keys() and len(generated1) >= 5
    assert all(generated2[u] != generated1[u] for u in generated1)  # created afresh: new suffixes
    snapshot2 = only(d, "aws:rds/instance:Instance")["inputs"]["finalSnapshotIdentifier"]
    assert snapshot2 != snapshot1 and snapshot2.startswith("shop-dev-db-final-")

    # the second destroy leaves its own snapshot beside the first one
    rc, out, err = run(d, capsys, "destroy", "--stack", "dev", "--yes", "--allow-data-loss")
    assert rc == 0, err
    assert account(d)["dbSnapshots"] == [snapshot1, snapshot2]


def test_prod_recovery_window_would_block_the_recreate(dev: Double, capsys: pytest.CaptureFixture[str]) -> None:
    """The same model with prod's 30-day recovery window (recorded in the state as prod records it):
    destroy -> up fails on the first secret. This is why only prod keeps the window."""
    d = dev
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0, err
    stack = auto.select_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_CONFIG_PASSPHRASE": PASS}))
    exported = stack.export_stack()
    assert exported.deployment is not None
    for r in exported.deployment["resources"]:
        if r["type"] == "aws:secretsmanager/secret:Secret":
            r["inputs"]["recoveryWindowInDays"] = r["outputs"]["recoveryWindowInDays"] = 30
    stack.import_stack(exported)
    rc, out, err = run(d, capsys, "destroy", "--stack", "dev", "--yes", "--allow-data-loss")
    assert rc == 0, err
    assert "shop-dev/db/master" in account(d)["secretsPendingDeletion"]
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 1
    assert "You can't create this secret because a secret with this name is already scheduled for deletion" in err
    assert not any(r["type"] == "aws:secretsmanager/secret:Secret" for r in d.resources())


def test_container_port_change_replaces_the_target_group_under_a_new_name(dev: Double, capsys: pytest.CaptureFixture[str]) -> None:
    d = dev
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0, err
    tg = only(d, "aws:lb/targetGroup:TargetGroup")
    port = tg["inputs"]["port"]
    edit_stack_file(d.project / "Pulumi.dev.yaml", containerPort=port + 1)
    n = len(d.calls())
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0, err  # no DuplicateTargetGroupName
    new = only(d, "aws:lb/targetGroup:TargetGroup")
    assert new["urn"] == tg["urn"] and new["inputs"]["port"] == port + 1
    assert physical_name(new) != physical_name(tg) and len(str(physical_name(new))) <= 32
    ups = [c for c in d.calls()[n:] if c["argv"][1:2] == ["up"]]
    assert ups, "the change went through `pulumi up`"
    # the listener now forwards to the replacement (the ARN carries the new name)
    assert str(physical_name(new)) in json.dumps([r["inputs"] for r in d.resources() if r["type"] == "aws:lb/listener:Listener"])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ecr = boto3.client("ecr", region_name=REGION)
        ecr.create_repository(repositoryName="shop-dev", imageTagMutability="IMMUTABLE", imageScanningConfiguration={"scanOnPush": True})
        yield ecr


def test_release_sets_the_tag_in_the_stack_through_the_real_up(dev: Double, aws: Any, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    d = dev
    first = "ecs-svc/1000"
    # a stack created by this release has no tasks yet: release starts them, then follows the deployment
    out = first_release(d, aws, monkeypatch, capsys, "1.4.2", first, counts={"LOW": 1})
    assert "steady state: 1 task(s)" in out
    # the stack file records the tag (commit it), and the state the task definition's image
    assert yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())["config"]["pghome:imageTag"] == "1.4.2"
    ups = d.ops("up")
    assert len(ups) == 1 and "--config-file" in ups[0]["argv"]
    assert app_images(d) == ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop-dev:1.4.2"]
    history = json.loads(next((d.tmp / "state/.pulumi/history/pghome/dev").glob("*.history.json")).read_text())
    assert history["result"] == "succeeded"

    # the next release: the service already runs; the new task definition rolls out to steady state
    digest = push(aws, "1.4.3")
    scan_result("1.4.3")
    second = "ecs-svc/2000"
    with stubbed_ecs(monkeypatch) as stub:
        stub.add_response("describe_services", services(deployment(second, "PRIMARY", DOUBLE_TD, "IN_PROGRESS", desired=1),
                                                        deployment(first, "ACTIVE", DOUBLE_TD, "COMPLETED", desired=1, running=1), desired=1), DESCRIBE)
        stub.add_response("describe_services", services(deployment(second, "PRIMARY", DOUBLE_TD, "COMPLETED", desired=1, running=1), desired=1), DESCRIBE)
        queue_verification(stub, digest)  # release checks what the settled service runs
        rc, out, err = run(d, capsys, "release", "--stack", "dev", "--image-tag", "1.4.3", "--yes")
        assert rc == 0, err + out
    assert yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())["config"]["pghome:imageTag"] == "1.4.3"
    assert app_images(d) == ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop-dev:1.4.3"]
    assert len(d.ops("up")) == 2

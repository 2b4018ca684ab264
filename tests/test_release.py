"""`python -m bootstrap release`: ECR image and scan gate on moto, the ECS deployment on botocore's
Stubber (responses shaped from the ECS API reference: DescribeServices, ListTasks, DescribeTasks,
UpdateService), the stack update through a recording StackUpdate."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
import requests
from botocore.stub import ANY, Stubber
from moto import mock_aws

from bootstrap.deploy.release import ReleaseError, ReleaseOptions, Releaser, blocking_counts, tag_problem
from bootstrap.plan.mockgraph import stack_config
from config.load import Settings, load_settings
from config.stack_file import InputError
from tests.helpers import FakeClock as Clock

REGION = "eu-west-1"
CLUSTER = "shop-dev"
SERVICE = "shop-dev-app"
NEW_TD = f"arn:aws:ecs:{REGION}:123456789012:task-definition/shop-dev-app:7"
OLD_TD = f"arn:aws:ecs:{REGION}:123456789012:task-definition/shop-dev-app:6"


def settings(stack: str = "dev", **overrides: Any) -> Settings:
    return load_settings(stack_config(stack, {"appName": "shop", "aws:region": REGION, **overrides}), stack=stack, check_credentials=False)




class RecordingUpdate:
    def __init__(self, outputs: Mapping[str, Any] | None = None):
        self.calls: list[dict[str, str]] = []
        self.outputs = outputs if outputs is not None else {"clusterName": CLUSTER, "serviceName": SERVICE}

    def __call__(self, config: Mapping[str, str]) -> Mapping[str, Any]:
        self.calls.append(dict(config))
        return self.outputs


@pytest.fixture
def ecr() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("ecr", region_name=REGION)
        client.create_repository(repositoryName="shop-dev", imageTagMutability="IMMUTABLE", imageScanningConfiguration={"scanOnPush": True})
        yield client


def push(ecr: Any, tag: str, repo: str = "shop-dev", scanned: bool = True) -> str:
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": "sha256:" + "a" * 64},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": "sha256:" + tag.encode().hex().ljust(64, "b")[:64]}]}
    image = ecr.put_image(repositoryName=repo, imageManifest=json.dumps(manifest), imageTag=tag)["image"]
    if scanned:
        ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": tag})
    return str(image["imageId"]["imageDigest"])


def scan_result(tag: str, status: str = "COMPLETE", counts: Mapping[str, int] | None = None) -> None:
    """Configure what moto's DescribeImageScanFindings returns for shop-dev:<tag> (moto's documented API)."""
    result: dict[str, Any] = {
        "registryId": "123456789012", "repositoryName": "shop-dev", "imageId": {"imageTag": tag},
        "imageScanStatus": {"status": status, "description": f"scan {status.lower()}"},
        "imageScanFindings": {"findings": [], "findingSeverityCounts": dict(counts or {})},
    }
    resp = requests.post("http://motoapi.amazonaws.com/moto-api/static/ecr/scan-finding-results", json={"results": [result], "region": REGION}, timeout=5)
    assert resp.status_code == 201


def deployment(id_: str, status: str, td: str, rollout: str, desired: int = 2, running: int = 0, pending: int = 0, failed: int = 0, reason: str = "") -> dict[str, Any]:
    d: dict[str, Any] = {"id": id_, "status": status, "taskDefinition": td, "desiredCount": desired, "pendingCount": pending,
                         "runningCount": running, "failedTasks": failed, "rolloutState": rollout, "launchType": "FARGATE"}
    if reason:
        d["rolloutStateReason"] = reason
    return d


def services(*deployments: dict[str, Any], desired: int = 2) -> dict[str, Any]:
    return {"services": [{"serviceName": SERVICE, "clusterArn": f"arn:aws:ecs:{REGION}:123456789012:cluster/{CLUSTER}", "status": "ACTIVE",
                          "desiredCount": desired, "runningCount": sum(d["runningCount"] for d in deployments), "deployments": list(deployments)}],
            "failures": []}


DESCRIBE = {"cluster": CLUSTER, "services": [SERVICE]}


def releaser(s: Settings, ecr: Any, ecs: Any, update: RecordingUpdate, clock: Clock, lines: list[str]) -> Releaser:
    return Releaser(s, ecr, ecs, update, out=lines.append, clock=clock, sleep=clock.sleep)


# --- pure rules -------------------------------------------------------------------------------------


def test_prod_refuses_moving_tags_dev_accepts_them() -> None:
    for tag in ("latest", "stable", "main", "Latest", "release", "feature-x"):
        assert tag_problem(tag, production=True), tag
        assert tag_problem(tag, production=False) is None
    for tag in ("1.4.2", "v42", "3f9c2ab", "build-1234", "2026.11.23"):
        assert tag_problem(tag, production=True) is None, tag
    assert "not an image tag" in str(tag_problem("bad tag", production=False))


def test_blocking_counts_respects_the_threshold() -> None:
    counts = {"CRITICAL": 0, "HIGH": 2, "MEDIUM": 5, "UNDEFINED": 3}
    assert blocking_counts(counts, "CRITICAL") == {}
    assert blocking_counts(counts, "HIGH") == {"HIGH": 2}
    assert blocking_counts(counts, "MEDIUM") == {"HIGH": 2, "MEDIUM": 5}


# --- image gate (moto) -------------------------------------------------------------------------------


def test_missing_tag_is_refused_before_the_update(ecr: Any) -> None:
    update = RecordingUpdate()
    with pytest.raises(ReleaseError, match=r"image shop-dev:1.2.3 does not exist; push it first"):
        releaser(settings(), ecr, boto3.client("ecs", region_name=REGION), update, Clock(), []).release(ReleaseOptions("1.2.3"))
    assert update.calls == []


def test_unscanned_image_is_refused(ecr: Any) -> None:
    push(ecr, "1.2.3", scanned=False)
    update = RecordingUpdate()
    with pytest.raises(ReleaseError, match=r"has no scan.*start-image-scan"):
        releaser(settings(), ecr, boto3.client("ecs", region_name=REGION), update, Clock(), []).release(ReleaseOptions("1.2.3"))
    assert update.calls == []


def test_critical_finding_blocks_and_threshold_is_configurable(ecr: Any) -> None:
    push(ecr, "1.2.3")
    scan_result("1.2.3", counts={"CRITICAL": 1, "HIGH": 4, "LOW": 2})
    update = RecordingUpdate()
    with pytest.raises(ReleaseError, match=r"has 1 CRITICAL finding\(s\) at or above CRITICAL"):
        releaser(settings(), ecr, boto3.client("ecs", region_name=REGION), update, Clock(), []).release(ReleaseOptions("1.2.3"))
    push(ecr, "1.2.4")
    scan_result("1.2.4", counts={"HIGH": 4, "LOW": 2})
    with pytest.raises(ReleaseError, match=r"has 4 HIGH finding\(s\) at or above HIGH"):
        releaser(settings(), ecr, boto3.client("ecs", region_name=REGION), update, Clock(), []).release(ReleaseOptions("1.2.4", fail_on_severity="HIGH"))
    assert update.calls == []


def test_scan_still_running_times_out_with_progress(ecr: Any) -> None:
    push(ecr, "1.2.3")
    scan_result("1.2.3", status="IN_PROGRESS")
    lines: list[str] = []
    with pytest.raises(ReleaseError, match=r"still IN_PROGRESS after 30s"):
        releaser(settings(), ecr, boto3.client("ecs", region_name=REGION), RecordingUpdate(), Clock(), lines).release(
            ReleaseOptions("1.2.3", scan_timeout_seconds=30, poll_seconds=10))
    assert sum("scan IN_PROGRESS, waiting" in ln for ln in lines) == 3
    assert lines[-1].startswith("[    20s] scan IN_PROGRESS")


def test_failed_scan_is_refused(ecr: Any) -> None:
    push(ecr, "1.2.3")
    scan_result("1.2.3", status="FAILED")
    with pytest.raises(ReleaseError, match=r"ended FAILED"):
        releaser(settings(), ecr, boto3.client("ecs", region_name=REGION), RecordingUpdate(), Clock(), []).release(ReleaseOptions("1.2.3"))


def test_prod_refuses_latest_before_any_aws_call() -> None:
    s = settings("prod")
    with pytest.raises(InputError, match="looks like a moving name"):
        Releaser(s, object(), object(), RecordingUpdate(), out=lambda _: None).release(ReleaseOptions("latest"))


def test_container_image_stacks_cannot_release() -> None:
    s = settings(containerImage="public.ecr.aws/nginx/nginx:1.27")
    with pytest.raises(InputError, match="clear containerImage"):
        Releaser(s, object(), object(), RecordingUpdate(), out=lambda _: None).release(ReleaseOptions("1.2.3"))


# --- deployment (Stubber) -----------------------------------------------------------------------------


def test_release_sets_tag_updates_and_waits_for_steady_state(ecr: Any) -> None:
    push(ecr, "1.2.3")
    scan_result("1.2.3", counts={"HIGH": 1, "MEDIUM": 3})
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    new = "ecs-svc/2222"
    stub.add_response("describe_services", services(deployment(new, "PRIMARY", NEW_TD, "IN_PROGRESS"), deployment("ecs-svc/1111", "ACTIVE", OLD_TD, "COMPLETED", running=2)), DESCRIBE)
    stub.add_response("describe_services", services(deployment(new, "PRIMARY", NEW_TD, "IN_PROGRESS", pending=2), deployment("ecs-svc/1111", "ACTIVE", OLD_TD, "COMPLETED", running=2)), DESCRIBE)
    stub.add_response("describe_services", services(deployment(new, "PRIMARY", NEW_TD, "IN_PROGRESS", running=2), deployment("ecs-svc/1111", "ACTIVE", OLD_TD, "COMPLETED", running=2)), DESCRIBE)
    stub.add_response("describe_services", services(deployment(new, "PRIMARY", NEW_TD, "COMPLETED", running=2)), DESCRIBE)
    update, clock, lines = RecordingUpdate(), Clock(), list[str]()
    with stub:
        assert releaser(settings(), ecr, ecs, update, clock, lines).release(ReleaseOptions("1.2.3")) == 0
    stub.assert_no_pending_responses()
    assert update.calls == [{"imageTag": "1.2.3"}]
    text = "\n".join(lines)
    assert "scan COMPLETE: 1 HIGH, 3 MEDIUM" in text
    assert "running 0/2, pending 2" in text
    assert "steady state: 2 task(s) of shop-dev-app:7" in text
    assert lines[-1].startswith("[    20s]")  # two polls of 10 s before COMPLETED
    # issue 23 item 6: the released image carries released-<tag>, which the lifecycle policy keeps
    digest = ecr.describe_images(repositoryName="shop-dev", imageIds=[{"imageTag": "1.2.3"}])["imageDetails"][0]
    assert sorted(digest["imageTags"]) == ["1.2.3", "released-1.2.3"]
    assert "marked released-1.2.3" in text


def test_circuit_breaker_rollback_prints_stopped_task_reasons_and_fails(ecr: Any) -> None:
    push(ecr, "1.2.3")
    scan_result("1.2.3")
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    new = "ecs-svc/2222"
    stub.add_response("describe_services", services(deployment(new, "PRIMARY", NEW_TD, "IN_PROGRESS"), deployment("ecs-svc/1111", "ACTIVE", OLD_TD, "COMPLETED", running=2)), DESCRIBE)
    stub.add_response("describe_services", services(deployment(new, "PRIMARY", NEW_TD, "IN_PROGRESS", failed=2), deployment("ecs-svc/1111", "ACTIVE", OLD_TD, "COMPLETED", running=2)), DESCRIBE)
    stub.add_response("describe_services", services(
        deployment("ecs-svc/3333", "PRIMARY", OLD_TD, "IN_PROGRESS", running=2),
        deployment(new, "ACTIVE", NEW_TD, "FAILED", failed=3, reason="ECS deployment circuit breaker: tasks failed to start."),
    ), DESCRIBE)
    arns = [f"arn:aws:ecs:{REGION}:123456789012:task/{CLUSTER}/{i}" for i in ("aaa", "bbb", "ccc")]
    stub.add_response("list_tasks", {"taskArns": arns}, {"cluster": CLUSTER, "serviceName": SERVICE, "desiredStatus": "STOPPED"})
    stub.add_response("describe_tasks", {"tasks": [
        {"taskArn": arns[0], "taskDefinitionArn": NEW_TD, "startedBy": new, "lastStatus": "STOPPED", "stopCode": "EssentialContainerExited",
         "stoppedReason": "Essential container in task exited", "containers": [{"name": "app", "exitCode": 1, "lastStatus": "STOPPED"}]},
        {"taskArn": arns[1], "taskDefinitionArn": NEW_TD, "startedBy": new, "lastStatus": "STOPPED", "stopCode": "TaskFailedToStart",
         "stoppedReason": "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
         "containers": [{"name": "app", "reason": "CannotPullContainerError", "lastStatus": "STOPPED"}]},
        {"taskArn": arns[2], "taskDefinitionArn": OLD_TD, "startedBy": "ecs-svc/1111", "lastStatus": "STOPPED", "stopCode": "ServiceSchedulerInitiated",
         "stoppedReason": "Scaling activity initiated by deployment", "containers": []},
    ], "failures": []}, {"cluster": CLUSTER, "tasks": arns})
    lines: list[str] = []
    with stub:
        assert releaser(settings(), ecr, ecs, RecordingUpdate(), Clock(), lines).release(ReleaseOptions("1.2.3")) == 1
    stub.assert_no_pending_responses()
    text = "\n".join(lines)
    assert "rolled shop-dev-app back: ECS deployment circuit breaker: tasks failed to start." in text
    assert "task aaa: EssentialContainerExited Essential container in task exited" in text
    assert "container app: exit 1" in text
    assert "task bbb: TaskFailedToStart CannotPullContainerError" in text
    assert "task ccc" not in text  # the old deployment's scale-in is not a reason


def test_first_release_starts_the_first_tasks(ecr: Any) -> None:
    push(ecr, "1.0.0")
    scan_result("1.0.0")
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    first = "ecs-svc/1000"
    stub.add_response("describe_services", services(deployment(first, "PRIMARY", NEW_TD, "COMPLETED", desired=0), desired=0), DESCRIBE)
    stub.add_response("update_service", {"service": {"serviceName": SERVICE, "desiredCount": 1}}, {"cluster": CLUSTER, "service": SERVICE, "desiredCount": 1})
    stub.add_response("describe_services", services(deployment(first, "PRIMARY", NEW_TD, "COMPLETED", desired=1, pending=1), desired=1), DESCRIBE)
    stub.add_response("describe_services", services(deployment(first, "PRIMARY", NEW_TD, "COMPLETED", desired=1, running=1), desired=1), DESCRIBE)
    lines: list[str] = []
    with stub:
        assert releaser(settings(), ecr, ecs, RecordingUpdate(), Clock(), lines).release(ReleaseOptions("1.0.0")) == 0
    stub.assert_no_pending_responses()
    assert any("first release): desired count -> 1" in ln for ln in lines)


def test_deployment_timeout_is_one_sentence(ecr: Any) -> None:
    push(ecr, "1.2.3")
    scan_result("1.2.3")
    ecs = boto3.client("ecs", region_name=REGION)
    stub = Stubber(ecs)
    for _ in range(4):
        stub.add_response("describe_services", services(deployment("ecs-svc/2", "PRIMARY", NEW_TD, "IN_PROGRESS", pending=2)), {"cluster": ANY, "services": ANY})
    with stub, pytest.raises(ReleaseError, match=r"did not reach steady state in 20s"):
        releaser(settings(), ecr, ecs, RecordingUpdate(), Clock(), []).release(ReleaseOptions("1.2.3", deploy_timeout_seconds=20))


def test_cli_refuses_latest_in_prod_before_anything(capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.main import main

    assert main(["release", "--stack", "prod", "--image-tag", "latest"]) == 2  # bad input, as the README says
    assert "looks like a moving name" in capsys.readouterr().err


def test_set_stack_config_edits_one_line_and_keeps_comments(tmp_path: Any) -> None:
    from config.stack_file import set_stack_config

    f = tmp_path / "Pulumi.x.yaml"
    f.write_text("# prod stack\nconfig:\n  aws:region: eu-west-1  # Ireland\n  pghome:imageTag: \"1.0.0\"\n  pghome:appName: shop\n")
    set_stack_config(f, "pghome:imageTag", "1.0.1")
    assert f.read_text() == "# prod stack\nconfig:\n  aws:region: eu-west-1  # Ireland\n  pghome:imageTag: \"1.0.1\"\n  pghome:appName: shop\n"
    g = tmp_path / "Pulumi.y.yaml"
    g.write_text("config:\n  pghome:appName: shop\n")
    set_stack_config(g, "pghome:imageTag", "3f9c2ab")
    assert g.read_text() == "config:\n  pghome:imageTag: \"3f9c2ab\"\n  pghome:appName: shop\n"


def test_a_re_release_finds_the_released_tag_already_there(ecr: Any) -> None:
    """Immutable tags: the second PutImage of released-<tag> is refused by ECR, which is fine."""
    from bootstrap.deploy.keep_image import keep_released_image, released_tag

    push(ecr, "2.0.0")
    lines: list[str] = []
    assert keep_released_image(ecr, "shop-dev", "2.0.0", say=lines.append) == "released-2.0.0"
    assert keep_released_image(ecr, "shop-dev", "2.0.0", say=lines.append) == "released-2.0.0"
    assert "already marked" in lines[-1]
    assert len(released_tag("x" * 128)) <= 128 and released_tag("x" * 128).startswith("released-")

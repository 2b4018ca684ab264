"""A release survives a checkout whose stack file does not carry it (bootstrap/deploy/image_tag.py): the
program records the tag it runs as the `imageTag` output, and deploy/up/preview/drift use the stack
file's tag when set, else the state's, through `--config-file`. Under the `pulumi` double with the
real Automation API; `release` against moto (ECR) and a Stubber (ECS), as in test_recreate_double."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest

from bootstrap.deploy.deployer import Deployer
from bootstrap.deploy.image_tag import FROM_FILE, FROM_STATE, NONE, choose
from bootstrap.deploy.workspace import Workspace, resolve_backend
from config.stack_file import InputError, StackFile, read_stack_file
from tests.deploy_world import app_images, edit_stack_file, first_release, run
from tests.pulumi_double.fixture import Double
from tests.test_recreate_double import aws, dev  # noqa: F401 (fixtures)
from tests.test_release import REGION

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop-dev:{}"
TD = "aws:ecs/taskDefinition:TaskDefinition"


def task_definition(d: Double) -> dict[str, Any]:
    return next(r for r in d.resources() if r["type"] == TD and r["inputs"]["family"] == "shop-dev-app")


def stack_outputs(d: Double) -> dict[str, Any]:
    return dict(next(r for r in d.resources() if r["type"] == "pulumi:pulumi:Stack")["outputs"])


def test_an_uncommitted_release_is_not_undone_by_up_preview_or_drift(dev: Double, aws: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    d = dev
    stack_file = d.project / "Pulumi.dev.yaml"
    committed = stack_file.read_text()
    assert "imageTag" not in committed

    out = first_release(d, aws, monkeypatch, capsys, "1.4.2")
    assert "also recorded in the stack's state" in out
    assert app_images(d) == [IMAGE.format("1.4.2")]
    assert stack_outputs(d)["imageTag"] == "1.4.2"  # plain: no secret, the task definition holds it too
    td = task_definition(d)

    # CI did not commit the file: a fresh checkout has the committed content
    stack_file.write_text(committed)
    ups = len(d.ops("up"))
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0, err
    assert "imageTag 1.4.2: from the stack's state" in out
    assert "no changes" in out and TD not in out  # no new task definition, nothing else either
    assert len(d.ops("up")) == ups  # nothing to apply
    assert "--config-file" in d.ops("preview")[-1]["argv"]
    assert stack_file.read_text() == committed  # the stack file is never edited
    assert task_definition(d) == td and app_images(d) == [IMAGE.format("1.4.2")]

    rc, out, err = run(d, capsys, "drift", "--stack", "dev")
    assert rc == 0 and "no drift" in out, out + err
    rc, out, err = run(d, capsys, "preview", "--stack", "dev")
    assert rc == 0 and "imageTag 1.4.2: from the stack's state" in out, err

    # a stack file with its own tag wins, and the run says the tag changes
    edit_stack_file(stack_file, imageTag="1.4.3")
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0, err
    assert "imageTag changes: 1.4.2 (deployed) -> 1.4.3 (Pulumi.dev.yaml)" in out
    assert TD in out and len(d.ops("up")) == ups + 1
    assert app_images(d) == [IMAGE.format("1.4.3")] and stack_outputs(d)["imageTag"] == "1.4.3"

    # and is carried in turn when the file goes back to its committed content
    stack_file.write_text(committed)
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0 and "imageTag 1.4.3: from the stack's state" in out and "no changes" in out, err
    assert app_images(d) == [IMAGE.format("1.4.3")]


class FakeRotator:
    """The database side of the phased deploy (tests/test_deploy_e2e.py runs it against PostgreSQL)."""

    password = "Master-Pw-From-Secrets-Manager-0123456789"

    def rotate(self, role: str) -> None: ...
    def current_password(self, role: str) -> str:
        return self.password

    def needs_first_rotation(self, role: str) -> bool:
        return False

    def last_rotated_days(self, role: str) -> float | None:
        return 1.0

    def check_admin(self) -> None: ...


def deployer(d: Double, lines: list[str]) -> Deployer:
    ws = Workspace("dev", resolve_backend(None, os.environ, d.project), None, d.project)
    return Deployer(read_stack_file("dev", d.project), ws, FakeRotator, lambda stack: 0, out=lines.append, assume_yes=True)


def test_the_phased_deploy_keeps_the_released_image(dev: Double, aws: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    d = dev
    sm = boto3.client("secretsmanager", region_name=REGION)  # release reads the master password (app database on)
    sm.create_secret(Name="shop-dev/db/master", SecretString=json.dumps({"username": "shop_master", "password": FakeRotator.password,
                                                                         "host": "db.invalid", "port": 5432}))
    stack_file = d.project / "Pulumi.dev.yaml"
    committed = stack_file.read_text()
    lines: list[str] = []
    assert deployer(d, lines).deploy() == 0  # first deploy: no image yet
    assert "imageTag: none (no image yet: the service runs no task until the first release)" in lines
    assert stack_outputs(d)["imageTag"] == "" and stack_outputs(d)["appDbEnabled"] is True

    first_release(d, aws, monkeypatch, capsys, "1.4.2")
    assert app_images(d) == [IMAGE.format("1.4.2")]
    td = task_definition(d)
    stack_file.write_text(committed)
    lines = []
    assert deployer(d, lines).deploy() == 0
    assert "imageTag 1.4.2: from the stack's state (the last release; Pulumi.dev.yaml sets none)" in lines
    assert "[phase 3/5] no changes" in lines, "\n".join(lines)
    assert task_definition(d) == td and app_images(d) == [IMAGE.format("1.4.2")]


# the rule, without the CLI ------------------------------------------------------------------------


class OV:
    def __init__(self, value: Any):
        self.value, self.secret = value, False


def sf(**config: Any) -> StackFile:
    from pathlib import Path

    return StackFile(Path("Pulumi.dev.yaml"), {f"pghome:{k}": v for k, v in config.items()})


def test_choose_file_then_state_then_none() -> None:
    assert choose(sf(imageTag="1.4.3"), {"imageTag": OV("1.4.2")}).source == FROM_FILE
    assert choose(sf(imageTag="1.4.3"), {"imageTag": OV("1.4.2")}).changes
    assert choose(sf(imageTag="1.4.3"), {"imageTag": OV("1.4.2")}).overrides == {}  # the file's own value goes as it is
    carried = choose(sf(), {"imageTag": OV("1.4.2")})
    assert (carried.source, carried.tag, carried.overrides) == (FROM_STATE, "1.4.2", {"pghome:imageTag": "1.4.2"})
    assert choose(sf(imageTag=""), {"imageTag": "1.4.2"}).source == FROM_STATE  # an empty placeholder is not a choice
    assert choose(sf(), {}).source == NONE and choose(sf(), {"imageTag": OV("")}).overrides == {}
    secure = choose(sf(imageTag={"secure": "v1:abc"}), {"imageTag": OV("1.4.2")})
    assert secure.source == FROM_FILE and secure.overrides == {}
    same = choose(sf(imageTag="1.4.2"), {"imageTag": OV("1.4.2")})
    assert not same.changes and same.describe("Pulumi.dev.yaml") == "imageTag 1.4.2: from Pulumi.dev.yaml, as deployed"


def test_a_state_value_that_is_no_tag_is_refused_in_one_sentence() -> None:
    with pytest.raises(InputError, match=r"records the imageTag output 'a b', which is not an image tag; set pghome:imageTag in Pulumi.dev.yaml"):
        choose(sf(), {"imageTag": OV("a b")})

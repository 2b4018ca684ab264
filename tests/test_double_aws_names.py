"""The `pulumi` double's model of AWS names (tests/pulumi_double/aws_names.py) can fail: a tiny
program with fixed names meets exactly the errors AWS returns on destroy -> up and on a
create-before-delete replacement, and the same program with generated names / no recovery window
does not. (The real program under the same model: tests/test_recreate_double.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from tests.pulumi_double.fixture import Double

PROGRAM = '''
import pulumi
import pulumi_aws as aws
import pulumi_random as random

cfg = pulumi.Config()
tg_name = {"name": "tiny-dev-web"} if cfg.get_bool("fixedTargetGroupName") else {}
aws.lb.TargetGroup("web", port=cfg.require_int("port"), protocol="HTTP", target_type="ip", vpc_id="vpc-0123", **tg_name)
aws.secretsmanager.Secret("master", name="tiny-dev/db/master", recovery_window_in_days=cfg.require_int("recoveryWindowInDays"))
sg_name = {"name": "tiny-dev-app"} if cfg.get_bool("fixedSecurityGroupName") else {"name_prefix": "tiny-dev-app-"}
aws.ec2.SecurityGroup("app", vpc_id="vpc-0123", description=cfg.get("sgDescription") or "app tasks", **sg_name)
suffix = random.RandomId("final-suffix", byte_length=4)
snapshot = suffix.hex.apply(lambda h: f"tiny-dev-db-final-{h}") if cfg.get_bool("uniqueSnapshot") else "tiny-dev-db-final"
aws.rds.Instance("db", identifier="tiny-dev-db", engine="postgres", instance_class="db.t4g.micro", allocated_storage=20,
                 username="tiny", manage_master_user_password=True, skip_final_snapshot=False, final_snapshot_identifier=snapshot)
'''


def tiny(d: Double, **config: str) -> auto.Stack:
    project = d.tmp / "tiny"
    project.mkdir(exist_ok=True)
    (project / "Pulumi.yaml").write_text("name: tiny\nruntime: python\n")
    (project / "__main__.py").write_text(PROGRAM)
    env = {"PULUMI_BACKEND_URL": d.file_backend("tiny-state"), "PULUMI_CONFIG_PASSPHRASE": "tiny"}
    stack = auto.create_stack("dev", work_dir=str(project), opts=auto.LocalWorkspaceOptions(env_vars=env))
    stack.set_all_config({"aws:region": auto.ConfigValue("eu-west-1"), **{f"tiny:{k}": auto.ConfigValue(v) for k, v in config.items()}})
    return stack


def resources(d: Double) -> list[dict[str, Any]]:
    path = d.tmp / "tiny-state/.pulumi/stacks/tiny/dev.json"
    return list(json.loads(path.read_text())["checkpoint"]["latest"].get("resources") or [])


def outputs(d: Double, type_suffix: str) -> dict[str, Any]:
    return dict(next(r for r in resources(d) if str(r["type"]).endswith(type_suffix))["outputs"])


def test_a_secret_with_a_recovery_window_blocks_its_name_after_destroy(pulumi_double: Double) -> None:
    stack = tiny(pulumi_double, port="8080", recoveryWindowInDays="30", uniqueSnapshot="true")
    stack.up()
    stack.destroy()
    with pytest.raises(auto.CommandError) as err:
        stack.up()
    assert ("creating Secrets Manager Secret (tiny-dev/db/master): operation error Secrets Manager: CreateSecret, https response error "
            "StatusCode: 400, InvalidRequestException: You can't create this secret because a secret with this name is already "
            "scheduled for deletion.") in str(err.value)
    held = json.loads((pulumi_double.tmp / "tiny-state/.pulumi-double-aws.json").read_text())
    assert list(held["secretsPendingDeletion"]) == ["tiny-dev/db/master"]


def test_no_recovery_window_frees_the_name_and_unique_snapshots_survive_a_second_destroy(pulumi_double: Double) -> None:
    stack = tiny(pulumi_double, port="8080", recoveryWindowInDays="0", uniqueSnapshot="true")
    stack.up()
    first = outputs(pulumi_double, "RandomId")["hex"]
    stack.destroy()
    stack.up()
    second = outputs(pulumi_double, "RandomId")["hex"]
    assert first != second  # fresh bytes for a new incarnation (the mocks alone would repeat them)
    stack.destroy()
    held = json.loads((pulumi_double.tmp / "tiny-state/.pulumi-double-aws.json").read_text())
    assert held["dbSnapshots"] == [f"tiny-dev-db-final-{first}", f"tiny-dev-db-final-{second}"]
    assert held["secretsPendingDeletion"] == {}


def test_a_fixed_final_snapshot_identifier_fails_the_second_destroy(pulumi_double: Double) -> None:
    stack = tiny(pulumi_double, port="8080", recoveryWindowInDays="0")
    stack.up()
    stack.destroy()
    stack.up()
    with pytest.raises(auto.CommandError) as err:
        stack.destroy()
    assert ("DBSnapshotAlreadyExists: Cannot create the snapshot because a snapshot with the identifier tiny-dev-db-final "
            "already exists.") in str(err.value)
    assert any(r["type"] == "aws:rds/instance:Instance" for r in resources(pulumi_double))  # the instance is still there


def test_replacing_a_fixed_name_target_group_collides_a_generated_name_does_not(pulumi_double: Double) -> None:
    fixed = tiny(pulumi_double, port="8080", recoveryWindowInDays="0", fixedTargetGroupName="true")
    fixed.up()
    fixed.set_config("tiny:port", auto.ConfigValue("9090"))
    with pytest.raises(auto.CommandError) as err:
        fixed.up()
    assert ("DuplicateTargetGroupName: A target group with the same name 'tiny-dev-web' exists, but with different settings"
            in str(err.value))
    assert outputs(pulumi_double, "TargetGroup")["port"] == 8080  # the old one stays

    fixed.set_config("tiny:fixedTargetGroupName", auto.ConfigValue("false"))
    fixed.set_config("tiny:port", auto.ConfigValue("8080"))
    fixed.up()  # name -> autonamed: a replacement under a new name
    before = outputs(pulumi_double, "TargetGroup")["name"]
    fixed.set_config("tiny:port", auto.ConfigValue("9090"))
    events: list[auto.EngineEvent] = []
    fixed.up(on_event=events.append)
    after = outputs(pulumi_double, "TargetGroup")
    ops = [e.resource_pre_event.metadata.op for e in events if e.resource_pre_event and e.resource_pre_event.metadata.urn.endswith("::web")]
    assert ops == [auto.OpType.CREATE_REPLACEMENT, auto.OpType.REPLACE, auto.OpType.DELETE_REPLACED] and after["port"] == 9090
    assert str(before).startswith("web-") and str(after["name"]).startswith("web-") and after["name"] != before


def test_the_registry_lives_with_the_backend(pulumi_double: Double) -> None:
    stack = tiny(pulumi_double, port="8080", recoveryWindowInDays="7", uniqueSnapshot="true")
    stack.up()
    stack.destroy()
    assert Path(pulumi_double.tmp / "tiny-state/.pulumi-double-aws.json").is_file()
    assert not (pulumi_double.tmp / "state/.pulumi-double-aws.json").exists()


def test_a_security_group_description_change_collides_only_under_a_fixed_name(pulumi_double: Double) -> None:
    stack = tiny(pulumi_double, port="8080", recoveryWindowInDays="0", fixedSecurityGroupName="true")
    stack.up()
    stack.set_config("tiny:sgDescription", auto.ConfigValue("app tasks (ECS)"))
    with pytest.raises(auto.CommandError) as err:
        stack.up()
    assert "InvalidGroup.Duplicate: The security group 'tiny-dev-app' already exists for VPC 'vpc-0123'" in str(err.value)

    stack.set_config("tiny:fixedSecurityGroupName", auto.ConfigValue("false"))
    stack.up()  # name -> name_prefix replaces it under a generated name
    first = outputs(pulumi_double, "SecurityGroup")["name"]
    stack.set_config("tiny:sgDescription", auto.ConfigValue("app tasks (ECS, v2)"))
    stack.up()
    second = outputs(pulumi_double, "SecurityGroup")
    assert second["description"] == "app tasks (ECS, v2)"
    assert str(first).startswith("tiny-dev-app-") and str(second["name"]).startswith("tiny-dev-app-") and second["name"] != first
    assert len(str(second["name"])) == len("tiny-dev-app-") + 26  # the provider's unique suffix

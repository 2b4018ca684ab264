"""Behaviours the `pulumi` double shares with the real CLI, each from the CLI's own sources (named per
test), driven through the real SDK or run as the SDK runs the executable."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest
import yaml
from pulumi import automation as auto

from tests.pulumi_double.client import Collector, env, pulumi
from tests.pulumi_double.fixture import Double


def new_stack(d: Double, name: str = "dev", **extra: str) -> auto.Stack:
    return auto.create_stack(name, work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=env(d, **extra)))


def test_locks_only_for_operations_that_change_the_stack(pulumi_double: Double) -> None:
    """pkg/backend/diy/backend.go: Update/Refresh/Destroy lock; Preview and --preview-only do not."""
    d = pulumi_double
    stack = new_stack(d)
    stack.up()
    lock = d.lock()
    assert set(stack.preview().change_summary) == {"same"}
    assert stack.preview(refresh=True).change_summary
    stack.preview_refresh()
    stack.preview_destroy()
    for run in (stack.up, stack.refresh, stack.destroy):
        with pytest.raises(auto.ConcurrentUpdateError, match=r"the stack is currently locked by 1 lock\(s\)"):
            run()
    assert lock.exists()  # nobody else's lock was touched
    assert not [p for p in lock.parent.iterdir() if p != lock]  # the previews left none behind


def test_assets_are_hashed_at_registration_and_a_missing_archive_fails_like_the_engine(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch) -> None:
    """sdk/go/common/resource/plugin/rpc.go: ComputeAssetHashes at RegisterResource."""
    d = pulumi_double
    stack = new_stack(d)
    stack.up()
    archive = Path(os.environ["PGHOME_ROTATION_ARCHIVE"])
    fn = next(r for r in d.resources() if r["type"] == "aws:lambda/function:Function")
    code = fn["inputs"]["code"]
    assert code["path"] == str(archive) and len(code["hash"]) == 64
    archive.write_bytes(archive.read_bytes() + b"\0")  # a rebuilt archive is an update
    assert stack.preview().change_summary.get(auto.OpType.UPDATE) == 1
    missing = d.tmp / "build" / "rotation-function.zip"
    monkeypatch.setenv("PGHOME_ROTATION_ARCHIVE", str(missing))
    for run in (stack.preview, stack.up):
        with pytest.raises(auto.CommandError) as err:
            run()
        assert f'failed to compute archive hash for "code": open {missing}: no such file or directory' in str(err.value)


def test_stack_names_follow_the_diy_backend(pulumi_double: Double) -> None:
    """pkg/backend/diy/store.go ParseReference; sdk/go/common/tokens/stack_name.go."""
    d = pulumi_double
    assert pulumi(d, "stack", "init", "organization/dev").returncode == 0
    assert pulumi(d, "stack", "select", "--stack", "organization/pghome/dev").returncode == 0
    wrong_org = pulumi(d, "stack", "init", "pghome/dev")  # not project/stack: org/stack
    assert wrong_org.returncode == 1 and wrong_org.stderr == "error: organization name must be 'organization'\n"
    bad = pulumi(d, "stack", "init", "dev!")
    assert "a stack name may only contain alphanumeric, hyphens, underscores, or periods: invalid character '!' at position 3" in bad.stderr


def test_kms_stacks_need_kms_to_set_up_secrets(pulumi_double: Double, kms_endpoint: str) -> None:
    """pkg/secrets/cloud/manager.go: the data key is wrapped at init and unwrapped on every use."""
    d = pulumi_double
    kms = boto3.client("kms", region_name="eu-west-1", endpoint_url=kms_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    alias = f"alias/pulumi-{d.tmp.name}"
    kms.create_alias(AliasName=alias, TargetKeyId=key)
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL_KMS": kms_endpoint}
    no_aws = pulumi(d, "stack", "init", "dev", "--secrets-provider", f"awskms://{alias}?region=eu-west-1")
    assert no_aws.returncode == 1 and "getting secrets manager:" in no_aws.stderr and "get credentials" in no_aws.stderr
    assert pulumi(d, "stack", "init", "dev", "--secrets-provider", f"awskms://{alias}?region=eu-west-1", **aws).returncode == 0
    settings = yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())
    wrapped = kms.decrypt(CiphertextBlob=base64.b64decode(settings["encryptedkey"]))["Plaintext"]
    assert len(wrapped) == 32 and "encryptionsalt" not in settings
    assert pulumi(d, "config", "set", "--secret", "--stack", "dev", "pghome:imageTag", "v1", **aws).returncode == 0
    assert pulumi(d, "config", "get", "--stack", "dev", "pghome:imageTag", **aws).stdout == "v1\n"
    # a key the account does not have (moto ignores disabled keys on Decrypt, so an alias that is gone)
    path = d.project / "Pulumi.dev.yaml"
    path.write_text(path.read_text().replace(alias, "alias/gone"))
    gone = pulumi(d, "config", "get", "--stack", "dev", "pghome:imageTag", **aws)
    assert gone.returncode == 1 and "operation error KMS: Decrypt" in gone.stderr and "NotFoundException" in gone.stderr


def test_stack_file_edits_keep_comments_and_mutations_need_yes(pulumi_double: Double) -> None:
    """The CLI saves the stack file through the YAML it read (comments kept); backenderr.go's text."""
    d = pulumi_double
    path = d.project / "Pulumi.dev.yaml"
    path.write_text("# dev: cheap but never open\n" + path.read_text().replace("config:\n", "config:\n  # the app's name, in every resource name\n", 1))
    stack = new_stack(d)
    stack.set_config("pghome:imageTag", auto.ConfigValue("v7"))
    text = path.read_text()
    assert text.startswith("# dev: cheap but never open\n# dev: cheaper") and "  # the app's name, in every resource name\n" in text
    assert text.index("\nencryptionsalt: v1:") < text.index("\nconfig:")  # stack init put the salt first
    assert "  pghome:tags:\n    - Team=platform\n" in text  # untouched values keep their layout
    assert yaml.safe_load(text)["config"]["pghome:imageTag"] == "v7"
    up = pulumi(d, "up", "--stack", "dev")
    assert up.returncode == 2  # exit_codes.go: ExitConfigurationError
    assert up.stderr == "error: --yes or --skip-preview or --preview-only must be passed in to proceed when running in non-interactive mode\n"
    assert pulumi(d, "refresh", "--stack", "dev", "--preview-only").returncode == 0


def _interrupt(d: Double, address: str, sink: Collector, times: int) -> tuple[subprocess.Popen[str], str, str]:
    assert pulumi(d, "stack", "init", "dev").returncode == 0
    proc = subprocess.Popen(["pulumi", "--non-interactive", "up", "--yes", "--stack", "dev", "--event-log", address], cwd=d.project,
                            env={**os.environ, **env(d, PULUMI_DOUBLE_STEP_SECONDS="0.4")}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while sum("resOutputsEvent" in line for line in sink.lines) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(times):
        proc.send_signal(signal.SIGINT)  # to the executable the SDK started, as a terminal's Ctrl-C does
        time.sleep(0.1)
    out, err = proc.communicate(timeout=60)
    return proc, out, err


def test_a_first_ctrl_c_cancels_gracefully(pulumi_double: Double, event_collector: tuple[Collector, str]) -> None:
    """pkg/backend/cancellation_scope.go, pkg/resource/deploy/deployment_executor.go."""
    d = pulumi_double
    sink, address = event_collector
    proc, out, err = _interrupt(d, address, sink, times=1)
    assert proc.returncode == 1 and "^C received; cancelling. If you would like to terminate immediately, press ^C again." in out
    events, kinds = sink.events(), sink.kinds()
    assert kinds[-3:] == ["diagnosticEvent", "summaryEvent", "cancelEvent"]
    assert events[-3]["diagnosticEvent"]["message"] == "<{%reset%}>update canceled<{%reset%}>\n"
    assert kinds.count("resourcePreEvent") == kinds.count("resOutputsEvent")  # the step in flight finished, no new one started
    done = kinds.count("resOutputsEvent")
    saved = d.resources()
    assert 3 <= done < 40 and len(saved) == done  # the partial state was saved
    assert not any((d.tmp / "state/.pulumi/locks").rglob("*.json"))


def test_a_second_ctrl_c_terminates(pulumi_double: Double, event_collector: tuple[Collector, str]) -> None:
    d = pulumi_double
    sink, address = event_collector
    proc, out, err = _interrupt(d, address, sink, times=2)
    assert proc.returncode == 1 and "^C received; terminating" in out
    kinds = sink.kinds()
    assert "summaryEvent" not in kinds and kinds[-1] == "stdoutEvent"


ALWAYS_FAILS = '''from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy

def validate(args, report_violation):
    if args.resource_type == "aws:ec2/vpc:Vpc":
        report_violation("no VPC may pass", None)

PolicyPack(name="always-fails", enforcement_level=EnforcementLevel.MANDATORY, policies=[
    ResourceValidationPolicy(name="no-vpc", description="VPCs are refused", validate=validate),
])
'''


def test_the_policy_pack_directory_is_run_and_its_config_applied(pulumi_double: Double, tmp_path: Path) -> None:
    """`--policy-pack DIR` runs DIR's own entry point (a pack whose policy always fails, here), and
    `--policy-pack-config` changes its enforcement (pkg/resource/analyzer/config.go)."""
    pack = tmp_path / "always-fails"
    pack.mkdir()
    (pack / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 2.3.4\n")
    (pack / "__main__.py").write_text(ALWAYS_FAILS)
    stack = new_stack(pulumi_double)
    events: list[auto.EngineEvent] = []
    with pytest.raises(auto.CommandError) as failed:
        stack.preview(policy_packs=[str(pack)], on_event=events.append)
    assert "code: 1" in str(failed.value) and "error: preview failed" in str(failed.value)
    assert "❌ always-fails@v2.3.4" in str(failed.value) and "- [mandatory]  no-vpc  (aws:ec2/vpc:Vpc: " in str(failed.value)
    found = [e.policy_event for e in events if e.policy_event]
    assert [(p.policy_name, p.policy_pack_name, p.policy_pack_version, p.enforcement_level) for p in found] == [
        ("no-vpc", "always-fails", "2.3.4", "mandatory")]
    assert found[0].message == "<{%reset%}>VPCs are refused\nno VPC may pass<{%reset%}>\n" and (found[0].resource_urn or "").endswith("$aws:ec2/vpc:Vpc::shop-dev-network-vpc")
    summary = next(e.summary_event for e in events if e.summary_event)
    assert summary.policy_packs == {"always-fails": "2.3.4"}
    # an up with a mandatory violation applies nothing
    with pytest.raises(auto.CommandError):
        stack.up(policy_packs=[str(pack)])
    assert not pulumi_double.resources()
    for level, fails in (("advisory", False), ("disabled", False), ("mandatory", True)):
        config = tmp_path / f"{level}.json"
        config.write_text(json.dumps({"no-vpc": {"enforcementLevel": level}}))
        events.clear()
        try:
            stack.preview(policy_packs=[str(pack)], policy_pack_configs=[str(config)], on_event=events.append)
            assert not fails, level
        except auto.CommandError:
            assert fails, level
        assert [e.policy_event.enforcement_level for e in events if e.policy_event] == ([] if level == "disabled" else [level])
    config.write_text('{"no-vpc": "warn"}')
    with pytest.raises(auto.CommandError, match='parsing enforcement level for "no-vpc": "warn" is not a valid enforcement level'):
        stack.preview(policy_packs=[str(pack)], policy_pack_configs=[str(config)])

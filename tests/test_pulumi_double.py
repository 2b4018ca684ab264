"""The `pulumi` test double, driven through the real `pulumi.automation` SDK: if the SDK can work
with it, the double speaks the contract the deploy commands rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from tests.pulumi_double.backend import CURRENT_VERSION, SECRET_MARK, SECRET_SIG, VERSIONS
from tests.pulumi_double.fixture import Double

PASS = "correct horse"


def workspace(d: Double, **env: str) -> auto.LocalWorkspace:
    return auto.LocalWorkspace(work_dir=str(d.project), env_vars={"PULUMI_BACKEND_URL": d.file_backend(), "PULUMI_CONFIG_PASSPHRASE": PASS, **env})


@pytest.mark.cli_versions
def test_version_whoami_and_stack_lifecycle(pulumi_double: Double, pulumi_cli_version: str) -> None:
    d = pulumi_double
    ws = workspace(d)
    assert ws.pulumi_version == pulumi_cli_version
    assert ws.who_am_i().user == "double"
    with pytest.raises(auto.StackNotFoundError, match="no stack named 'dev' found"):
        auto.select_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=ws.env_vars))
    stack = auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=ws.env_vars))
    with pytest.raises(auto.StackAlreadyExistsError):
        ws.create_stack("dev")
    doc = yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())
    assert str(doc["encryptionsalt"]).startswith("v1:") and doc["config"]["pghome:appName"] == "shop"
    assert [(s.name, s.current) for s in ws.list_stacks()] == [("dev", True)]
    assert stack.outputs() == {}
    # every call went through the SDK's contract: --non-interactive first, --stack on stack commands
    assert ["--non-interactive", "stack", "select", "--stack", "dev"] in [c["argv"] for c in d.calls()]
    assert ["--non-interactive", "stack", "init", "dev"] in [c["argv"] for c in d.calls()]
    assert all(c["env"]["PULUMI_BACKEND_URL"] == d.file_backend() for c in d.calls() if c["argv"] != ["version"])


def test_config_plain_and_secret_round_trip_through_the_stack_file(pulumi_double: Double) -> None:
    d = pulumi_double
    stack = auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=workspace(d).env_vars))
    stack.set_config("pghome:imageTag", auto.ConfigValue("v42"))
    stack.set_config("pghome:containerImage", auto.ConfigValue("registry/app:1", secret=True))
    stack.set_all_config({"pghome:desiredCount": auto.ConfigValue("2")})
    doc = yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())
    assert doc["config"]["pghome:imageTag"] == "v42" and doc["config"]["pghome:desiredCount"] == "2"
    assert set(doc["config"]["pghome:containerImage"]) == {"secure"} and "registry" not in json.dumps(doc)
    got = stack.get_config("pghome:containerImage")
    assert (got.value, got.secret) == ("registry/app:1", True)
    assert stack.get_all_config()["pghome:imageTag"].value == "v42"
    stack.remove_config("pghome:imageTag")
    assert "pghome:imageTag" not in yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())["config"]
    wrong = auto.select_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=workspace(d, PULUMI_CONFIG_PASSPHRASE="wrong").env_vars))
    with pytest.raises(auto.CommandError, match="incorrect passphrase"):
        wrong.get_config("pghome:containerImage")


@pytest.mark.cli_versions
def test_up_events_state_outputs_and_a_second_up(pulumi_double: Double, pulumi_cli_version: str) -> None:
    d = pulumi_double
    stack = auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=workspace(d).env_vars))
    events: list[Any] = []
    result = stack.up(on_event=events.append)
    # the SDK chose the transport from the version the double reported: gRPC after 3.205.0, else a file
    up = d.ops("up")[-1]["argv"]
    event_log = up[up.index("--event-log") + 1]
    assert event_log.startswith("tcp://127.0.0.1:") == (VERSIONS[pulumi_cli_version].events == "grpc")
    assert result.summary.result == "succeeded" and result.summary.kind == "update"
    kinds = [next(k for k in ("prelude_event", "resource_pre_event", "res_outputs_event", "summary_event", "cancel_event", "diagnostic_event")
                  if getattr(e, k) is not None) for e in events]
    assert kinds[0] == "prelude_event" and kinds[-2:] == ["summary_event", "cancel_event"]
    creates = [e.resource_pre_event.metadata for e in events if e.resource_pre_event]
    assert all(m.op == auto.OpType.CREATE for m in creates)
    assert any(m.type == "aws:rds/instance:Instance" for m in creates)
    summary = next(e.summary_event for e in events if e.summary_event)
    assert summary.resource_changes["create"] == len(creates) == len(d.resources()) and len(creates) > 50
    # outputs: secrets flagged by the masked/unmasked pair of `stack output` calls
    assert result.outputs["dbMasterUsername"].secret and not result.outputs["vpcId"].secret
    # state at rest keeps secrets encrypted; export --show-secrets reveals them
    rds = next(r for r in d.resources() if r["type"] == "random:index/randomPassword:RandomPassword")
    assert rds["outputs"]["result"][SECRET_SIG] == SECRET_MARK and "ciphertext" in rds["outputs"]["result"]
    exported = stack.export_stack()
    assert exported.deployment is not None
    assert "plaintext" in next(r for r in exported.deployment["resources"] if r["urn"] == rds["urn"])["outputs"]["result"]
    before = d.resources()
    stack.import_stack(exported)
    assert [r["urn"] for r in d.resources()] == [r["urn"] for r in before]
    # a second up with nothing changed: all same; a config change: one update
    again = stack.preview()
    assert set(again.change_summary) == {"same"}
    stack.set_config("pghome:flowLogRetentionDays", auto.ConfigValue("60"))  # one log group
    changed = stack.preview()
    assert changed.change_summary.get(auto.OpType.UPDATE) == 1
    assert len(stack.history()) == 1


def test_failures_locked_missing_passphrase_no_credentials_and_a_failing_resource(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch) -> None:
    d = pulumi_double
    stack = auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=workspace(d).env_vars))
    lock = d.lock()
    with pytest.raises(auto.ConcurrentUpdateError) as err:
        stack.up()
    assert "the stack is currently locked by 1 lock(s)" in str(err.value) and "pulumi cancel" in str(err.value)
    lock.unlink()
    nopass = auto.select_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_BACKEND_URL": d.file_backend()}))
    with pytest.raises(auto.CommandError, match="passphrase must be set with PULUMI_CONFIG_PASSPHRASE"):
        nopass.preview()
    with pytest.raises(auto.CommandError, match="NoCredentialProviders"):
        auto.select_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_BACKEND_URL": "s3://team-state/pghome"}))
    monkeypatch.setenv("PULUMI_DOUBLE_FAIL_ON", "aws:rds/instance:Instance")
    with pytest.raises(auto.CommandError) as failed:
        stack.up()
    assert "error: create of shop-dev-database-instance failed" in str(failed.value)
    types = {r["type"] for r in d.resources()}
    assert "aws:ec2/vpc:Vpc" in types and "aws:rds/instance:Instance" not in types  # partial progress persisted
    assert stack.history()[0].result == "failed"
    assert not any(Path(d.tmp / "state/.pulumi/locks").rglob("*.json"))  # the run released its lock


def test_config_set_all_refuses_a_pair_without_a_value_as_the_cli_does(pulumi_double: Double) -> None:
    """parseKeyValuePair (pkg/cmd/pulumi/config): `set-all --plaintext <key>` without `=` is the CLI's
    one-sentence error, and nothing is written."""
    import os
    import subprocess

    d = pulumi_double
    auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=workspace(d).env_vars))
    before = (d.project / "Pulumi.dev.yaml").read_text()
    env = {**os.environ, "PULUMI_BACKEND_URL": d.file_backend(), "PULUMI_CONFIG_PASSPHRASE": PASS}
    bad = subprocess.run(["pulumi", "--non-interactive", "config", "set-all", "--stack", "dev", "--plaintext", "pghome:azCount=3", "--plaintext", "pghome:appName"],
                         cwd=d.project, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "config value must be in the form [key]=[value]" in bad.stderr and "Traceback" not in bad.stderr
    assert (d.project / "Pulumi.dev.yaml").read_text() == before


def test_refresh_sees_console_edits_and_destroy_removes_everything(pulumi_double: Double) -> None:
    d = pulumi_double
    stack = auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=workspace(d).env_vars))
    stack.up()
    d.cloud({"::shop-dev-database-instance": {"inputs": {"backupRetentionPeriod": 1}}})
    assert set(stack.preview().change_summary) == {"same"}  # without a refresh the edit is invisible
    assert stack.preview(refresh=True).change_summary.get(auto.OpType.UPDATE) == 1
    with pytest.raises(auto.CommandError, match="no changes were expected"):
        stack.preview(refresh=True, expect_no_changes=True)
    stack.destroy()
    assert d.resources() == []


def test_the_fork_server_hands_over_streams_exit_codes_cwd_and_env(pulumi_double: Double) -> None:
    """Through the fork server or run cold, a call of the double looks the same to its caller."""
    import os
    import subprocess

    d = pulumi_double
    assert os.environ["PULUMI_DOUBLE_SERVER"], "the fixture starts a fork server"
    env = {**os.environ, "PULUMI_BACKEND_URL": d.file_backend(), "PULUMI_CONFIG_PASSPHRASE": PASS}
    seen = []
    for server in (os.environ["PULUMI_DOUBLE_SERVER"], ""):
        run = dict(env, PULUMI_DOUBLE_SERVER=server)
        version = subprocess.run(["pulumi", "version"], cwd=d.project, env=run, capture_output=True, text=True)
        missing = subprocess.run(["pulumi", "--non-interactive", "stack", "select", "--stack", "nope"], cwd=d.project, env=run,
                                 capture_output=True, text=True)
        seen.append((version.returncode, version.stdout, missing.returncode, missing.stdout, missing.stderr))
    assert seen[0] == seen[1]
    # exit_codes.go: a missing stack exits ExitStackNotFound (6)
    assert seen[0][:3] == (0, f"v{CURRENT_VERSION}\n", 6) and "no stack named 'nope' found" in seen[0][4]
    calls = d.calls()
    assert len(calls) == 4 and all(c["cwd"] == str(d.project) and c["env"]["PULUMI_BACKEND_URL"] == d.file_backend() for c in calls)

"""One regression test per defect of issue 12, through `python -m bootstrap <command>` (main()) and the
real Automation API against the `pulumi` double; moto where AWS is read. No PostgreSQL needed here
(tests/test_deploy_e2e.py runs the full deploy against the real server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from pulumi import automation as auto

from bootstrap.cli.main import main
from tests.deploy_world import OWN_PROD, edit_stack_file, run
from tests.pgserver import _write_tls_files
from tests.pulumi_double.double import digest
from tests.pulumi_double.fixture import Double

PASS = "regression passphrase"
MASTER_PW = "Master-Pw-From-Secrets-Manager-0123456789"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="eu-west-1")
        sm.create_secret(Name="shop-dev/db/master", Tags=[{"Key": "Stack", "Value": "dev"}],
                         SecretString=json.dumps({"username": "shop_master", "password": MASTER_PW, "host": "db.invalid", "port": 5432}))
        yield


def make_stack(d: Double, name: str = "dev", **env: str) -> auto.Stack:
    env = {"PULUMI_CONFIG_PASSPHRASE": PASS, **env}
    return auto.create_stack(name, work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=env))


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# 1 ---------------------------------------------------------------------------------------------
def test_1_a_stack_file_with_app_db_enabled_does_not_lock_anyone_out(pulumi_double: Double, aws: None, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    make_stack(d)
    edit_stack_file(d.project / "Pulumi.dev.yaml", appDbEnabled="true")
    # --tunnel never: the secret's host is taken as reachable (a tunnel is the default otherwise: test_cli_contract H)
    rc, out, err = run(d, capsys, "preview", "--stack", "dev", "--tunnel", "never")
    assert rc == 0, err
    preview = d.ops("preview")[-1]
    assert preview["env"]["PGPASSWORD"] == digest(MASTER_PW)  # the program gets its credential from the orchestration
    assert "pghome:appDbEnabled=true" in out and "preview: " in out and " created" in out
    # the offline plan (which reads the repository's stack files: the value comes in through --set,
    # the same config map a stack file fills) plans the app database without any credential
    monkeypatch.delenv("PGPASSWORD", raising=False)
    capsys.readouterr()
    rc = main(["plan", "--stack", "dev", "--set", "appDbEnabled=true"])
    out_plan = capsys.readouterr()
    assert rc == 0 and "no credential" not in out_plan.err and "postgresql:Role" in out_plan.out


# 2 ---------------------------------------------------------------------------------------------
def test_2_the_configured_backend_is_used_and_only_a_first_deploy_creates(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://team-state/pghome")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    for op in (["destroy", "--yes"], ["drift"], ["up", "--yes"], ["preview"], ["refresh", "--yes"]):
        rc, out, err = run(d, capsys, op[0], "--stack", "prod", *op[1:]) if op[0] == "destroy" else run(d, capsys, op[0], "--stack", "dev", *op[1:])
        assert rc in (1, 2) and "does not exist in the backend s3://team-state/pghome (from PULUMI_BACKEND_URL)" in one_line(err), (op, err)
    calls = [c for c in d.calls() if c["argv"] != ["version"]]
    assert calls and all(c["env"].get("PULUMI_BACKEND_URL") == "s3://team-state/pghome" for c in calls)
    assert not any("init" in c["argv"] for c in calls)
    assert not (d.project / ".pulumi-state").exists()  # no silent local stack


def test_2_a_backend_without_credentials_is_one_line(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://team-state/pghome")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    rc, out, err = run(d, capsys, "preview", "--stack", "dev")
    assert rc == 1 and "NoCredentialProviders" in one_line(err)


def test_2_pulumi_login_and_fully_qualified_names(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    home = d.tmp / "pulumi-home"
    home.mkdir(exist_ok=True)
    (home / "credentials.json").write_text(json.dumps({"current": d.file_backend("logged-in")}))
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    make_stack(d, "organization/pghome/dev")
    rc, out, err = run(d, capsys, "up", "--stack", "organization/pghome/dev", "--yes")
    assert rc == 0, err
    assert "PULUMI_BACKEND_URL" not in d.ops("up")[-1]["env"]  # the CLI resolves the login itself
    assert any(r["type"] == "aws:ec2/vpc:Vpc" for r in d.resources("dev", backend="logged-in"))
    assert "--stack" in d.ops("up")[-1]["argv"] and "organization/pghome/dev" in d.ops("up")[-1]["argv"]


# 3 ---------------------------------------------------------------------------------------------
def test_3_kms_stacks_need_no_passphrase_empty_passphrase_and_secure_values(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture[str], kms_endpoint: str) -> None:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    # the CLI has KMS wrap the stack's data key at `stack init` and unwrap it on every command (a moto server stands in)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", kms_endpoint)
    kms = boto3.client("kms", region_name="eu-west-1", endpoint_url=kms_endpoint)
    alias = f"alias/pulumi-{d.tmp.name}"
    kms.create_alias(AliasName=alias, TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(secrets_provider=f"awskms://{alias}?region=eu-west-1"))
    assert yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())["secretsprovider"].startswith("awskms://")
    rc, out, err = run(d, capsys, "preview", "--stack", "dev")
    assert rc == 0, err
    # a passphrase stack with the empty passphrase (allowed by Pulumi) and a secure: value in its file
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "")
    stack = make_stack(d, "prod", PULUMI_CONFIG_PASSPHRASE="")
    stack.set_config("pghome:imageTag", auto.ConfigValue("release-7", secret=True))
    edit_stack_file(d.project / "Pulumi.prod.yaml", **OWN_PROD)
    (d.project / "certs").mkdir(exist_ok=True)
    _write_tls_files(d.project / "certs")  # prod is verify-full only (issue 28): a CA file where the stack names the bundle
    (d.project / "certs" / "ca.crt").rename(d.project / "certs" / "rds-global-bundle.pem")
    assert "secure" in yaml.safe_load((d.project / "Pulumi.prod.yaml").read_text())["config"]["pghome:imageTag"]
    rc, out, err = run(d, capsys, "preview", "--stack", "prod")
    assert rc == 0, err
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    rc, out, err = run(d, capsys, "preview", "--stack", "prod")
    assert rc == 1 and "PULUMI_CONFIG_PASSPHRASE is not set" in one_line(err)


# 4 ---------------------------------------------------------------------------------------------
@pytest.mark.cli_versions  # bootstrap's own event consumers (drift's ChangePlan) over both event transports
def test_4_drift_refreshes_and_exits_0_2_1(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    make_stack(d)
    assert run(d, capsys, "up", "--stack", "dev", "--yes")[0] == 0
    rc, out, err = run(d, capsys, "drift", "--stack", "dev")
    assert rc == 0 and "no drift" in out
    assert "--refresh" in d.ops("preview")[-1]["argv"]
    d.cloud({"::shop-dev-database-instance": {"inputs": {"backupRetentionPeriod": 1}}})
    rc, out, err = run(d, capsys, "drift", "--stack", "dev")
    assert rc == 2 and "update   aws:rds/instance:Instance shop-dev-database-instance" in out
    # another update holds the lock: `preview --refresh` takes none (pkg/backend/diy/backend.go), so drift still reports
    d.lock()
    rc, out, err = run(d, capsys, "drift", "--stack", "dev")
    assert rc == 2 and "update   aws:rds/instance:Instance shop-dev-database-instance" in out


# 5 ---------------------------------------------------------------------------------------------
def test_5_destroy_previews_and_refuses_without_a_terminal_or_yes(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    make_stack(d)
    assert run(d, capsys, "up", "--stack", "dev", "--yes")[0] == 0
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    rc, out, err = run(d, capsys, "destroy", "--stack", "dev", "--allow-data-loss")
    assert rc == 1 and "refusing to destroy stack dev without confirmation" in one_line(err)
    assert "delete   aws:rds/instance:Instance shop-dev-database-instance" in out and "WARNING: delete of stateful resource" in out
    destroys = d.ops("destroy")
    assert destroys and all("--preview-only" in c["argv"] for c in destroys)  # previewed, never run
    assert any(r["type"] == "aws:rds/instance:Instance" for r in d.resources())
    # the question is asked on a terminal; "n" keeps everything
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    rc, out, err = run(d, capsys, "destroy", "--stack", "dev", "--allow-data-loss")
    assert rc == 1 and "cancelled; nothing was changed" in err
    assert all("--preview-only" in c["argv"] for c in d.ops("destroy"))


# 6 ---------------------------------------------------------------------------------------------
def test_6_lock_and_first_error_line(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    make_stack(d)
    d.lock()
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    line = one_line(err)
    assert rc == 1 and "the stack dev is locked by another update" in line and "ci@runner-7 (pid 4242)" in line and "pulumi cancel --stack dev" in line
    from bootstrap.deploy.workspace import first_error_line

    text = "\n code: 255\n stdout: Updating (dev):\nDiagnostics:\n  db:\n    error: creating RDS instance: quota exceeded\n stderr: \nerror: update failed"
    assert first_error_line(text) == "creating RDS instance: quota exceeded"


@pytest.mark.parametrize("content,expected", [
    (None, "no such file"),
    (b"not json", "is not JSON"),
    (b"{}", "is not a Pulumi stack export"),
    (b'{"version": 3, "checkpoint": {}}', "is not a Pulumi stack export"),
])
def test_6_bad_state_files_are_one_line(pulumi_double: Double, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                        content: bytes | None, expected: str) -> None:
    d = pulumi_double
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    f = d.tmp / "state.json"
    if content is not None:
        f.write_bytes(content)
    rc, out, err = run(d, capsys, "audit", "--stack", "dev", "--state-file", str(f))
    assert rc == 2 and expected in one_line(err)


def test_6_an_empty_state_audits_nothing_and_fails(pulumi_double: Double, aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    f = d.tmp / "state.json"
    f.write_text(json.dumps({"version": 3, "deployment": {"resources": []}}))
    rc, out, err = run(d, capsys, "audit", "--stack", "dev", "--state-file", str(f))
    assert rc == 1 and "nothing was audited" in out


@pytest.mark.parametrize("content,expected", [
    (b"config:\n  pghome:appName: caf\xe9\n", "is not UTF-8"),
    (b"config:\n  pghome:appName: shop\n  pghome:appName: other\n", "duplicate key 'pghome:appName'"),
    (b"config: [\n", "is not valid YAML"),
])
def test_6_bad_stack_files_are_one_line(pulumi_double: Double, capsys: pytest.CaptureFixture[str], content: bytes, expected: str) -> None:
    d = pulumi_double
    (d.project / "Pulumi.dev.yaml").write_bytes(content)
    for cmd in (["deploy", "--yes"], ["rotate"], ["preview"], ["audit", "--state-file", "x.json"]):
        rc, out, err = run(d, capsys, cmd[0], "--stack", "dev", *cmd[1:])
        assert rc == 2 and expected in one_line(err), (cmd, err)
    assert d.calls() == []  # nothing reached the CLI


def test_6_aws_and_database_errors_are_one_line(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(d.tmp / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(d.tmp / "none"))
    rc, out, err = run(d, capsys, "rotate", "--stack", "dev", "--local", "--role", "master")
    assert rc == 1 and "NoCredentialsError" in one_line(err)
    # DBInstanceNotFoundFault from RDS, and psycopg's InsufficientPrivilege
    from bootstrap.cli.args import guarded
    from dbcore.rds_admin import RdsAdmin
    from dbcore.secret import RotationError

    with mock_aws():
        with pytest.raises(RotationError, match="does not exist in this account/region"):
            RdsAdmin(boto3.client("rds", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")).set_master_password("nope", "x")
    import psycopg

    def denied(args: Any) -> int:
        raise psycopg.errors.InsufficientPrivilege("permission denied to alter role \"shop_app\"")

    capsys.readouterr()
    assert guarded(denied)(None) == 1  # type: ignore[arg-type]
    assert "the database refused: permission denied to alter role" in one_line(capsys.readouterr().err)


# 7 ---------------------------------------------------------------------------------------------
def test_7_rotation_connections_go_through_pgconn(pulumi_double: Double, aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    edit_stack_file(d.project / "Pulumi.dev.yaml", appDbSslMode="verify-full", appDbSslRootCert="certs/missing-bundle.pem",
                    appDbHostOverride="127.0.0.1", appDbPortOverride=15432)
    rc, out, err = run(d, capsys, "audit", "--stack", "dev", "--state-file", str(_state_with_password(d)))
    assert rc == 1 and "refusing to connect to the database: sslrootcert" in one_line(err) and "missing-bundle.pem does not exist" in err


def _state_with_password(d: Double) -> Path:
    f = d.tmp / "state.json"
    f.write_text(json.dumps({"version": 3, "deployment": {"resources": [
        {"urn": "urn:p", "type": "random:index/randomPassword:RandomPassword", "outputs": {"result": "initial-master-password"}}]}}))
    return f


# 8 ---------------------------------------------------------------------------------------------
_REAL_CERT = OWN_PROD["certificateArn"]
# A program that adds one rogue repository (mutable tags, no scan on push: ECR.1/ECR.2, must-hold,
# checked per resource) to the real stack, for the pack to catch after the offline gate let it through.
ROGUE_PROGRAM = """import runpy
import pulumi_aws as aws
runpy.run_path({real!r}, run_name="__main__")
aws.ecr.Repository("rogue-repo", image_tag_mutability="MUTABLE")
"""


def test_8_security_controls_gate_and_policy_pack(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import controls
    from bootstrap.plan import report as plan

    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    make_stack(d)
    (d.project / "policy" / "venv").mkdir()
    rc, out, err = run(d, capsys, "preview", "--stack", "dev")
    assert rc == 0, err
    assert "Security controls for stack dev" in out
    argv = d.ops("preview")[-1]["argv"]
    assert argv[argv.index("--policy-pack") + 1] == str(d.project / "policy")
    # the CLI ran the pack: the secure stack's advisories arrive as policy events, nothing mandatory
    assert "policy advisory pghome-fsbp/rds-23 (" in out and "policy mandatory" not in out, out
    assert "--policy-pack-config" not in argv
    # prod: the pack with prod-enforcement.json (every waivable control mandatory), and prod passes it
    make_stack(d, "prod")
    edit_stack_file(d.project / "Pulumi.prod.yaml", **OWN_PROD)
    rc, out, err = run(d, capsys, "preview", "--stack", "prod")
    assert rc == 0, err
    argv = d.ops("preview")[-1]["argv"]
    assert argv[argv.index("--policy-pack-config") + 1] == str(d.project / "policy" / "prod-enforcement.json")
    assert "policy advisory pghome-fsbp/rds-23 (" in out and "policy mandatory" not in out, out
    real = plan.check_graph

    # the engine-side line: a resource the offline gate missed (it is told all passes) is refused by
    # the pack through `python -m bootstrap preview` and `up`, its message reaching the user
    def missed(graph: Any, waivers: Any = None) -> Any:
        report = real(graph, waivers)
        for r in report.results:
            if r.status == controls.FAIL:
                r.status, r.findings = controls.PASS, []
        return report

    monkeypatch.setattr(plan, "check_graph", missed)
    main_py = d.project / "__main__.py"
    real_main = main_py.resolve()
    main_py.unlink()
    main_py.write_text(ROGUE_PROGRAM.format(real=str(real_main)))
    for cmd in (["preview"], ["up", "--yes"]):
        rc, out, err = run(d, capsys, cmd[0], "--stack", "dev", *cmd[1:])
        line = one_line(err)
        assert rc == 1 and f"pulumi {cmd[0]} failed: preview failed; mandatory policies violated: " in line, err
        assert "pghome-fsbp/ecr-2 (rogue-repo): ECR.2 " in line and "imageTagMutability" in line, line
        assert cmd[0] == "up" or "policy mandatory pghome-fsbp/ecr-2 (rogue-repo)" in out  # preview shows each event as it comes
    assert not d.ops("up") and not d.resources()  # refused at the preview: nothing was applied
    # a must-hold failure stops deploy/up/preview before the CLI runs anything
    main_py.unlink()
    main_py.symlink_to(real_main)

    def failing(graph: Any, waivers: Any = None) -> Any:
        report = real(graph, waivers)
        must = next(r for r in report.results if r.control.level == controls.MUST_HOLD)
        must.status = controls.FAIL
        return report

    monkeypatch.setattr(plan, "check_graph", failing)
    before = len(d.calls())
    for cmd in (["deploy", "--yes"], ["up", "--yes"], ["preview"]):
        rc, out, err = run(d, capsys, cmd[0], "--stack", "dev", *cmd[1:])
        assert rc == 1 and "must-hold security controls fail" in one_line(err)
    assert not any(c["argv"][1:2] in (["up"], ["preview"]) for c in d.calls()[before:])


# 9 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("edits,bundle,expected", [
    ({}, "good", "certificateArn arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-4000-8000-000000000000 is a placeholder"),
    ({"certificateArn": "arn:aws:acm:us-east-1:210987654321:certificate/4b1c9a57-3f8e-4d5a-9c2b-7e6f5a4d3c2b"}, "good",
     "certificateArn is in us-east-1 but the stack deploys to eu-west-1"),
    ({"certificateArn": _REAL_CERT}, "missing",
     "appDbSslRootCert certs/rds-global-bundle.pem does not exist; run `python -m bootstrap ca-bundle fetch --stack prod`"),
    ({"certificateArn": _REAL_CERT}, "expired", "appDbSslRootCert certs/rds-global-bundle.pem is not a usable CA bundle: certificate 1"),
    ({**OWN_PROD, "dbBreakGlassRoleArn": "arn:aws:iam::123456789012:role/shop-break-glass"}, "good",
     "error: dbBreakGlassRoleArn arn:aws:iam::123456789012:role/shop-break-glass is in the example account 123456789012; set the ARN of your own role"),
    ({**OWN_PROD, "alarmEmails": ["oncall@example.com"]}, "good",
     "error: alarmEmails oncall@example.com is at a reserved example domain, so alarms would reach nobody"),
])
def test_9_prod_preflight(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], edits: dict[str, Any],
                          bundle: str, expected: str) -> None:
    import datetime as dt

    from tests import fake_rds_ca

    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    edit_stack_file(d.project / "Pulumi.prod.yaml", **edits)
    path = d.project / "certs" / "rds-global-bundle.pem"
    if bundle == "missing":
        path.unlink()
    elif bundle == "expired":
        path.write_bytes(fake_rds_ca.pem(fake_rds_ca.root(not_before=fake_rds_ca.NOW - dt.timedelta(days=30),
                                                          not_after=fake_rds_ca.NOW - dt.timedelta(days=1))))
    for cmd in (["deploy", "--yes"], ["up", "--yes"], ["preview"], ["drift"]):
        rc, out, err = run(d, capsys, cmd[0], "--stack", "prod", *cmd[1:])
        assert rc == 1 and expected in one_line(err), (cmd, err)
    assert d.calls() == []  # caught before any CLI (or cloud) call


# 10 --------------------------------------------------------------------------------------------
def test_10_rds_wait_has_a_heartbeat() -> None:
    from dbcore.rds_admin import RdsAdmin

    class SlowRds:
        def __init__(self) -> None:
            self.polls = 0

        def modify_db_instance(self, **kw: Any) -> None:
            pass

        def describe_db_instances(self, **kw: Any) -> dict[str, Any]:
            self.polls += 1
            done = self.polls > 4
            return {"DBInstances": [{"DBInstanceStatus": "available" if done else "modifying",
                                     "PendingModifiedValues": {} if done else {"MasterUserPassword": "****"}}]}

    lines: list[str] = []
    RdsAdmin(SlowRds(), interval_s=0.01, heartbeat_s=0.015, out=lines.append).set_master_password("shop-dev-db", "pw")
    assert lines and all("still waiting for RDS instance shop-dev-db" in ln and "status modifying" in ln for ln in lines)

"""Deploy orchestration through its seam (a recording fake stack), and the state audit against a
state exported from the mocked graph plus the real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bootstrap.deploy import (
    APP_DB_KEY,
    CLI_MISSING,
    SECRET_MARK,
    SECRET_SIG,
    CliMissingError,
    Deployer,
    DeployError,
    audit_state,
    automation_opener,
    backend_env,
    find_credentials,
    login_users,
)
from bootstrap.mockgraph import Graph
from bootstrap.rotation import new_password
from components.config import load_settings
from components.stackfile import stack_config
from tests.pgserver import PgServer
from tests.rotation_world import make_world

SETTINGS = load_settings(stack_config("dev"), stack="dev")
MASTER_PW = "Current-Master-Pw-" + "x" * 20


# --------------------------------------------------------------------------------------------
# Fakes for the seam
# --------------------------------------------------------------------------------------------


class FakeStack:
    def __init__(self, world: FakeWorld, env: dict[str, str]):
        self.world, self.env = world, env

    def set_config(self, key: str, value: Any, path: bool = False) -> None:
        self.world.log.append(f"config {key}={getattr(value, 'value', value)}")
        self.world.config_values.append(str(getattr(value, "value", value)))

    def up(self, **kw: Any) -> Any:
        self.world.log.append("up")
        self.world.up_kwargs.append(kw)
        kw["on_event"](SimpleNamespace(resource_pre_event=SimpleNamespace(metadata=SimpleNamespace(op="create", type="aws:rds/instance:Instance", urn="urn:x::shop-dev-db")), diagnostic_event=None))
        if self.world.fail_up_at == len([x for x in self.world.log if x == "up"]):
            raise RuntimeError("stderr: \nerror: update failed: RDS quota exceeded")
        self.world.deployed = True
        return SimpleNamespace(summary=SimpleNamespace(result="succeeded"))

    def preview(self, **kw: Any) -> Any:
        self.world.log.append(f"preview expect_no_changes={kw.get('expect_no_changes')}")
        if kw.get("expect_no_changes") and self.world.drifted:
            raise RuntimeError("error: no changes were expected but changes were proposed")
        return None

    def refresh(self, **kw: Any) -> Any:
        self.world.log.append("refresh")

    def destroy(self, **kw: Any) -> Any:
        self.world.log.append("destroy")

    def outputs(self) -> dict[str, Any]:
        if not self.world.deployed:
            return {}
        return {"vpcId": SimpleNamespace(value="vpc-1", secret=False), "dbSecret": SimpleNamespace(value=self.world.leak or "s3cr3t-out", secret=True)}


class FakeWorld:
    def __init__(self, deployed: bool = False, fail_up_at: int = 0):
        self.log: list[str] = []
        self.envs: list[dict[str, str]] = []
        self.config_values: list[str] = []
        self.up_kwargs: list[dict[str, Any]] = []
        self.deployed = deployed
        self.fail_up_at = fail_up_at
        self.drifted = False
        self.leak = ""
        self.needs_first: set[str] = set()
        self.ages: dict[str, float | None] = {}
        self.live = 0

    def open(self, env: dict[str, str]) -> FakeStack:
        self.log.append("open" + (" +PGPASSWORD" if "PGPASSWORD" in env else ""))
        self.envs.append(dict(env))
        return FakeStack(self, env)

    # rotator
    def rotate(self, role: str) -> None:
        self.log.append(f"rotate {role}")

    def current_password(self, role: str) -> str:
        return MASTER_PW

    def needs_first_rotation(self, role: str) -> bool:
        return role in self.needs_first

    def last_rotated_days(self, role: str) -> float | None:
        return self.ages.get(role)

    def audit(self) -> int:
        self.log.append("audit")
        return self.live

    def deployer(self, out: list[str]) -> Deployer:
        return Deployer(SETTINGS, self.open, lambda: self, self.audit, out=out.append)


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


def test_first_deploy_runs_the_five_phases_in_order() -> None:
    w, out = FakeWorld(), list[str]()
    assert w.deployer(out).deploy() == 0
    assert w.log == [
        "open", f"config {APP_DB_KEY}=false", "up",  # phase 1
        "rotate master",  # phase 2
        "open +PGPASSWORD", f"config {APP_DB_KEY}=true", "up",  # phase 3
        "rotate app", "rotate migrator",  # phase 4
        "audit",  # phase 5
    ]
    # PGPASSWORD only in the env of the phase-3 workspace, never in config
    assert "PGPASSWORD" not in w.envs[0] and w.envs[1]["PGPASSWORD"] == MASTER_PW
    assert MASTER_PW not in w.config_values
    text = "\n".join(out)
    assert MASTER_PW not in text and "s3cr3t-out" not in text  # outputs printed masked
    assert '"dbSecret": "[secret]"' in text and '"vpcId": "vpc-1"' in text
    assert any("create" in line and "shop-dev-db" in line for line in out)  # engine events streamed
    assert all(set(kw) >= {"on_event", "on_output"} for kw in w.up_kwargs)


def test_later_deploy_skips_phase_1_and_rotates_only_when_asked_or_due() -> None:
    w, out = FakeWorld(deployed=True), list[str]()
    w.deployer(out).deploy()
    assert w.log == ["open", "open +PGPASSWORD", f"config {APP_DB_KEY}=true", "up", "audit"]

    w = FakeWorld(deployed=True)
    w.deployer([]).deploy(rotate=True)
    assert [x for x in w.log if x.startswith("rotate")] == ["rotate master", "rotate app", "rotate migrator"]

    w = FakeWorld(deployed=True)
    w.ages = {"app": 40.0, "migrator": 3.0}
    w.deployer([]).deploy(rotate_after_days=30)
    assert [x for x in w.log if x.startswith("rotate")] == ["rotate app"]

    # an interrupted first deploy (master never rotated) is finished by the next run
    w = FakeWorld(deployed=True)
    w.needs_first = {"master", "migrator"}
    w.deployer([]).deploy()
    assert [x for x in w.log if x.startswith("rotate")] == ["rotate master", "rotate migrator"]


@pytest.mark.parametrize("fail_at", [1, 2])
def test_failed_up_stops_before_any_rotation_with_resume_instructions(fail_at: int) -> None:
    w, out = FakeWorld(fail_up_at=fail_at), list[str]()
    with pytest.raises(DeployError) as err:
        w.deployer(out).deploy()
    msg = str(err.value)
    assert "RDS quota exceeded" in msg and "re-run `python -m bootstrap deploy --stack dev`" in msg
    assert "nothing was rotated in this run" in msg
    ups = [i for i, x in enumerate(w.log) if x == "up"]
    after_failed_up = w.log[ups[fail_at - 1] + 1:]
    assert not any(x.startswith("rotate") for x in after_failed_up)
    assert "audit" not in w.log


def test_rotation_failure_names_the_command_to_resume() -> None:
    from bootstrap.rotation import RotationError

    w = FakeWorld()

    def boom(role: str) -> None:
        raise RotationError("the database rejected the AWSPENDING password of shop-dev/db/master")

    w.rotate = boom  # type: ignore[method-assign]
    with pytest.raises(DeployError, match=r"rotate --stack dev --role master"):
        w.deployer([]).deploy()
    assert w.log.count("up") == 1  # phase 3 never ran with an unrotated master


def test_master_password_in_outputs_is_refused() -> None:
    w = FakeWorld(deployed=True)
    w.leak = MASTER_PW
    with pytest.raises(DeployError, match="holds the master password"):
        w.deployer([]).deploy()


def test_audit_failure_fails_the_deploy() -> None:
    w = FakeWorld()
    w.live = 1
    with pytest.raises(DeployError, match="1 credential"):
        w.deployer([]).deploy()


def test_single_operations_and_drift_gate() -> None:
    w, out = FakeWorld(deployed=True), list[str]()
    d = w.deployer(out)
    assert d.single("drift", {}) == 0
    assert "preview expect_no_changes=True" in w.log
    w.drifted = True
    with pytest.raises(DeployError, match="drift detected"):
        d.single("drift", {})
    for op in ("preview", "refresh", "destroy", "up"):
        d.single(op, {})
    assert {"refresh", "destroy", "preview expect_no_changes=None"} <= set(w.log)


# --------------------------------------------------------------------------------------------
# Backend, CLI missing
# --------------------------------------------------------------------------------------------


def test_backend_env(tmp_path: Path) -> None:
    env, provider = backend_env(None, None, {"PULUMI_CONFIG_PASSPHRASE": "p"}, project_dir=tmp_path)
    assert env["PULUMI_BACKEND_URL"] == f"file://{tmp_path / '.pulumi-state'}" and provider == "passphrase"
    assert (tmp_path / ".pulumi-state").is_dir()
    with pytest.raises(DeployError, match="PULUMI_CONFIG_PASSPHRASE is not set"):
        backend_env(None, None, {}, project_dir=tmp_path)
    env, provider = backend_env("s3://team-state/pghome", "awskms://alias/pulumi?region=eu-west-1", {})
    assert env["PULUMI_BACKEND_URL"] == "s3://team-state/pghome" and str(provider).startswith("awskms://")
    assert "PULUMI_CONFIG_PASSPHRASE" not in env
    with pytest.raises(DeployError, match="not a backend URL"):
        backend_env("team-state", None, {"PULUMI_CONFIG_PASSPHRASE": "p"})


def test_cli_missing_is_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.__main__ import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi here
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "x")
    with pytest.raises(CliMissingError):
        automation_opener("dev", {}, "passphrase")({})
    for cmd in (["deploy"], ["preview"], ["up"], ["refresh"], ["destroy"], ["drift"], ["audit"]):
        rc = main([*cmd, "--stack", "dev"])
        err = capsys.readouterr().err
        assert rc == 1, cmd
        assert err.strip() == f"error: {CLI_MISSING}" and "curl -fsSL https://get.pulumi.com | sh" in err
    # plan still works without the CLI
    assert main(["plan", "--stack", "dev"]) == 0


# --------------------------------------------------------------------------------------------
# Audit
# --------------------------------------------------------------------------------------------


def _wrap(value: Any) -> dict[str, Any]:
    return {SECRET_SIG: SECRET_MARK, "plaintext": json.dumps(value)}


def state_from_graph(graph: Graph, master_password: str) -> tuple[dict[str, Any], str]:
    """The mocked graph as `pulumi stack export --show-secrets` would write it. If the database
    component is not in this graph yet, add its RandomPassword and master SecretVersion as the
    contract describes. Returns (state, the initial master password)."""
    stack_urn = f"urn:pulumi:{graph.stack}::{graph.project}::pulumi:pulumi:Stack::{graph.project}-{graph.stack}"
    resources: list[dict[str, Any]] = [{
        "urn": stack_urn, "custom": False, "type": "pulumi:pulumi:Stack",
        "outputs": {k: (_wrap(v) if k in graph.secret_outputs else v) for k, v in graph.outputs.items()},
    }]
    initial = master_password
    for r in graph.resources:
        outputs = dict(r.state)
        inputs = {k: (_wrap(v) if r.is_secret(k) else v) for k, v in r.inputs.items()}
        for k in list(outputs):
            if r.is_secret(k) or k in r.additional_secret_outputs or (r.type.startswith("random:") and k == "result"):
                outputs[k] = _wrap(outputs[k])
        if r.type == "random:index/randomPassword:RandomPassword":
            initial = str(r.state["result"])
        resources.append({"urn": r.urn, "custom": r.custom, "id": r.id, "type": r.type, "inputs": inputs, "outputs": outputs, "parent": r.parent})
    if not graph.of_type("random:index/randomPassword:RandomPassword"):
        base = f"urn:pulumi:{graph.stack}::{graph.project}::pghome:database:Database"
        resources.append({"urn": f"{base}$random:index/randomPassword:RandomPassword::shop-dev-db-master", "custom": True, "type": "random:index/randomPassword:RandomPassword",
                          "inputs": {"length": 40}, "outputs": {"length": 40, "result": _wrap(initial)}})
        resources.append({"urn": f"{base}$aws:secretsmanager/secretVersion:SecretVersion::shop-dev-db-master", "custom": True, "type": "aws:secretsmanager/secretVersion:SecretVersion",
                          "inputs": {"secretString": _wrap(json.dumps({"username": SETTINGS.database.master_username, "password": initial}))}, "outputs": {}})
    resources.append({"urn": "urn:pulumi:dev::pghome::pghome:appdb:AppDatabase$aws:secretsmanager/secretVersion:SecretVersion::app", "custom": True,
                      "type": "aws:secretsmanager/secretVersion:SecretVersion",
                      "inputs": {"secretString": _wrap(json.dumps({"username": "shop_app", "password": ""}))}, "outputs": {}})
    state = {"version": 3, "deployment": {"manifest": {"version": "v3.272.0"}, "secrets_providers": {"type": "passphrase"}, "resources": resources}}
    return state, initial


def test_find_credentials_in_exported_state(dev_graph: Graph) -> None:
    state, initial = state_from_graph(dev_graph, new_password())
    state["deployment"]["resources"].append({"urn": "urn:enc", "type": "postgresql:index/role:Role", "inputs": {"password": {SECRET_SIG: SECRET_MARK, "ciphertext": "AAAA"}}, "outputs": {}})
    creds = find_credentials(state)
    values = [c.value for c in creds]
    assert initial in values  # RandomPassword result and secretString password, deduplicated
    assert values.count(initial) == 1
    assert "" not in values  # empty login-secret passwords are not credentials
    assert any(c.value is None and c.where.startswith("urn:enc") for c in creds)


def test_audit_flags_initial_master_password_until_rotated(pg: PgServer, dev_graph: Graph) -> None:
    state, initial = state_from_graph(dev_graph, new_password())
    with make_world(pg, initial_master_password=initial) as world:
        rot = world.rotator()
        users = login_users(world.settings)
        lines: list[str] = []
        live, unverifiable = audit_state(state, users, rot.accepts, out=lines.append)
        assert live == 1 and unverifiable == 0
        assert any("LIVE" in ln and f"authenticates as {world.master}" in ln for ln in lines)
        for role in ("master", "app", "migrator"):
            rot.rotate(role)
        lines.clear()
        live, unverifiable = audit_state(state, users, rot.accepts, out=lines.append)
        assert live == 0, lines
        assert any("dead" in ln for ln in lines)
        assert all(initial not in ln for ln in lines)


def test_audit_cli_with_encrypted_state_file_needs_no_pulumi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.__main__ import main

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    f = tmp_path / "state.json"
    f.write_text(json.dumps({"version": 3, "deployment": {"resources": [
        {"urn": "urn:p", "type": "random:index/randomPassword:RandomPassword", "outputs": {"result": {SECRET_SIG: SECRET_MARK, "ciphertext": "v1:abc"}}}]}}))
    rc = main(["audit", "--stack", "dev", "--state-file", str(f)])
    out = capsys.readouterr()
    assert rc == 1 and "ENCRYPTED" in out.out and "not installed" not in out.err

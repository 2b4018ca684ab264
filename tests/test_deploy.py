"""Deploy orchestration through its seams (fake workspace, stack and rotator), and the state audit
against a state exported from the mocked graph plus the real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bootstrap.deploy.deployer import Deployer, DeployError
from bootstrap.deploy.workspace import CLI_MISSING, CliMissingError, Workspace, resolve_backend
from bootstrap.plan.mockgraph import Graph
from bootstrap.rotation.audit import SECRET_MARK, SECRET_SIG, audit_state, find_credentials, login_users
from config.load import load_settings
from config.stack_file import APP_DB_KEY, read_stack_file, stack_config
from dbcore.secret import new_password
from tests.pgserver import PgServer
from tests.rotation_world import make_world

SETTINGS = load_settings(stack_config("dev"), stack="dev", check_credentials=False)
MASTER_PW = "Current-Master-Pw-" + "x" * 20


# --------------------------------------------------------------------------------------------
# Fakes for the seams (WorkspaceLike, StackLike, RotatorLike): fast checks of the orchestration
# (the same paths run for real in tests/test_deploy_e2e.py)
# --------------------------------------------------------------------------------------------


def _event(op: str, urn: str = "urn:pulumi:dev::pghome::aws:rds/instance:Instance::shop-dev-db") -> Any:
    md = SimpleNamespace(op=op, type="aws:rds/instance:Instance", urn=urn, old=None)
    return SimpleNamespace(resource_pre_event=SimpleNamespace(metadata=md), res_outputs_event=SimpleNamespace(metadata=md),
                           summary_event=None, diagnostic_event=None, res_op_failed_event=None)


class FakeStack:
    name = "dev"

    def __init__(self, world: FakeWorld, env: dict[str, str]):
        self.world, self.env = world, env

    def _app_db(self, kw: dict[str, Any]) -> str:
        return str(yaml.safe_load(Path(kw["config_file"]).read_text())["config"][APP_DB_KEY])

    def preview(self, **kw: Any) -> Any:
        self.world.log.append(f"preview appDb={self._app_db(kw)}" + (" refresh" if kw.get("refresh") else ""))
        if not self.world.deployed or self.world.drifted or self.world.last_app_db != self._app_db(kw):
            kw["on_event"](_event("create" if not self.world.deployed else "update"))

    def up(self, **kw: Any) -> Any:
        self.world.log.append(f"up appDb={self._app_db(kw)}" + (" +PGPASSWORD" if "PGPASSWORD" in self.env else ""))
        kw["on_event"](_event("create"))
        if self.world.fail_up_at == len([x for x in self.world.log if x.startswith("up")]):
            raise RuntimeError("\n code: 255\n stdout: Diagnostics:\n    error: RDS quota exceeded\n stderr: ")
        self.world.deployed = True
        self.world.last_app_db = self._app_db(kw)

    def outputs(self) -> dict[str, Any]:
        if not self.world.deployed:
            return {}
        return {"vpcId": SimpleNamespace(value="vpc-1", secret=False), "dbSecret": SimpleNamespace(value=self.world.leak or "s3cr3t-out", secret=True)}

    def destroy(self, **kw: Any) -> Any:
        self.world.log.append("destroy")

    def preview_destroy(self, **kw: Any) -> Any:
        self.world.log.append("preview_destroy")
        kw["on_event"](_event("delete"))

    # the rest of StackLike: no test here refreshes or reads config or state through the stack
    def refresh(self, **kw: Any) -> Any:
        raise AssertionError("FakeStack does not model refresh")

    def preview_refresh(self, **kw: Any) -> Any:
        raise AssertionError("FakeStack does not model preview_refresh")

    def get_all_config(self) -> dict[str, Any]:
        raise AssertionError("FakeStack does not model get_all_config")

    def export_stack(self) -> Any:
        """No state resources: nothing retired to mark (tests/test_retired.py runs that under the double)."""
        return SimpleNamespace(version=3, deployment={"resources": []})

    def import_stack(self, state: Any) -> None:
        raise AssertionError("FakeStack holds no retired resource, so nothing imports a state")


class FakeWorld:
    stack = "dev"

    def __init__(self, deployed: bool = False, fail_up_at: int = 0):
        self.log: list[str] = []
        self.deployed = deployed
        self.exists_ = deployed
        self.last_app_db = "true" if deployed else ""
        self.fail_up_at = fail_up_at
        self.drifted = False
        self.leak = ""
        self.needs_first: set[str] = set()
        self.ages: dict[str, float | None] = {}
        self.live = 0

    # workspace
    def exists(self) -> bool:
        return self.exists_

    def open(self, extra_env: Mapping[str, str] | None = None) -> FakeStack:
        return FakeStack(self, dict(extra_env or {}))

    def create(self) -> FakeStack:
        self.log.append("create")
        self.exists_ = True
        return FakeStack(self, {})

    # rotator
    def rotate(self, role: str) -> None:
        self.log.append(f"rotate {role}")

    def current_password(self, role: str) -> str:
        return MASTER_PW

    def needs_first_rotation(self, role: str) -> bool:
        return role in self.needs_first

    def check_admin(self) -> None:  # the master's ADMIN OPTION (PostgreSQL 16+): tested on the real server
        self.admin_checks = getattr(self, "admin_checks", 0) + 1

    def last_rotated_days(self, role: str) -> float | None:
        return self.ages.get(role)

    def audit(self, stack: Any) -> int:
        self.log.append("audit")
        return self.live

    def deployer(self, out: list[str], **kw: Any) -> Deployer:
        sf = read_stack_file("dev")
        return Deployer(sf, self, lambda: self, self.audit, out=out.append, assume_yes=True, **kw)


def test_first_deploy_runs_the_five_phases_in_order() -> None:
    w, out = FakeWorld(), list[str]()
    assert w.deployer(out).deploy() == 0
    assert w.log == [
        "create",
        "preview appDb=false", "up appDb=false",  # phase 1
        "rotate master",  # phase 2
        "preview appDb=true", "up appDb=true +PGPASSWORD",  # phase 3: PGPASSWORD in the env only
        "rotate app", "rotate migrator",  # phase 4
        "audit",  # phase 5
    ]
    text = "\n".join(out)
    assert MASTER_PW not in text and "s3cr3t-out" not in text  # outputs printed masked
    assert '"dbSecret": "[secret]"' in text and '"vpcId": "vpc-1"' in text
    assert any("create" in line and "shop-dev-db" in line and line.startswith("[") for line in out)  # progress with elapsed time


def test_later_deploy_skips_phase_1_and_rotates_only_when_asked_or_due() -> None:
    w = FakeWorld(deployed=True)
    w.deployer([]).deploy()
    assert w.log == ["preview appDb=true", "audit"]  # nothing to change: no up at all

    w = FakeWorld(deployed=True)
    w.deployer([]).deploy(rotate=True)
    assert [x for x in w.log if x.startswith("rotate")] == ["rotate master", "rotate app", "rotate migrator"]

    w = FakeWorld(deployed=True)
    w.ages = {"app": 40.0, "migrator": 3.0}
    w.deployer([]).deploy(rotate_after_days=30)
    assert [x for x in w.log if x.startswith("rotate")] == ["rotate app"]

    w = FakeWorld(deployed=True)
    w.needs_first = {"master", "migrator"}
    w.deployer([]).deploy()
    assert [x for x in w.log if x.startswith("rotate")] == ["rotate master", "rotate migrator"]


def test_failed_up_names_the_cause_what_was_done_and_the_command() -> None:
    w = FakeWorld(fail_up_at=2)
    with pytest.raises(DeployError) as err:
        w.deployer([]).deploy()
    msg = str(err.value)
    assert msg.startswith("phase 3/5 (app database, roles and grants) failed: RDS quota exceeded.")
    assert "Done so far: infrastructure deployed without the app database; master password rotated." in msg
    assert msg.endswith("run `python -m bootstrap deploy --stack dev` to go on from phase 3/5")
    assert "audit" not in w.log


def test_master_password_in_outputs_is_refused_and_a_live_audit_fails() -> None:
    w = FakeWorld(deployed=True)
    w.leak = MASTER_PW
    w.drifted = True
    with pytest.raises(DeployError, match="holds the master password"):
        w.deployer([]).deploy()
    w = FakeWorld(deployed=True)
    w.live = 1
    with pytest.raises(DeployError, match="1 credential"):
        w.deployer([]).deploy()


def test_no_terminal_and_no_yes_refuses_before_changing_anything() -> None:
    w = FakeWorld()
    w.exists_ = True  # created, never deployed (a missing stack is refused before `stack init`: test_cli_contract D)
    d = Deployer(read_stack_file("dev"), w, lambda: w, w.audit, out=lambda s: None, assume_yes=False, isatty=lambda: False)
    with pytest.raises(DeployError, match="refusing to deploy phase 1/5 to stack dev without confirmation"):
        d.deploy()
    assert w.log == ["preview appDb=false"]  # previewed, then refused: nothing was deployed


def test_no_terminal_and_no_yes_on_a_missing_stack_refuses_before_creating_it() -> None:
    """Not even the stack is created (the backend is left as it was), and nothing else ran.
    Mutation tried (issue 30): the refusal after `self.ws.create()` in bootstrap/deploy/deployer.py,
    as the code was: the log then read ["create", "preview appDb=false"] and this failed."""
    w = FakeWorld()
    d = Deployer(read_stack_file("dev"), w, lambda: w, w.audit, out=lambda s: None, assume_yes=False, isatty=lambda: False)
    with pytest.raises(DeployError, match="refusing to create stack dev without confirmation: no terminal to ask on"):
        d.deploy()
    assert w.log == [] and not w.exists_


def test_no_terminal_and_no_yes_on_an_existing_stack_previews_then_refuses() -> None:
    w = FakeWorld(deployed=True)
    w.drifted = True  # so there is a change to confirm
    d = Deployer(read_stack_file("dev"), w, lambda: w, w.audit, out=lambda s: None, assume_yes=False, isatty=lambda: False)
    with pytest.raises(DeployError, match="without confirmation: no terminal to ask on"):
        d.deploy()
    assert [x for x in w.log if not x.startswith("preview")] == []


# --------------------------------------------------------------------------------------------
# Backend, CLI missing
# --------------------------------------------------------------------------------------------


def test_backend_precedence(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: pghome\n")
    b = resolve_backend(None, {"PULUMI_HOME": str(tmp_path / "home")}, tmp_path)
    assert b.url == f"file://{tmp_path / '.pulumi-state'}" and b.env == {"PULUMI_BACKEND_URL": b.url}
    (tmp_path / "home").mkdir()
    (tmp_path / "home/credentials.json").write_text(json.dumps({"current": "https://api.pulumi.com"}))
    b = resolve_backend(None, {"PULUMI_HOME": str(tmp_path / "home")}, tmp_path)
    assert (b.url, b.source, b.env) == ("https://api.pulumi.com", "pulumi login", {})
    (tmp_path / "Pulumi.yaml").write_text("name: pghome\nbackend:\n  url: s3://from-project\n")
    assert resolve_backend(None, {"PULUMI_HOME": str(tmp_path / "home")}, tmp_path).url == "s3://from-project"
    assert resolve_backend(None, {"PULUMI_BACKEND_URL": "s3://from-env"}, tmp_path).url == "s3://from-env"
    assert resolve_backend("gs://flag", {"PULUMI_BACKEND_URL": "s3://from-env"}, tmp_path).env == {"PULUMI_BACKEND_URL": "gs://flag"}
    from config.stack_file import InputError

    with pytest.raises(InputError, match="not a backend URL"):
        resolve_backend("team-state", {}, tmp_path)


def test_cli_missing_is_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.main import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi here
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "x")
    with pytest.raises(CliMissingError):
        Workspace("dev", resolve_backend("file:///nowhere", {}), None).open()
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
    from bootstrap.cli.main import main

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    f = tmp_path / "state.json"
    f.write_text(json.dumps({"version": 3, "deployment": {"resources": [
        {"urn": "urn:p", "type": "random:index/randomPassword:RandomPassword", "outputs": {"result": {SECRET_SIG: SECRET_MARK, "ciphertext": "v1:abc"}}}]}}))
    rc = main(["audit", "--stack", "dev", "--state-file", str(f)])
    out = capsys.readouterr()
    assert rc == 1 and "ENCRYPTED" in out.out and "not installed" not in out.err


def test_secrets_left_by_a_destroy_are_checked_before_a_first_deploy_only() -> None:
    """Issue 23 item 8: the check (bootstrap/deploy/deleted_secrets.py) runs before phase 1 of a first
    deploy, and a refusal leaves the stack unchanged; a later deploy never looks."""
    from bootstrap.deploy.workspace import DeployError

    w = FakeWorld()
    checked: list[str] = []

    def refuse() -> None:
        checked.append("check")
        raise DeployError("secret shop-dev/db/master of a destroyed stack is still scheduled for deletion")

    with pytest.raises(DeployError, match="scheduled for deletion"):
        w.deployer([], before_first_up=refuse).deploy()
    assert checked == ["check"] and w.log == ["create"]  # nothing was previewed or applied

    w = FakeWorld(deployed=True)
    w.deployer([], before_first_up=lambda: checked.append("later")).deploy()
    assert "later" not in checked

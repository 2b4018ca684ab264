"""Issue 22: one regression test per defect (A-H) the real CLI contract exposes, through
`python -m bootstrap <command>` (main()) and the Automation API against the `pulumi` double, or fed
with engine events in the real format (tests/fixtures/engine_events/, each naming the recorded
stream of pulumi/pulumi it mirrors)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation.events import EngineEvent

from bootstrap.deploy.confirm import ChangePlan, confirm
from tests.deploy_world import run
from tests.pulumi_double.fixture import Double
from tests.test_recreate_double import aws, dev  # noqa: F401 (fixtures)

PASS = "contract passphrase"
EVENTS = Path(__file__).parent / "fixtures" / "engine_events"


def events(name: str) -> list[EngineEvent]:
    return [EngineEvent.from_json(json.loads(line)) for line in (EVENTS / name).read_text().splitlines() if line.strip()]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def up_stack(d: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_CONFIG_PASSPHRASE": PASS}))
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0, err


def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)


# A ---------------------------------------------------------------------------------------------
def test_a_change_plan_reads_refresh_outcomes_from_the_outputs_events() -> None:
    plan = ChangePlan()
    for e in events("refresh_delete_preview.jsonl"):
        plan.on_event(e)
    assert not plan.empty and [(c.op, c.name) for c in plan.changes] == [("delete", "shop-dev-database-instance")]
    assert "no longer exists in AWS: refresh drops it from the state" in plan.render()
    with pytest.raises(Exception, match="refusing to refresh"):
        confirm(plan, "refresh stack dev", assume_yes=False, out=lambda line: None, isatty=lambda: False)


def test_a_refresh_without_yes_off_a_terminal_refuses_and_keeps_the_state(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    up_stack(d, monkeypatch, capsys)
    d.cloud({"::shop-dev-database-instance": None})  # deleted in the console
    no_terminal(monkeypatch)
    rc, out, err = run(d, capsys, "refresh", "--stack", "dev")
    assert rc == 1 and "refusing to refresh stack dev without confirmation" in one_line(err)
    assert "delete   aws:rds/instance:Instance shop-dev-database-instance" in out
    assert all("--preview-only" in c["argv"] for c in d.ops("refresh"))
    assert any(r["urn"].endswith("::shop-dev-database-instance") for r in d.resources())


# B ---------------------------------------------------------------------------------------------
def test_b_release_previews_shows_stateful_replacements_and_refuses_off_a_terminal(dev: Double, aws: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from tests.deploy_world import edit_stack_file
    from tests.test_release import push, scan_result

    d = dev
    assert run(d, capsys, "up", "--stack", "dev", "--yes")[0] == 0
    stack_file = d.project / "Pulumi.dev.yaml"
    push(aws, "1.4.2")
    scan_result("1.4.2")
    no_terminal(monkeypatch)
    # a pending change that replaces the database under its own identifier: it cannot work, so it is
    # refused even with --allow-data-loss (bootstrap/deploy/data_loss.py, docs/data-loss.md)
    edit_stack_file(stack_file, dbMasterUsername="shop_admin")
    before, ups = stack_file.read_text(), len(d.ops("up"))
    rc, out, err = run(d, capsys, "release", "--stack", "dev", "--image-tag", "1.4.2", "--yes", "--allow-data-loss")
    assert rc == 1 and "shop-dev-database-instance (aws:rds/instance:Instance) would be replaced (username changed) by a new resource under the same name" in one_line(err)
    assert len(d.ops("up")) == ups and stack_file.read_text() == before
    # a pending change that deletes data (the access path's log group): issue 28, --allow-data-loss on top of any yes
    edit_stack_file(stack_file, dbMasterUsername="shop_master", dbAccess=False)
    before = stack_file.read_text()
    rc, out, err = run(d, capsys, "release", "--stack", "dev", "--image-tag", "1.4.2", "--yes")
    assert rc == 1 and "it would delete or replace " in one_line(err) and "aws:cloudwatch/logGroup:LogGroup, delete)" in err
    assert len(d.ops("up")) == ups and stack_file.read_text() == before
    rc, out, err = run(d, capsys, "release", "--stack", "dev", "--image-tag", "1.4.2", "--allow-data-loss")
    assert rc == 1 and "refusing to release 1.4.2 to stack dev without confirmation" in one_line(err)
    assert "delete   aws:cloudwatch/logGroup:LogGroup" in out and "WARNING: delete of stateful resource" in out
    assert len(d.ops("up")) == ups and stack_file.read_text() == before  # nothing applied, nothing written
    # on a terminal the question is asked; Ctrl-D is a no
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: (_ for _ in ()).throw(EOFError))
    rc, out, err = run(d, capsys, "release", "--stack", "dev", "--image-tag", "1.4.2", "--allow-data-loss")
    assert rc == 1 and "release 1.4.2 to stack dev cancelled; nothing was changed" in one_line(err)
    assert len(d.ops("up")) == ups and stack_file.read_text() == before


# C ---------------------------------------------------------------------------------------------
def test_c_a_missing_rotation_archive_is_refused_before_the_backend(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    monkeypatch.setenv("PGHOME_ROTATION_ARCHIVE", str(tmp_path / "not-built.zip"))
    stack_file = (d.project / "Pulumi.dev.yaml").read_text()
    from bootstrap.cli.main import main

    assert main(["plan", "--stack", "dev", "--strict"]) == 4  # offline (no -C): an unmet deploy prerequisite, listed
    assert "not-built.zip (PGHOME_ROTATION_ARCHIVE) is not built; run `python -m bootstrap build-rotation` first" in capsys.readouterr().out
    for argv in (["preview"], ["up", "--yes"], ["deploy", "--yes"], ["drift"]):
        rc, out, err = run(d, capsys, *argv, "--stack", "dev")
        line = one_line(err)
        assert rc == 1 and "not-built.zip" in line and "run `python -m bootstrap build-rotation` first" in line, argv
    assert d.calls() == [] and not (d.tmp / "state").exists()  # the CLI never ran: no stack, no backend directory
    assert (d.project / "Pulumi.dev.yaml").read_text() == stack_file


def test_c_the_archive_is_built_for_the_functions_architecture(dev_graph: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.main import main
    from bootstrap.rotation import package as rotation_package
    from config.rotation_archive import ARCHITECTURE

    (fn,) = dev_graph.of_type("aws:lambda/function:Function")
    assert fn.inputs["architectures"] == [ARCHITECTURE] == [rotation_package.DEFAULT_ARCHITECTURE]
    with pytest.raises(SystemExit) as exited:  # no second place to choose it
        main(["build-rotation", "--architecture", "x86_64"])
    assert exited.value.code == 2


# D ---------------------------------------------------------------------------------------------
def test_d_a_refused_first_deploy_creates_and_writes_nothing(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)  # the default backend: <project>/.pulumi-state
    stack_file = (d.project / "Pulumi.dev.yaml").read_text()
    no_terminal(monkeypatch)
    rc, out, err = run(d, capsys, "deploy", "--stack", "dev")
    assert rc == 1 and "refusing to create stack dev without confirmation" in one_line(err)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    rc, out, err = run(d, capsys, "deploy", "--stack", "dev")
    assert rc == 1 and "create stack dev cancelled; nothing was changed" in one_line(err)
    assert not any("init" in argv for argv in d.commands())
    assert (d.project / "Pulumi.dev.yaml").read_text() == stack_file  # no encryptionsalt written
    assert not (d.project / ".pulumi-state").exists()


# E ---------------------------------------------------------------------------------------------
def test_e_ctrl_c_during_up_says_what_is_known_and_the_way_back(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    up_stack(d, monkeypatch, capsys)
    from tests.deploy_world import edit_stack_file

    edit_stack_file(d.project / "Pulumi.dev.yaml", dbBackupRetentionDays=14)  # something to update

    def interrupted_up(self: Any, **kw: Any) -> Any:
        raise KeyboardInterrupt  # where the SDK waits for the CLI when the user presses Ctrl-C

    monkeypatch.setattr(auto.Stack, "up", interrupted_up)
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    line = one_line(err)
    assert rc == 1 and "nothing more was changed" not in line
    assert "interrupted during `pulumi up` of stack dev" in line and "may be partly updated or still updating" in line
    assert line.index("pulumi cancel --stack dev --yes") < line.index("python -m bootstrap refresh --stack dev")


# F ---------------------------------------------------------------------------------------------
def test_f_a_wrong_passphrase_is_one_sentence_for_every_command(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    up_stack(d, monkeypatch, capsys)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "not the passphrase")
    for argv in (["preview"], ["up", "--yes"], ["refresh", "--yes"], ["destroy", "--yes"], ["drift"], ["deploy", "--yes"], ["rotate"]):
        rc, out, err = run(d, capsys, *argv, "--stack", "dev")  # run() asserts no traceback
        assert rc == 1 and "is not the passphrase of stack dev" in one_line(err), argv
    assert any(r["type"] == "aws:rds/instance:Instance" for r in d.resources())


def test_f_an_undecryptable_stack_value_is_one_sentence(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    up_stack(d, monkeypatch, capsys)
    path = d.project / "Pulumi.dev.yaml"
    path.write_text(path.read_text() + '  pghome:appDbHostOverride:\n    secure: "v1:%%%not-base64"\n')
    rc, out, err = run(d, capsys, "preview", "--stack", "dev")
    assert rc == 1 and "a secret of stack dev cannot be decrypted" in one_line(err)


@pytest.fixture
def non_utf8_stack() -> Any:
    from config.stack_file import PROJECT_DIR

    path = PROJECT_DIR / "Pulumi.h22latin1.yaml"
    path.write_bytes(b"config:\n  aws:region: eu-west-1\n  pghome:appName: caf\xe9\n")
    yield "h22latin1"
    path.unlink()


def test_f_a_non_utf8_stack_file_is_one_sentence_in_plan_sql_and_cost(non_utf8_stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.main import main

    for argv in (["plan"], ["sql"], ["cost"]):
        assert main([*argv, "--stack", non_utf8_stack]) == 2, argv
        out = capsys.readouterr()
        assert "Pulumi.h22latin1.yaml is not UTF-8 text (byte" in one_line(out.err) and "Traceback" not in out.out + out.err


def test_f_ctrl_d_at_a_prompt_is_cancelled() -> None:
    from bootstrap.deploy.confirm import ask_yes
    from bootstrap.deploy.workspace import DeployError

    def ctrl_d(prompt: str) -> str:
        raise EOFError

    with pytest.raises(DeployError, match="^destroy stack dev cancelled; nothing was changed$"):
        ask_yes("Destroy?", "destroy stack dev", assume_yes=False, ask=ctrl_d, isatty=lambda: True)


# G ---------------------------------------------------------------------------------------------
def test_g_progress_shows_what_is_in_flight_with_a_heartbeat_and_plain_diagnostics() -> None:
    from bootstrap.progress import Progress
    from tests.helpers import FakeClock

    clock, lines = FakeClock(), list[str]()
    progress = Progress(lines.append, clock=clock, every_s=10)
    stream = events("up_in_flight.jsonl")
    for e in stream[:4]:  # prelude, two creates started, the VPC done after 3 s
        if e.res_outputs_event is not None:
            clock.sleep(3)
        progress.on_event(e)
    assert "creating aws:rds/instance:Instance shop-dev-database-instance ..." in lines[0]
    assert lines[-1].endswith("create   aws:ec2/vpc:Vpc shop-dev-vpc (3s)")
    clock.sleep(5)
    progress.beat()  # 5 s of silence: no line yet
    assert len(lines) == 3
    clock.sleep(7)
    progress.beat()
    assert lines[-1].endswith("still working: create shop-dev-database-instance (15s)")
    progress.on_event(stream[4])
    assert lines[-1].endswith("error (shop-dev-database-instance): creating RDS DB Instance (shop-dev): StorageQuotaExceeded: quota exceeded")
    assert not any("<{%" in line for line in lines)


# H ---------------------------------------------------------------------------------------------
def test_h_a_phase_2_failure_keeps_the_resume_sentence() -> None:
    from botocore.exceptions import ClientError

    from bootstrap.deploy.workspace import DeployError
    from tests.test_deploy import FakeWorld

    class MasterSecretGone(FakeWorld):
        def rotate(self, role: str) -> None:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "Secrets Manager can't find the specified secret."}},
                              "DescribeSecret")

    w = MasterSecretGone()
    w.exists_ = True
    with pytest.raises(DeployError) as failed:
        w.deployer([]).deploy()
    text = str(failed.value)
    assert text.startswith("phase 2/5 (rotating master) failed: AWS DescribeSecret failed: ResourceNotFoundException")
    assert "Done so far: infrastructure deployed without the app database" in text
    assert text.endswith("run `python -m bootstrap deploy --stack dev` to go on from phase 2/5")


@pytest.mark.parametrize("op", ["preview", "up", "drift", "destroy"])
def test_h_plain_operations_with_the_app_database_open_the_route(op: str, tmp_path: Path) -> None:
    import contextlib
    from types import SimpleNamespace

    from bootstrap.deploy.deployer import Deployer
    from config.stack_file import read_stack_file
    from tests.deploy_world import edit_stack_file
    from tests.test_deploy import FakeStack, FakeWorld

    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        (tmp_path / name).write_bytes((Path(__file__).parents[1] / name).read_bytes())
    edit_stack_file(tmp_path / "Pulumi.dev.yaml", appDbEnabled="true")
    opened: list[dict[str, str]] = []
    routes: list[str] = []

    class Recording(FakeWorld):
        def open(self, extra_env: Mapping[str, str] | None = None) -> FakeStack:
            opened.append(dict(extra_env or {}))
            return super().open(extra_env)

    @contextlib.contextmanager
    def tunnel(outputs: Any) -> Any:
        routes.append("open")
        yield SimpleNamespace(pulumi_env=lambda environ=None: {"ALL_PROXY": "socks5h://127.0.0.1:41080"})
        routes.append("closed")

    w = Recording(deployed=True)
    Deployer(read_stack_file("dev", tmp_path), w, lambda: w, w.audit, out=lambda line: None, assume_yes=True, route=tunnel,
             allow_data_loss=True).single(  # destroy deletes the database: the data-loss gate (docs/data-loss.md) is not under test
        op, lambda app_db: {"PGPASSWORD": "from-secrets-manager"} if app_db else {})
    assert routes == ["open", "closed"]
    assert {"PGPASSWORD": "from-secrets-manager", "ALL_PROXY": "socks5h://127.0.0.1:41080"} in opened


def test_h_plan_json_has_a_schema_version_and_matches_the_documented_schema(capsys: pytest.CaptureFixture[str]) -> None:
    import fastjsonschema

    from bootstrap.cli.main import main
    from bootstrap.plan.report import JSON_SCHEMA_VERSION

    docs = Path(__file__).parents[1] / "docs"
    validate = fastjsonschema.compile(json.loads((docs / "plan-json.schema.json").read_text()))
    for stack in ("dev", "prod"):
        capsys.readouterr()
        rc = main(["plan", "--stack", stack, "--json", "--strict"])
        doc = json.loads(capsys.readouterr().out)
        assert rc == (4 if doc["prerequisites"] else 0)  # prod's example certificate is a placeholder
        validate(doc)  # raises with the failing path
        assert doc["schemaVersion"] == JSON_SCHEMA_VERSION == 1
    documented = (docs / "plan-json.md").read_text()
    for field_ in json.loads((docs / "plan-json.schema.json").read_text())["required"]:
        assert f"`{field_}`" in documented, field_


# Item 2: the double's refresh events are the engine's -----------------------------------------
def test_item_2_the_doubles_refresh_events_put_the_outcome_in_the_outputs_event(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The shapes of pkg/engine/lifecycletest/testdata/output/TestRefreshBasics/3-0-0-preview/eventstream.json
    (pulumi/pulumi), read back through the real SDK: a pre-event says `refresh`, the outcome follows."""
    d = pulumi_double
    up_stack(d, monkeypatch, capsys)
    d.cloud({"::shop-dev-database-instance": None, "::shop-dev-network-vpc": {"inputs": {"enableDnsHostnames": False}}})
    stack = auto.select_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_CONFIG_PASSPHRASE": PASS}))
    seen: list[EngineEvent] = []
    result = stack.preview_refresh(on_event=seen.append)
    pre = {e.resource_pre_event.metadata.urn: e.resource_pre_event for e in seen if e.resource_pre_event}
    done = {e.res_outputs_event.metadata.urn: e.res_outputs_event for e in seen if e.res_outputs_event}
    assert pre and {p.metadata.op.value for p in pre.values()} == {"refresh"} and set(done) == set(pre)
    assert all(p.planning for p in pre.values())
    outcome = {urn.rsplit("::", 1)[-1]: o.metadata.op.value for urn, o in done.items()}
    assert outcome["shop-dev-database-instance"] == "delete" and outcome["shop-dev-network-vpc"] == "update"
    assert {v for k, v in outcome.items() if k not in ("shop-dev-database-instance", "shop-dev-network-vpc")} == {"same"}
    gone = next(o for urn, o in done.items() if urn.endswith("::shop-dev-database-instance"))
    assert gone.metadata.new is None and gone.metadata.old is not None
    assert result.change_summary.get(auto.events.OpType.DELETE) == 1

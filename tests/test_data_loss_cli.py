"""Issue 28 item 4, end to end: `python -m bootstrap up|destroy` under the `pulumi` double and the
real Automation API. A preview that replaces or deletes a resource holding data is refused even
with --yes, naming what would be lost; --allow-data-loss on top of --yes lets it run."""

from __future__ import annotations

import pytest
import yaml
from pulumi import automation as auto

from tests.deploy_world import edit_stack_file, run
from tests.pulumi_double.fixture import Double

PASS = "data loss passphrase"


@pytest.fixture
def dev(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch) -> Double:
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_CONFIG_PASSPHRASE": PASS}))
    return d


def _applied(d: Double, op: str) -> list[dict]:
    """Calls of `pulumi <op>` that changed something (not --preview-only / `preview`)."""
    return [c for c in d.ops(op) if "--preview-only" not in c["argv"]]


def _instance_ids(d: Double) -> list[str]:
    return [r["id"] for r in d.resources() if r["type"] == "aws:rds/instance:Instance"]


def _db_identifier(d: Double) -> str:
    [instance] = [r for r in d.resources() if r["type"] == "aws:rds/instance:Instance"]
    return str((instance.get("outputs") or {}).get("identifier") or instance["inputs"]["identifier"])


def test_destroy_needs_allow_data_loss_on_top_of_yes(dev: Double, capsys: pytest.CaptureFixture[str]) -> None:
    d = dev
    assert run(d, capsys, "up", "--stack", "dev", "--yes")[0] == 0  # a first up creates: nothing to lose
    before = d.resources()
    rc, out, err = run(d, capsys, "destroy", "--stack", "dev", "--yes")
    assert rc == 1
    assert "refusing to destroy stack dev: it would delete or replace" in err and "--allow-data-loss" in err
    assert "shop-dev-database-instance (aws:rds/instance:Instance, delete)" in err and "aws:kms/key:Key" in err
    assert "nothing was changed" in err and "Traceback" not in err
    assert "delete   aws:rds/instance:Instance shop-dev-database-instance" in out  # the preview was shown first
    assert _applied(d, "destroy") == [] and d.resources() == before
    rc, out, err = run(d, capsys, "destroy", "--stack", "dev", "--yes", "--allow-data-loss")
    assert rc == 0, err
    assert "--allow-data-loss: destroy stack dev will delete or replace" in out
    assert d.resources() == []


def test_an_up_that_deletes_data_needs_allow_data_loss(dev: Double, capsys: pytest.CaptureFixture[str]) -> None:
    """Turning the access path off deletes its log group (stateful): refused with --yes alone,
    done with --allow-data-loss on top."""
    d = dev
    assert run(d, capsys, "up", "--stack", "dev", "--yes")[0] == 0
    ups = len(_applied(d, "up"))
    edit_stack_file(d.project / "Pulumi.dev.yaml", dbAccess=False)
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 1 and "refusing to up stack dev: it would delete or replace" in err and "aws:cloudwatch/logGroup:LogGroup, delete)" in err
    assert len(_applied(d, "up")) == ups  # nothing ran
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes", "--allow-data-loss")
    assert rc == 0, err
    assert "--allow-data-loss: up stack dev will delete or replace" in out and len(_applied(d, "up")) == ups + 1


def test_a_replacement_under_the_same_name_is_refused_even_with_the_flag(dev: Double, capsys: pytest.CaptureFixture[str]) -> None:
    """A new master user name replaces the DB instance; Pulumi creates the replacement before it
    deletes, under the same identifier, which RDS refuses (DBInstanceAlreadyExists, as the double
    answers): so the up would fail half-way. Refused before the update, flag or not, saying why and
    what to do. Mutation tried: dropping the collision check lets the flagged up reach the double's
    DBInstanceAlreadyExists."""
    d = dev
    assert run(d, capsys, "up", "--stack", "dev", "--yes")[0] == 0
    first = _instance_ids(d)
    ups = len(_applied(d, "up"))
    identifier = _db_identifier(d)
    before = yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())["config"]["pghome:dbMasterUsername"]
    edit_stack_file(d.project / "Pulumi.dev.yaml", dbMasterUsername="shop_admin2")
    for flags in (["--yes"], ["--yes", "--allow-data-loss"]):
        rc, out, err = run(d, capsys, "up", "--stack", "dev", *flags)
        assert rc == 1, err
        assert (f"refusing to up stack dev: shop-dev-database-instance (aws:rds/instance:Instance) would be replaced (username changed) by a new "
                f"resource under the same name {identifier}, which AWS refuses while the old one still exists") in err
        assert "python -m bootstrap restore" in err and "nothing was changed" in err and "DBInstanceAlreadyExists" not in err
        assert f"WARNING: shop-dev-database-instance (aws:rds/instance:Instance) would be replaced under the same name {identifier}" in out
        assert len(_applied(d, "up")) == ups and _instance_ids(d) == first  # nothing ran
    rc, out, err = run(d, capsys, "preview", "--stack", "dev")  # preview shows it, and succeeds: it changes nothing
    assert rc == 0 and f"would be replaced under the same name {identifier}" in out
    edit_stack_file(d.project / "Pulumi.dev.yaml", dbMasterUsername=before)  # reverting, as the sentence says, leaves nothing to replace
    assert run(d, capsys, "up", "--stack", "dev", "--yes")[0] == 0 and _instance_ids(d) == first


def test_refresh_takes_no_such_flag(dev: Double, capsys: pytest.CaptureFixture[str]) -> None:
    """refresh only rewrites the state; the flag is not offered where it means nothing."""
    with pytest.raises(SystemExit) as exc:
        run(dev, capsys, "refresh", "--stack", "dev", "--yes", "--allow-data-loss")
    assert exc.value.code == 2 and "unrecognized arguments: --allow-data-loss" in capsys.readouterr().err

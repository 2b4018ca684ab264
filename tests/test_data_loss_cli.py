"""Issue 28 item 4, end to end: `python -m bootstrap up|destroy` under the `pulumi` double and the
real Automation API. A preview that replaces or deletes a resource holding data is refused even
with --yes, naming what would be lost; --allow-data-loss on top of --yes lets it run."""

from __future__ import annotations

import pytest
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


def test_an_up_that_replaces_the_database_needs_allow_data_loss(dev: Double, capsys: pytest.CaptureFixture[str]) -> None:
    d = dev
    assert run(d, capsys, "up", "--stack", "dev", "--yes")[0] == 0
    first = _instance_ids(d)
    ups = len(_applied(d, "up"))
    edit_stack_file(d.project / "Pulumi.dev.yaml", dbMasterUsername="shop_admin2")  # RDS: a new master user name replaces the instance
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 1 and "refusing to up stack dev" in err
    assert "shop-dev-database-instance (aws:rds/instance:Instance, replace)" in err
    assert len(_applied(d, "up")) == ups and _instance_ids(d) == first  # nothing ran
    # allowed, the up runs; the double then answers as RDS does for a named instance replaced
    # create-before-delete (the identifier is taken), which is the next thing the operator sees
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes", "--allow-data-loss")
    assert "--allow-data-loss: up stack dev will delete or replace" in out
    assert len(_applied(d, "up")) == ups + 1
    assert rc == 0 or "DBInstanceAlreadyExists" in err


def test_refresh_takes_no_such_flag(dev: Double, capsys: pytest.CaptureFixture[str]) -> None:
    """refresh only rewrites the state; the flag is not offered where it means nothing."""
    with pytest.raises(SystemExit) as exc:
        run(dev, capsys, "refresh", "--stack", "dev", "--yes", "--allow-data-loss")
    assert exc.value.code == 2 and "unrecognized arguments: --allow-data-loss" in capsys.readouterr().err

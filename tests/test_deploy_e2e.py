"""`python -m bootstrap deploy` end to end: the real Automation API against the `pulumi` double,
moto for Secrets Manager and RDS, the real PostgreSQL. First deploy, second deploy, and a deploy
resumed after a failure in each phase."""

from __future__ import annotations

import pytest
import yaml

from components.pgmodel import PINNED_SEARCH_PATH_OPTIONS
from dbcore.secret import RotationError
from tests.deploy_world import deploy_world, stack_outputs
from tests.pgserver import PgServer
from tests.pulumi_double.fixture import Double


def test_first_then_second_deploy(pg: PgServer, pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    with deploy_world(pg, d, monkeypatch, capsys) as w:
        before = yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())
        initial = w.master_password()
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 0, err + out
        assert "a first deploy creates it (`pulumi stack init`)" in out and "first deploy (phases 1-5)" in out
        cmds = d.commands()
        assert ["stack", "init", "dev", "--secrets-provider", "passphrase"] in cmds  # created once, by the first deploy only
        ups = w.up_calls()
        assert len(ups) == 2 and all("--config-file" in c["argv"] and "--event-log" in c["argv"] for c in ups)
        # PGPASSWORD reaches only the phase-3 CLI process, and it is the rotated master password
        assert "PGPASSWORD" not in ups[0]["env"]
        from tests.pulumi_double.double import digest

        assert ups[1]["env"]["PGPASSWORD"] == digest(w.master_password()) != digest(initial)
        # ...with the master's search_path pinned for every provider connection (issue 24)
        assert ups[1]["env"]["PGOPTIONS"] == PINNED_SEARCH_PATH_OPTIONS and "PGOPTIONS" not in ups[0]["env"]
        # the default backend (nothing configured): the project's local file backend
        assert ups[0]["env"]["PULUMI_BACKEND_URL"] == f"file://{d.project / '.pulumi-state'}"
        state = (d.project / ".pulumi-state/.pulumi/stacks/pghome/dev.json")
        types = {r["type"] for r in yaml.safe_load(state.read_text())["checkpoint"]["latest"]["resources"]}
        assert "postgresql:index/role:Role" in types and "aws:rds/instance:Instance" in types
        # the stack file was not edited (only the passphrase salt `stack init` records)
        after = yaml.safe_load((d.project / "Pulumi.dev.yaml").read_text())
        assert after["config"] == before["config"] and set(after) - set(before) == {"encryptionsalt"}
        # every password rotated, the audit passed, progress and summary shown
        for role in ("app", "migrator"):
            secret = w.world.secret(role)
            assert secret is not None and secret["password"] and w.world.can_login_with_any(role)
        assert not pg.can_login(w.world.master, initial)
        assert "audit: 0 live, 0 unverifiable" in out
        assert "phase 1/5 done:" in out and " created" in out and "s] create   aws:rds/instance:Instance" in out

        # second deploy: phases 3-5 only, nothing to change, no rotation due
        n_calls = len(d.calls())
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 0, err + out
        assert "later deploy (phases 3-5)" in out and "[phase 3/5] no changes" in out and "rotation not due" in out
        later = d.commands()[n_calls:]
        assert not any(c[:2] == ["stack", "init"] for c in later) and not any(c[:1] == ["up"] for c in later)


def _state_types(d: Double) -> set[str]:
    path = d.project / ".pulumi-state/.pulumi/stacks/pghome/dev.json"
    return {r["type"] for r in yaml.safe_load(path.read_text())["checkpoint"]["latest"].get("resources") or []}


def test_resume_after_a_failure_in_each_phase(pg: PgServer, pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    with deploy_world(pg, d, monkeypatch, capsys) as w:
        # phase 1: the RDS instance fails to create; what was created stays in the state
        monkeypatch.setenv("PULUMI_DOUBLE_FAIL_ON", "aws:rds/instance:Instance")
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 1 and "Traceback" not in err
        assert err.startswith("error: phase 1/5 (infrastructure without the app database) failed: create of ") and "-dev-database-instance failed" in err
        assert "Done so far: no phase completed in this run" in err and "`python -m bootstrap deploy --stack dev`" in err
        assert "aws:ec2/vpc:Vpc" in _state_types(d)
        monkeypatch.delenv("PULUMI_DOUBLE_FAIL_ON")

        # phase 2: the master rotation fails once (RDS refuses)
        real = w.world.admin.set_master_password

        def refuse(instance_id: str, password: str) -> None:
            raise RotationError("RDS refused to change the master password of shop-dev-db (InvalidDBInstanceState: modifying)")

        w.world.admin.set_master_password = refuse  # type: ignore[method-assign]  # RDS refuses once; restored below
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 1 and err.startswith("error: phase 2/5 (rotating master) failed: RDS refused")
        assert "Done so far: infrastructure deployed without the app database" in err
        w.world.admin.set_master_password = real  # type: ignore[method-assign]

        # phase 3: a postgresql role fails; the master was rotated in this run and the message says so
        monkeypatch.setenv("PULUMI_DOUBLE_FAIL_ON", "postgresql:index/role:Role")
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 1 and err.startswith("error: phase 3/5 (app database, roles and grants) failed:")
        assert "Done so far: master password rotated" in err and "nothing was rotated" not in err
        monkeypatch.delenv("PULUMI_DOUBLE_FAIL_ON")

        # phase 4: the app role's rotation fails once
        from bootstrap.rotation.local import Rotator

        original = Rotator.rotate

        def flaky(self: Rotator, role: str) -> None:
            if role == "migrator":
                raise RotationError("the database rejected the AWSPENDING password of x/db/migrator; re-run the rotation")
            original(self, role)

        monkeypatch.setattr(Rotator, "rotate", flaky)
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 1 and err.startswith("error: phase 4/5 (rotating migrator) failed:")
        assert "Done so far: app database deployed; app password rotated" in err
        monkeypatch.setattr(Rotator, "rotate", original)

        # and the next run finishes: migrator gets its first password, the audit passes
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 0, err + out
        assert "[phase 4/5] rotate migrator" in out and "audit: 0 live" in out
        assert w.world.can_login_with_any("migrator")
        assert stack_outputs(d)["appDbEnabled"] is True

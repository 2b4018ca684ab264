"""Rotation against moto (Secrets Manager, RDS) and the real local PostgreSQL standing in for RDS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from moto import mock_aws
from psycopg import sql

from bootstrap.plan.mockgraph import Graph
from bootstrap.rotation.local import Endpoint, Rotator
from dbcore import password_policy
from dbcore.rds_admin import RdsAdmin
from dbcore.secret import RotationError, new_password
from dbcore.verifier import scram_verifier
from tests.helpers import one_row
from tests.pgserver import PgServer
from tests.rotation_world import KilledError, World, make_world


@pytest.fixture
def world(pg: PgServer) -> Iterator[World]:
    with make_world(pg) as w:
        yield w


def test_libpq_verifier_logs_in_and_no_clear_text_reaches_the_server(pg: PgServer) -> None:
    """The verifier libpq makes (dbcore/verifier.py) is accepted by this major as a SCRAM secret, the
    password then logs in over SCRAM, and the server (log_statement=all) never saw the password."""
    role = "scram_probe_" + uuid.uuid4().hex[:6]
    pw = new_password()
    with pg.connect_super() as conn:
        verifier = scram_verifier(conn, role, pw)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname=%s", (role,)).fetchone()
    try:
        assert verifier.startswith("SCRAM-SHA-256$4096:") and pw not in verifier
        assert stored and stored[0] == verifier  # stored as given: the server did not hash anything itself
        assert pg.can_login(role, pw) and not pg.can_login(role, pw + "x")
        log = pg.log_file.read_text(errors="replace")
        assert verifier.split("$")[1] in log, "the statement log must show the ALTER/CREATE (else this proves nothing)"
        assert pw not in log
    finally:
        with pg.connect_super() as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_password_generator() -> None:
    pws = {new_password() for _ in range(50)}
    assert len(pws) == 50
    for pw in pws:
        assert len(pw) >= 40 and set(pw) <= set(password_policy.ALPHABET)
        assert password_policy.meets_policy(pw)
        # RDS forbids / @ " and space; $ & ` ; \\ and quotes would need quoting in conninfo and shells
        assert not set(pw) & set('/@" $&`;\\\'')


def test_one_password_policy_for_the_generated_master_and_rotation(dev_graph: Graph) -> None:
    """The master's RandomPassword and rotation draw from the same policy (dbcore/password_policy.py)."""
    rp = dev_graph.one("random:index/randomPassword:RandomPassword")
    assert rp.inputs["length"] == password_policy.LENGTH
    assert rp.inputs["overrideSpecial"] == password_policy.SPECIALS
    for key in ("minLower", "minUpper", "minNumeric", "minSpecial"):
        assert rp.inputs[key] == password_policy.MIN_EACH_CLASS
    assert not password_policy.meets_policy("short1!A")
    assert not password_policy.meets_policy("a" * 38 + "$A")


def test_full_rotation_master_then_login_roles(world: World, pg: PgServer) -> None:
    # The master's real path on this major: not a superuser, and (16+) ADMIN on the roles it created.
    from dbcore.pgadmin import roles_without_admin

    logins = [world.rotator().username(r) for r in ("app", "migrator")]
    with pg.connect_as(world.master, world.initial_master_password) as conn:
        assert one_row(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))[0] is False
        assert roles_without_admin(conn, logins) == []
        if pg.major >= 16:
            assert one_row(conn.execute("SELECT bool_and(pg_has_role(current_user, r, 'USAGE WITH ADMIN OPTION')) FROM unnest(%s::text[]) r", (logins,)))[0]
    lines: list[str] = []
    rot = world.rotator(out=lines.append)
    for role in ("master", "app", "migrator"):
        rot.rotate(role)
    master = world.secret("master")
    assert master and master["password"] != world.initial_master_password
    assert pg.can_login(world.master, master["password"])
    assert not pg.can_login(world.master, world.initial_master_password), "state's initial password must be dead"
    assert world.admin.calls == 1
    for role in ("app", "migrator"):
        s = world.secret(role)
        assert s and s["password"] and pg.can_login(s["username"], s["password"], s["dbname"])
        # connection fields rewritten from the master secret/config
        assert s["host"] == master["host"] and s["port"] == master["port"] and s["dbname"] == world.settings.app_database.name
        assert world.secret(role, "AWSPENDING") is None
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        assert any(step in line for line in lines)
    # a second rotation changes the password again: the migrator's old one dies; the app alternates
    # users, so its previous login keeps working (tasks hold it) until the next-but-one rotation
    old_migrator = world.secret("migrator")
    rot.rotate("migrator")
    assert old_migrator and not pg.can_login(old_migrator["username"], old_migrator["password"], old_migrator["dbname"])
    old = world.secret("app")
    assert old
    rot.rotate("app")
    new = world.secret("app")
    assert new and new["password"] != old["password"] and new["username"] != old["username"]
    assert pg.can_login(new["username"], new["password"], new["dbname"])
    assert pg.can_login(old["username"], old["password"], old["dbname"])
    rot.rotate("app")
    assert not pg.can_login(old["username"], old["password"], old["dbname"])
    # nothing secret in the progress output
    text = "\n".join(lines)
    for pw in (master["password"], new["password"], old["password"], world.initial_master_password):
        assert pw not in text


KILL_POINTS = ["createSecret", "setSecret", "testSecret", "promote", "finishSecret"]


@pytest.mark.parametrize("role", ["master", "app"])
@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_rotation_resumes_without_lockout(world: World, pg: PgServer, role: str, point: str) -> None:
    if role == "app":
        world.rotator().rotate("app")  # a first password, so "before" is a working login
    before = world.secret(role)
    assert before

    def hook(r: str, step: str) -> None:
        if r == role and step == point:
            raise KilledError(step)

    with pytest.raises(KilledError):
        world.rotator(hook=hook).rotate(role)
    # mid-rotation: something still works
    assert world.can_login_with_any(role)
    assert world.can_login_with_any("master"), "master locked out"
    if role == "app":
        # the login running tasks hold is never touched: the rotation changes the other user
        assert pg.can_login(before["username"], before["password"], before["dbname"])

    world.rotator().rotate(role)  # the re-run finishes
    after = world.secret(role)
    assert after and world.secret(role, "AWSPENDING") is None
    assert pg.can_login(after["username"], after["password"], after["dbname"])
    assert after["password"] != before["password"]
    # the master's old password dies; the app's previous user keeps working until the next-but-one
    # rotation (a kill after finishSecret means the re-run was that next one)
    still = role == "app" and point != "finishSecret"
    assert pg.can_login(before["username"], before["password"], before["dbname"]) is still


def test_login_rotation_while_master_rotation_is_half_done(world: World, pg: PgServer) -> None:
    """Master killed after setSecret: only its AWSPENDING works; login rotation must use it."""

    def hook(r: str, step: str) -> None:
        if step == "setSecret":
            raise KilledError(step)

    with pytest.raises(KilledError):
        world.rotator(hook=hook).rotate("master")
    cur, pending = world.secret("master"), world.secret("master", "AWSPENDING")
    assert cur and pending and not pg.can_login(world.master, cur["password"]) and pg.can_login(world.master, pending["password"])
    lines: list[str] = []
    world.rotator(out=lines.append).rotate("app")
    assert any("using AWSPENDING" in ln for ln in lines)
    app = world.secret("app")
    assert app and pg.can_login(app["username"], app["password"], app["dbname"])
    world.rotator().rotate("master")  # and the master rotation still finishes
    master = world.secret("master")
    assert master and master["password"] == pending["password"] and world.secret("master", "AWSPENDING") is None


def test_password_never_reaches_server_log_or_pg_stat_statements(world: World, pg: PgServer) -> None:
    with pg.connect_super() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    rot = world.rotator()
    for role in ("master", "app", "migrator"):
        rot.rotate(role)
    pws = [world.secret(r)["password"] for r in ("master", "app", "migrator")]  # type: ignore[index]
    log = pg.log_file.read_text(errors="replace")
    assert "ALTER ROLE" in log  # log_statement=all really logs what we sent
    with pg.connect_super() as conn:
        stmts = "\n".join(r[0] for r in conn.execute("SELECT query FROM pg_stat_statements").fetchall())
    assert "ALTER ROLE" in stmts
    for pw in pws:
        assert pw not in log
        assert pw not in stmts


def test_errors_are_one_sentence(world: World, pg: PgServer) -> None:
    # wrong stack: the secret carries another stack's tag
    name = f"{world.settings.prefix}/db/migrator"
    world.sm.tag_resource(SecretId=name, Tags=[{"Key": "Stack", "Value": "prod"}])
    with pytest.raises(RotationError, match="tagged for stack 'prod'"):
        world.rotator().rotate("migrator")
    # secret missing
    world.sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    with pytest.raises(RotationError, match="does not exist"):
        world.rotator().rotate("migrator")
    # unreachable
    bad = Rotator(world.settings, secrets_client=world.sm, admin=world.admin,
                  endpoint=Endpoint(host="127.0.0.1", port=1, sslmode="require", connect_timeout=2), out=lambda s: None)
    with pytest.raises(RotationError, match="unreachable"):
        bad.rotate("app")
    # password rejected: master secret no longer matches the DB and the admin cannot fix it
    with pg.connect_super() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(world.master), sql.Literal(scram_verifier(conn, world.master, new_password()))))
    with pytest.raises(RotationError, match="rejected"):
        world.rotator().rotate("app")


def test_cli_rotate_reports_missing_secret_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.main import main

    with mock_aws():
        rc = main(["rotate", "--stack", "dev", "--local", "--role", "app"])
    out = capsys.readouterr()
    assert rc == 1
    assert "does not exist" in out.out + out.err and "Traceback" not in out.out + out.err


def test_psycopg_auth_error_classification(pg: PgServer) -> None:
    from dbcore.secret import is_auth_failure

    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(pg.dsn("nobody_here", "x"))
    assert is_auth_failure(err.value)


def test_master_change_not_applied_is_a_clear_error_and_current_still_works(world: World, pg: PgServer) -> None:
    class NoopAdmin:  # RDS "accepted" the change but the database never applied it
        def set_master_password(self, instance_id: str, password: str) -> None:
            return None

    rot = Rotator(world.settings, secrets_client=world.sm, admin=NoopAdmin(), endpoint=world.endpoint, out=lambda s: None, master_test_timeout_s=0.3)
    with pytest.raises(RotationError, match="rejected the AWSPENDING password.*AWSCURRENT is unchanged"):
        rot.rotate("master")
    assert pg.can_login(world.master, world.initial_master_password)
    assert world.secret("master", "AWSPENDING")  # resumable: the next run reuses it
    world.rotator().rotate("master")
    assert not pg.can_login(world.master, world.initial_master_password)


class FakeRds:
    def __init__(self, states: list[tuple[str, dict[str, str]]]):
        self.states, self.modified = states, list[dict[str, object]]()

    def modify_db_instance(self, **kw: object) -> None:
        self.modified.append(kw)

    def describe_db_instances(self, DBInstanceIdentifier: str) -> dict[str, object]:  # noqa: N803
        status, pending = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"DBInstances": [{"DBInstanceStatus": status, "PendingModifiedValues": pending}]}


def test_rds_admin_waits_until_applied_and_is_bounded() -> None:
    rds = FakeRds([("available", {"MasterUserPassword": "****"}), ("resetting-master-credentials", {}), ("available", {})])
    RdsAdmin(rds, timeout_s=5, interval_s=0).set_master_password("db-1", "pw")
    assert rds.modified == [{"DBInstanceIdentifier": "db-1", "MasterUserPassword": "pw", "ApplyImmediately": True}]
    assert len(rds.states) == 1
    stuck = FakeRds([("modifying", {})])
    with pytest.raises(RotationError, match="did not apply the new master password"):
        RdsAdmin(stuck, timeout_s=0.05, interval_s=0.01).set_master_password("db-1", "pw")

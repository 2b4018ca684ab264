"""A major-version upgrade, for real: a cluster set up on 15 the way the product sets it up (the
RDS-like master creates every role, applies the model, rotates the logins), then `pg_upgrade`d to
this run's major (what an RDS major-version upgrade runs). On 16+ the master has lost ADMIN
OPTION on the roles it created: the rotation and the model stop with one sentence and the repair,
change nothing, and work again once the master itself ran the repair (as RDS lets an
rds_superuser member do); every membership keeps its ADMIN/INHERIT/SET options throughout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from components.pgmodel import DbModel
from components.pgsql import admin_repair_sql
from dbcore.alternating import other_user
from dbcore.pgadmin import AdminOptionError, grant_admin, roles_without_admin
from dbcore.secret import RotationError
from tests.helpers import one_row
from tests.pgserver import RDS_SUPERUSER, PgServer
from tests.rotation_world import World, make_world
from tests.test_app_database_pg import apply_model, catalog_snapshot

OLD_MAJOR = 15  # the newest major on which CREATEROLE alone administers every role


@dataclass
class Upgraded:
    """The upgraded cluster, with what was observed before any test ran. The module's tests used to
    depend on their order (the last one repaired what the earlier ones needed broken); now the
    broken state is probed here, once, and recorded, so each test reads its own facts whatever runs
    first (`-k`, xdist, a random order). Checked by running the four tests in reverse order (the
    repair first): all pass; the old module failed that way, its probes reading a repaired cluster."""

    server: PgServer
    world: World
    model: DbModel
    seconds: float
    before: dict
    after_upgrade: dict  # catalog snapshot right after pg_upgrade
    app_login_after_upgrade: bool  # the app's AWSCURRENT password still logs in
    lacking: list[str]  # roles the master lacks ADMIN OPTION on, right after the upgrade
    app_before: dict
    rotation_error: str  # what rotating app said while ADMIN was missing
    app_after_refusal: dict | None
    app_login_after_refusal: bool
    model_error: str  # what applying the model said while ADMIN was missing
    after_refusals: dict  # catalog snapshot after both refusals
    grant_error: str  # what the master's own repair attempt said
    lacking_after_grant: int


def _error(call) -> str:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 (recorded; each test asserts the type through the text)
        return f"{type(exc).__name__}: {exc}"
    return ""


@pytest.fixture(scope="module")
def upgraded(pg: PgServer) -> Iterator[Upgraded]:
    if pg.major <= OLD_MAJOR:
        pytest.skip(f"this run's server is PostgreSQL {pg.major}: no upgrade to 16+ to test (the 16, 17 and 18 runs do)")
    old = PgServer.start(OLD_MAJOR)
    try:
        with make_world(old) as world:
            model = world.settings.app_database.model()
            assert apply_model(old, model, world.initial_master_password) == []
            world.rotator().rotate("app")
            world.rotator().rotate("migrator")
            migrator = world.secret("migrator")
            assert migrator
            with psycopg.connect(old.dsn(migrator["username"], migrator["password"], model.database), autocommit=True) as conn:
                conn.execute("CREATE TABLE carried (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text)")
            before = catalog_snapshot(old, model)
            seconds = old.upgrade(pg.major)
            after_upgrade = catalog_snapshot(old, model)
            app = world.secret("app")
            app_login_after_upgrade = bool(app and old.can_login(app["username"], app["password"], app["dbname"]))
            names = sorted(r.name for r in model.roles)
            with old.connect_as(world.master, world.initial_master_password) as conn:
                lacking = roles_without_admin(conn, names)
            app_before = world.secret("app")
            assert app_before
            rotation_error = _error(lambda: world.rotator().rotate("app"))
            app_after = world.secret("app")
            login_ok = old.can_login(app_before["username"], app_before["password"], app_before["dbname"])
            model_error = _error(lambda: apply_model(old, model, world.initial_master_password))
            after_refusals = catalog_snapshot(old, model)
            with old.connect_as(world.master, world.initial_master_password) as conn:
                grant_error = _error(lambda: grant_admin(conn, names))
                lacking_after_grant = len(roles_without_admin(conn, names))
            yield Upgraded(old, world, model, seconds, before, after_upgrade, app_login_after_upgrade, lacking, app_before, rotation_error, app_after, login_ok,
                           model_error, after_refusals, grant_error, lacking_after_grant)
    finally:
        old.stop()


def comparable(snapshot: dict, owner: str) -> dict:
    """The snapshot without the owner's grants to itself: implicit, and a newer major may add
    privileges to them (17: MAINTAIN on tables)."""

    def strip(value: object) -> object:
        if isinstance(value, tuple) and value and all(isinstance(v, str) for v in value) and any("=" in v for v in value):
            return tuple(v for v in value if not (v.startswith(f"{owner}=") and v.endswith(f"/{owner}")))
        if isinstance(value, (list, tuple)):
            return type(value)(strip(v) for v in value)
        return value

    return {k: strip(v) for k, v in snapshot.items()}


def master_conn(u: Upgraded) -> psycopg.Connection:
    return u.server.connect_as(u.world.master, u.world.initial_master_password)


def test_the_cluster_really_moved_to_this_major_with_its_roles(upgraded: Upgraded, pg: PgServer) -> None:
    with master_conn(upgraded) as conn:
        assert int(one_row(conn.execute("SHOW server_version_num"))[0]) // 10000 == pg.major
    owner = upgraded.model.owner
    assert comparable(upgraded.after_upgrade, owner) == comparable(upgraded.before, owner)
    assert upgraded.app_login_after_upgrade
    print(f"pg_upgrade {OLD_MAJOR} -> {pg.major}: {upgraded.seconds:.1f}s")


def test_after_the_upgrade_the_master_lacks_admin_and_both_paths_stop_with_one_sentence(upgraded: Upgraded) -> None:
    names = sorted(r.name for r in upgraded.model.roles)
    assert upgraded.lacking == names
    app_before = upgraded.app_before
    # the rotation: one sentence naming the role it would change (the inactive one of the alternating
    # pair, dbcore/alternating.py) and the repair; AWSCURRENT untouched and working
    text = upgraded.rotation_error
    target = other_user(app_before["username"])
    assert text.startswith(f"{RotationError.__name__}: ") and "lacks ADMIN OPTION" in text and f"on {target}," in text
    assert f'GRANT "{target}" TO "{upgraded.world.master}" WITH ADMIN OPTION' in text
    assert "\n" not in text
    assert upgraded.app_after_refusal == app_before
    assert upgraded.app_login_after_refusal
    # the model: the first step refuses, naming every role, before anything changed
    assert upgraded.model_error.startswith(f"{psycopg.errors.InsufficientPrivilege.__name__}: ") and "lacks ADMIN OPTION on " + ", ".join(names) in upgraded.model_error
    owner = upgraded.model.owner
    assert comparable(upgraded.after_refusals, owner) == comparable(upgraded.before, owner)


def test_the_repair_is_refused_to_a_plain_createrole_master_with_a_clear_sentence(upgraded: Upgraded) -> None:
    assert re.search(rf"^{AdminOptionError.__name__}: .*refused to give .* ADMIN OPTION .*only RDS.*superuser must run: GRANT", upgraded.grant_error)
    assert upgraded.lacking_after_grant == len(upgraded.model.roles)


def rds_superuser_administers(u: Upgraded, names: list[str]) -> None:
    """What RDS gives the rds_superuser group and a community server cannot: the power to
    administer the roles rdsadmin does not own. Expressed here as ADMIN OPTION held by the group
    (INHERIT FALSE, SET FALSE: administering, not acting as, the roles), granted by the test's
    superuser playing rdsadmin, and only now: until here the master lacked ADMIN, as after a
    real upgrade. From here on only the master acts."""
    with u.server.connect_super() as conn:
        for name in names:
            conn.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE").format(sql.Identifier(name), sql.Identifier(RDS_SUPERUSER)))


def test_after_the_repair_by_the_master_rotation_and_model_work_and_change_nothing_else(upgraded: Upgraded) -> None:
    names = [r.name for r in upgraded.model.roles]
    master = upgraded.world.master
    rds_superuser_administers(upgraded, names)
    # the repair, run by the rds_superuser-like master itself (not a superuser)
    with master_conn(upgraded) as conn:
        assert one_row(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))[0] is False
        member_of = {r[0] for r in conn.execute(
            "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)")}
        for statement in admin_repair_sql(master, names, member_of):
            conn.execute(statement)  # type: ignore[arg-type]
        assert roles_without_admin(conn, names) == []
        # the master gained ADMIN, not the login roles' privileges
        assert one_row(conn.execute("SELECT pg_has_role(current_user, %s, 'USAGE')", (upgraded.world.settings.app_database.role_prefix + "_app",)))[0] is False
        assert grant_admin(conn, names) == []  # nothing left to repair
    old = upgraded.world.secret("app")
    upgraded.world.rotator().rotate("app")
    new = upgraded.world.secret("app")
    assert old and new and new["password"] != old["password"] and new["username"] == other_user(old["username"])
    assert upgraded.server.can_login(new["username"], new["password"], new["dbname"])
    # alternating: the previous login keeps working for the tasks that hold it until the next-but-one rotation
    assert upgraded.server.can_login(old["username"], old["password"], old["dbname"])
    assert apply_model(upgraded.server, upgraded.model, upgraded.world.initial_master_password) == []
    after = comparable(catalog_snapshot(upgraded.server, upgraded.model), upgraded.model.owner)
    before = comparable(upgraded.before, upgraded.model.owner)
    # Every membership kept its ADMIN/INHERIT/SET options; the only new ones are the repair's
    # (ADMIN for the master; a membership it had, owner, keeps INHERIT and SET) and the emulation's.
    added = [(n, master, True, n in member_of, n in member_of) for n in names] + [(n, RDS_SUPERUSER, True, False, False) for n in names]
    assert sorted(after.pop("members")) == sorted(before.pop("members") + added)
    assert after == before
    # the options hold: the migrator reaches owner only by SET ROLE, never by inheritance
    assert_migrator_holds_nothing_outside_owner(upgraded)


def assert_migrator_holds_nothing_outside_owner(u: Upgraded) -> None:
    migrator = u.world.secret("migrator")
    assert migrator
    with psycopg.connect(u.server.dsn(migrator["username"], migrator["password"], u.model.database), autocommit=True) as conn:
        conn.execute("SET ROLE NONE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"CREATE TABLE {u.model.schema}.not_owned (id int)")  # type: ignore[arg-type]


def test_the_comparison_sees_a_membership_whose_inherit_option_changed(upgraded: Upgraded) -> None:
    # the attack on this test: the migrator's membership in owner switched to INHERIT TRUE
    owner, migrator = upgraded.model.owner, upgraded.world.settings.app_database.role_prefix + "_migrator"
    before = comparable(catalog_snapshot(upgraded.server, upgraded.model), owner)
    flip = "GRANT {} TO {} WITH INHERIT {}"
    with upgraded.server.connect_super() as conn:
        conn.execute(sql.SQL(flip.format("{}", "{}", "TRUE")).format(sql.Identifier(owner), sql.Identifier(migrator)))  # type: ignore[arg-type]
    try:
        flipped = comparable(catalog_snapshot(upgraded.server, upgraded.model), owner)
        assert flipped["members"] != before["members"]
        assert flipped["roles"] == before["roles"]  # the role attributes alone would not tell
        migrator_secret = upgraded.world.secret("migrator")
        assert migrator_secret
        with psycopg.connect(upgraded.server.dsn(migrator_secret["username"], migrator_secret["password"], upgraded.model.database), autocommit=True) as conn:
            conn.execute("SET ROLE NONE")
            conn.execute(f"CREATE TABLE {upgraded.model.schema}.owned_by_inheritance (id int)")  # type: ignore[arg-type]
            conn.execute(f"DROP TABLE {upgraded.model.schema}.owned_by_inheritance")  # type: ignore[arg-type]
    finally:
        with upgraded.server.connect_super() as conn:
            conn.execute(sql.SQL(flip.format("{}", "{}", "FALSE")).format(sql.Identifier(owner), sql.Identifier(migrator)))  # type: ignore[arg-type]
    assert comparable(catalog_snapshot(upgraded.server, upgraded.model), owner) == before
    assert_migrator_holds_nothing_outside_owner(upgraded)

"""A major-version upgrade, for real: a cluster set up on 15 the way the product sets it up (the
RDS-like master creates every role, applies the model, rotates the logins), then `pg_upgrade`d to
this run's major (what an RDS major-version upgrade runs). On 16+ the master has lost ADMIN
OPTION on the roles it created: the rotation and the model stop with one sentence and the repair,
change nothing, and work again once the master itself ran the repair (as RDS lets an
rds_superuser member do); every membership keeps its ADMIN/INHERIT/SET options throughout."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from components.pgmodel import DbModel
from components.pgsql import admin_repair_sql
from dbcore.pgadmin import AdminOptionError, grant_admin, roles_without_admin
from dbcore.secret import RotationError
from tests.pgserver import RDS_SUPERUSER, PgServer
from tests.rotation_world import World, make_world
from tests.test_app_database_pg import apply_model, catalog_snapshot

OLD_MAJOR = 15  # the newest major on which CREATEROLE alone administers every role


@dataclass
class Upgraded:
    server: PgServer
    world: World
    model: DbModel
    seconds: float
    before: dict


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
            yield Upgraded(old, world, model, seconds, before)
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
        assert int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000 == pg.major
    owner = upgraded.model.owner
    assert comparable(catalog_snapshot(upgraded.server, upgraded.model), owner) == comparable(upgraded.before, owner)
    app = upgraded.world.secret("app")
    assert app and upgraded.server.can_login(app["username"], app["password"], app["dbname"])
    print(f"pg_upgrade {OLD_MAJOR} -> {pg.major}: {upgraded.seconds:.1f}s")


def test_after_the_upgrade_the_master_lacks_admin_and_both_paths_stop_with_one_sentence(upgraded: Upgraded) -> None:
    names = sorted(r.name for r in upgraded.model.roles)
    with master_conn(upgraded) as conn:
        assert roles_without_admin(conn, names) == names
    app_before = upgraded.world.secret("app")
    # the rotation: one sentence naming the role and the repair; AWSCURRENT untouched and working
    with pytest.raises(RotationError) as err:
        upgraded.world.rotator().rotate("app")
    text = str(err.value)
    assert "lacks ADMIN OPTION" in text and app_before and app_before["username"] in text
    assert f'GRANT "{app_before["username"]}" TO "{upgraded.world.master}" WITH ADMIN OPTION' in text
    assert "\n" not in text
    assert upgraded.world.secret("app") == app_before
    assert upgraded.server.can_login(app_before["username"], app_before["password"], app_before["dbname"])
    # the model: the first step refuses, naming every role, before anything changed
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="lacks ADMIN OPTION on " + ", ".join(names)):
        apply_model(upgraded.server, upgraded.model, upgraded.world.initial_master_password)
    owner = upgraded.model.owner
    assert comparable(catalog_snapshot(upgraded.server, upgraded.model), owner) == comparable(upgraded.before, owner)


def test_the_repair_is_refused_to_a_plain_createrole_master_with_a_clear_sentence(upgraded: Upgraded) -> None:
    with master_conn(upgraded) as conn:
        with pytest.raises(AdminOptionError, match="refused to give .* ADMIN OPTION .*only RDS.*superuser must run: GRANT"):
            grant_admin(conn, [r.name for r in upgraded.model.roles])
        assert len(roles_without_admin(conn, [r.name for r in upgraded.model.roles])) == len(upgraded.model.roles)


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
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False
        member_of = {r[0] for r in conn.execute(
            "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)")}
        for statement in admin_repair_sql(master, names, member_of):
            conn.execute(statement)  # type: ignore[arg-type]
        assert roles_without_admin(conn, names) == []
        # the master gained ADMIN, not the login roles' privileges
        assert conn.execute("SELECT pg_has_role(current_user, %s, 'USAGE')", (upgraded.world.settings.app_database.role_prefix + "_app",)).fetchone()[0] is False
        assert grant_admin(conn, names) == []  # nothing left to repair
    old = upgraded.world.secret("app")
    upgraded.world.rotator().rotate("app")
    new = upgraded.world.secret("app")
    assert old and new and new["password"] != old["password"]
    assert upgraded.server.can_login(new["username"], new["password"], new["dbname"])
    assert not upgraded.server.can_login(old["username"], old["password"], old["dbname"])
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

"""Issue 24, item 1: the migrator must not take over the master's next re-apply.

The migrator's sessions act as owner, and owner owns the app database: it can put functions and
views named like catalog objects in the app schema and `ALTER DATABASE ... SET search_path = app,
pg_catalog`. A master session there that resolves names through that path runs the migrator's
code with the master's powers (CREATEROLE, membership in rds_superuser). The attack is planted
once per module; each test then acts as the master the way one of our paths does (the rendered
script through psql, the postgresql provider's own queries, the bootstrap connections) and checks
that no trap ran and the migrator gained nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from components.pgmodel import DbModel
from components.pgsql import render_sql
from dbcore import pgadmin, pgconn
from tests.helpers import isolated_model, one_row
from tests.pgserver import RDS_SUPERUSER, PgServer
from tests.test_app_database_pg import MASTER_PASSWORD, apply_model

MIGRATOR_PW = "hj-migrator-Pw-1"
CANARY_PW = "hj-canary-Pw-1"

# The trap: logs who ran it and, when that is the master, tries what the attacker did.
TRAP = """
CREATE TABLE app.hijack_log (who name, via text);
GRANT INSERT ON app.hijack_log TO PUBLIC;
CREATE FUNCTION app.hijack(via text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  IF session_user IN ({master}, 'hj_canary') THEN
    INSERT INTO app.hijack_log VALUES (session_user, via);
  END IF;
  IF session_user = {master} THEN
    BEGIN EXECUTE 'ALTER ROLE hj_migrator CREATEROLE CREATEDB'; EXCEPTION WHEN OTHERS THEN NULL; END;
    BEGIN EXECUTE 'GRANT {rds_superuser} TO hj_migrator'; EXCEPTION WHEN OTHERS THEN NULL; END;
  END IF;
  RETURN true;
END $f$;
-- functions our SQL and the provider call, with their exact argument types
CREATE FUNCTION app.pg_has_role(name, oid, text) RETURNS boolean LANGUAGE sql
  AS 'SELECT app.hijack(''pg_has_role'') AND pg_catalog.pg_has_role($1, $2, $3)';
CREATE FUNCTION app.current_setting(text) RETURNS text LANGUAGE sql
  AS 'SELECT pg_catalog.current_setting($1) WHERE app.hijack(''current_setting'')';
CREATE FUNCTION app.pg_get_userbyid(oid) RETURNS name LANGUAGE sql
  AS 'SELECT pg_catalog.pg_get_userbyid($1) WHERE app.hijack(''pg_get_userbyid'')';
CREATE FUNCTION app.pg_advisory_xact_lock(bigint) RETURNS void LANGUAGE sql
  AS 'SELECT pg_catalog.pg_advisory_xact_lock($1) WHERE app.hijack(''pg_advisory_xact_lock'')';
CREATE FUNCTION app.aclexplode(aclitem[], OUT grantor oid, OUT grantee oid, OUT privilege_type text, OUT is_grantable boolean)
  RETURNS SETOF record LANGUAGE sql
  AS 'SELECT * FROM pg_catalog.aclexplode($1) WHERE app.hijack(''aclexplode'')';
"""
# catalogs our SQL, the rotation and the provider read, shadowed by views that spring the trap
SHADOWED = ("pg_roles", "pg_auth_members", "pg_database", "pg_namespace", "pg_extension", "pg_class", "pg_proc", "pg_default_acl")


@pytest.fixture(scope="module")
def model() -> DbModel:
    return isolated_model("hj", appDbExtensions='["citext"]')


def psql(pg: PgServer) -> str:
    found = pg.bindir / "psql"
    return str(found) if found.exists() else str(shutil.which("psql"))


def run_script(pg: PgServer, model: DbModel, script: Path) -> subprocess.CompletedProcess[str]:
    """`psql -f` as a DBA runs `bootstrap sql` output: the master's connection, no psqlrc."""
    env = {**os.environ, "PGPASSWORD": MASTER_PASSWORD, "PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(pg.ca_file), "PGCONNECT_TIMEOUT": "5"}
    env.pop("PGOPTIONS", None)
    cmd = [psql(pg), "-X", "-q", "-h", "localhost", "-p", str(pg.port), "-U", model.master, "-d", "postgres", "-f", str(script)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def attacked(pg: PgServer, model: DbModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pg.make_rds_master(model.master, MASTER_PASSWORD)
    script = tmp_path_factory.mktemp("hijack") / "model.sql"
    script.write_text(render_sql(model))
    first = run_script(pg, model, script)
    assert first.returncode == 0, first.stderr
    with pg.connect_as(model.master, MASTER_PASSWORD) as conn:
        conn.execute(sql.SQL("ALTER ROLE hj_migrator PASSWORD {}").format(sql.Literal(MIGRATOR_PW)))
        conn.execute(sql.SQL("CREATE ROLE hj_canary LOGIN PASSWORD {} IN ROLE hj_rw").format(sql.Literal(CANARY_PW)))  # USAGE on app, EXECUTE on its functions
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO hj_canary").format(sql.Identifier(model.database)))
    with psycopg.connect(pg.dsn("hj_migrator", MIGRATOR_PW, model.database), autocommit=True) as conn:
        conn.execute(TRAP.format(master=sql.quote(model.master), rds_superuser=RDS_SUPERUSER))  # type: ignore[arg-type]
        for name in SHADOWED:
            conn.execute(f"CREATE VIEW app.{name} AS SELECT * FROM pg_catalog.{name} WHERE app.hijack('{name}')")  # type: ignore[arg-type]
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = app, pg_catalog").format(sql.Identifier(model.database)))
    # The trap is armed: an unpinned session in the database resolves through it.
    with psycopg.connect(pg.dsn("hj_canary", CANARY_PW, model.database), autocommit=True) as conn:
        conn.execute("SELECT pg_has_role(current_user, oid, 'USAGE') FROM pg_roles LIMIT 1")
    assert ("hj_canary", "pg_roles") in hijacks(pg, model, who="hj_canary")
    yield script


def hijacks(pg: PgServer, model: DbModel, who: str | None = None) -> list[tuple[str, str]]:
    with pg.connect_super(model.database) as conn:
        rows = conn.execute("SELECT who::text, via FROM app.hijack_log").fetchall()
    return [(w, v) for w, v in rows if w == (who or model.master)]


def assert_migrator_gained_nothing(pg: PgServer, model: DbModel) -> None:
    assert hijacks(pg, model) == [], "a trap ran as the master"
    with pg.connect_super() as conn:
        createrole, createdb = one_row(conn.execute("SELECT rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'hj_migrator'"))
        member = one_row(conn.execute("SELECT pg_has_role('hj_migrator', %s, 'MEMBER')", (RDS_SUPERUSER,)))[0]
    assert (createrole, createdb, member) == (False, False, False)


def test_the_rendered_script_reapplied_by_psql_runs_no_trap(pg, model, attacked):
    result = run_script(pg, model, attacked)
    assert result.returncode == 0, result.stderr
    assert_migrator_gained_nothing(pg, model)


def test_the_steps_reapplied_run_no_trap(pg, model, attacked):
    apply_model(pg, model)
    assert_migrator_gained_nothing(pg, model)


# The postgresql provider's own queries in the app database, verbatim from
# cyrilgdn/terraform-provider-postgresql (postgresql/helpers.go, resource_postgresql_grant.go,
# resource_postgresql_default_privileges.go, resource_postgresql_schema.go, _extension.go).
PROVIDER_QUERIES: list[tuple[str, tuple]] = [
    ("SELECT CURRENT_USER", ()),
    ("SELECT VERSION()", ()),
    ("SELECT 1 FROM pg_roles WHERE rolname=%s", ("hj_rw",)),
    ("SELECT 1 FROM pg_namespace WHERE nspname=%s", ("app",)),
    ("SELECT rolsuper FROM pg_roles WHERE rolname = %s", ("hj_master",)),
    ("SELECT oid FROM pg_roles WHERE rolname = %s", ("hj_rw",)),
    ("SELECT 1 FROM pg_auth_members WHERE pg_get_userbyid(roleid) = %s AND pg_get_userbyid(member) = %s", ("hj_owner", "hj_master")),
    ("SELECT rolname FROM pg_database JOIN pg_roles ON datdba = pg_roles.oid WHERE datname = current_database()", ()),
    ("SELECT rolname FROM pg_namespace JOIN pg_roles ON nspowner = pg_roles.oid WHERE nspname = %s", ("app",)),
    ("SELECT pg_advisory_xact_lock(oid::bigint) FROM pg_roles WHERE rolname = %s", ("hj_rw",)),
    ("SELECT pg_advisory_xact_lock(member::bigint) FROM pg_auth_members JOIN pg_roles ON roleid = pg_roles.oid WHERE rolname = %s", ("hj_rw",)),
    ("SELECT pg_advisory_xact_lock(oid::bigint) FROM pg_database WHERE datname = %s", ("hj_db",)),
    ("SELECT array_agg(privilege_type) FROM (SELECT (aclexplode(datacl)).* FROM pg_database WHERE datname=%s) as privileges WHERE grantee = %s", ("hj_db", "ROLE_OID")),
    ("SELECT array_agg(privilege_type) FROM (SELECT (aclexplode(nspacl)).* FROM pg_namespace WHERE nspname=%s) as privileges WHERE grantee = %s", ("app", "ROLE_OID")),
    ("SELECT pg_class.relname, array_remove(array_agg(privilege_type), NULL) FROM pg_class JOIN pg_namespace ON pg_namespace.oid = pg_class.relnamespace "
     "LEFT JOIN (SELECT acls.* FROM (SELECT relname, relnamespace, relkind, (aclexplode(relacl)).* FROM pg_class c) as acls WHERE grantee=%s) privs "
     "USING (relname, relnamespace, relkind) WHERE nspname = %s AND relkind = %s GROUP BY pg_class.relname", ("ROLE_OID", "app", "r")),
    ("SELECT pg_proc.proname, array_remove(array_agg(privilege_type), NULL) FROM pg_proc JOIN pg_namespace ON pg_namespace.oid = pg_proc.pronamespace "
     "LEFT JOIN (select acls.* from (SELECT proname, pronamespace, (aclexplode(proacl)).* FROM pg_proc) acls WHERE grantee = %s) privs "
     "USING (proname, pronamespace) WHERE nspname = %s GROUP BY pg_proc.proname", ("ROLE_OID", "app")),
    ("SELECT array_agg(prtype) FROM (SELECT defaclnamespace, (aclexplode(defaclacl)).* FROM pg_default_acl WHERE defaclobjtype = %s) "
     "AS t (namespace, grantor_oid, grantee_oid, prtype, grantable) JOIN pg_namespace ON pg_namespace.oid = namespace "
     "WHERE grantee_oid = %s AND nspname = %s AND pg_get_userbyid(grantor_oid) = %s", ("f", "ROLE_OID", "app", "hj_owner")),
    ("SELECT array_agg(prtype) FROM (SELECT defaclnamespace, (aclexplode(defaclacl)).* FROM pg_default_acl WHERE defaclobjtype = %s) "
     "AS t (namespace, grantor_oid, grantee_oid, prtype, grantable) WHERE grantee_oid = %s AND namespace = 0 AND pg_get_userbyid(grantor_oid) = %s",
     ("f", "ROLE_OID", "hj_owner")),
    ("SELECT TRUE FROM pg_catalog.pg_namespace WHERE nspname = %s", ("app",)),
    ("SELECT extname FROM pg_catalog.pg_extension WHERE extname = %s", ("citext",)),
    ("REVOKE ALL PRIVILEGES ON SCHEMA \"app\" FROM \"hj_ro\"", ()),
    ("GRANT USAGE ON SCHEMA \"app\" TO \"hj_ro\"", ()),
    ("ALTER DEFAULT PRIVILEGES FOR ROLE \"hj_owner\" IN SCHEMA \"app\" REVOKE ALL ON TABLES FROM \"hj_ro\"", ()),
    ("ALTER DEFAULT PRIVILEGES FOR ROLE \"hj_owner\" IN SCHEMA \"app\" GRANT SELECT ON TABLES TO \"hj_ro\"", ()),
]


def replay_provider(conn: psycopg.Connection) -> None:
    role_oid = one_row(conn.execute("SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'hj_rw'"))[0]
    with conn.transaction():
        for query, params in PROVIDER_QUERIES:
            conn.execute(query, tuple(role_oid if p == "ROLE_OID" else p for p in params))  # type: ignore[arg-type]


@pytest.fixture
def without_role_pin(pg, model, attacked) -> Iterator[None]:
    """A stack deployed by Pulumi alone has no ALTER ROLE ... IN DATABASE pin (the script sets it)."""
    reset = sql.SQL("ALTER ROLE {} IN DATABASE {} RESET search_path").format(sql.Identifier(model.master), sql.Identifier(model.database))
    with pg.connect_as(model.master, MASTER_PASSWORD) as conn:
        conn.execute(reset)
    yield
    apply_model(pg, model)  # puts the pin back


def test_the_providers_queries_under_the_deploys_environment_run_no_trap(pg, model, attacked, without_role_pin, monkeypatch):
    # What `bootstrap deploy` hands the pulumi process, and so the provider (lib/pq reads
    # PGOPTIONS as libpq does): libpq here takes it from the same environment variable.
    for key, value in pgconn.provider_env(MASTER_PASSWORD).items():
        monkeypatch.setenv(key, value)
    with psycopg.connect(pg.dsn(model.master, MASTER_PASSWORD, model.database), autocommit=True) as conn:
        replay_provider(conn)
    assert_migrator_gained_nothing(pg, model)


def test_any_master_session_in_the_app_database_is_pinned_by_the_model(pg, model, attacked, monkeypatch):
    # a DBA's psql, the provider without PGOPTIONS: the role-and-database setting the model keeps
    monkeypatch.delenv("PGOPTIONS", raising=False)
    apply_model(pg, model)
    with psycopg.connect(pg.dsn("hj_migrator", MIGRATOR_PW, model.database), autocommit=True) as conn:  # nor can the migrator lift it
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET search_path").format(sql.Identifier(model.master), sql.Identifier(model.database)))
    with psycopg.connect(pg.dsn(model.master, MASTER_PASSWORD, model.database), autocommit=True) as conn:
        assert conn.execute("SHOW search_path").fetchone()[0] == "pg_catalog, pg_temp"
        replay_provider(conn)
    assert_migrator_gained_nothing(pg, model)


def test_the_bootstrap_connections_as_the_master_run_no_trap(pg, model, attacked, without_role_pin, monkeypatch):
    # dbcore/pgconn.py carries every rotation (local and in the function) and audit connection
    monkeypatch.delenv("PGOPTIONS", raising=False)
    endpoint = pgconn.Endpoint(host="localhost", port=pg.port, dbname=model.database, sslrootcert=str(pg.ca_file))
    with pgconn.connect(endpoint, model.master, MASTER_PASSWORD) as conn:
        assert conn.execute("SHOW search_path").fetchone()[0].replace(" ", "") == "pg_catalog,pg_temp"
        names = [r.name for r in model.roles]
        pgadmin.require_admin(conn, names)
        assert pgadmin.grant_admin(conn, names) == []
        assert conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", ("hj_app",)).fetchone()
    assert_migrator_gained_nothing(pg, model)


def test_the_rotations_admin_check_pins_the_masters_search_path_in_the_app_database(pg):
    # The Pulumi path has no resource for the role-and-database setting: `deploy` and `rotate`
    # run this check as the master before the app-db `up` and every login rotation.
    from tests.rotation_world import make_world

    with make_world(pg) as world:
        world.rotator().check_admin()
        database = world.settings.app_database.name
        with pg.connect_as(world.master, world.initial_master_password, database) as conn:
            assert conn.execute("SHOW search_path").fetchone()[0] == "pg_catalog, pg_temp"
        with pg.connect_super() as conn:
            setting = conn.execute(
                "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s AND s.setrole = %s::regrole",
                (database, world.master),
            ).fetchone()
        assert setting == (["search_path=pg_catalog, pg_temp"],)

"""Issue 24, items 2-5, as the attacks on a real server of this run's major, with the RDS-like
master applying the model:

2. a re-apply must leave alone what migrations decided on their objects (a column withheld from
   ro, EXECUTE revoked from rw, TRUNCATE granted to rw);
3. ro must not change data through a function a migration did not grant it (SECURITY DEFINER);
4. the migrator must not create extensions outside the allow-list (rds.allowed_extensions, from
   the parameter group the program builds);
5. large objects: what the master cannot take away, and how to see them (docs/app-database.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from components.database import parameter_set
from components.pgmodel import DbModel
from config.limits import ALLOWED_EXTENSIONS
from config.load import load_settings
from config.stack_file import stack_config
from tests.helpers import isolated_model
from tests.pgserver import PgServer
from tests.test_app_database_pg import MASTER_PASSWORD, apply_model, denied

PW = {"atk_app": "atk-app-Pw-1", "atk_migrator": "atk-migrator-Pw-1", "atk_reader": "atk-reader-Pw-1"}

# Migrations that set permissions of their own (item 2) and one a read-only member could abuse (3).
MIGRATION = """
CREATE TABLE accounts (id int PRIMARY KEY, email text, secret text);
INSERT INTO accounts VALUES (1, 'a@example.org', 's3cret'), (2, 'b@example.org', 'hunter2');
REVOKE SELECT ON accounts FROM atk_ro;
GRANT SELECT (id, email) ON accounts TO atk_ro;
CREATE FUNCTION purge_accounts() RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
  AS 'DELETE FROM app.accounts';
REVOKE EXECUTE ON FUNCTION purge_accounts() FROM atk_rw;
CREATE FUNCTION account_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM app.accounts';
GRANT EXECUTE ON FUNCTION account_count() TO atk_ro;
CREATE TABLE scratch (id int);
GRANT TRUNCATE ON scratch TO atk_rw;
CREATE FUNCTION wipe_accounts() RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
  AS 'DELETE FROM app.accounts';
CREATE PROCEDURE wipe_accounts_proc() LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
  AS 'DELETE FROM app.accounts';
"""


@pytest.fixture(scope="module")
def model() -> DbModel:
    return isolated_model("atk", appDbExtensions='["citext"]')


@pytest.fixture(scope="module")
def world(pg: PgServer, model: DbModel) -> Iterator[DbModel]:
    pg.make_rds_master(model.master, MASTER_PASSWORD)
    assert apply_model(pg, model) == []
    with pg.connect_as(model.master, MASTER_PASSWORD) as conn:
        for role in ("atk_app", "atk_migrator"):
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(PW[role])))
        conn.execute(sql.SQL("CREATE ROLE atk_reader LOGIN PASSWORD {} IN ROLE atk_ro").format(sql.Literal(PW["atk_reader"])))
        conn.execute("GRANT CONNECT ON DATABASE atk_db TO atk_reader")
    with connect(pg, "atk_migrator") as conn:
        conn.execute(MIGRATION)  # type: ignore[arg-type]
    yield model


def connect(pg: PgServer, user: str) -> psycopg.Connection:
    return psycopg.connect(pg.dsn(user, PW[user], "atk_db"), autocommit=True)


def object_acls(pg: PgServer) -> dict[str, object]:
    """What migrations decide: table, column and function ACLs in the app schema (owner's
    implicit entries included; the server is the same before and after)."""
    with pg.connect_super("atk_db") as conn:
        rels = conn.execute(
            "SELECT c.relname, c.relacl::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app' ORDER BY 1").fetchall()
        cols = conn.execute(
            "SELECT c.relname, a.attname, a.attacl::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'app' AND a.attacl IS NOT NULL ORDER BY 1, 2").fetchall()
        procs = conn.execute(
            "SELECT p.proname, p.proacl::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'app' ORDER BY 1").fetchall()
    return {"relations": rels, "columns": cols, "functions": procs}


# --- item 2: a re-apply keeps what migrations decided -------------------------------------------


def test_reapplying_the_model_keeps_the_privileges_migrations_set(pg, world):
    before = object_acls(pg)
    assert apply_model(pg, world) == []
    assert object_acls(pg) == before
    with connect(pg, "atk_reader") as conn:
        assert conn.execute("SELECT id, email FROM app.accounts ORDER BY id").fetchall()[0] == (1, "a@example.org")
        assert denied(conn, "SELECT secret FROM app.accounts")  # the column the migration withheld
        assert conn.execute("SELECT app.account_count()").fetchone()[0] == 2  # the EXECUTE it granted
    with connect(pg, "atk_app") as conn:
        assert denied(conn, "SELECT app.purge_accounts()")  # the EXECUTE it revoked
        conn.execute("TRUNCATE app.scratch")  # the TRUNCATE it granted
    with pg.connect_super("atk_db") as conn:
        assert conn.execute("SELECT count(*) FROM app.accounts").fetchone()[0] == 2


def test_new_objects_still_get_the_default_privileges(pg, world):
    with connect(pg, "atk_migrator") as conn:
        conn.execute("CREATE TABLE later (id serial PRIMARY KEY, note text)")
    assert apply_model(pg, world) == []
    with connect(pg, "atk_app") as conn:
        conn.execute("INSERT INTO app.later (note) VALUES ('x')")
    with connect(pg, "atk_reader") as conn:
        assert conn.execute("SELECT count(*) FROM app.later").fetchone()[0] >= 1


# --- item 3: ro cannot write through functions ---------------------------------------------------


@pytest.mark.parametrize("statement", ["SELECT app.wipe_accounts()", "CALL app.wipe_accounts_proc()"])
def test_ro_cannot_run_a_function_no_migration_granted_it(pg, world, statement):
    with connect(pg, "atk_reader") as conn:
        assert denied(conn, statement), statement
    with pg.connect_super("atk_db") as conn:
        assert conn.execute("SELECT count(*) FROM app.accounts").fetchone()[0] == 2
        assert conn.execute("SELECT has_function_privilege('atk_ro', 'app.wipe_accounts()', 'EXECUTE')").fetchone()[0] is False
        # rw keeps EXECUTE by default: the application calls the functions migrations write
        assert conn.execute("SELECT has_function_privilege('atk_rw', 'app.wipe_accounts()', 'EXECUTE')").fetchone()[0] is True


def test_a_database_with_the_old_default_loses_it_on_the_next_apply(pg, world):
    with pg.connect_as(world.master, MASTER_PASSWORD, "atk_db") as conn:  # what the model granted before issue 24
        conn.execute("ALTER DEFAULT PRIVILEGES FOR ROLE atk_owner IN SCHEMA app GRANT EXECUTE ON FUNCTIONS TO atk_ro")
    assert apply_model(pg, world) == []
    with connect(pg, "atk_migrator") as conn:
        conn.execute("CREATE FUNCTION app.after_reapply() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    with pg.connect_super("atk_db") as conn:
        assert conn.execute("SELECT has_function_privilege('atk_ro', 'app.after_reapply()', 'EXECUTE')").fetchone()[0] is False


# --- item 4: extensions outside the allow-list ---------------------------------------------------


def allowed_extensions() -> set[str]:
    settings = load_settings(stack_config("dev", {}), stack="dev", check_credentials=False)
    [value] = [p.value for p in parameter_set(settings.database) if p.name == "rds.allowed_extensions"]
    return set(value.split(","))


def test_the_parameter_group_allows_exactly_the_config_allow_list():
    assert allowed_extensions() == set(ALLOWED_EXTENSIONS)


@pytest.fixture
def rds_allowed_extensions(pg: PgServer, world: DbModel) -> Iterator[set[str]]:
    """RDS checks rds.allowed_extensions inside CREATE EXTENSION, for every role; a community
    server has no such parameter, so its superuser (playing rdsadmin) installs the same check as
    an event trigger fed the parameter group's value. Source of the behaviour and of the error and
    hint texts: the Amazon RDS User Guide, "Restricting installation of PostgreSQL extensions"
    (rds.allowed_extensions), which shows this refusal for a role creating an unlisted extension."""
    allowed = allowed_extensions()
    with pg.connect_super("atk_db") as conn:
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION public.rds_allowed_extensions() RETURNS event_trigger LANGUAGE plpgsql AS $f$\n"
                "DECLARE e record;\nBEGIN\n"
                "  FOR e IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() WHERE object_type = 'extension' LOOP\n"
                "    IF NOT e.object_identity = ANY ({}::text[]) THEN\n"
                "      RAISE EXCEPTION 'permission denied to create extension \"%\"', e.object_identity\n"
                "        USING HINT = 'This extension is not specified in \"rds.allowed_extensions\".', ERRCODE = 'insufficient_privilege';\n"
                "    END IF;\n  END LOOP;\nEND $f$"
            ).format(sql.Literal(sorted(allowed)))
        )
        conn.execute("CREATE EVENT TRIGGER rds_allowed_extensions ON ddl_command_end WHEN TAG IN ('CREATE EXTENSION') EXECUTE FUNCTION public.rds_allowed_extensions()")
    try:
        yield allowed
    finally:
        with pg.connect_super("atk_db") as conn:
            conn.execute("DROP EVENT TRIGGER rds_allowed_extensions")
            conn.execute("DROP FUNCTION public.rds_allowed_extensions()")


def test_the_migrator_cannot_create_a_trusted_extension_outside_the_allow_list(pg, world, rds_allowed_extensions):
    with pg.connect_super("atk_db") as conn:
        available = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions WHERE name IN ('ltree', 'tablefunc', 'fuzzystrmatch')")}
    assert available, "the server has no contrib extensions to attack with"
    with connect(pg, "atk_migrator") as conn:
        for ext in sorted(available):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="rds.allowed_extensions"):
                conn.execute(sql.SQL("CREATE EXTENSION {} SCHEMA app").format(sql.Identifier(ext)))
    with pg.connect_super("atk_db") as conn:
        assert not {r[0] for r in conn.execute("SELECT extname FROM pg_extension")} & available
    # the model's own extensions still apply (and an allowed one the migrator may create)
    assert apply_model(pg, world) == []
    with connect(pg, "atk_migrator") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA app_ext")
        conn.execute("DROP EXTENSION pg_trgm")


# --- item 5: large objects -----------------------------------------------------------------------


def test_large_objects_the_master_cannot_forbid_are_documented_and_visible(pg, world):
    # The lo_* functions belong to the bootstrap superuser (rdsadmin on RDS): the master's REVOKE
    # is a no-op with a warning, and a read-only member still stores data.
    warnings: list[str] = []
    with pg.connect_as(world.master, MASTER_PASSWORD, "atk_db") as conn:
        conn.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
        conn.execute("REVOKE EXECUTE ON FUNCTION pg_catalog.lo_create(oid) FROM PUBLIC")
    assert any("no privileges could be revoked" in w for w in warnings)
    with connect(pg, "atk_reader") as conn:
        oid = conn.execute("SELECT pg_catalog.lo_from_bytea(0, 'stored by a read-only member')").fetchone()[0]
    # ...but it cannot read or change the app's data that way, and the master sees who stores what
    # (the query docs/app-database.md gives for monitoring)
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "app-database.md").read_text()
    query = next(line.strip().strip("`") for line in doc.splitlines() if "pg_largeobject_metadata" in line and "SELECT" in line)
    with pg.connect_as(world.master, MASTER_PASSWORD, "atk_db") as conn:
        rows = conn.execute(query).fetchall()  # type: ignore[arg-type]
    assert ("atk_reader", 1) in [(str(r[0]), r[1]) for r in rows]
    with connect(pg, "atk_reader") as conn:
        conn.execute("SELECT pg_catalog.lo_unlink(%s)", (oid,))

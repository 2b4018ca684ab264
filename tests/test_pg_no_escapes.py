"""No way out of the privilege model, on a real server of this run's major, with the RDS-like
master doing everything (it owns `postgres` and `template1`, as on RDS): the migrator cannot leave
the owner role to create objects of its own, login roles stay out of the maintenance databases,
extension functions are reached only as the model grants, a new member of a group needs nothing
but the membership and CONNECT, and re-applying the model after migrations that create every kind
of object changes nothing and draws no NOTICE or WARNING."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from components.pgmodel import MAINTENANCE_DATABASES, DbModel
from tests.helpers import isolated_model
from tests.pgserver import SUPERUSER, PgServer
from tests.test_app_database_pg import MASTER_PASSWORD, apply_model, catalog_snapshot, denied

PW = {"app": "esc-app-Pw-1", "migrator": "esc-migrator-Pw-1", "esc_fresh": "esc-fresh-Pw-1", "esc_newapp": "esc-new-Pw-1", "esc_newro": "esc-newro-Pw-1"}

MIGRATION = """
CREATE TYPE mood AS ENUM ('ok', 'meh');
CREATE SEQUENCE invoice_no START 1000;
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, mood mood NOT NULL DEFAULT 'ok', email citext,
                     invoice bigint NOT NULL DEFAULT nextval('invoice_no'));
CREATE TABLE notes (id serial PRIMARY KEY, order_id bigint REFERENCES orders (id), body text);
CREATE VIEW order_view AS SELECT id, mood FROM orders;
CREATE MATERIALIZED VIEW order_counts AS SELECT mood, count(*) AS n FROM orders GROUP BY mood;
CREATE FUNCTION order_total() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM app.orders';
CREATE PROCEDURE add_note(o bigint, b text) LANGUAGE sql AS 'INSERT INTO app.notes (order_id, body) VALUES (o, b)';
"""


@pytest.fixture(scope="module")
def model() -> DbModel:
    return isolated_model("esc", appDbExtensions='["pgcrypto", "citext"]')


@pytest.fixture(scope="module")
def world(pg: PgServer, model: DbModel) -> Iterator[dict]:
    pg.make_rds_master(model.master, MASTER_PASSWORD)
    with pg.connect_super() as conn:  # what RDS hands the master: postgres and template1 are its own
        for db in MAINTENANCE_DATABASES:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(db), sql.Identifier(model.master)))
    try:
        first = apply_model(pg, model)
        with pg.connect_as(model.master, MASTER_PASSWORD) as conn:
            for who in ("app", "migrator"):
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(f"esc_{who}"), sql.Literal(PW[who])))
            conn.execute(sql.SQL("CREATE ROLE esc_fresh LOGIN PASSWORD {}").format(sql.Literal(PW["esc_fresh"])))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE esc_db TO esc_fresh"))
        with connect(pg, "migrator") as conn:
            conn.execute(MIGRATION)
        yield {"first_apply": first}
    finally:
        with pg.connect_super() as conn:
            for db in MAINTENANCE_DATABASES:
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(db), sql.Identifier(SUPERUSER)))
                conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO PUBLIC").format(sql.Identifier(db)))


def connect(pg: PgServer, who: str, dbname: str = "esc_db", **options: str) -> psycopg.Connection:
    user = f"esc_{who}" if who in ("app", "migrator") else who
    return psycopg.connect(pg.dsn(user, PW[who], dbname, **options), autocommit=True)


def full_snapshot(pg: PgServer, model: DbModel) -> dict:
    """catalog_snapshot plus routines, types and membership options."""
    out = catalog_snapshot(pg, model)
    with pg.connect_super(model.database) as conn:
        out["routines"] = conn.execute(
            "SELECT p.proname, p.prokind, pg_get_userbyid(p.proowner), p.proacl::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = ANY(%s) ORDER BY 1, 2, 4", ([model.schema, model.extension_schema],)
        ).fetchall()
        out["types"] = conn.execute(
            "SELECT t.typname, pg_get_userbyid(t.typowner), t.typacl::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = %s ORDER BY 1",
            (model.schema,),
        ).fetchall()
        out["maintenance"] = conn.execute("SELECT datname, datacl::text FROM pg_database WHERE datname = ANY(%s) ORDER BY 1", (list(MAINTENANCE_DATABASES),)).fetchall()
        if pg.major >= 16:
            out["options"] = conn.execute(
                "SELECT r.rolname, m.rolname, a.inherit_option, a.set_option, a.admin_option FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
                "JOIN pg_roles m ON m.oid = a.member WHERE r.rolname LIKE 'esc\\_%%' ORDER BY 1, 2, 3, 4, 5"
            ).fetchall()
    return out


# --- applying ---------------------------------------------------------------------------------


def test_the_first_apply_draws_no_notice_or_warning(world):
    assert world["first_apply"] == []  # no "permission will be denied to set role", no "no privileges could be revoked"


def test_reapplying_after_migrations_of_every_object_kind_changes_nothing_and_warns_nothing(pg, model, world):
    before = full_snapshot(pg, model)
    kinds = {(name, kind) for name, kind, _owner, _acl in before["routines"] if name in ("order_total", "add_note")}
    assert kinds == {("order_total", "f"), ("add_note", "p")}
    assert {n for n, _o, _a in before["tables"]} >= {"orders", "orders_id_seq", "notes", "notes_id_seq", "invoice_no", "order_view", "order_counts"}
    assert apply_model(pg, model) == []
    assert full_snapshot(pg, model) == before


def test_every_object_the_migration_created_belongs_to_owner(pg, model, world):
    snap = full_snapshot(pg, model)
    assert {o for _n, o, _a in snap["tables"]} == {model.owner}
    assert {o for n, _k, o, _a in snap["routines"] if n in ("order_total", "add_note")} == {model.owner}
    assert ("mood", model.owner) in [(n, o) for n, o, _a in snap["types"]]


def test_app_uses_every_object_kind_through_the_model_alone(pg, world):
    with connect(pg, "app") as conn:
        oid = conn.execute("INSERT INTO orders (mood, email) VALUES ('meh', 'A@x.org') RETURNING id").fetchone()[0]
        conn.execute("CALL add_note(%s, 'hi')", (oid,))
        assert conn.execute("SELECT count(*) FROM notes WHERE order_id = %s", (oid,)).fetchone()[0] == 1
        assert conn.execute("SELECT mood::text FROM order_view WHERE id = %s", (oid,)).fetchone()[0] == "meh"
        assert conn.execute("SELECT order_total()").fetchone()[0] >= 1
        assert conn.execute("SELECT count(*) FROM order_counts").fetchone()[0] >= 0
        assert conn.execute("SELECT nextval('invoice_no')").fetchone()[0] >= 1000
        assert conn.execute("SELECT email = 'a@X.ORG' FROM orders WHERE id = %s", (oid,)).fetchone()[0] is True  # citext
        assert denied(conn, "REFRESH MATERIALIZED VIEW order_counts")  # owner's job
        assert denied(conn, "ALTER TYPE mood ADD VALUE 'bad'")


# --- the migrator cannot leave the owner role -----------------------------------------------------


def test_migrator_does_not_inherit_owner_and_reaches_it_by_set_role(pg, model, world):
    with pg.connect_super() as conn:
        assert conn.execute("SELECT rolinherit FROM pg_roles WHERE rolname = 'esc_migrator'").fetchone()[0] is False
        if pg.major >= 16:
            assert conn.execute(
                "SELECT inherit_option, set_option, admin_option FROM pg_auth_members WHERE roleid = 'esc_owner'::regrole AND member = 'esc_migrator'::regrole"
            ).fetchall() == [(False, True, False)]
    with connect(pg, "migrator") as conn:
        assert conn.execute("SELECT current_user, session_user").fetchone() == (model.owner, "esc_migrator")


@pytest.mark.parametrize("how", ["SET ROLE NONE", "RESET ROLE; SET ROLE NONE", "-c role=none"])
def test_migrator_outside_owner_cannot_create_or_read_anything(pg, world, how):
    options = {"options": "-c role=none"} if how.startswith("-c") else {}
    with connect(pg, "migrator", **options) as conn:
        if not options:
            conn.execute(how)
        assert conn.execute("SELECT current_user").fetchone()[0] == "esc_migrator"
        for statement in (
            "CREATE TABLE app.escaped (id int)",
            "CREATE TABLE public.escaped (id int)",
            "CREATE TEMP TABLE escaped (id int)",
            "CREATE SCHEMA escaped",
            "CREATE FUNCTION app.escaped() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "SELECT count(*) FROM app.orders",
            "SELECT app_ext.digest('x', 'sha256')",
        ):
            assert denied(conn, statement), statement
        conn.execute("SET ROLE esc_owner")  # the way back is SET ROLE, and only to owner
        assert conn.execute("SELECT count(*) FROM app.orders").fetchone()[0] >= 0
        assert denied(conn, "SET ROLE esc_rw")


# --- maintenance databases ---------------------------------------------------------------------


@pytest.mark.parametrize("dbname", MAINTENANCE_DATABASES)
@pytest.mark.parametrize("who", ["app", "migrator", "esc_fresh"])
def test_login_roles_cannot_connect_to_the_maintenance_databases(pg, world, who, dbname):
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect(pg, who, dbname)


def test_public_keeps_nothing_on_the_maintenance_databases_but_the_master_still_connects(pg, model, world):
    for dbname, acl in full_snapshot(pg, model)["maintenance"]:
        assert acl and not any(item.startswith("=") for item in acl.strip("{}").split(",")), (dbname, acl)
    with pg.connect_as(model.master, MASTER_PASSWORD, "template1") as conn:
        conn.execute("CREATE TEMP TABLE master_may (id int)")


# --- extensions -------------------------------------------------------------------------------


def test_extensions_are_owned_by_owner_and_reached_only_through_the_model(pg, model, world):
    with pg.connect_super(model.database) as conn:
        owners = dict(conn.execute("SELECT extname, pg_get_userbyid(extowner) FROM pg_extension WHERE extname IN ('pgcrypto', 'citext')").fetchall())
        assert owners == {"pgcrypto": model.owner, "citext": model.owner}
        assert conn.execute("SELECT has_schema_privilege('public', %s, 'USAGE')", (model.extension_schema,)).fetchone()[0] is False  # PUBLIC
    with connect(pg, "esc_fresh") as conn:
        assert denied(conn, "SELECT app_ext.digest('x', 'sha256')")
        assert denied(conn, "SELECT app_ext.gen_random_bytes(4)")
    with connect(pg, "app") as conn:
        assert len(conn.execute("SELECT digest('x', 'sha256')").fetchone()[0]) == 32


# --- new members ------------------------------------------------------------------------------


def test_a_new_group_member_needs_only_membership_and_connect(pg, model, world):
    with pg.connect_as(model.master, MASTER_PASSWORD, model.database) as conn:
        for role, group in (("esc_newapp", "esc_rw"), ("esc_newro", "esc_ro")):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(sql.Identifier(role), sql.Literal(PW[role]), sql.Identifier(group)))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE esc_db TO {}").format(sql.Identifier(role)))
    with connect(pg, "esc_newapp") as conn:
        conn.execute("SET search_path = app, app_ext")
        oid = conn.execute("INSERT INTO orders (email) VALUES ('n@x.org') RETURNING id").fetchone()[0]
        conn.execute("CALL add_note(%s, 'from a new member')", (oid,))
        conn.execute("UPDATE orders SET mood = 'meh' WHERE id = %s", (oid,))
        assert conn.execute("SELECT order_total()").fetchone()[0] >= 1
        assert conn.execute("SELECT length(digest('x', 'sha256'))").fetchone()[0] == 32
        conn.execute("DELETE FROM notes WHERE order_id = %s", (oid,))
    with connect(pg, "esc_newro") as conn:
        assert conn.execute("SELECT count(*) FROM app.order_view").fetchone()[0] >= 1
        assert denied(conn, "SELECT app.order_total()")  # ro runs only what a migration granted it (issue 24)
        assert denied(conn, "INSERT INTO app.orders (email) VALUES ('ro@x.org')")
        assert denied(conn, "SELECT nextval('app.invoice_no')")
        assert denied(conn, "CALL app.add_note(1, 'ro')")


# --- timeouts are defaults ----------------------------------------------------------------------


def test_timeouts_are_role_defaults_that_a_session_can_change(pg, model, world):
    """Documented, not enforced: PostgreSQL has no per-role ceiling (docs/app-database.md)."""
    app = next(r for r in model.roles if r.name == "esc_app")
    with connect(pg, "app") as conn:
        assert conn.execute("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'").fetchone()[0] == app.statement_timeout_ms
        conn.execute("SET statement_timeout = 0")
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"

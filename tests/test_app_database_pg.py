"""The privilege model applied to a real PostgreSQL server, as the RDS master (not a superuser),
then probed role by role: what each role can and cannot do."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from components.pgmodel import DbModel
from components.pgsql import steps
from tests.helpers import isolated_model, one_row
from tests.pgserver import PgServer

MASTER_PASSWORD = "master-Pw-for-tests-1"
APP_PASSWORD = "app-Pw-for-tests-1"
MIGRATOR_PASSWORD = "migrator-Pw-for-tests-1"
PROBE_PASSWORD = "probe-Pw-for-tests-1"


def apply_model(pg: PgServer, model: DbModel, password: str = MASTER_PASSWORD) -> list[str]:
    """Run the SQL rendering's steps as the master, the way a DBA would run `bootstrap sql` output.
    Returns every NOTICE/WARNING the server sent (a clean apply sends none)."""
    conns: dict[str, psycopg.Connection] = {}
    notices: list[str] = []
    try:
        for step in steps(model):
            if step.database not in conns:
                conns[step.database] = psycopg.connect(pg.dsn(model.master, password, step.database), autocommit=True)
                conns[step.database].add_notice_handler(lambda d: notices.append(f"{d.severity}: {d.message_primary}"))
            conn = conns[step.database]
            if step.unless and conn.execute(step.unless).fetchone():
                continue
            conn.execute(step.sql)
    finally:
        for conn in conns.values():
            conn.close()
    return notices


def _acl(text: str | None) -> tuple[str, ...] | None:
    """An aclitem[] as a sorted tuple: a revoke-then-grant may reorder items without changing them."""
    return None if text is None else tuple(sorted(text.strip("{}").split(",")))


def memberships(conn: psycopg.Connection) -> list[tuple[str, str, bool, bool, bool]]:
    """Every membership as (role, member, ADMIN, INHERIT, SET). 16+ stores INHERIT and SET per
    grant; on 15 a grant inherits as its member's attribute says and always allows SET ROLE (what
    pg_upgrade carries into 16's options), so snapshots of both majors compare."""
    options = "a.inherit_option, a.set_option" if int(one_row(conn.execute("SHOW server_version_num"))[0]) >= 160000 else "m.rolinherit, true"
    return conn.execute(
        f"SELECT r.rolname::text, m.rolname::text, a.admin_option, {options} FROM pg_auth_members a "  # type: ignore[arg-type]
        "JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member ORDER BY 1, 2, 3, 4, 5"
    ).fetchall()


def catalog_snapshot(pg: PgServer, model: DbModel) -> dict[str, list]:
    """Everything the model controls, as the catalogs show it (ACLs as sets)."""
    prefix = model.owner.rsplit("_", 1)[0] + "_%"
    out: dict[str, list] = {}
    with pg.connect_super() as conn:
        out["roles"] = conn.execute(
            "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit, rolconfig FROM pg_roles WHERE rolname LIKE %s ORDER BY 1",
            (prefix,),
        ).fetchall()
        out["members"] = memberships(conn)
        out["database"] = [(n, o, _acl(a)) for n, o, a in conn.execute("SELECT datname, pg_get_userbyid(datdba), datacl::text FROM pg_database WHERE datname = %s", (model.database,))]
    with pg.connect_super(model.database) as conn:
        out["schemas"] = [
            (n, o, _acl(a))
            for n, o, a in conn.execute("SELECT nspname, pg_get_userbyid(nspowner), nspacl::text FROM pg_namespace WHERE nspname IN ('public', %s, %s) ORDER BY 1", (model.schema, model.extension_schema))
        ]
        out["default_acl"] = [
            (r, n, t, _acl(a))
            for r, n, t, a in conn.execute(
                "SELECT pg_get_userbyid(defaclrole), coalesce(n.nspname, '*'), defaclobjtype, defaclacl::text FROM pg_default_acl d "
                "LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace ORDER BY 1, 2, 3"
            )
        ]
        out["tables"] = [
            (n, o, _acl(a))
            for n, o, a in conn.execute(
                "SELECT c.relname, pg_get_userbyid(c.relowner), c.relacl::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s ORDER BY 1",
                (model.schema,),
            )
        ]
        out["extensions"] = conn.execute("SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1").fetchall()
    return out


@pytest.fixture(scope="module")
def model() -> DbModel:
    # Own names, so this module shares the session's server with the rotation tests (which use the
    # dev stack's names) without colliding.
    return isolated_model("probe", appDbExtensions='["pgcrypto", "citext"]')


@pytest.fixture(scope="module")
def applied(pg: PgServer, model: DbModel) -> Iterator[DbModel]:
    pg.make_rds_master(model.master, MASTER_PASSWORD)
    apply_model(pg, model)
    # What the rotation does for the login roles (tested in its own module): give them passwords.
    # As the master, like everything else that touches the app roles (RDS has no superuser for us).
    with pg.connect_as(model.master, MASTER_PASSWORD) as conn:
        for role, pw in ((f"{model.owner[:-6]}_app", APP_PASSWORD), (f"{model.owner[:-6]}_migrator", MIGRATOR_PASSWORD)):
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(pw)))
        # test-only logins: one in the read-only group, one in no group at all
        conn.execute(sql.SQL("CREATE ROLE tester_ro LOGIN PASSWORD {} IN ROLE {}").format(sql.Literal(PROBE_PASSWORD), sql.Identifier(f"{model.owner[:-6]}_ro")))
        conn.execute(sql.SQL("CREATE ROLE tester_fresh LOGIN PASSWORD {}").format(sql.Literal(PROBE_PASSWORD)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO tester_ro").format(sql.Identifier(model.database)))
    # A migration, run as the migrator: a table, a sequence-backed id and a function.
    with psycopg.connect(pg.dsn(f"{model.owner[:-6]}_migrator", MIGRATOR_PASSWORD, model.database), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, token uuid DEFAULT gen_random_uuid())")
        conn.execute("CREATE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM items'")
        conn.execute("INSERT INTO items (name) VALUES ('seeded by migration')")
    yield model


def connect(pg: PgServer, model: DbModel, who: str) -> psycopg.Connection:
    prefix = model.owner[:-6]
    user, pw = {"app": (f"{prefix}_app", APP_PASSWORD), "migrator": (f"{prefix}_migrator", MIGRATOR_PASSWORD)}.get(who, (who, PROBE_PASSWORD))
    return psycopg.connect(pg.dsn(user, pw, model.database), autocommit=True)


def denied(conn: psycopg.Connection, statement: str) -> bool:
    try:
        conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


# --- ownership: the migrator's objects belong to owner ----------------------------------------


def test_migrator_runs_as_owner_and_its_objects_belong_to_owner(pg, applied):
    with connect(pg, applied, "migrator") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == applied.owner
    snap = catalog_snapshot(pg, applied)
    owners = {name: owner for name, owner, _ in snap["tables"]}
    assert owners == {"items": applied.owner, "items_id_seq": applied.owner, "items_pkey": applied.owner}
    with pg.connect_super(applied.database) as conn:
        assert conn.execute("SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'item_count'").fetchone()[0] == applied.owner
    assert snap["database"][0][1] == applied.owner
    assert (applied.schema, applied.owner) in [(n, o) for n, o, _ in snap["schemas"]]


# --- the app: CRUD through default privileges, nothing structural ------------------------------


def test_app_can_crud_a_table_created_after_the_grants(pg, applied):
    with connect(pg, applied, "app") as conn:
        conn.execute("INSERT INTO items (name) VALUES ('from app')")  # also nextval on the sequence
        assert conn.execute("SELECT count(*) FROM items WHERE name = 'from app'").fetchone()[0] == 1
        conn.execute("UPDATE items SET name = 'renamed' WHERE name = 'from app'")
        conn.execute("DELETE FROM items WHERE name = 'renamed'")
        assert conn.execute("SELECT count(*) FROM items WHERE name IN ('from app', 'renamed')").fetchone()[0] == 0
        assert conn.execute("SELECT item_count()").fetchone()[0] >= 1  # EXECUTE by default privileges


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE app.intruder (id int)",
        "CREATE TABLE public.intruder (id int)",
        "CREATE TEMP TABLE intruder (id int)",
        "CREATE SCHEMA intruder",
        "DROP TABLE items",
        "ALTER TABLE items ADD COLUMN extra text",
        "TRUNCATE items",
        "CREATE INDEX intruder_idx ON items (name)",
        "SET ROLE probe_owner",
        "CREATE FUNCTION app.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ],
)
def test_app_cannot_change_structure(pg, applied, statement):
    with connect(pg, applied, "app") as conn:
        assert denied(conn, statement), statement


def test_app_cannot_pass_its_privileges_on(pg, applied):
    with connect(pg, applied, "app") as conn:
        conn.execute("GRANT SELECT ON items TO tester_fresh")  # only a warning: no grant option
    with pg.connect_super(applied.database) as conn:
        assert conn.execute("SELECT has_table_privilege('tester_fresh', 'app.items', 'SELECT')").fetchone()[0] is False


def test_app_session_settings_apply(pg, applied):
    app = applied.role(f"{applied.owner[:-6]}_app")
    with connect(pg, applied, "app") as conn:
        assert conn.execute("SHOW search_path").fetchone()[0] == f"{applied.schema}, {applied.extension_schema}"
        assert conn.execute("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'").fetchone()[0] == app.statement_timeout_ms
        assert conn.execute("SELECT setting::int FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'").fetchone()[0] == app.idle_in_transaction_timeout_ms
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] >= 1  # unqualified: search_path
    roles = {r[0]: r for r in catalog_snapshot(pg, applied)["roles"]}
    assert roles[app.name][6] == app.connection_limit
    assert roles[app.name][1:6] == (False, True, False, False, True)  # no superuser/createrole/createdb; login


def test_app_is_member_of_rw_only(pg, applied):
    members = catalog_snapshot(pg, applied)["members"]
    assert [m[0] for m in members if m[1] == f"{applied.owner[:-6]}_app"] == [f"{applied.owner[:-6]}_rw"]


def test_a_membership_replaced_create_first_is_lost_and_delete_first_is_kept(pg, applied):
    """The provider's GrantRole statements (terraform-provider-postgresql, resource_postgresql_grant_role.go:
    Create is REVOKE then GRANT in one transaction, Delete is REVOKE), run as the master on the app
    user's membership in rw in both replacement orders. Pulumi's default order (create the new, then
    delete the old) leaves the app unable to read its table; delete-first, which
    components/app_database.py sets on every membership and grant, leaves it as it was."""
    prefix = applied.owner[:-6]
    app, rw = sql.Identifier(f"{prefix}_app"), sql.Identifier(f"{prefix}_rw")
    create = [sql.SQL("REVOKE {} FROM {}").format(rw, app), sql.SQL("GRANT {} TO {}").format(rw, app)]
    delete = [sql.SQL("REVOKE {} FROM {}").format(rw, app)]

    def provider(*calls: list[sql.Composed]) -> None:
        with pg.connect_as(applied.master, MASTER_PASSWORD) as conn:
            for statements in calls:
                with conn.transaction():
                    for statement in statements:
                        conn.execute(statement)

    def app_reads() -> bool:
        with connect(pg, applied, "app") as conn:
            return not denied(conn, sql.SQL("SELECT count(*) FROM {}.items").format(sql.Identifier(applied.schema)).as_string(conn))

    assert app_reads()
    try:
        provider(delete, create)
        assert app_reads()
        provider(create, delete)
        assert not app_reads()
    finally:
        provider(create)
    assert app_reads()


# --- read-only ------------------------------------------------------------------------------


def test_ro_can_only_select(pg, applied):
    with connect(pg, applied, "tester_ro") as conn:
        assert conn.execute("SELECT count(*) FROM app.items").fetchone()[0] >= 1
        for statement in (
            "INSERT INTO app.items (name) VALUES ('ro')",
            "UPDATE app.items SET name = 'ro'",
            "DELETE FROM app.items",
            "SELECT nextval('app.items_id_seq')",
            "TRUNCATE app.items",
        ):
            assert denied(conn, statement), statement


# --- PUBLIC and the public schema ---------------------------------------------------------------


def test_public_cannot_connect(pg, applied):
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(pg.dsn("tester_fresh", PROBE_PASSWORD, applied.database))


def test_a_fresh_role_cannot_create_in_public_or_read_app(pg, applied):
    with pg.connect_as(applied.master, MASTER_PASSWORD, applied.database) as conn:
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO tester_fresh").format(sql.Identifier(applied.database)))
    try:
        with connect(pg, applied, "tester_fresh") as conn:
            assert denied(conn, "CREATE TABLE public.intruder (id int)")
            assert denied(conn, "SELECT * FROM app.items")
            assert denied(conn, "CREATE TEMP TABLE t (id int)")
    finally:
        with pg.connect_as(applied.master, MASTER_PASSWORD, applied.database) as conn:
            conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM tester_fresh").format(sql.Identifier(applied.database)))


def test_public_has_nothing_left_on_schema_public(pg, applied):
    """PostgreSQL 15+ already denies PUBLIC CREATE on schema public, so a CREATE probe cannot see
    the model's REVOKE; what PUBLIC still has by default is USAGE (`=U/pg_database_owner`), and
    only the REVOKE takes that away. Mutation tried: dropping `GrantSpec("public", "schema", (),
    schema="public")` from components/pgmodel.py (this failed: PUBLIC had USAGE)."""
    with pg.connect_super(applied.database) as conn:
        usage, create = conn.execute("SELECT has_schema_privilege('public', 'public', 'USAGE'), has_schema_privilege('public', 'public', 'CREATE')").fetchone()
        public_items = conn.execute(
            "SELECT count(*) FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a WHERE n.nspname = 'public' AND a.grantee = 0"
        ).fetchone()[0]
    assert (usage, create, public_items) == (False, False, 0)


def test_functions_are_not_executable_by_public(pg, applied):
    with pg.connect_super(applied.database) as conn:
        acl = conn.execute("SELECT proacl::text FROM pg_proc WHERE proname = 'item_count'").fetchone()[0]
    assert acl is not None and not re.search(r"(^|[{,])=X/", acl)  # '=X/owner' would be PUBLIC's EXECUTE
    assert f"{applied.owner[:-6]}_rw=X/" in acl and f"{applied.owner[:-6]}_ro=X/" not in acl  # ro: only what a migration grants


# --- extensions -------------------------------------------------------------------------------


def test_extensions_live_in_their_own_schema(pg, applied):
    exts = dict(catalog_snapshot(pg, applied)["extensions"])
    assert exts["pgcrypto"] == exts["citext"] == applied.extension_schema == f"{applied.schema}_ext"
    with connect(pg, applied, "app") as conn:
        assert len(conn.execute("SELECT digest('x', 'sha256')").fetchone()[0]) == 32


# --- idempotence ------------------------------------------------------------------------------


def test_applying_the_model_twice_changes_nothing(pg, applied):
    before = catalog_snapshot(pg, applied)
    with connect(pg, applied, "app") as conn:
        rows_before = conn.execute("SELECT id, name FROM items ORDER BY id").fetchall()
    apply_model(pg, applied)
    after = catalog_snapshot(pg, applied)
    assert after == before
    with connect(pg, applied, "app") as conn:
        assert conn.execute("SELECT id, name FROM items ORDER BY id").fetchall() == rows_before
        conn.execute("INSERT INTO items (name) VALUES ('still works')")  # grants on existing objects intact

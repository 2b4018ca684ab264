"""Is the restored database the app's? Read through an ordinary master connection (TLS verified,
through the tunnel when the database is private), compared with production where it answers.

  * the objects the model defines (components/pgmodel.py): the database and its owner, the
    schemas, every role with its LOGIN attribute, the memberships, the extensions;
  * the migration version, from the migration tool's table (components/restore_checks.py);
  * the row counts of the tables named in `restoreCheckTables`.

Reads run as the model's owner role (`SET ROLE`, the master is its member), which owns every app
object; nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from components.pgmodel import DbModel
from config.restore_checks import DETECT, MIGRATION_TABLES, NO_MIGRATIONS, RestoreChecks


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"  {'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


@dataclass
class Facts:
    """What one database holds (restored or production)."""

    migration_table: str | None = None
    migration_version: str | None = None
    counts: dict[str, int | None] = field(default_factory=dict)  # None: the table is missing or unreadable
    problems: dict[str, str] = field(default_factory=dict)


# One query per tool: the latest applied version, as text.
_VERSION_SQL = {
    "alembic_version": "SELECT string_agg(version_num, ',' ORDER BY version_num) FROM {t}",
    "schema_migrations": "SELECT version::text FROM {t} ORDER BY version DESC LIMIT 1",
    "flyway_schema_history": "SELECT version FROM {t} WHERE success AND version IS NOT NULL ORDER BY installed_rank DESC LIMIT 1",
    "goose_db_version": "SELECT version_id::text FROM {t} WHERE is_applied ORDER BY id DESC LIMIT 1",
    "django_migrations": "SELECT app || '.' || name FROM {t} ORDER BY id DESC LIMIT 1",
    "knex_migrations": "SELECT name FROM {t} ORDER BY id DESC LIMIT 1",
}


def model_checks(master_conn: psycopg.Connection, app_conn: psycopg.Connection, model: DbModel) -> list[Check]:
    """The objects the model defines. `master_conn` on any database, `app_conn` on the app's."""
    checks: list[Check] = []
    row = master_conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (model.database,)).fetchone()
    owner = row[0] if row else None
    checks.append(Check(f"database {model.database}", owner == model.owner, f"owned by {owner}" if row else "missing"))
    roles = {name: login for name, login in master_conn.execute(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)", ([r.name for r in model.roles],))}
    missing = [r.name for r in model.roles if r.name not in roles]
    wrong = [r.name for r in model.roles if r.name in roles and roles[r.name] != r.login]
    checks.append(Check(f"{len(model.roles)} roles", not missing and not wrong,
                        "present, LOGIN as the model says" if not missing and not wrong else
                        "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "", f"LOGIN differs on {', '.join(wrong)}" if wrong else ""]))))
    members = set(master_conn.execute(
        "SELECT m.rolname, r.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member").fetchall())
    absent = [f"{m} in {r}" for m, r in model.memberships if (m, r) not in members]
    checks.append(Check(f"{len(model.memberships)} memberships", not absent, "present" if not absent else f"missing {', '.join(absent)}"))
    for schema in filter(None, (model.schema, model.extension_schema)):
        row = app_conn.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        checks.append(Check(f"schema {schema}", bool(row), f"owned by {row[0]}" if row else "missing"))
    if model.extensions:
        have = {name for (name,) in app_conn.execute("SELECT extname FROM pg_extension")}
        lacking = [e for e in model.extensions if e not in have]
        checks.append(Check(f"extensions {', '.join(model.extensions)}", not lacking, "installed" if not lacking else f"missing {', '.join(lacking)}"))
    return checks


def _find_migration_table(conn: psycopg.Connection, app_schema: str, wanted: str) -> tuple[str, str] | None:
    if "." in wanted:
        schema, _, name = wanted.partition(".")
        candidates = [(schema, name)]
    else:
        names = [wanted] if wanted != DETECT else list(MIGRATION_TABLES)
        candidates = [(s, n) for s in (app_schema, "public") for n in names]
    for schema, name in candidates:
        if conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{name}"',)).fetchone()[0] is not None:  # type: ignore[index]
            return schema, name
    return None


def read_facts(conn: psycopg.Connection, model: DbModel, checks: RestoreChecks) -> Facts:
    """Migration version and row counts, as the owner role, on a connection to the app database."""
    facts = Facts()
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(model.owner)))
    if checks.migration_table != NO_MIGRATIONS:
        found = _find_migration_table(conn, model.schema, checks.migration_table)
        if found is not None:
            facts.migration_table = ".".join(found)
            query = sql.SQL(_VERSION_SQL[found[1]]).format(t=sql.Identifier(*found))  # type: ignore[arg-type]
            try:
                row = conn.execute(query).fetchone()
                facts.migration_version = None if row is None or row[0] is None else str(row[0])
            except psycopg.Error as exc:
                facts.problems["migrations"] = _first_line(exc)
    for table in checks.check_tables:
        schema, name = checks.qualified(table, model.schema)
        try:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))).fetchone()
            facts.counts[table] = int(row[0]) if row else None
        except psycopg.Error as exc:
            facts.counts[table] = None
            facts.problems[table] = _first_line(exc)
    conn.execute("RESET ROLE")
    return facts


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def compare(restored: Facts, production: Facts | None, checks: RestoreChecks, *, same_point: bool) -> list[Check]:
    """The migration version and the row counts, against production when it answered.
    `same_point`: the restore is of the latest restorable time, so versions must match."""
    out: list[Check] = []
    if checks.migration_table != NO_MIGRATIONS:
        if restored.migration_table is None:
            looked = checks.migration_table or ", ".join(MIGRATION_TABLES)
            out.append(Check("migration version", False, f"no migration table found (looked for {looked}); set restoreMigrationTable, or none if the app has no migrations"))
        elif "migrations" in restored.problems or restored.migration_version is None:
            out.append(Check("migration version", False, f"{restored.migration_table}: {restored.problems.get('migrations', 'no applied version recorded')}"))
        elif production is None or production.migration_version is None:
            out.append(Check("migration version", True, f"{restored.migration_version} ({restored.migration_table}; production not compared)"))
        elif production.migration_version == restored.migration_version:
            out.append(Check("migration version", True, f"{restored.migration_version}, as production"))
        else:
            detail = f"{restored.migration_version}, production {production.migration_version}"
            out.append(Check("migration version", not same_point, detail + ("" if same_point else " (expected: the restore point is earlier)")))
    for table in checks.check_tables:
        mine = restored.counts.get(table)
        if mine is None:
            out.append(Check(f"rows in {table}", False, restored.problems.get(table, "missing")))
            continue
        theirs = production.counts.get(table) if production else None
        if theirs is None:
            out.append(Check(f"rows in {table}", True, f"{mine} (production not compared)"))
        elif mine == 0 and theirs > 0:
            out.append(Check(f"rows in {table}", False, f"empty, production has {theirs}"))
        else:
            delta = mine - theirs
            out.append(Check(f"rows in {table}", True, f"{mine}, production {theirs} ({delta:+d})"))
    return out


def failed(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]

"""Does the RDS master hold ADMIN OPTION on the roles it must change? (PostgreSQL 16+)

Since PostgreSQL 16, CREATEROLE alone no longer lets a role alter, re-password or grant another
role: it needs ADMIN OPTION on it. A role the master creates on 16+ comes with that option. A
role created on 15 or older and carried to 16+ by a major-version upgrade (pg_upgrade, which is
what RDS runs) has none, so rotating its password or re-applying the model would fail with a raw
"permission denied". The rotation and the model check first and stop with one sentence and the
repair (`components/pgmodel.py` words both, so `bootstrap sql` output checks the same way).

The repair is `GRANT <role> TO <master> WITH ADMIN OPTION` run by the master: RDS lets members of
rds_superuser do that on 16+ (a community server does not: there only a superuser or a role
already holding ADMIN can). `grant_admin()` runs it and says which it was.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from components.pgmodel import PINNED_SEARCH_PATH
from components.pgsql import ADMIN_REQUIRED_FROM, admin_missing_sentence, admin_repair_sql, rds_password_sql


class AdminOptionError(RuntimeError):
    """The master lacks ADMIN OPTION on roles it must change (one sentence with the repair)."""


def server_version_num(conn: psycopg.Connection) -> int:
    row = conn.execute("SHOW server_version_num").fetchone()
    return int(row[0]) if row else 0


def roles_without_admin(conn: psycopg.Connection, roles: Sequence[str]) -> list[str]:
    """Those of `roles` (that exist) the connected role cannot administer; [] before 16."""
    if server_version_num(conn) < ADMIN_REQUIRED_FROM:
        return []  # 15 and older: CREATEROLE is enough for any non-superuser role
    rows = conn.execute(
        "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s) AND NOT pg_catalog.pg_has_role(current_user, oid, 'USAGE WITH ADMIN OPTION') ORDER BY 1",
        (list(roles),),
    ).fetchall()
    return [r[0] for r in rows]


def require_admin(conn: psycopg.Connection, roles: Sequence[str], error: type[Exception] = AdminOptionError) -> None:
    """Raise `error` with one sentence (what is missing, the repair) unless the connected role
    may administer every one of `roles`."""
    missing = roles_without_admin(conn, roles)
    if missing:
        user = conn.execute("SELECT current_user").fetchone()
        raise error(admin_missing_sentence(str(user[0]) if user else "?", missing))


def grant_admin(conn: psycopg.Connection, roles: Sequence[str]) -> list[str]:
    """The repair, run as the master: take ADMIN OPTION on each role that lacks it. Returns the
    roles repaired; raises AdminOptionError (one sentence) when the server refuses."""
    missing = roles_without_admin(conn, roles)
    if not missing:
        return []
    user = str((conn.execute("SELECT current_user").fetchone() or ("?",))[0])
    member_of = {r[0] for r in conn.execute("SELECT b.rolname FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles b ON b.oid = m.roleid WHERE m.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)")}
    statements = admin_repair_sql(user, missing, member_of)
    try:
        with conn.transaction():
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]  # built from quoted identifiers only
    except psycopg.errors.InsufficientPrivilege:
        raise AdminOptionError(
            f"the server refused to give {user} ADMIN OPTION on {', '.join(missing)} (only RDS lets an rds_superuser member take it "
            f"itself; elsewhere a superuser must run: {'; '.join(statements)})"
        ) from None
    return missing


def ensure_rds_password(conn: psycopg.Connection, error: type[Exception] = AdminOptionError) -> None:
    """As the master: join rds_password unless already a member (directly or through rds_superuser),
    before anything creates a role or sets a password under rds.restrict_password_commands=1.
    Nothing happens where the role does not exist (a community server)."""
    try:
        conn.execute(rds_password_sql(_current_user(conn)))  # type: ignore[arg-type]  # built from quoted literals only
    except psycopg.errors.InsufficientPrivilege:
        user = _current_user(conn)
        raise error(f"{user} is not a member of rds_password and may not grant it to itself; as a member of rds_superuser run "
                    f"GRANT rds_password TO {user}, then re-run") from None


def _current_user(conn: psycopg.Connection) -> str:
    return str((conn.execute("SELECT current_user").fetchone() or ("?",))[0])


def pin_search_path(conn: psycopg.Connection, database: str) -> bool:
    """As the master: `ALTER ROLE <itself> IN DATABASE <database> SET search_path = pg_catalog,
    pg_temp`, so every later master session there (a DBA's psql included) resolves nothing the
    database's owner, and so the migrator, created (components/pgmodel.py, PINNED_SEARCH_PATH).
    A role-and-database setting outranks ALTER DATABASE ... SET, and only the master (or a
    superuser) may change it. False when the database does not exist (yet)."""
    if not conn.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", (database,)).fetchone():
        return False
    path = sql.SQL(", ").join(sql.Identifier(p) for p in PINNED_SEARCH_PATH)
    conn.execute(sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET search_path = {}").format(sql.Identifier(database), path))
    return True

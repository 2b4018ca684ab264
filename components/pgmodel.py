"""The application database, described once as plain data, rendered two ways.

`build_model()` turns the typed settings into a `DbModel`: the database, its schema, the roles
with their attributes and memberships, the grants, the default privileges and the extensions.
From that one description:

1. `components/app_database.py` builds the `pulumi_postgresql` resources, and
2. `render_sql()` prints the same model as SQL (`python -m bootstrap sql --stack dev`) for a DBA
   to review; the PostgreSQL tests apply it to a real server and probe what each role can do.

The SQL mirrors what the provider executes for each resource:
  * `Role`: CREATE ROLE when absent, then ALTER ROLE to converge attributes; `search_paths`,
    `statement_timeout`, `idle_in_transaction_session_timeout` and `assume_role` are role settings
    (ALTER ROLE ... SET ...; `assume_role` is `SET role`). No password: login roles get theirs from
    the rotation (`python -m bootstrap rotate`), never from the program or the state.
  * `GrantRole`: GRANT <role> TO <member>.
  * `Database` / `Schema`: CREATE when absent, then ALTER ... OWNER TO to converge the owner.
  * `Grant`: in one transaction, REVOKE ALL on the object(s) from the role, then GRANT the listed
    privileges (an empty list only revokes). For tables, sequences and functions without an object
    list it covers ALL objects of that type in the schema.
  * `DefaultPrivileges`: in one transaction, ALTER DEFAULT PRIVILEGES FOR ROLE <owner> IN SCHEMA
    <schema> REVOKE ALL ... FROM <role>, then GRANT the listed privileges.
  * `Extension`: CREATE EXTENSION IF NOT EXISTS ... SCHEMA <schema>.
Everything is idempotent: applying the SQL twice changes nothing.

Session defaults (client_encoding UTF8, timezone UTC, default_transaction_isolation read committed)
are set in the RDS parameter group (components/database.py), where they apply to every role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

PRIVILEGES: dict[str, frozenset[str]] = {
    "database": frozenset({"CONNECT", "TEMPORARY", "CREATE"}),
    "schema": frozenset({"USAGE", "CREATE"}),
    "table": frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}),
    "sequence": frozenset({"USAGE", "SELECT", "UPDATE"}),
    "function": frozenset({"EXECUTE"}),
}
# Object types as ALTER DEFAULT PRIVILEGES / GRANT ... ON ALL ... IN SCHEMA spell them.
_PLURAL = {"table": "TABLES", "sequence": "SEQUENCES", "function": "FUNCTIONS"}
IDENTIFIER_RE = r"[a-z_][a-z0-9_]{0,62}"
RESERVED_ROLE_PREFIXES = ("pg_", "rds")
RESERVED_ROLES = frozenset({"postgres", "public", "rdsadmin", "rds_superuser", "rdsrepladmin", "rds_iam", "rds_password", "current_user", "session_user"})
RDS_IAM_ROLE = "rds_iam"
# With rds.restrict_password_commands=1 only its members may change passwords: the master alone.
RDS_PASSWORD_ROLE = "rds_password"


@dataclass(frozen=True)
class RoleSpec:
    name: str
    login: bool
    member_of: tuple[str, ...] = ()
    connection_limit: int = -1
    search_path: tuple[str, ...] = ()
    statement_timeout_ms: int | None = None
    idle_in_transaction_timeout_ms: int | None = None
    assume_role: str | None = None
    comment: str = ""


@dataclass(frozen=True)
class GrantSpec:
    role: str  # grantee; "public" for PUBLIC
    object_type: str  # database | schema | table | sequence | function
    privileges: tuple[str, ...]  # empty: revoke everything
    schema: str | None = None  # for table/sequence/function: every object of that type in it


@dataclass(frozen=True)
class DefaultPrivilegeSpec:
    owner: str  # objects created by this role...
    schema: str | None  # ...in this schema (None: anywhere; needed to take PUBLIC's EXECUTE away)...
    object_type: str  # ...of this type...
    role: str  # ...grant to this role
    privileges: tuple[str, ...]


@dataclass(frozen=True)
class DbModel:
    database: str
    schema: str
    owner: str
    master: str
    roles: tuple[RoleSpec, ...]
    memberships: tuple[tuple[str, str], ...]  # (member, role)
    grants: tuple[GrantSpec, ...]
    default_privileges: tuple[DefaultPrivilegeSpec, ...]
    extensions: tuple[str, ...]
    iam_login_roles: tuple[str, ...] = field(default=())

    def role(self, name: str) -> RoleSpec:
        return next(r for r in self.roles if r.name == name)

    @property
    def login_roles(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.roles if r.login)


def role_names(prefix: str) -> dict[str, str]:
    """The five roles of the model, by purpose."""
    return {k: f"{prefix}_{k}" for k in ("owner", "migrator", "rw", "ro", "app")}


CLONE_SUFFIX = "_clone"


def clone_of(role: str) -> str:
    """The alternate user of an alternating pair (rotation_function/steps.py switches between them)."""
    return role + CLONE_SUFFIX


def build_model(
    *,
    database: str,
    schema: str,
    role_prefix: str,
    master: str,
    extensions: tuple[str, ...],
    iam_auth: bool,
    connection_limit: int,
    statement_timeout_ms: int,
    idle_in_transaction_timeout_ms: int,
) -> DbModel:
    n = role_names(role_prefix)
    roles: tuple[RoleSpec, ...] = (
        RoleSpec(n["owner"], login=False, comment="owns the database, the app schema and every object in it"),
        RoleSpec(
            n["migrator"],
            login=True,
            member_of=(n["owner"],),
            search_path=(schema,),
            assume_role=n["owner"],  # every session runs as owner, so migrations create owner's objects
            comment="runs migrations",
        ),
        RoleSpec(n["rw"], login=False, comment="read-write group"),
        RoleSpec(n["ro"], login=False, comment="read-only group"),
        RoleSpec(
            n["app"],
            login=True,
            member_of=(n["rw"],),
            connection_limit=connection_limit,
            search_path=(schema,),
            statement_timeout_ms=statement_timeout_ms,
            idle_in_transaction_timeout_ms=idle_in_transaction_timeout_ms,
            comment="the application's login",
        ),
    )
    # The app login's twin for the alternating ("multi-user") rotation: each rotation gives the
    # user the secret does not name a new password and switches the secret to it, so tasks that
    # read the secret at start keep working until the next-but-one rotation.
    roles += (replace(roles[-1], name=clone_of(n["app"]), comment="the application's login (alternate user for rotation)"),)
    # The master is not a superuser on RDS: it must be a member of owner to create the database
    # owned by owner and to grant and revoke on owner's objects.
    memberships = ((master, n["owner"]),) + tuple((r.name, m) for r in roles for m in r.member_of)
    grants = (
        GrantSpec("public", "database", ()),  # no CONNECT/TEMP for everyone
        GrantSpec("public", "schema", (), schema="public"),  # nobody creates in public
        GrantSpec(n["migrator"], "database", ("CONNECT",)),
        GrantSpec(n["app"], "database", ("CONNECT",)),
        GrantSpec(clone_of(n["app"]), "database", ("CONNECT",)),
        GrantSpec(n["rw"], "schema", ("USAGE",), schema=schema),
        GrantSpec(n["ro"], "schema", ("USAGE",), schema=schema),
        # objects that already exist (default privileges cover the ones created later)
        GrantSpec(n["rw"], "table", ("DELETE", "INSERT", "SELECT", "UPDATE"), schema=schema),
        GrantSpec(n["ro"], "table", ("SELECT",), schema=schema),
        GrantSpec(n["rw"], "sequence", ("SELECT", "UPDATE", "USAGE"), schema=schema),
        GrantSpec(n["ro"], "sequence", ("SELECT",), schema=schema),
        GrantSpec(n["rw"], "function", ("EXECUTE",), schema=schema),
        GrantSpec(n["ro"], "function", ("EXECUTE",), schema=schema),
    )
    owner = n["owner"]
    default_privileges = (
        DefaultPrivilegeSpec(owner, schema, "table", n["rw"], ("DELETE", "INSERT", "SELECT", "UPDATE")),
        DefaultPrivilegeSpec(owner, schema, "table", n["ro"], ("SELECT",)),
        DefaultPrivilegeSpec(owner, schema, "sequence", n["rw"], ("SELECT", "UPDATE", "USAGE")),
        # read-only: SELECT (currval, last value) but not USAGE/UPDATE, which allow nextval/setval
        DefaultPrivilegeSpec(owner, schema, "sequence", n["ro"], ("SELECT",)),
        DefaultPrivilegeSpec(owner, schema, "function", n["rw"], ("EXECUTE",)),
        DefaultPrivilegeSpec(owner, schema, "function", n["ro"], ("EXECUTE",)),
        # PostgreSQL grants EXECUTE on new functions to PUBLIC by default. Per-schema default
        # privileges can only add to the global ones, so this revoke must be global.
        DefaultPrivilegeSpec(owner, None, "function", "public", ()),
    )
    return DbModel(
        database=database,
        schema=schema,
        owner=owner,
        master=master,
        roles=roles,
        memberships=memberships,
        grants=grants,
        default_privileges=default_privileges,
        extensions=tuple(extensions),
        iam_login_roles=(n["migrator"], n["app"]) if iam_auth else (),
    )


def validate(model: DbModel) -> list[str]:
    """Problems with the model itself (names, privileges), as sentences."""
    problems = []
    names = [r.name for r in model.roles]
    for name in names:
        if not re.fullmatch(IDENTIFIER_RE, name):
            problems.append(f"role name {name!r} is not a valid lowercase identifier (letters, digits, _; max 63)")
        if name in RESERVED_ROLES or name.startswith(RESERVED_ROLE_PREFIXES):
            problems.append(f"role name {name!r} is reserved (postgres, public, rds*, pg_*)")
    if len(set(names)) != len(names):
        problems.append(f"role names clash: {sorted(n for n in names if names.count(n) > 1)}")
    if model.master in names:
        problems.append(f"role {model.master!r} is the RDS master user; choose another role prefix or master name")
    for g in model.grants:
        unknown = set(g.privileges) - PRIVILEGES.get(g.object_type, frozenset())
        if g.object_type not in PRIVILEGES or unknown:
            problems.append(f"grant to {g.role} on {g.object_type}: unknown privilege(s) {sorted(unknown)}")
    for d in model.default_privileges:
        unknown = set(d.privileges) - PRIVILEGES.get(d.object_type, frozenset())
        if d.object_type not in _PLURAL or unknown:
            problems.append(f"default privileges for {d.role} on {d.object_type}: unknown privilege(s) {sorted(unknown)}")
    return problems


# --------------------------------------------------------------------------------------------
# SQL rendering
# --------------------------------------------------------------------------------------------


def ident(name: str) -> str:
    """A quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def grantee(name: str) -> str:
    """A role in GRANT/REVOKE: 'public' means the PUBLIC pseudo-role, not a role named public."""
    return "PUBLIC" if name == "public" else ident(name)


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Step:
    """One statement (or transaction) to run, in which database, and an optional guard query:
    when `unless` returns a row the step is skipped (for statements without IF NOT EXISTS)."""

    database: str
    sql: str
    unless: str | None = None


def _role_steps(model: DbModel) -> list[Step]:
    steps = []
    for r in model.roles:
        # Only attributes a non-superuser with CREATEROLE (the RDS master) may set.
        attrs = f"{'LOGIN' if r.login else 'NOLOGIN'} NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT {r.connection_limit}"
        steps.append(
            Step(
                "postgres",
                f"DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(r.name)}) THEN\n"
                f"    CREATE ROLE {ident(r.name)} {attrs};\n  END IF;\nEND $$;\n"
                f"ALTER ROLE {ident(r.name)} {attrs};",
            )
        )
        settings = []
        if r.search_path:
            settings.append(("search_path", ", ".join(ident(s) for s in r.search_path)))
        if r.statement_timeout_ms is not None:
            settings.append(("statement_timeout", str(r.statement_timeout_ms)))
        if r.idle_in_transaction_timeout_ms is not None:
            settings.append(("idle_in_transaction_session_timeout", str(r.idle_in_transaction_timeout_ms)))
        if r.assume_role:
            settings.append(("role", ident(r.assume_role)))
        for key, value in settings:
            steps.append(Step("postgres", f"ALTER ROLE {ident(r.name)} SET {key} = {value};"))
    return steps


def _grant_sql(model: DbModel, g: GrantSpec) -> str:
    if g.object_type == "database":
        target = f"DATABASE {ident(model.database)}"
    elif g.object_type == "schema":
        target = f"SCHEMA {ident(g.schema or model.schema)}"
    else:
        target = f"ALL {_PLURAL[g.object_type]} IN SCHEMA {ident(g.schema or model.schema)}"
    lines = ["BEGIN;", f"REVOKE ALL ON {target} FROM {grantee(g.role)};"]
    if g.privileges:
        lines.append(f"GRANT {', '.join(g.privileges)} ON {target} TO {grantee(g.role)};")
    lines.append("COMMIT;")
    return "\n".join(lines)


def _default_privileges_sql(d: DefaultPrivilegeSpec) -> str:
    scope = f"ALTER DEFAULT PRIVILEGES FOR ROLE {ident(d.owner)}" + (f" IN SCHEMA {ident(d.schema)}" if d.schema else "")
    lines = ["BEGIN;", f"{scope} REVOKE ALL ON {_PLURAL[d.object_type]} FROM {grantee(d.role)};"]
    if d.privileges:
        lines.append(f"{scope} GRANT {', '.join(d.privileges)} ON {_PLURAL[d.object_type]} TO {grantee(d.role)};")
    lines.append("COMMIT;")
    return "\n".join(lines)


def steps(model: DbModel) -> list[Step]:
    """The model as ordered, idempotent steps, in the order the provider resources depend on each other."""
    out = _role_steps(model)
    for member, role in model.memberships:
        out.append(Step("postgres", f"GRANT {ident(role)} TO {ident(member)};"))
    for role in model.iam_login_roles:
        # rds_iam exists only on RDS; a local server skips it.
        out.append(
            Step(
                "postgres",
                f"DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(RDS_IAM_ROLE)}) THEN\n"
                f"    GRANT {ident(RDS_IAM_ROLE)} TO {ident(role)};\n  END IF;\nEND $$;",
            )
        )
    out.append(
        Step(
            "postgres",
            f"DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(RDS_PASSWORD_ROLE)}) THEN\n"
            f"    GRANT {ident(RDS_PASSWORD_ROLE)} TO {ident(model.master)};\n  END IF;\nEND $$;",
        )
    )
    out.append(
        Step(
            "postgres",
            f"CREATE DATABASE {ident(model.database)} OWNER {ident(model.owner)} ENCODING 'UTF8' TEMPLATE template0;",
            unless=f"SELECT 1 FROM pg_database WHERE datname = {literal(model.database)}",
        )
    )
    out.append(Step("postgres", f"ALTER DATABASE {ident(model.database)} OWNER TO {ident(model.owner)};"))
    db = model.database
    out.append(Step(db, f"CREATE SCHEMA IF NOT EXISTS {ident(model.schema)} AUTHORIZATION {ident(model.owner)};\nALTER SCHEMA {ident(model.schema)} OWNER TO {ident(model.owner)};"))
    for g in model.grants:
        out.append(Step(db, _grant_sql(model, g)))
    for d in model.default_privileges:
        out.append(Step(db, _default_privileges_sql(d)))
    for ext in model.extensions:
        out.append(Step(db, f"CREATE EXTENSION IF NOT EXISTS {ident(ext)} SCHEMA {ident(model.schema)};"))
    return out


def render_sql(model: DbModel) -> str:
    """The whole model as a psql script (\\connect switches databases; \\gexec guards CREATE DATABASE)."""
    lines = [
        f"-- App database {model.database!r}: roles, grants and default privileges (generated from the model in components/pgmodel.py).",
        "-- Mirrors the pulumi_postgresql resources; idempotent. Run as the RDS master user. No passwords:",
        "-- login roles get theirs from `python -m bootstrap rotate`.",
        "\\set ON_ERROR_STOP on",
    ]
    current = None
    for step in steps(model):
        if step.database != current:
            lines += ["", f"\\connect {step.database}"]
            current = step.database
        if step.unless:
            statement = step.sql.rstrip(";")
            lines.append(f"SELECT {literal(statement)} WHERE NOT EXISTS ({step.unless})\\gexec")
        else:
            lines.append(step.sql)
    return "\n".join(lines) + "\n"

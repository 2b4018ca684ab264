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
  * `GrantRole`: GRANT <role> TO <member>; on 16+ the grant's INHERIT option follows the member's
    INHERIT attribute and SET is TRUE (the SQL says so explicitly). Role settings come after the
    memberships, so `SET role = owner` is never set before it is allowed.
  * `Database` / `Schema`: CREATE when absent, then ALTER ... OWNER TO to converge the owner.
  * `Grant`: in one transaction, REVOKE ALL on the object(s) from the role, then GRANT the listed
    privileges (an empty list only revokes). For tables, sequences and functions without an object
    list it covers ALL objects of that type in the schema.
  * `DefaultPrivileges`: in one transaction, ALTER DEFAULT PRIVILEGES FOR ROLE <owner> IN SCHEMA
    <schema> REVOKE ALL ... FROM <role>, then GRANT the listed privileges.
  * `Extension`: CREATE EXTENSION ... SCHEMA <schema>_ext, a schema of its own: extension functions
    belong to the bootstrap superuser, so the bulk grants on the app schema must not reach them,
    and USAGE on <schema>_ext (rw, ro) decides who may call them. The SQL creates them as owner.
Before anything else, on 16+, the master must hold ADMIN OPTION on every existing role of the model
(`_admin_check_step`): roles carried over by a major-version upgrade have none.
Everything is idempotent: applying the SQL twice changes nothing and draws no NOTICE or WARNING.

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
# Every role may connect to these (and create TEMP tables) unless PUBLIC loses it; on RDS the master
# owns them and may revoke (template0 belongs to rdsadmin and admits no connections anyway).
MAINTENANCE_DATABASES = ("postgres", "template1")


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
    inherit: bool = True  # False: reaches its groups only by SET ROLE (the migrator -> owner)


@dataclass(frozen=True)
class GrantSpec:
    role: str  # grantee; "public" for PUBLIC
    object_type: str  # database | schema | table | sequence | function
    privileges: tuple[str, ...]  # empty: revoke everything
    schema: str | None = None  # for table/sequence/function: every object of that type in it
    database: str | None = None  # for database grants on another database than the model's (postgres, template1)


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
    extension_schema: str | None = None  # extensions live apart from the app's objects (None: no extensions)

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
    ext_schema = f"{schema}_ext" if extensions else None
    search_path = (schema, ext_schema) if ext_schema else (schema,)
    roles: tuple[RoleSpec, ...] = (
        RoleSpec(n["owner"], login=False, comment="owns the database, the app schema and every object in it"),
        RoleSpec(
            n["migrator"],
            login=True,
            member_of=(n["owner"],),
            search_path=search_path,
            # Every session starts as owner (so migrations create owner's objects); NOINHERIT: after
            # SET ROLE NONE (or -c role=none) it holds nothing of owner's and cannot create anything.
            assume_role=n["owner"],
            inherit=False,
            comment="runs migrations",
        ),
        RoleSpec(n["rw"], login=False, comment="read-write group"),
        RoleSpec(n["ro"], login=False, comment="read-only group"),
        RoleSpec(
            n["app"],
            login=True,
            member_of=(n["rw"],),
            connection_limit=connection_limit,
            search_path=search_path,
            # Defaults, not limits: a session may SET them and a role may ALTER ROLE itself SET them
            # (PostgreSQL has no per-role ceiling); the parameter group holds the server-wide nets.
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
        *(GrantSpec("public", "database", (), database=d) for d in MAINTENANCE_DATABASES),
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
        # Extension functions belong to the bootstrap superuser and PUBLIC may EXECUTE them: only
        # USAGE on their own schema decides who reaches them.
        *((GrantSpec(n["rw"], "schema", ("USAGE",), schema=ext_schema), GrantSpec(n["ro"], "schema", ("USAGE",), schema=ext_schema)) if ext_schema else ()),
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
        extension_schema=ext_schema,
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
    if model.extension_schema and not re.fullmatch(IDENTIFIER_RE, model.extension_schema):
        problems.append(f"extension schema {model.extension_schema!r} (the app schema + '_ext') is longer than 63 characters")
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
# ADMIN OPTION (PostgreSQL 16+): the master must hold it on every role it changes
# --------------------------------------------------------------------------------------------

ADMIN_REQUIRED_FROM = 160000  # server_version_num from which CREATEROLE alone is not enough


def admin_missing_sentence(master: str, roles: list[str] | tuple[str, ...]) -> str:
    """What is wrong and the repair, in one sentence (the rotation, `bootstrap sql`, the deploy)."""
    grants = "; ".join(f"GRANT {ident(r)} TO {ident(master)} WITH ADMIN OPTION" for r in roles)
    return (
        f"the master {master} lacks ADMIN OPTION on {', '.join(roles)}, which PostgreSQL 16+ requires to change a role "
        f"(roles created on 15 or older and carried over by a major-version upgrade have none); repair as the master: {grants}"
    )


def admin_repair_sql(master: str, roles: list[str] | tuple[str, ...], member_of: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The repair statements. A membership the master already has (owner) keeps its options; a
    new one carries ADMIN only, so the master gains no privileges of the login roles."""
    return [
        f"GRANT {ident(r)} TO {ident(master)} WITH ADMIN OPTION" + ("" if r in member_of else ", INHERIT FALSE, SET FALSE")
        for r in roles
    ]


def _admin_check_step(model: DbModel) -> Step:
    """First step of every apply on 16+: stop before changing anything when the master lacks ADMIN
    on a role that already exists (the one-sentence error and its repair, raised by the server)."""
    names = ", ".join(literal(r.name) for r in model.roles)
    return Step(
        "postgres",
        "DO $$ DECLARE missing text[];\nBEGIN\n"
        f"  IF current_setting('server_version_num')::int >= {ADMIN_REQUIRED_FROM} THEN\n"
        "    SELECT array_agg(rolname ORDER BY rolname) INTO missing FROM pg_roles\n"
        f"     WHERE rolname IN ({names}) AND NOT pg_has_role(current_user, oid, 'USAGE WITH ADMIN OPTION');\n"
        "    IF missing IS NOT NULL THEN\n"
        "      RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = format(\n"
        "        'the master %s lacks ADMIN OPTION on %s, which PostgreSQL 16+ requires to change a role (roles created on 15 or older '\n"
        "        'and carried over by a major-version upgrade have none); repair as the master: %s', current_user, array_to_string(missing, ', '),\n"
        "        (SELECT string_agg(format('GRANT %I TO %I WITH ADMIN OPTION', m, current_user), '; ') FROM unnest(missing) m));\n"
        "    END IF;\n  END IF;\nEND $$;",
    )


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
        attrs = f"{'LOGIN' if r.login else 'NOLOGIN'} NOCREATEDB NOCREATEROLE {'INHERIT' if r.inherit else 'NOINHERIT'} CONNECTION LIMIT {r.connection_limit}"
        steps.append(
            Step(
                "postgres",
                f"DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(r.name)}) THEN\n"
                f"    CREATE ROLE {ident(r.name)} {attrs};\n  END IF;\nEND $$;\n"
                f"ALTER ROLE {ident(r.name)} {attrs};",
            )
        )
    return steps


def _role_setting_steps(model: DbModel) -> list[Step]:
    """ALTER ROLE ... SET, after the memberships (SET role = owner before it is one draws a NOTICE)."""
    steps = []
    for r in model.roles:
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


def _membership_step(model: DbModel, member: str, role: str) -> Step:
    """GRANT role TO member; on 16+ with explicit INHERIT (the member's attribute) and SET options,
    the same options the provider's GrantRole gets there by default. Skipped when already so."""
    spec = next((r for r in model.roles if r.name == member), None)
    inherit = "TRUE" if spec is None or spec.inherit else "FALSE"
    grant = f"GRANT {ident(role)} TO {ident(member)}"
    where = f"m.roleid = {literal(role)}::regrole AND m.member = {literal(member)}::regrole"
    return Step(
        "postgres",
        f"DO $$ BEGIN\n  IF current_setting('server_version_num')::int >= {ADMIN_REQUIRED_FROM} THEN\n"
        f"    IF NOT EXISTS (SELECT FROM pg_auth_members m WHERE {where} AND m.inherit_option = {inherit} AND m.set_option) THEN\n"
        # EXECUTE: PL/pgSQL parses every statement up front, and 15 does not know this syntax.
        f"      EXECUTE {literal(f'{grant} WITH INHERIT {inherit}, SET TRUE')};\n    END IF;\n"
        f"  ELSIF NOT EXISTS (SELECT FROM pg_auth_members m WHERE {where}) THEN\n    {grant};\n  END IF;\nEND $$;",
    )


def _grant_sql(model: DbModel, g: GrantSpec) -> str:
    if g.database:
        # Another database (postgres, template1): only where the master holds its owner's rights
        # (it does on RDS); elsewhere the step does nothing rather than warn.
        return (
            f"DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_database WHERE datname = {literal(g.database)} AND pg_has_role(current_user, datdba, 'USAGE')) THEN\n"
            f"    REVOKE ALL ON DATABASE {ident(g.database)} FROM {grantee(g.role)};\n"
            + (f"    GRANT {', '.join(g.privileges)} ON DATABASE {ident(g.database)} TO {grantee(g.role)};\n" if g.privileges else "")
            + "  END IF;\nEND $$;"
        )
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
    out = [_admin_check_step(model)] + _role_steps(model)
    for member, role in model.memberships:
        out.append(_membership_step(model, member, role))
    for role in model.iam_login_roles:
        # rds_iam exists only on RDS; a local server skips it.
        out.append(
            Step(
                "postgres",
                f"DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(RDS_IAM_ROLE)})\n"
                f"     AND NOT pg_has_role({literal(role)}, {literal(RDS_IAM_ROLE)}, 'MEMBER') THEN\n"
                f"    GRANT {ident(RDS_IAM_ROLE)} TO {ident(role)};\n  END IF;\nEND $$;",
            )
        )
    out += _role_setting_steps(model)
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
    for schema in (model.schema, model.extension_schema):
        if schema:
            out.append(Step(db, f"CREATE SCHEMA {ident(schema)} AUTHORIZATION {ident(model.owner)};", unless=f"SELECT 1 FROM pg_namespace WHERE nspname = {literal(schema)}"))
            out.append(Step(db, f"ALTER SCHEMA {ident(schema)} OWNER TO {ident(model.owner)};"))
    for g in model.grants:
        out.append(Step(db, _grant_sql(model, g)))
    for d in model.default_privileges:
        out.append(Step(db, _default_privileges_sql(d)))
    for ext in model.extensions:
        # Created by owner (so the migrator, as owner, may ALTER EXTENSION ... UPDATE after an engine
        # upgrade), in its own schema: the bulk grants on the app schema never touch its functions.
        out.append(
            Step(
                db,
                f"SET ROLE {ident(model.owner)};\nCREATE EXTENSION {ident(ext)} SCHEMA {ident(model.extension_schema or model.schema)};\nRESET ROLE;",
                unless=f"SELECT 1 FROM pg_extension WHERE extname = {literal(ext)}",
            )
        )
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

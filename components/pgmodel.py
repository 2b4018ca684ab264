"""The application database, described once as plain data, rendered two ways.

`build_model()` turns the typed settings into a `DbModel`: the database, its schema, the roles
with their attributes and memberships, the grants, the default privileges and the extensions.
From that one description:

1. `components/app_database.py` builds the `pulumi_postgresql` resources, and
2. `components/pgsql.py` (`render_sql()`) prints the same model as SQL (`python -m bootstrap sql --stack dev`) for a DBA
   to review; the PostgreSQL tests apply it to a real server and probe what each role can do.

The SQL rendering and the ADMIN OPTION rule of PostgreSQL 16+ live in `components/pgsql.py`.
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
PLURAL = {"table": "TABLES", "sequence": "SEQUENCES", "function": "FUNCTIONS"}
IDENTIFIER_RE = r"[a-z_][a-z0-9_]{0,62}"
RESERVED_ROLE_PREFIXES = ("pg_", "rds")
RESERVED_ROLES = frozenset({"postgres", "public", "rdsadmin", "rds_superuser", "rdsrepladmin", "rds_iam", "rds_password", "current_user", "session_user"})
RDS_IAM_ROLE = "rds_iam"
# With rds.restrict_password_commands=1 only its members may change passwords: the master alone.
RDS_PASSWORD_ROLE = "rds_password"
# Every role may connect to these (and create TEMP tables) unless PUBLIC loses it; on RDS the master
# owns them and may revoke (template0 belongs to rdsadmin and admits no connections anyway).
MAINTENANCE_DATABASES = ("postgres", "template1")
# The search_path of every session that acts as the master (the SQL script, the provider, the
# rotation, the audit): owner, and so the migrator, owns the app database and may put functions
# or views named like catalog objects ahead of pg_catalog (ALTER DATABASE ... SET search_path);
# with this path nothing of the app's resolves. pg_temp last: never searched for functions, and
# it stops a temporary table from shadowing a catalog. PINNED_SEARCH_PATH_OPTIONS is the same as
# libpq/lib/pq "options" (PGOPTIONS), which outrank any database or role setting.
PINNED_SEARCH_PATH = ("pg_catalog", "pg_temp")
PINNED_SEARCH_PATH_OPTIONS = "-c search_path=" + ",".join(PINNED_SEARCH_PATH)


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
    iam_auth_roles: tuple[str, ...],
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
        # No grants on the schema's tables, sequences or functions: the default privileges below
        # exist before the migrator can create the first one, and afterwards migrations own those
        # objects' privileges (a column withheld, EXECUTE revoked, TRUNCATE added), which a bulk
        # `GRANT ... ON ALL ... IN SCHEMA` on every re-apply would overwrite.
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
        # Read-only means no function either: a SECURITY DEFINER one runs as owner and may write.
        # A migration grants EXECUTE to ro on the functions that only read (empty: revoke, so a
        # database that had the old default loses it on the next apply).
        DefaultPrivilegeSpec(owner, schema, "function", n["ro"], ()),
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
        iam_login_roles=tuple(n[r] for r in ("migrator", "app") if r in iam_auth_roles),
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
        if d.object_type not in PLURAL or unknown:
            problems.append(f"default privileges for {d.role} on {d.object_type}: unknown privilege(s) {sorted(unknown)}")
    return problems

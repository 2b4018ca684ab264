"""The app database model (components/pgmodel.py) rendered as SQL, and the ADMIN OPTION rule.

`render_sql()` prints the model as an idempotent psql script (`python -m bootstrap sql --stack dev`)
for a DBA to review; the PostgreSQL tests apply it to a real server and probe what each role can do.
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
    privileges (an empty list only revokes). The model grants on databases and schemas only:
    tables, sequences and functions get theirs from default privileges and migrations.
  * `DefaultPrivileges`: in one transaction, ALTER DEFAULT PRIVILEGES FOR ROLE <owner> IN SCHEMA
    <schema> REVOKE ALL ... FROM <role>, then GRANT the listed privileges.
  * `Extension`: CREATE EXTENSION ... SCHEMA <schema>_ext, a schema of its own: extension functions
    belong to the bootstrap superuser (PUBLIC may EXECUTE them), so USAGE on <schema>_ext (rw,
    ro) decides who may call them. The SQL creates them as owner.
Every session of the master is pinned (issue 24): each database's steps start with
`SET search_path = pg_catalog, pg_temp` and `RESET ROLE`, every catalog object the SQL names is
schema-qualified, and `ALTER ROLE <master> IN DATABASE <app> SET search_path` pins the master's
later sessions there (the provider's are pinned by PGOPTIONS, `dbcore/pgconn.py`'s by `options`):
the owner, and so the migrator, owns the app database and could otherwise plant a function named
like a catalog function that runs as the master.
Before anything else, on 16+, the master must hold ADMIN OPTION on every existing role of the model
(`_admin_check_step`): roles carried over by a major-version upgrade have none.
Everything is idempotent: applying the SQL twice changes nothing and draws no NOTICE or WARNING.

Session defaults (client_encoding UTF8, timezone UTC, default_transaction_isolation read committed)
are set in the RDS parameter group (components/database.py), where they apply to every role.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.pgmodel import PINNED_SEARCH_PATH, PLURAL, RDS_IAM_ROLE, RDS_PASSWORD_ROLE, DbModel, DefaultPrivilegeSpec, GrantSpec

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
        f"  IF pg_catalog.current_setting('server_version_num')::pg_catalog.int4 >= {ADMIN_REQUIRED_FROM} THEN\n"
        "    SELECT pg_catalog.array_agg(rolname ORDER BY rolname) INTO missing FROM pg_catalog.pg_roles\n"
        f"     WHERE rolname IN ({names}) AND NOT pg_catalog.pg_has_role(current_user, oid, 'USAGE WITH ADMIN OPTION');\n"
        "    IF missing IS NOT NULL THEN\n"
        "      RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = pg_catalog.format(\n"
        "        'the master %s lacks ADMIN OPTION on %s, which PostgreSQL 16+ requires to change a role (roles created on 15 or older '\n"
        "        'and carried over by a major-version upgrade have none); repair as the master: %s', current_user, pg_catalog.array_to_string(missing, ', '),\n"
        "        (SELECT pg_catalog.string_agg(pg_catalog.format('GRANT %I TO %I WITH ADMIN OPTION', m, current_user), '; ') FROM pg_catalog.unnest(missing) m));\n"
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
                f"DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {literal(r.name)}) THEN\n"
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
    where = f"m.roleid = {literal(role)}::pg_catalog.regrole AND m.member = {literal(member)}::pg_catalog.regrole"
    return Step(
        "postgres",
        f"DO $$ BEGIN\n  IF pg_catalog.current_setting('server_version_num')::pg_catalog.int4 >= {ADMIN_REQUIRED_FROM} THEN\n"
        f"    IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m WHERE {where} AND m.inherit_option = {inherit} AND m.set_option) THEN\n"
        # EXECUTE: PL/pgSQL parses every statement up front, and 15 does not know this syntax.
        f"      EXECUTE {literal(f'{grant} WITH INHERIT {inherit}, SET TRUE')};\n    END IF;\n"
        f"  ELSIF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m WHERE {where}) THEN\n    {grant};\n  END IF;\nEND $$;",
    )


def _grant_sql(model: DbModel, g: GrantSpec) -> str:
    if g.database:
        # Another database (postgres, template1): only where the master holds its owner's rights
        # (it does on RDS); elsewhere the step does nothing rather than warn.
        return (
            f"DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = {literal(g.database)} AND pg_catalog.pg_has_role(current_user, datdba, 'USAGE')) THEN\n"
            f"    REVOKE ALL ON DATABASE {ident(g.database)} FROM {grantee(g.role)};\n"
            + (f"    GRANT {', '.join(g.privileges)} ON DATABASE {ident(g.database)} TO {grantee(g.role)};\n" if g.privileges else "")
            + "  END IF;\nEND $$;"
        )
    if g.object_type == "database":
        target = f"DATABASE {ident(model.database)}"
    elif g.object_type == "schema":
        target = f"SCHEMA {ident(g.schema or model.schema)}"
    else:
        target = f"ALL {PLURAL[g.object_type]} IN SCHEMA {ident(g.schema or model.schema)}"
    lines = ["BEGIN;", f"REVOKE ALL ON {target} FROM {grantee(g.role)};"]
    if g.privileges:
        lines.append(f"GRANT {', '.join(g.privileges)} ON {target} TO {grantee(g.role)};")
    lines.append("COMMIT;")
    return "\n".join(lines)


def _default_privileges_sql(d: DefaultPrivilegeSpec) -> str:
    scope = f"ALTER DEFAULT PRIVILEGES FOR ROLE {ident(d.owner)}" + (f" IN SCHEMA {ident(d.schema)}" if d.schema else "")
    lines = ["BEGIN;", f"{scope} REVOKE ALL ON {PLURAL[d.object_type]} FROM {grantee(d.role)};"]
    if d.privileges:
        lines.append(f"{scope} GRANT {', '.join(d.privileges)} ON {PLURAL[d.object_type]} TO {grantee(d.role)};")
    lines.append("COMMIT;")
    return "\n".join(lines)


def rds_password_sql(master: str) -> str:
    """Make `master` a member of rds_password (issue 23 item 4), only where the role exists (RDS)
    and the master is not a member yet: on RDS it usually is, through rds_superuser, possibly
    without ADMIN OPTION, and then an unconditional GRANT fails on 16+. `python -m bootstrap deploy`
    runs the same statement before the app database's `up` (dbcore/pgadmin.py)."""
    return (
        f"DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {literal(RDS_PASSWORD_ROLE)})\n"
        f"     AND NOT pg_catalog.pg_has_role({literal(master)}, {literal(RDS_PASSWORD_ROLE)}, 'MEMBER') THEN\n"
        f"    GRANT {ident(RDS_PASSWORD_ROLE)} TO {ident(master)};\n  END IF;\nEND $$;"
    )


def steps(model: DbModel) -> list[Step]:
    """The model as ordered, idempotent steps, in the order the provider resources depend on each other."""
    # rds_password first: with rds.restrict_password_commands=1 even CREATE ROLE ... VALID UNTIL needs it
    out = [_admin_check_step(model), Step("postgres", rds_password_sql(model.master)), *_role_steps(model)]
    for member, role in model.memberships:
        out.append(_membership_step(model, member, role))
    for role in model.iam_login_roles:
        # rds_iam exists only on RDS; a local server skips it.
        out.append(
            Step(
                "postgres",
                f"DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {literal(RDS_IAM_ROLE)})\n"
                f"     AND NOT pg_catalog.pg_has_role({literal(role)}, {literal(RDS_IAM_ROLE)}, 'MEMBER') THEN\n"
                f"    GRANT {ident(RDS_IAM_ROLE)} TO {ident(role)};\n  END IF;\nEND $$;",
            )
        )
    out += _role_setting_steps(model)
    out.append(
        Step(
            "postgres",
            f"CREATE DATABASE {ident(model.database)} OWNER {ident(model.owner)} ENCODING 'UTF8' TEMPLATE template0;",
            unless=f"SELECT 1 FROM pg_catalog.pg_database WHERE datname = {literal(model.database)}",
        )
    )
    out.append(Step("postgres", f"ALTER DATABASE {ident(model.database)} OWNER TO {ident(model.owner)};"))
    # Every later session of the master in the app database starts pinned, whatever the client
    # (a DBA's psql, the provider): a role-and-database setting outranks ALTER DATABASE ... SET,
    # and only the master itself (or a superuser) may change it.
    out.append(Step("postgres", f"ALTER ROLE {ident(model.master)} IN DATABASE {ident(model.database)} SET search_path = {PINNED_PATH_SQL};"))
    db = model.database
    for schema in (model.schema, model.extension_schema):
        if schema:
            out.append(Step(db, f"CREATE SCHEMA {ident(schema)} AUTHORIZATION {ident(model.owner)};", unless=f"SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {literal(schema)}"))
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
                unless=f"SELECT 1 FROM pg_catalog.pg_extension WHERE extname = {literal(ext)}",
            )
        )
    return _pinned(out)


PINNED_PATH_SQL = ", ".join(PINNED_SEARCH_PATH)


def _pinned(out: list[Step]) -> list[Step]:
    """Each database's steps start by pinning the session: the search_path (nothing the owner
    created in the app database resolves) and the role (ALTER DATABASE ... SET role may not make
    the master's session act as owner)."""
    pinned: list[Step] = []
    for step in out:
        if not pinned or pinned[-1].database != step.database:
            pinned.append(Step(step.database, f"SET search_path = {PINNED_PATH_SQL};\nRESET ROLE;"))
        pinned.append(step)
    return pinned


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

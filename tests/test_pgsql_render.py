"""The app database model (components/pgmodel.py) and its SQL (components/pgsql.py), statement by
statement, without a server: fast, so mutation testing (issue 30, docs/testing.md) kills a changed
privilege or a lost REVOKE in milliseconds. What each statement does to a real server is proved by
tests/test_app_database_pg.py and tests/test_pg_no_escapes.py; here each is pinned word for word,
so a REVOKE dropped, a role swapped, an identifier left unquoted or a step moved fails by name.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.pgmodel import (
    DbModel,
    DefaultPrivilegeSpec,
    GrantSpec,
    RoleSpec,
    build_model,
    clone_of,
    role_names,
    validate,
)
from components.pgsql import (
    Step,
    admin_missing_sentence,
    admin_repair_sql,
    grantee,
    ident,
    literal,
    rds_password_sql,
    render_sql,
    steps,
)


def model(**overrides: object) -> DbModel:
    args: dict[str, object] = dict(
        database="shop", schema="app", role_prefix="shop", master="boss", extensions=("pgcrypto",), iam_auth_roles=("app",),
        connection_limit=50, statement_timeout_ms=30000, idle_in_transaction_timeout_ms=60000,
    )
    return build_model(**{**args, **overrides})  # type: ignore[arg-type]


def sql_in(m: DbModel, database: str) -> list[str]:
    return [s.sql for s in steps(m) if s.database == database]


PIN = "SET search_path = pg_catalog, pg_temp;\nRESET ROLE;"


# --- the model ----------------------------------------------------------------------------------


def test_five_roles_by_purpose_and_the_app_login_twin() -> None:
    assert role_names("shop") == {"owner": "shop_owner", "migrator": "shop_migrator", "rw": "shop_rw", "ro": "shop_ro", "app": "shop_app"}
    assert clone_of("shop_app") == "shop_app_clone"
    m = model()
    assert m.roles == (
        RoleSpec("shop_owner", login=False, comment="owns the database, the app schema and every object in it"),
        RoleSpec("shop_migrator", login=True, member_of=("shop_owner",), search_path=("app", "app_ext"), assume_role="shop_owner", inherit=False,
                 comment="runs migrations"),
        RoleSpec("shop_rw", login=False, comment="read-write group"),
        RoleSpec("shop_ro", login=False, comment="read-only group"),
        RoleSpec("shop_app", login=True, member_of=("shop_rw",), connection_limit=50, search_path=("app", "app_ext"),
                 statement_timeout_ms=30000, idle_in_transaction_timeout_ms=60000, comment="the application's login"),
        RoleSpec("shop_app_clone", login=True, member_of=("shop_rw",), connection_limit=50, search_path=("app", "app_ext"),
                 statement_timeout_ms=30000, idle_in_transaction_timeout_ms=60000, comment="the application's login (alternate user for rotation)"),
    )
    assert m.login_roles == ("shop_migrator", "shop_app", "shop_app_clone")
    assert m.role("shop_rw") is m.roles[2]
    assert (m.database, m.schema, m.owner, m.master, m.extensions, m.extension_schema) == ("shop", "app", "shop_owner", "boss", ("pgcrypto",), "app_ext")


def test_memberships_give_the_master_owner_and_each_role_its_groups_only() -> None:
    assert model().memberships == (("boss", "shop_owner"), ("shop_migrator", "shop_owner"), ("shop_app", "shop_rw"), ("shop_app_clone", "shop_rw"))


def test_grants_take_everything_from_public_and_give_each_role_connect_or_usage() -> None:
    """The REVOKE on schema public (issue 30: once guarded only by the golden plans) and the
    maintenance databases are in the model, and nobody gets more than CONNECT or USAGE."""
    assert model().grants == (
        GrantSpec("public", "database", ()),
        GrantSpec("public", "database", (), database="postgres"),
        GrantSpec("public", "database", (), database="template1"),
        GrantSpec("public", "schema", (), schema="public"),
        GrantSpec("shop_migrator", "database", ("CONNECT",)),
        GrantSpec("shop_app", "database", ("CONNECT",)),
        GrantSpec("shop_app_clone", "database", ("CONNECT",)),
        GrantSpec("shop_rw", "schema", ("USAGE",), schema="app"),
        GrantSpec("shop_ro", "schema", ("USAGE",), schema="app"),
        GrantSpec("shop_rw", "schema", ("USAGE",), schema="app_ext"),
        GrantSpec("shop_ro", "schema", ("USAGE",), schema="app_ext"),
    )


def test_default_privileges_read_write_read_only_and_none_for_public() -> None:
    assert model().default_privileges == (
        DefaultPrivilegeSpec("shop_owner", "app", "table", "shop_rw", ("DELETE", "INSERT", "SELECT", "UPDATE")),
        DefaultPrivilegeSpec("shop_owner", "app", "table", "shop_ro", ("SELECT",)),
        DefaultPrivilegeSpec("shop_owner", "app", "sequence", "shop_rw", ("SELECT", "UPDATE", "USAGE")),
        DefaultPrivilegeSpec("shop_owner", "app", "sequence", "shop_ro", ("SELECT",)),
        DefaultPrivilegeSpec("shop_owner", "app", "function", "shop_rw", ("EXECUTE",)),
        DefaultPrivilegeSpec("shop_owner", "app", "function", "shop_ro", ()),
        DefaultPrivilegeSpec("shop_owner", None, "function", "public", ()),
    )


def test_without_extensions_there_is_no_extension_schema_anywhere() -> None:
    m = model(extensions=())
    assert m.extension_schema is None and m.extensions == ()
    assert m.role("shop_app").search_path == ("app",) and m.role("shop_migrator").search_path == ("app",)
    assert m.grants == model().grants[:9]  # no USAGE on an extension schema that does not exist
    assert not [s for s in steps(m) if "app_ext" in s.sql]


@pytest.mark.parametrize(("asked", "logins"), [((), ()), (("app",), ("shop_app",)), (("migrator",), ("shop_migrator",)),
                                               (("app", "migrator"), ("shop_migrator", "shop_app"))])
def test_iam_login_roles_follow_the_setting(asked: tuple[str, ...], logins: tuple[str, ...]) -> None:
    assert model(iam_auth_roles=asked).iam_login_roles == logins


# --- validate(): one sentence per problem -------------------------------------------------------


def _with(m: DbModel, **fields: object) -> DbModel:
    return replace(m, **fields)  # type: ignore[arg-type]


def test_the_model_of_valid_settings_has_no_problem() -> None:
    assert validate(model()) == []
    # 63 characters is PostgreSQL's limit and allowed; the extension schema may reach it too
    long = "a" * 59
    assert validate(model(role_prefix="r" * 51, schema=long)) == []


@pytest.mark.parametrize(
    ("name", "problems"),
    [
        ("Shop_app", ["role name 'Shop_app' is not a valid lowercase identifier (letters, digits, _; max 63)"]),
        ("1shop", ["role name '1shop' is not a valid lowercase identifier (letters, digits, _; max 63)"]),
        ("a" * 64, [f"role name '{'a' * 64}' is not a valid lowercase identifier (letters, digits, _; max 63)"]),
        ("postgres", ["role name 'postgres' is reserved (postgres, public, rds*, pg_*)"]),
        ("public", ["role name 'public' is reserved (postgres, public, rds*, pg_*)"]),
        ("session_user", ["role name 'session_user' is reserved (postgres, public, rds*, pg_*)"]),
        ("pg_shop", ["role name 'pg_shop' is reserved (postgres, public, rds*, pg_*)"]),
        ("rdsx", ["role name 'rdsx' is reserved (postgres, public, rds*, pg_*)"]),
        ("pgshop", []),
        ("_shop9", []),
        ("a" * 63, []),
    ],
)
def test_role_names_must_be_plain_unreserved_identifiers(name: str, problems: list[str]) -> None:
    m = model()
    assert validate(_with(m, roles=(replace(m.roles[0], name=name), *m.roles[1:]))) == problems


def test_clashing_names_the_master_and_a_long_extension_schema_are_named() -> None:
    m = model()
    assert validate(_with(m, roles=(*m.roles, m.roles[0], m.roles[2]))) == ["role names clash: ['shop_owner', 'shop_owner', 'shop_rw', 'shop_rw']"]
    assert validate(_with(m, master="shop_app")) == ["role 'shop_app' is the RDS master user; choose another role prefix or master name"]
    assert validate(_with(m, extension_schema="e" * 64)) == [
        f"extension schema {'e' * 64!r} (the app schema + '_ext') is longer than 63 characters"]
    assert validate(_with(m, extension_schema="Ext")) == ["extension schema 'Ext' (the app schema + '_ext') is longer than 63 characters"]


def test_grants_and_default_privileges_name_unknown_privileges_and_types() -> None:
    m = model()
    assert validate(_with(m, grants=(GrantSpec("x", "table", ("ALL", "SELECT"), schema="app"),))) == [
        "grant to x on table: unknown privilege(s) ['ALL']"]
    assert validate(_with(m, grants=(GrantSpec("x", "view", ()),))) == ["grant to x on view: unknown privilege(s) []"]
    assert validate(_with(m, grants=(GrantSpec("x", "schema", ("USAGE", "CREATE")),))) == []
    assert validate(_with(m, default_privileges=(DefaultPrivilegeSpec("o", "app", "sequence", "x", ("EXECUTE", "USAGE")),))) == [
        "default privileges for x on sequence: unknown privilege(s) ['EXECUTE']"]
    # schemas have privileges, but ALTER DEFAULT PRIVILEGES in a schema knows only tables, sequences, functions
    assert validate(_with(m, default_privileges=(DefaultPrivilegeSpec("o", "app", "schema", "x", ("USAGE",)),))) == [
        "default privileges for x on schema: unknown privilege(s) []"]
    assert validate(_with(m, default_privileges=(DefaultPrivilegeSpec("o", "app", "view", "x", ()),))) == [
        "default privileges for x on view: unknown privilege(s) []"]


# --- quoting ------------------------------------------------------------------------------------


def test_identifiers_and_literals_are_quoted_with_their_quotes_doubled() -> None:
    assert ident("shop") == '"shop"'
    assert ident('a"b') == '"a""b"'
    assert literal("it's") == "'it''s'"
    assert grantee("public") == "PUBLIC"
    assert grantee("Public") == '"Public"'
    assert grantee("shop_app") == '"shop_app"'


# --- the SQL, step by step ----------------------------------------------------------------------


def test_the_postgres_steps_start_pinned_then_check_admin_then_rds_password() -> None:
    s = sql_in(model(), "postgres")
    assert s[0] == PIN
    assert s[1] == (
        "DO $$ DECLARE missing text[];\nBEGIN\n"
        "  IF pg_catalog.current_setting('server_version_num')::pg_catalog.int4 >= 160000 THEN\n"
        "    SELECT pg_catalog.array_agg(rolname ORDER BY rolname) INTO missing FROM pg_catalog.pg_roles\n"
        "     WHERE rolname IN ('shop_owner', 'shop_migrator', 'shop_rw', 'shop_ro', 'shop_app', 'shop_app_clone')"
        " AND NOT pg_catalog.pg_has_role(current_user, oid, 'USAGE WITH ADMIN OPTION');\n"
        "    IF missing IS NOT NULL THEN\n"
        "      RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = pg_catalog.format(\n"
        "        'the master %s lacks ADMIN OPTION on %s, which PostgreSQL 16+ requires to change a role (roles created on 15 or older '\n"
        "        'and carried over by a major-version upgrade have none); repair as the master: %s', current_user,"
        " pg_catalog.array_to_string(missing, ', '),\n"
        "        (SELECT pg_catalog.string_agg(pg_catalog.format('GRANT %I TO %I WITH ADMIN OPTION', m, current_user), '; ')"
        " FROM pg_catalog.unnest(missing) m));\n"
        "    END IF;\n  END IF;\nEND $$;"
    )
    assert s[2] == rds_password_sql("boss")


def test_rds_password_is_granted_to_the_master_only_where_it_exists_and_is_missing() -> None:
    assert rds_password_sql("boss") == (
        "DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'rds_password')\n"
        "     AND NOT pg_catalog.pg_has_role('boss', 'rds_password', 'MEMBER') THEN\n"
        '    GRANT "rds_password" TO "boss";\n  END IF;\nEND $$;'
    )


def _role_sql(name: str, attrs: str) -> str:
    return (f"DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{name}') THEN\n"
            f'    CREATE ROLE "{name}" {attrs};\n  END IF;\nEND $$;\nALTER ROLE "{name}" {attrs};')


def test_roles_are_created_when_absent_then_converged_without_superpowers() -> None:
    assert sql_in(model(), "postgres")[3:9] == [
        _role_sql("shop_owner", "NOLOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT -1"),
        _role_sql("shop_migrator", "LOGIN NOCREATEDB NOCREATEROLE NOINHERIT CONNECTION LIMIT -1"),
        _role_sql("shop_rw", "NOLOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT -1"),
        _role_sql("shop_ro", "NOLOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT -1"),
        _role_sql("shop_app", "LOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT 50"),
        _role_sql("shop_app_clone", "LOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT 50"),
    ]


def _membership_sql(role: str, member: str, inherit: str) -> str:
    where = f"m.roleid = '{role}'::pg_catalog.regrole AND m.member = '{member}'::pg_catalog.regrole"
    return (
        "DO $$ BEGIN\n  IF pg_catalog.current_setting('server_version_num')::pg_catalog.int4 >= 160000 THEN\n"
        f"    IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m WHERE {where} AND m.inherit_option = {inherit} AND m.set_option) THEN\n"
        f"      EXECUTE 'GRANT \"{role}\" TO \"{member}\" WITH INHERIT {inherit}, SET TRUE';\n    END IF;\n"
        f"  ELSIF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m WHERE {where}) THEN\n"
        f'    GRANT "{role}" TO "{member}";\n  END IF;\nEND $$;'
    )


def test_memberships_inherit_as_the_member_does_and_the_migrator_reaches_owner_only_by_set_role() -> None:
    assert sql_in(model(), "postgres")[9:13] == [
        _membership_sql("shop_owner", "boss", "TRUE"),  # the master is not a role of the model: INHERIT
        _membership_sql("shop_owner", "shop_migrator", "FALSE"),
        _membership_sql("shop_rw", "shop_app", "TRUE"),
        _membership_sql("shop_rw", "shop_app_clone", "TRUE"),
    ]


def _iam_sql(role: str) -> str:
    return (
        "DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'rds_iam')\n"
        f"     AND NOT pg_catalog.pg_has_role('{role}', 'rds_iam', 'MEMBER') THEN\n"
        f'    GRANT "rds_iam" TO "{role}";\n  END IF;\nEND $$;'
    )


def test_iam_logins_join_rds_iam_where_it_exists() -> None:
    assert sql_in(model(), "postgres")[13] == _iam_sql("shop_app")
    both = sql_in(model(iam_auth_roles=("app", "migrator")), "postgres")
    assert both[13:15] == [_iam_sql("shop_migrator"), _iam_sql("shop_app")]
    assert not [s for s in steps(model(iam_auth_roles=())) if "rds_iam" in s.sql]


def test_role_settings_come_after_the_memberships_and_the_database_steps_last() -> None:
    assert sql_in(model(), "postgres")[14:] == [
        'ALTER ROLE "shop_migrator" SET search_path = "app", "app_ext";',
        'ALTER ROLE "shop_migrator" SET role = "shop_owner";',
        'ALTER ROLE "shop_app" SET search_path = "app", "app_ext";',
        'ALTER ROLE "shop_app" SET statement_timeout = 30000;',
        'ALTER ROLE "shop_app" SET idle_in_transaction_session_timeout = 60000;',
        'ALTER ROLE "shop_app_clone" SET search_path = "app", "app_ext";',
        'ALTER ROLE "shop_app_clone" SET statement_timeout = 30000;',
        'ALTER ROLE "shop_app_clone" SET idle_in_transaction_session_timeout = 60000;',
        "CREATE DATABASE \"shop\" OWNER \"shop_owner\" ENCODING 'UTF8' TEMPLATE template0;",
        'ALTER DATABASE "shop" OWNER TO "shop_owner";',
        'ALTER ROLE "boss" IN DATABASE "shop" SET search_path = pg_catalog, pg_temp;',
    ]


def test_a_zero_timeout_is_still_set_and_an_empty_search_path_is_not() -> None:
    """0 disables the timeout, which is a setting too; an empty search_path leaves the server's."""
    m = model(statement_timeout_ms=0, idle_in_transaction_timeout_ms=0)
    app = [s for s in sql_in(m, "postgres") if s.startswith('ALTER ROLE "shop_app" SET')]
    assert app == ['ALTER ROLE "shop_app" SET search_path = "app", "app_ext";', 'ALTER ROLE "shop_app" SET statement_timeout = 0;',
                   'ALTER ROLE "shop_app" SET idle_in_transaction_session_timeout = 0;']
    bare = _with(m, roles=(RoleSpec("shop_x", login=True),))
    assert [s for s in sql_in(bare, "postgres") if s.startswith('ALTER ROLE "shop_x" SET')] == []


def test_create_statements_are_guarded_by_a_catalog_query() -> None:
    guarded = [(s.database, s.sql, s.unless) for s in steps(model()) if s.unless]
    assert guarded == [
        ("postgres", "CREATE DATABASE \"shop\" OWNER \"shop_owner\" ENCODING 'UTF8' TEMPLATE template0;",
         "SELECT 1 FROM pg_catalog.pg_database WHERE datname = 'shop'"),
        ("shop", 'CREATE SCHEMA "app" AUTHORIZATION "shop_owner";', "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'app'"),
        ("shop", 'CREATE SCHEMA "app_ext" AUTHORIZATION "shop_owner";', "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'app_ext'"),
        ("shop", 'SET ROLE "shop_owner";\nCREATE EXTENSION "pgcrypto" SCHEMA "app_ext";\nRESET ROLE;',
         "SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pgcrypto'"),
    ]
    assert all(s.unless is None for s in steps(model()) if not s.sql.startswith(("CREATE", "SET ROLE")))


def _maintenance_sql(db: str) -> str:
    return (
        f"DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = '{db}' AND pg_catalog.pg_has_role(current_user, datdba, 'USAGE')) THEN\n"
        f'    REVOKE ALL ON DATABASE "{db}" FROM PUBLIC;\n  END IF;\nEND $$;'
    )


def test_the_app_database_steps_revoke_from_public_and_grant_each_role_its_share() -> None:
    """In the app database, pinned first: the schemas, then every grant as REVOKE ALL (+ GRANT) in
    one transaction, PUBLIC losing the app database, the maintenance databases and schema public."""
    assert sql_in(model(), "shop") == [
        PIN,
        'CREATE SCHEMA "app" AUTHORIZATION "shop_owner";',
        'ALTER SCHEMA "app" OWNER TO "shop_owner";',
        'CREATE SCHEMA "app_ext" AUTHORIZATION "shop_owner";',
        'ALTER SCHEMA "app_ext" OWNER TO "shop_owner";',
        'BEGIN;\nREVOKE ALL ON DATABASE "shop" FROM PUBLIC;\nCOMMIT;',
        _maintenance_sql("postgres"),
        _maintenance_sql("template1"),
        'BEGIN;\nREVOKE ALL ON SCHEMA "public" FROM PUBLIC;\nCOMMIT;',
        'BEGIN;\nREVOKE ALL ON DATABASE "shop" FROM "shop_migrator";\nGRANT CONNECT ON DATABASE "shop" TO "shop_migrator";\nCOMMIT;',
        'BEGIN;\nREVOKE ALL ON DATABASE "shop" FROM "shop_app";\nGRANT CONNECT ON DATABASE "shop" TO "shop_app";\nCOMMIT;',
        'BEGIN;\nREVOKE ALL ON DATABASE "shop" FROM "shop_app_clone";\nGRANT CONNECT ON DATABASE "shop" TO "shop_app_clone";\nCOMMIT;',
        'BEGIN;\nREVOKE ALL ON SCHEMA "app" FROM "shop_rw";\nGRANT USAGE ON SCHEMA "app" TO "shop_rw";\nCOMMIT;',
        'BEGIN;\nREVOKE ALL ON SCHEMA "app" FROM "shop_ro";\nGRANT USAGE ON SCHEMA "app" TO "shop_ro";\nCOMMIT;',
        'BEGIN;\nREVOKE ALL ON SCHEMA "app_ext" FROM "shop_rw";\nGRANT USAGE ON SCHEMA "app_ext" TO "shop_rw";\nCOMMIT;',
        'BEGIN;\nREVOKE ALL ON SCHEMA "app_ext" FROM "shop_ro";\nGRANT USAGE ON SCHEMA "app_ext" TO "shop_ro";\nCOMMIT;',
        *_default_privilege_sql(),
        'SET ROLE "shop_owner";\nCREATE EXTENSION "pgcrypto" SCHEMA "app_ext";\nRESET ROLE;',
    ]


def _default_privilege_sql() -> list[str]:
    scope = 'ALTER DEFAULT PRIVILEGES FOR ROLE "shop_owner" IN SCHEMA "app"'
    return [
        f'BEGIN;\n{scope} REVOKE ALL ON TABLES FROM "shop_rw";\n{scope} GRANT DELETE, INSERT, SELECT, UPDATE ON TABLES TO "shop_rw";\nCOMMIT;',
        f'BEGIN;\n{scope} REVOKE ALL ON TABLES FROM "shop_ro";\n{scope} GRANT SELECT ON TABLES TO "shop_ro";\nCOMMIT;',
        f'BEGIN;\n{scope} REVOKE ALL ON SEQUENCES FROM "shop_rw";\n{scope} GRANT SELECT, UPDATE, USAGE ON SEQUENCES TO "shop_rw";\nCOMMIT;',
        f'BEGIN;\n{scope} REVOKE ALL ON SEQUENCES FROM "shop_ro";\n{scope} GRANT SELECT ON SEQUENCES TO "shop_ro";\nCOMMIT;',
        f'BEGIN;\n{scope} REVOKE ALL ON FUNCTIONS FROM "shop_rw";\n{scope} GRANT EXECUTE ON FUNCTIONS TO "shop_rw";\nCOMMIT;',
        f'BEGIN;\n{scope} REVOKE ALL ON FUNCTIONS FROM "shop_ro";\nCOMMIT;',
        # global, not per schema: only a global default privilege takes PUBLIC's EXECUTE away
        'BEGIN;\nALTER DEFAULT PRIVILEGES FOR ROLE "shop_owner" REVOKE ALL ON FUNCTIONS FROM PUBLIC;\nCOMMIT;',
    ]


def test_grant_shapes_the_model_does_not_use_today_render_too() -> None:
    """Bulk grants on every object of a type, a schema grant without a schema (the model's), and a
    grant with privileges on another database: what a model change would render."""
    m = _with(model(), grants=(
        GrantSpec("shop_ro", "table", ("SELECT", "REFERENCES"), schema="other"),
        GrantSpec("shop_rw", "sequence", ("USAGE",)),
        GrantSpec("shop_rw", "function", ()),
        GrantSpec("shop_rw", "schema", ("USAGE",)),
        GrantSpec("boss", "database", ("CONNECT", "TEMPORARY"), database="postgres"),
    ), default_privileges=(DefaultPrivilegeSpec("shop_owner", "other", "table", "public", ("SELECT",)),), extensions=())
    assert sql_in(m, "shop")[5:] == [
        'BEGIN;\nREVOKE ALL ON ALL TABLES IN SCHEMA "other" FROM "shop_ro";\nGRANT SELECT, REFERENCES ON ALL TABLES IN SCHEMA "other" TO "shop_ro";\nCOMMIT;',
        'BEGIN;\nREVOKE ALL ON ALL SEQUENCES IN SCHEMA "app" FROM "shop_rw";\nGRANT USAGE ON ALL SEQUENCES IN SCHEMA "app" TO "shop_rw";\nCOMMIT;',
        'BEGIN;\nREVOKE ALL ON ALL FUNCTIONS IN SCHEMA "app" FROM "shop_rw";\nCOMMIT;',
        'BEGIN;\nREVOKE ALL ON SCHEMA "app" FROM "shop_rw";\nGRANT USAGE ON SCHEMA "app" TO "shop_rw";\nCOMMIT;',
        "DO $$ BEGIN\n  IF EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = 'postgres' AND pg_catalog.pg_has_role(current_user, datdba, 'USAGE')) THEN\n"
        '    REVOKE ALL ON DATABASE "postgres" FROM "boss";\n'
        '    GRANT CONNECT, TEMPORARY ON DATABASE "postgres" TO "boss";\n  END IF;\nEND $$;',
        'BEGIN;\nALTER DEFAULT PRIVILEGES FOR ROLE "shop_owner" IN SCHEMA "other" REVOKE ALL ON TABLES FROM PUBLIC;\n'
        'ALTER DEFAULT PRIVILEGES FOR ROLE "shop_owner" IN SCHEMA "other" GRANT SELECT ON TABLES TO PUBLIC;\nCOMMIT;',
    ]


def test_an_extension_without_its_own_schema_goes_to_the_app_schema() -> None:
    m = _with(model(extensions=()), extensions=("citext",))
    assert sql_in(m, "shop")[-1] == 'SET ROLE "shop_owner";\nCREATE EXTENSION "citext" SCHEMA "app";\nRESET ROLE;'


def test_each_database_switch_starts_pinned_and_only_then() -> None:
    out = steps(model())
    assert [i for i, s in enumerate(out) if s.sql == PIN] == [0, len(sql_in(model(), "postgres"))]
    assert [s.database for s in out] == ["postgres"] * len(sql_in(model(), "postgres")) + ["shop"] * len(sql_in(model(), "shop"))
    assert out[0] == Step("postgres", PIN)


def test_render_sql_is_a_psql_script_that_connects_and_guards_creates_with_gexec() -> None:
    m = model(extensions=())
    out = render_sql(m)
    assert out.endswith("COMMIT;\n") and not out.endswith("\n\n")
    lines = out.split("\n")
    assert lines[:6] == [
        "-- App database 'shop': roles, grants and default privileges (generated from the model in components/pgmodel.py).",
        "-- Mirrors the pulumi_postgresql resources; idempotent. Run as the RDS master user. No passwords:",
        "-- login roles get theirs from `python -m bootstrap rotate`.",
        "\\set ON_ERROR_STOP on",
        "",
        "\\connect postgres",
    ]
    assert [i for i, line in enumerate(lines) if line.startswith("\\connect")] == [5, lines.index("\\connect shop")]
    assert lines[lines.index("\\connect shop") - 1] == ""
    assert ("SELECT 'CREATE DATABASE \"shop\" OWNER \"shop_owner\" ENCODING ''UTF8'' TEMPLATE template0' "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = 'shop')\\gexec") in lines
    assert ("SELECT 'CREATE SCHEMA \"app\" AUTHORIZATION \"shop_owner\"' "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'app')\\gexec") in lines
    # every unguarded step appears as is, in order
    body = "\n".join(line for line in lines if not line.startswith(("--", "\\", "SELECT '")) and line)
    assert body == "\n".join(s.sql for s in steps(m) if not s.unless)


# --- ADMIN OPTION (PostgreSQL 16+) --------------------------------------------------------------


def test_the_admin_sentence_names_the_roles_and_the_repair() -> None:
    assert admin_missing_sentence("boss", ["shop_app", "shop_rw"]) == (
        "the master boss lacks ADMIN OPTION on shop_app, shop_rw, which PostgreSQL 16+ requires to change a role "
        "(roles created on 15 or older and carried over by a major-version upgrade have none); repair as the master: "
        'GRANT "shop_app" TO "boss" WITH ADMIN OPTION; GRANT "shop_rw" TO "boss" WITH ADMIN OPTION'
    )


def test_the_admin_repair_gives_a_new_membership_admin_only() -> None:
    assert admin_repair_sql("boss", ["shop_owner", "shop_app"], member_of={"shop_owner"}) == [
        'GRANT "shop_owner" TO "boss" WITH ADMIN OPTION',
        'GRANT "shop_app" TO "boss" WITH ADMIN OPTION, INHERIT FALSE, SET FALSE',
    ]
    assert admin_repair_sql("boss", ("shop_ro",)) == ['GRANT "shop_ro" TO "boss" WITH ADMIN OPTION, INHERIT FALSE, SET FALSE']

"""The app database section's rules (appDb*): names, extensions, TLS to the provider, IAM auth,
and the credential the postgresql provider reads from the environment (never from its inputs)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from components.pgmodel import validate as validate_model
from config.limits import ALLOWED_EXTENSIONS, PG_IDENTIFIER_RE
from config.reader import Reader
from config.sections import secret_recovery_window_days
from config.settings import AppDatabaseSettings, DatabaseSettings, Environment, SslMode


def app_database(
    r: Reader, name_prefix: str, env: Environment, app_name: str, database: DatabaseSettings, environ: Mapping[str, str], check_credentials: bool
) -> AppDatabaseSettings:
    name = r.string("appDbName") or app_name.replace("-", "_")
    if not re.fullmatch(PG_IDENTIFIER_RE, name) or name in ("postgres", "template0", "template1", "rdsadmin"):
        r.fail("appDbName", name, "must be a lowercase PostgreSQL identifier (letters, digits, _; max 63) and not postgres/template0/template1/rdsadmin")
    schema = r.string("appDbSchema")
    if not re.fullmatch(PG_IDENTIFIER_RE, schema) or schema == "public" or schema.startswith("pg_") or schema == "information_schema":
        r.fail("appDbSchema", schema, "must be a lowercase identifier other than public, information_schema or pg_*")
    prefix = r.string("appDbRolePrefix") or app_name.replace("-", "_")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,50}", prefix):
        r.fail("appDbRolePrefix", prefix, "must be a lowercase identifier of at most 51 chars (letters, digits, _), e.g. shop")
    extensions = r.strings("appDbExtensions")
    for ext in extensions:
        r.check(ext in ALLOWED_EXTENSIONS, "appDbExtensions", ext, f"each entry must be one of {', '.join(sorted(ALLOWED_EXTENSIONS))}")
    r.check(len(set(extensions)) == len(extensions), "appDbExtensions", list(extensions), "must not list an extension twice")
    host = r.string("appDbHostOverride")
    r.check(host == "" or bool(re.fullmatch(r"[A-Za-z0-9.\-:]{1,253}", host)), "appDbHostOverride", host, "must be empty or a host name / IP address")
    ssl_mode = r.choice("appDbSslMode", SslMode)
    if env is Environment.PROD:
        r.check(ssl_mode is SslMode.VERIFY_FULL, "appDbSslMode", ssl_mode.value,
                "must be verify-full in prod (require encrypts but accepts any server, which could then receive the master password)")
    root_cert = r.string("appDbSslRootCert")
    r.check(ssl_mode is not SslMode.VERIFY_FULL or bool(root_cert), "appDbSslRootCert", root_cert,
            "must name the RDS CA bundle file (default certs/rds-global-bundle.pem, written by `python -m bootstrap ca-bundle fetch`) "
            "when appDbSslMode is verify-full")
    settings = AppDatabaseSettings(
        prefix=name_prefix,
        enabled=r.boolean("appDbEnabled"),
        name=name,
        schema=schema,
        role_prefix=prefix,
        extensions=extensions,
        iam_auth_roles=_iam_auth_roles(r),
        connection_limit=r.integer("appDbConnectionLimit", 1, 1000),
        statement_timeout_ms=r.integer("appDbStatementTimeoutMs", 0, 86_400_000),
        idle_in_transaction_timeout_ms=r.integer("appDbIdleInTransactionTimeoutMs", 0, 86_400_000),
        host_override=host,
        port_override=r.integer("appDbPortOverride", 0, 65535),
        ssl_mode=ssl_mode,
        master_username=database.master_username,
        engine_version=database.engine_version,
        protect=database.protect,
        secret_recovery_window_days=secret_recovery_window_days(env),
        ssl_root_cert=root_cert,
    )
    if not r.failed & {"appDbRolePrefix", "appDbName", "appDbSchema", "appDbExtensions"}:
        for problem in validate_model(settings.model()):
            r.fail("appDbRolePrefix", prefix, problem)
    # The postgresql provider must never get a password among its inputs (they land in the state):
    # it reads PGPASSWORD from the environment of the pulumi process instead.
    if check_credentials and settings.enabled and not environ.get("PGPASSWORD"):
        r.fail(
            "appDbEnabled",
            True,
            "the postgresql provider has no credential: run `python -m bootstrap deploy`, which puts the master "
            "password from Secrets Manager into PGPASSWORD for the pulumi process only, or export PGPASSWORD yourself",
        )
    return settings


IAM_AUTH_ROLES = ("app", "migrator")


def _iam_auth_roles(r: Reader) -> tuple[str, ...]:
    """appDbIamAuthRoles, or the deprecated appDbIamAuth (true = the app login only)."""
    roles = r.strings("appDbIamAuthRoles")
    for role in roles:
        r.check(role in IAM_AUTH_ROLES, "appDbIamAuthRoles", role, f"each entry must be one of {', '.join(IAM_AUTH_ROLES)}")
    r.check(len(set(roles)) == len(roles), "appDbIamAuthRoles", list(roles), "must not list a role twice")
    legacy = r.optional_boolean("appDbIamAuth", False)
    r.check(not (legacy and roles), "appDbIamAuth", legacy, "must not be set together with appDbIamAuthRoles (it is its deprecated form)")
    return tuple(x for x in IAM_AUTH_ROLES if x in roles) if roles else (("app",) if legacy else ())

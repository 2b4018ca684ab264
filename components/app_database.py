"""The application database: login-role secrets always, and (when enabled) the database, roles,
grants and default privileges through `pulumi_postgresql`, all built from one model
(`components/pgmodel.py`).

Credentials never pass through the program or the state:
  * the postgresql provider gets host, port, user, sslmode and version, but no password: it reads
    PGPASSWORD from the environment of the pulumi process (`python -m bootstrap deploy` fills it
    from the master secret in Secrets Manager, for that process only);
  * login roles are created without a password; `python -m bootstrap rotate` sets them and stores
    them in the secrets created here, whose initial value holds no password.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_postgresql as postgresql

from components.database import Database
from components.pgmodel import RDS_IAM_ROLE, DbModel
from config.settings import AppDatabaseSettings


@dataclass(frozen=True)
class DbConnection:
    """How a client reaches the app database as one login role: what a service needs, in one object
    (like passing a CDK construct instead of eight of its attributes)."""

    host: pulumi.Input[str]
    port: pulumi.Input[int]
    dbname: str
    username: str
    secret_arn: pulumi.Input[str]
    """Secrets Manager secret of the role (JSON: host, port, username, password, dbname)."""
    kms_key_arn: pulumi.Input[str]
    """The CMK that encrypts the secret; readers may Decrypt only through Secrets Manager."""
    iam_grant: aws.iam.GetPolicyDocumentStatementArgs | None = None
    """With IAM auth: the rds-db:connect statement for this user (from Database.grant_connect)."""


@dataclass
class AppDatabaseArgs:
    """Inputs of the app database: the database component it lives on and its settings section."""

    settings: AppDatabaseSettings
    """Names, model options, connection settings, per-environment choices (plain: they decide which resources exist)."""
    database: Database
    """The RDS component: endpoint for the provider and the secrets, CMK for the secrets, IAM grants."""


class AppDatabase(pulumi.ComponentResource):
    model: DbModel
    login_secret_arns: dict[str, pulumi.Output[str]]
    app_username: str
    migrator_username: str
    database_name: str
    schema_name: str
    login_roles: list[pulumi.Resource] | None
    """The roles and grants the login secrets belong to (None while the app database is off): what
    their rotation must wait for."""

    def __init__(self, name: str, args: AppDatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:appdb:AppDatabase", name, None, opts)
        self._name, self._args = name, args
        s = args.settings
        self.model = s.model()
        self.app_username = s.login_name("app")
        self.migrator_username = s.login_name("migrator")
        self.database_name = s.name
        self.schema_name = s.schema

        self.login_secret_versions: dict[str, pulumi.Resource] = {}
        self.login_secret_arns = {role: self._login_secret(role, s.login_name(role)) for role in s.LOGIN_ROLES}
        self.login_roles = None
        if s.enabled:
            self._postgres()
        self.register_outputs({"login_secret_arns": self.login_secret_arns, "database_name": self.database_name})

    def connection(self, role: str) -> DbConnection:
        """The connection facts of one login role ('app' or 'migrator')."""
        s, db = self._args.settings, self._args.database
        username = s.login_name(role)
        return DbConnection(
            host=db.address,
            port=db.port,
            dbname=s.name,
            username=username,
            secret_arn=self.login_secret_arns[role],
            kms_key_arn=db.kms_key_arn,
            iam_grant=db.grant_connect(username) if role in s.iam_auth_roles else None,
        )

    def _login_secret(self, key: str, username: str) -> pulumi.Output[str]:
        """A secret the rotation fills: host, port, user and database now, the password later."""
        s, db, child = self._args.settings, self._args.database, pulumi.ResourceOptions(parent=self)
        secret = aws.secretsmanager.Secret(
            f"{self._name}-{key}-secret",
            name=s.secret_name(key),
            description=f"{s.prefix}: PostgreSQL login {username} (password set by `python -m bootstrap rotate`)",
            kms_key_id=db.kms_key_arn,
            recovery_window_in_days=s.secret_recovery_window_days,
            opts=child,
        )
        self.login_secret_versions[key] = aws.secretsmanager.SecretVersion(
            f"{self._name}-{key}-secret-initial",
            secret_id=secret.id,
            secret_string=pulumi.Output.json_dumps(
                {"engine": "postgres", "host": db.address, "port": db.port, "username": username, "dbname": s.name, "password": ""}
            ),
            # The rotation owns the value from now on; Pulumi must never put this one back.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["secretString"]),
        )
        return secret.arn

    def _postgres(self) -> None:
        s, db, m = self._args.settings, self._args.database, self.model
        provider = postgresql.Provider(
            f"{self._name}-postgresql",
            host=s.host_override or db.address,
            port=s.port_override or db.port,
            username=s.master_username,
            database="postgres",
            sslmode=s.ssl_mode.value,
            sslrootcert=s.ssl_root_cert or None,
            superuser=False,  # RDS's master is not a superuser; the provider must not assume it is
            expected_version=s.engine_version,
            connect_timeout=15,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._provider = provider
        self._last: pulumi.Resource | None = None

        roles = {}
        for spec in m.roles:
            roles[spec.name] = postgresql.Role(
                f"{self._name}-role-{spec.name}",
                name=spec.name,
                login=spec.login,
                connection_limit=spec.connection_limit,
                search_paths=list(spec.search_path) or None,
                statement_timeout=spec.statement_timeout_ms,
                idle_in_transaction_session_timeout=spec.idle_in_transaction_timeout_ms,
                assume_role=spec.assume_role,
                inherit=spec.inherit,
                # Dropping a role that still owns objects must fail loudly, not hand them to the master.
                skip_reassign_owned=True,
                # Passwords are set by the rotation, outside Pulumi; memberships are GrantRole
                # resources. Without ignore_changes the provider would revert both on every up.
                opts=self._opts(ignore_changes=["password", "passwordWo", "passwordWoVersion", "roles"]),
            )
        for member, role in m.memberships:
            self._chain(
                postgresql.GrantRole,
                f"member-{member}-of-{role}",
                role=member,
                grant_role=role,
                with_admin_option=False,
                depends=[roles[role]] + ([roles[member]] if member in roles else []),
            )
        for login in m.iam_login_roles:
            self._chain(postgresql.GrantRole, f"iam-{login}", role=login, grant_role=RDS_IAM_ROLE, depends=[roles[login]])
        # rds_password (rds.restrict_password_commands=1: needed by CREATE ROLE ... VALID UNTIL and
        # ALTER ROLE ... PASSWORD) is not a resource here: the provider's GrantRole always runs REVOKE
        # then GRANT, which fails on 16+ for a master that holds it through rds_superuser without
        # ADMIN OPTION. The deploy grants it, guarded, before this `up` (components/pgsql.py
        # rds_password_sql, run by dbcore/pgadmin.py ensure_rds_password).
        self.login_roles = [*roles.values(), *([self._last] if self._last is not None else [])]

        database = postgresql.Database(
            f"{self._name}-database",
            name=m.database,
            owner=m.owner,
            encoding="UTF8",
            template="template0",
            allow_connections=True,
            opts=self._opts(self._last, protect=s.protect),
        )
        schema = postgresql.Schema(
            f"{self._name}-schema",
            name=m.schema,
            database=database.name,
            owner=m.owner,
            if_not_exists=True,
            drop_cascade=False,  # never drop the app's tables with a schema rename
            opts=self._opts(database),
        )
        self._last = schema
        if m.extension_schema:
            self._last = postgresql.Schema(
                f"{self._name}-extension-schema",
                name=m.extension_schema,
                database=database.name,
                owner=m.owner,
                if_not_exists=True,
                drop_cascade=False,
                opts=self._opts(schema),
            )
        for g in m.grants:
            self._chain(
                postgresql.Grant,
                f"grant-{g.role}-{g.object_type}-{g.schema or g.database or m.database}",
                database=g.database or database.name,
                role=g.role,
                object_type=g.object_type,
                schema=g.schema,
                privileges=list(g.privileges),
            )
        self._retired_object_grants(database)
        for d in m.default_privileges:
            self._chain(
                postgresql.DefaultPrivileges,
                f"default-{d.role}-{d.object_type}-{d.schema or 'all-schemas'}",
                database=database.name,
                owner=d.owner,
                schema=d.schema,
                role=d.role,
                object_type=d.object_type,
                privileges=list(d.privileges),
            )
        for ext in m.extensions:
            # The provider creates it as the master (it has no SET ROLE); `bootstrap sql` creates it as owner.
            self._chain(postgresql.Extension, f"extension-{ext}", name=ext, database=database.name, schema=m.extension_schema or m.schema)

    def _retired_object_grants(self, database: postgresql.Database) -> None:
        """The `GRANT ... ON ALL <objects> IN SCHEMA` resources the model had before issue 24, kept
        declared but inert: the provider deletes such a Grant by revoking the role's privileges on
        every object of the schema, so dropping them from the program would strip the app of its
        tables on the next up. ignore_changes: they never run again (not even after a refresh
        saw migrations change privileges); retain_on_delete: a later release may drop them. On a
        new stack they run once, on an empty schema, and grant nothing."""
        m, s = self.model, self._args.settings
        rw, ro = f"{s.role_prefix}_rw", f"{s.role_prefix}_ro"
        retired = (
            (rw, "table", ["DELETE", "INSERT", "SELECT", "UPDATE"]),
            (ro, "table", ["SELECT"]),
            (rw, "sequence", ["SELECT", "UPDATE", "USAGE"]),
            (ro, "sequence", ["SELECT"]),
            (rw, "function", ["EXECUTE"]),
            (ro, "function", ["EXECUTE"]),
        )
        for role, object_type, privileges in retired:
            self._last = postgresql.Grant(
                f"{self._name}-grant-{role}-{object_type}-{m.schema}".replace("_", "-"),
                database=database.name,
                role=role,
                object_type=object_type,
                schema=m.schema,
                privileges=privileges,
                opts=pulumi.ResourceOptions.merge(
                    self._opts(self._last, ignore_changes=["database", "role", "objectType", "schema", "privileges", "objects", "columns", "withGrantOption"]),
                    pulumi.ResourceOptions(retain_on_delete=True),
                ),
            )

    def _opts(
        self, *after: pulumi.Resource | None, ignore_changes: list[str] | None = None, protect: bool = False, delete_before_replace: bool = False
    ) -> pulumi.ResourceOptions:
        """Options of a postgresql resource: child, explicit provider, created after `after`."""
        depends = [r for r in after if r is not None]
        return pulumi.ResourceOptions(
            parent=self,
            provider=self._provider,
            depends_on=depends or None,
            ignore_changes=ignore_changes,
            protect=protect,
            delete_before_replace=delete_before_replace,
        )

    def _chain(self, cls: type, suffix: str, depends: Sequence[pulumi.Resource] = (), **kwargs: object) -> pulumi.Resource:
        """Create a grant-like resource that depends on the previous one: the provider's grants run
        in parallel otherwise and fail with "tuple concurrently updated".

        Replaced delete-first: a grant, membership, default privilege or extension is named by its
        inputs, so its replacement is the same server-side object, and Pulumi's default order
        (create the new, then delete the old) would end with the old one's Delete revoking (or
        dropping) what the new one's Create just granted. The provider sets this for Grant alone
        (pulumi-postgresql provider/resources.go); GrantRole, whose Create runs REVOKE then GRANT,
        is where it would bite: a changed with_admin_option would leave the app user no member."""
        resource = cls(f"{self._name}-{suffix}".replace("_", "-"), **kwargs, opts=self._opts(self._last, *depends, delete_before_replace=True))
        self._last = resource
        return resource

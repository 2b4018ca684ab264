"""RDS PostgreSQL: private, encrypted with its own CMK, TLS-only, master password kept out of reach.

What it builds (all children of the component):
  * a CMK (rotation on) for storage, Performance Insights, the RDS log groups and the DB secrets;
  * a DB subnet group over the isolated subnets (no route out of the VPC), publicly_accessible off;
  * a security group with no rules of its own: ingress on the DB port only from security groups
    handed in (`allow_from`, config `dbAdminSecurityGroupIds`) and private admin CIDRs; no egress;
  * a parameter group forcing TLS, SCRAM password hashing and connection/slow-query logging;
  * the instance (gp3 with autoscaling, IAM auth, PI + enhanced monitoring, logs exported to
    pre-created, KMS-encrypted log groups with a retention);
  * the master password (RandomPassword) and a Secrets Manager secret `<prefix>/db/master`.

The master password is rotated outside Pulumi after provisioning (bootstrap), so both the
instance's `password` and the secret's `secretString` are in `ignore_changes`: the value in the
state stops working after rotation and Pulumi never tries to put it back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components import sg as rules
from components.awsinfo import aws_facts
from components.iam import service_trust_policy
from components.kms import encrypted_log_group, logs_key
from components.secret_access import master_secret_policy
from config import naming
from config.limits import ALLOWED_EXTENSIONS
from config.settings import DatabaseSettings
from dbcore import password_policy

# Both windows in UTC and disjoint (RDS rejects overlapping ones); the backup runs first.
BACKUP_WINDOW = "03:00-03:30"
MAINTENANCE_WINDOW = "sun:04:00-sun:04:30"
LOG_EXPORTS = ("postgresql", "upgrade")
ENHANCED_MONITORING_POLICY = "AmazonRDSEnhancedMonitoringRole"


def _secret(value: pulumi.Output[str]) -> pulumi.Output[str]:
    """Output.secret with a type (the SDK annotates its argument with an unbound TypeVar)."""
    return pulumi.Output.secret(value)  # type: ignore[arg-type]


def allowed_extensions_value() -> str:
    """rds.allowed_extensions: the allow-list config/sections.py validates appDbExtensions against."""
    return ",".join(sorted(ALLOWED_EXTENSIONS))


@dataclass(frozen=True)
class DbParameter:
    name: str
    value: str
    apply_method: str  # "immediate" (dynamic parameter) or "pending-reboot" (static)


def parameter_set(settings: DatabaseSettings) -> list[DbParameter]:
    """The instance's parameter group. Dynamic parameters (pg_settings context user, superuser,
    sighup, backend; and rds.force_ssl) apply "immediate"; static ones (context postmaster) must be
    "pending-reboot", since RDS refuses "immediate" for them.
    tests/test_database_tls.py checks this classification against a real server's pg_settings."""
    immediate = [
        ("rds.force_ssl", "1"),  # plaintext connections are rejected (RDS-only parameter)
        ("ssl_min_protocol_version", "TLSv1.2"),
        ("password_encryption", "scram-sha-256"),  # no MD5 verifiers for new passwords
        ("log_connections", "1"),
        ("log_disconnections", "1"),
        ("log_min_duration_statement", str(settings.log_min_duration_ms)),
        # Session defaults every client gets, whatever its driver's defaults are.
        ("client_encoding", "UTF8"),
        ("timezone", "UTC"),
        ("default_transaction_isolation", "read committed"),
        # Server-wide safety nets (the app role's own timeouts are only defaults it may change):
        # a transaction left idle holds locks and blocks vacuum; ends it for every role after 30 min.
        ("idle_in_transaction_session_timeout", "1800000"),
        # A ceiling no login role can lift (superuser-only setting): one query's temp files may
        # take at most a tenth of the storage, so a runaway sort cannot fill the disk.
        ("temp_file_limit", str(settings.allocated_storage_gb * 1024 * 1024 // 10)),
        # Only the extensions the config accepts (appDbExtensions) may be created, by anyone: the
        # migrator acts as the database owner and could otherwise add any trusted extension
        # (ltree, tablefunc, ...). RDS-only parameter; it binds rds_superuser members too.
        ("rds.allowed_extensions", allowed_extensions_value()),
    ]
    # Static: read at server start only. Pinned so query statistics (pg_stat_statements) stay
    # available whatever the family's default becomes; applied at the next reboot.
    # rds.restrict_password_commands: only rds_password members (the master) may change passwords,
    # so a login role cannot diverge from its secret with ALTER ROLE ... PASSWORD.
    static = [("shared_preload_libraries", "pg_stat_statements"), ("rds.restrict_password_commands", "1")]
    return [DbParameter(n, v, "immediate") for n, v in immediate] + [DbParameter(n, v, "pending-reboot") for n, v in static]


@dataclass
class DatabaseArgs:
    """Inputs of the database: the network it lives in and its settings section."""

    vpc_id: pulumi.Input[str]
    """The VPC of the security group."""
    subnet_ids: pulumi.Input[Sequence[str]]
    """Isolated subnets (no route out of the VPC) for the DB subnet group; two AZs or more for multi-AZ."""
    settings: DatabaseSettings
    """Validated database configuration, names and per-environment choices (config/settings.py)."""


class Database(pulumi.ComponentResource):
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    instance_id: pulumi.Output[str]
    resource_id: pulumi.Output[str]
    arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    master_username: pulumi.Output[str]
    master_secret_arn: pulumi.Output[str]
    master_secret_version: aws.secretsmanager.SecretVersion
    """The master secret's first value: what its rotation must wait for."""
    kms_key_arn: pulumi.Output[str]
    engine_version: pulumi.Output[str]

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:database:Database", name, None, opts)
        self._name, self._args = name, args
        self._facts = aws_facts(self)
        self._port = args.settings.port

        key = self._key()
        subnet_group = self._subnet_group()
        self._sg = self._security_group()
        params = self._parameter_group()
        monitoring_role, monitoring_attach = self._monitoring_role()
        log_groups = self._log_groups(key)
        password = self._master_password()
        instance = self._instance(key, subnet_group, params, monitoring_role, password, depends_on=[monitoring_attach, *log_groups])
        secret = self._master_secret(key, instance, password)

        self.address = instance.address
        self.port = instance.port
        self.instance_id = instance.identifier
        self.resource_id = instance.resource_id
        self.arn = instance.arn
        self.security_group_id = self._sg.id
        self.master_username = pulumi.Output.from_input(args.settings.master_username)
        self.master_secret_arn = secret.arn
        self.kms_key_arn = key.arn
        self.engine_version = instance.engine_version
        self.register_outputs(
            {
                "address": self.address,
                "port": self.port,
                "instance_id": self.instance_id,
                "resource_id": self.resource_id,
                "arn": self.arn,
                "security_group_id": self.security_group_id,
                "master_secret_arn": self.master_secret_arn,
                "kms_key_arn": self.kms_key_arn,
                "engine_version": self.engine_version,
            }
        )

    # --- key, network and parameters -------------------------------------------------------------

    def _key(self) -> aws.kms.Key:
        """RDS (storage, Performance Insights) and Secrets Manager use the key through grants and
        kms:ViaService on behalf of the caller, which the account statement allows; only
        CloudWatch Logs needs its own statement, scoped to the exact log groups it encrypts."""
        prefix = self._args.settings.prefix
        facts = self._facts
        key = logs_key(
            f"{self._name}-key",
            alias=f"{prefix}/db",
            description=f"{prefix} database: storage, Performance Insights, logs and secrets",
            # its own log exports and the rotation function's log group (components/rotation_function.py)
            log_groups=[*(naming.db_log_group(prefix, kind) for kind in LOG_EXPORTS), naming.rotation_log_group(prefix)],
            parent=self,
            via_services=(f"rds.{facts.region}.amazonaws.com", f"secretsmanager.{facts.region}.amazonaws.com"),
            keep=self._args.settings.keep_on_destroy,
        )
        return key

    def _subnet_group(self) -> aws.rds.SubnetGroup:
        cfg = self._args.settings
        return aws.rds.SubnetGroup(
            f"{self._name}-subnets",
            name_prefix=naming.rds_prefix(cfg.prefix, "db"),
            description=f"{cfg.prefix} database: isolated subnets only",
            subnet_ids=self._args.subnet_ids,
            tags={"Name": cfg.identifier},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _security_group(self) -> aws.ec2.SecurityGroup:
        """No inline rules and no egress rule: the database only answers connections (stateful SG),
        it never opens one. Ingress is granted rule by rule here and by allow_from()."""
        cfg = self._args.settings
        sg = rules.security_group(
            f"{self._name}-sg", cfg.identifier, f"{cfg.prefix} database: PostgreSQL from the app and admin groups only", self._args.vpc_id, self
        )
        self._sg = sg
        for sg_id in cfg.admin_security_group_ids:
            self.allow_from(f"admin-{sg_id}", sg_id, "PostgreSQL from an admin security group (bootstrap)")
        for i, cidr in enumerate(cfg.admin_cidrs):
            rules.ingress(f"{self._name}-admin-cidr-{i}", sg.id, cfg.port, f"PostgreSQL from admin network {cidr} (bootstrap)", self, cidr_ipv4=cidr)
        return sg

    def _parameter_group(self) -> aws.rds.ParameterGroup:
        cfg = self._args.settings
        return aws.rds.ParameterGroup(
            f"{self._name}-params",
            # The family is in the name: a major upgrade creates the new group beside the old one.
            name_prefix=naming.rds_prefix(cfg.prefix, cfg.parameter_group_family),
            family=cfg.parameter_group_family,
            description=f"{cfg.prefix} database: TLS only, SCRAM, connection and slow-query logging",
            parameters=[aws.rds.ParameterGroupParameterArgs(name=p.name, value=p.value, apply_method=p.apply_method) for p in parameter_set(cfg)],
            opts=pulumi.ResourceOptions(parent=self),
        )

    # --- monitoring and logs ---------------------------------------------------------------------

    def _monitoring_role(self) -> tuple[aws.iam.Role, aws.iam.RolePolicyAttachment]:
        prefix, facts, child = self._args.settings.prefix, self._facts, pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{self._name}-monitoring-role",
            name_prefix=naming.role_prefix(prefix, "rds-monitoring"),
            description=f"{prefix}: RDS enhanced monitoring publishes OS metrics",
            assume_role_policy=service_trust_policy("monitoring.rds.amazonaws.com", facts.account_id, self),
            opts=child,
        )
        attach = aws.iam.RolePolicyAttachment(
            f"{self._name}-monitoring-policy",
            role=role.name,
            policy_arn=f"arn:{facts.partition}:iam::aws:policy/service-role/{ENHANCED_MONITORING_POLICY}",
            opts=child,
        )
        return role, attach

    def _log_groups(self, key: aws.kms.Key) -> list[aws.cloudwatch.LogGroup]:
        """RDS would create these on first write, unencrypted and kept forever; owning them sets
        the CMK and a retention (the names are fixed by RDS)."""
        cfg = self._args.settings
        return [
            encrypted_log_group(
                f"{self._name}-log-{kind}", name=naming.db_log_group(cfg.prefix, kind), retention_days=cfg.log_retention_days, key_arn=key.arn, parent=self,
                keep=cfg.keep_on_destroy,
            )
            for kind in LOG_EXPORTS
        ]

    # --- the instance and its master credential --------------------------------------------------

    def _master_password(self) -> random.RandomPassword:
        return random.RandomPassword(
            f"{self._name}-master-password",
            length=password_policy.LENGTH,
            special=True,
            override_special=password_policy.SPECIALS,
            min_lower=password_policy.MIN_EACH_CLASS,
            min_upper=password_policy.MIN_EACH_CLASS,
            min_numeric=password_policy.MIN_EACH_CLASS,
            min_special=password_policy.MIN_EACH_CLASS,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _instance(
        self,
        key: aws.kms.Key,
        subnet_group: aws.rds.SubnetGroup,
        params: aws.rds.ParameterGroup,
        monitoring_role: aws.iam.Role,
        password: random.RandomPassword,
        depends_on: list[pulumi.Resource],
    ) -> aws.rds.Instance:
        cfg = self._args.settings
        return aws.rds.Instance(
            f"{self._name}-instance",
            identifier=cfg.identifier,
            engine="postgres",
            # A major ("16") lets AWS apply minor upgrades without a diff; a pinned minor ("16.4")
            # would later read as a downgrade request once AWS has upgraded the instance.
            engine_version=cfg.engine_version,
            instance_class=cfg.instance_class,
            # No db_name: RDS would create that database owned by the master role. The app
            # database is created by AppDatabase with its own owner role; clients of the master
            # use the always-present "postgres" database (the secret's dbname).
            username=cfg.master_username,
            password=_secret(password.result),
            port=cfg.port,
            storage_type="gp3",
            allocated_storage=cfg.allocated_storage_gb,
            max_allocated_storage=cfg.max_allocated_storage_gb,
            storage_encrypted=True,
            kms_key_id=key.arn,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[self._sg.id],
            publicly_accessible=False,
            network_type="IPV4",
            parameter_group_name=params.name,
            ca_cert_identifier=cfg.ca_cert_identifier,
            iam_database_authentication_enabled=True,
            multi_az=cfg.multi_az,
            deletion_protection=cfg.deletion_protection,
            backup_retention_period=cfg.backup_retention_days,
            backup_window=BACKUP_WINDOW,
            maintenance_window=MAINTENANCE_WINDOW,
            copy_tags_to_snapshot=True,
            delete_automated_backups=cfg.delete_automated_backups,
            skip_final_snapshot=not cfg.final_snapshot,
            final_snapshot_identifier=self._final_snapshot_identifier() if cfg.final_snapshot else None,
            auto_minor_version_upgrade=True,
            allow_major_version_upgrade=False,
            apply_immediately=cfg.apply_immediately,
            enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),
            performance_insights_enabled=True,
            performance_insights_kms_key_id=key.arn,
            performance_insights_retention_period=cfg.performance_insights_retention_days,
            monitoring_interval=cfg.monitoring_interval_seconds,
            monitoring_role_arn=monitoring_role.arn,
            tags={"Name": cfg.identifier},
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=cfg.protect,
                # The master password is rotated after provisioning; never diff or revert it.
                ignore_changes=["password"],
                depends_on=depends_on,
            ),
        )

    def _master_secret(self, key: aws.kms.Key, instance: aws.rds.Instance, password: random.RandomPassword) -> aws.secretsmanager.Secret:
        cfg = self._args.settings
        secret = aws.secretsmanager.Secret(
            f"{self._name}-master-secret",
            name=cfg.master_secret_name,
            description=f"{cfg.prefix} RDS master credentials (rotated outside Pulumi after provisioning)",
            kms_key_id=key.arn,
            recovery_window_in_days=cfg.secret_recovery_window_days,
            opts=pulumi.ResourceOptions(parent=self),
        )
        secret_string = pulumi.Output.all(instance.address, instance.port, instance.identifier, password.result).apply(
            lambda v: json.dumps(
                {
                    "engine": "postgres",
                    "host": v[0],
                    "port": int(v[1]),
                    "username": cfg.master_username,
                    "password": v[3],
                    "dbname": "postgres",
                    "dbInstanceIdentifier": v[2],
                }
            )
        )
        self.master_secret_version = aws.secretsmanager.SecretVersion(
            f"{self._name}-master-secret-initial",
            secret_id=secret.id,
            secret_string=_secret(secret_string),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["secretString"]),
        )
        return secret

    # --- grants (the way CDK's connections.allowFrom / grantConnect work) -------------------------

    def restrict_master_secret(self, rotation_role_arn: pulumi.Input[str]) -> aws.secretsmanager.SecretPolicy | None:
        """Only the rotation function and the configured deploy and break-glass roles may read or
        change the master secret (components/secret_access.py). None when no role is configured (dev)."""
        readers = self._args.settings.master_secret_readers
        if not readers:
            return None
        policy = pulumi.Output.from_input(rotation_role_arn).apply(lambda arn: master_secret_policy([arn, *readers]))
        return aws.secretsmanager.SecretPolicy(
            f"{self._name}-master-secret-policy",
            secret_arn=self.master_secret_arn,
            policy=policy,
            block_public_policy=True,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _final_snapshot_identifier(self) -> pulumi.Output[str]:
        """Unique per instance lifetime: a random suffix created with the instance and kept across
        updates, so the second destroy of a recreated stack does not meet the first one's snapshot."""
        suffix = random.RandomId(f"{self._name}-final-snapshot-suffix", byte_length=4, opts=pulumi.ResourceOptions(parent=self))
        return pulumi.Output.concat(naming.final_snapshot_prefix(self._args.settings.prefix), "-", suffix.hex)

    def allow_from(self, name: str, security_group_id: pulumi.Input[str], description: str = "") -> aws.vpc.SecurityGroupIngressRule:
        """Admit the DB port from one security group (a grant, like CDK's connections.allowFrom)."""
        return rules.ingress(
            f"{self._name}-from-{name}", self._sg.id, self._port, description or f"PostgreSQL from {name}", self, source_security_group_id=security_group_id
        )

    def grant_connect(self, username: pulumi.Input[str]) -> aws.iam.GetPolicyDocumentStatementArgs:
        """The IAM statement that lets a role log in as `username` with an IAM auth token (rds-db:connect)."""
        facts = self._facts
        dbuser = pulumi.Output.concat(f"arn:{facts.partition}:rds-db:{facts.region}:{facts.account_id}:dbuser:", self.resource_id, "/", username)
        return aws.iam.GetPolicyDocumentStatementArgs(actions=["rds-db:connect"], resources=[dbuser], sid="ConnectAsAppUser")  # type: ignore[list-item]  # Outputs resolve in the _output invoke

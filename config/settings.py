"""The typed settings: everything a component reads, frozen, already validated.

Built once by `config.load.load_settings`; components receive one section each. Names
(physical prefix, secret names, login roles) and per-environment decisions live here or are
decided by the section rules (`config/sections.py`), so no component or tool re-derives them.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from components.pgmodel import DbModel, build_model, role_names
from config import naming
from config.monitoring import MonitoringSettings
from config.restore_checks import RestoreChecks


class Environment(enum.StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


# The interface endpoints the network can create, in the order they are made. Each is billed per
# AZ-hour plus per GB (docs/first-deploy.md, item 9); with a NAT they only save NAT data processing.
INTERFACE_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "kms", "logs", "secretsmanager", "ssmmessages", "sts")
# What the database access task (dbAccess) reaches, so its security group needs no route to the
# internet (issue 28 item 7): image pulls from the ECR pull-through cache (ecr.api, ecr.dkr, and the
# layers from S3 through the gateway endpoint), the awslogs driver and the ECS Exec session log
# (logs), the ECS Exec channels (ssmmessages) and the session key (kms). The ECS guide: "If you are
# using interface Amazon VPC endpoints ... and AWS KMS key for encryption, then you must create the
# interface Amazon VPC endpoint for AWS KMS" (ecs-exec.md, considerations).
ACCESS_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "kms", "logs", "ssmmessages")

class NatStrategy(enum.StrEnum):
    NONE = "none"
    SINGLE = "single"
    PER_AZ = "per_az"


def stack_prefix(app_name: str, stack: str) -> str:
    """The physical name prefix shared by every resource of a stack: '<app>-<stack>'."""
    return naming.prefix(app_name, stack)


def db_secret_name(prefix: str, role: str) -> str:
    """The Secrets Manager name of a database credential: '<prefix>/db/<role>'."""
    return naming.db_secret(prefix, role)


@dataclass(frozen=True)
class NetworkSettings:
    prefix: str
    """Physical name prefix of the stack, '<app>-<stack>' (see `stack_prefix`)."""
    cidr: ipaddress.IPv4Network
    az_count: int
    subnet_prefix_length: int
    nat_strategy: NatStrategy
    flow_log_retention_days: int
    s3_gateway_endpoint: bool
    interface_endpoints: bool
    s3_endpoint_any_principal: bool = False
    """s3EndpointAnyPrincipal: no policy on the S3 gateway endpoint (any principal); by default it
    admits this account's principals and ECR's layer reads only."""
    interface_endpoint_services: tuple[str, ...] = INTERFACE_ENDPOINT_SERVICES
    """Which interface endpoints `interface_endpoints` creates (each costs per AZ-hour)."""
    endpoint_az_count: int = 1
    """How many AZs (the first ones) hold the interface endpoints' network interfaces: every AZ in
    prod; one elsewhere (cheaper, the other AZs reach it across zones; an outage of that AZ cuts
    the AWS APIs behind the endpoints for the whole VPC)."""
    access_endpoints: bool = False
    """The database access task exists (dbAccess), so ACCESS_ENDPOINT_SERVICES exist whatever
    `interface_endpoints` says: its security group reaches AWS only through them."""
    keep_on_destroy: bool = False
    """Protect and retain the flow log group and its key (prod): see docs/data-loss.md."""

    @property
    def endpoint_services(self) -> tuple[str, ...]:
        """The interface endpoints the network creates: the chosen ones (interfaceEndpoints) and the
        access task's (dbAccess), in INTERFACE_ENDPOINT_SERVICES order."""
        wanted = set(self.interface_endpoint_services if self.interface_endpoints else ())
        wanted |= set(ACCESS_ENDPOINT_SERVICES if self.access_endpoints else ())
        return tuple(s for s in INTERFACE_ENDPOINT_SERVICES if s in wanted)


@dataclass(frozen=True)
class DatabaseSettings:
    prefix: str
    """Physical name prefix of the stack, '<app>-<stack>' (see `stack_prefix`)."""
    engine_version: str
    instance_class: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    multi_az: bool
    deletion_protection: bool
    protect: bool
    backup_retention_days: int
    final_snapshot: bool
    master_username: str
    port: int
    performance_insights_retention_days: int
    monitoring_interval_seconds: int
    log_min_duration_ms: int
    ca_cert_identifier: str
    admin_cidrs: tuple[str, ...]
    admin_security_group_ids: tuple[str, ...]
    # Per-environment decisions (made by the section rules, never by the component):
    apply_immediately: bool
    """Apply changes now (dev) or in the maintenance window (prod)."""
    delete_automated_backups: bool
    """Drop automated backups with the instance (dev) or keep them (prod)."""
    secret_recovery_window_days: int
    """How long a deleted DB secret can be restored (0 = deleted at once)."""
    log_retention_days: int = 30
    """Retention of the RDS log groups (/aws/rds/instance/<id>/postgresql and /upgrade)."""
    secret_rotation_days: int = 30
    """Schedule of the rotation function on the master and login secrets (SecretsManager.4 wants <= 90)."""
    access: bool = True
    """dbAccess: the on-demand access task for the tunnel (components/db_access.py)."""
    master_secret_readers: tuple[str, ...] = ()
    """IAM role ARNs that may read the master secret besides the rotation function (dbDeployRoleArn,
    dbBreakGlassRoleArn); empty (dev only): the secret has no resource policy."""
    keep_on_destroy: bool = False
    """Protect and retain the DB key (it encrypts the final snapshot, backups and secrets) and the
    log groups with their keys (prod): they outlive `destroy`, see docs/data-loss.md."""

    @property
    def identifier(self) -> str:
        """The RDS instance identifier (the prefix of the DB subnet group's and security group's names)."""
        return naming.db_identifier(self.prefix)

    @property
    def master_secret_name(self) -> str:
        return db_secret_name(self.prefix, "master")

    @property
    def engine_major(self) -> int:
        return int(self.engine_version.split(".")[0])

    @property
    def parameter_group_family(self) -> str:
        return f"postgres{self.engine_major}"


@dataclass(frozen=True)
class RegistrySettings:
    prefix: str
    """Physical name prefix of the stack, '<app>-<stack>' (see `stack_prefix`)."""
    untagged_expiry_days: int
    keep_tagged_count: int
    force_delete: bool


@dataclass(frozen=True)
class ServiceSettings:
    prefix: str
    """Physical name prefix of the stack, '<app>-<stack>' (see `stack_prefix`)."""
    container_image: str  # empty: this stack's ECR repository at image_tag
    image_tag: str
    container_port: int
    container_user: str
    task_cpu: int
    task_memory: int
    desired_count: int
    min_capacity: int
    max_capacity: int
    cpu_target_percent: int
    memory_target_percent: int
    requests_per_target: int
    fargate_weight: int
    fargate_spot_weight: int
    health_check_path: str
    container_health_check: str  # "" or "none" = no container check (the ALB decides), else a CMD-SHELL command
    health_check_grace_seconds: int
    log_retention_days: int
    enable_execute_command: bool
    alb_ingress_cidrs: tuple[str, ...]
    alb_http_redirect: bool
    alb_deletion_protection: bool
    certificate_arn: str
    domain_name: str
    hosted_zone_id: str
    access_log_retention_days: int
    container_insights: str
    """ECS Container Insights level: enabled (dev) or enhanced (prod)."""
    waf_enabled: bool = False
    """An AWS WAF web ACL on the load balancer (default: prod only)."""
    waf_rate_limit: int = 2000
    """Requests per client IP per 5 minutes before the WAF rate rule blocks it."""
    migration_command: tuple[str, ...] = ()
    """The app's migration command (exec form), run by `release` as a one-off task before the
    service changes; empty: no migration step."""
    migration_timeout_seconds: int = 1800
    """How long `release` waits for the migration task before stopping it and aborting."""
    deployment_strategy: str = "rolling"
    """rolling (ECS rolling update, circuit breaker) or blue_green (ECS native blue/green with a test listener)."""
    bake_time_minutes: int = 10
    """blue_green: minutes both revisions stay up after production traffic moves, before the old one stops."""
    test_listener_port: int = 8443
    """blue_green: the ALB port that reaches the new revision before production traffic moves."""
    test_listener_cidrs: tuple[str, ...] = ()
    """blue_green: who may reach the test listener (none by default; never the whole internet)."""
    keep_on_destroy: bool = False
    """Protect and retain the log groups and their keys (prod): see docs/data-loss.md."""

    @property
    def has_image(self) -> bool:
        """False until the first release: the service then runs no task."""
        return bool(self.container_image or self.image_tag)

    @property
    def https(self) -> bool:
        """The listener is HTTPS: an ACM certificate is given, or requested for domain + zone."""
        return bool(self.certificate_arn or (self.domain_name and self.hosted_zone_id))


class SslMode(enum.StrEnum):
    REQUIRE = "require"
    VERIFY_FULL = "verify-full"


@dataclass(frozen=True)
class AppDatabaseSettings:
    prefix: str
    """Physical name prefix of the stack, '<app>-<stack>' (see `stack_prefix`)."""
    enabled: bool
    name: str
    schema: str
    role_prefix: str
    extensions: tuple[str, ...]
    iam_auth_roles: tuple[str, ...]
    """Login roles ('app', 'migrator') that use RDS IAM tokens: rds_iam, no password, no rotation."""
    connection_limit: int
    statement_timeout_ms: int
    idle_in_transaction_timeout_ms: int
    host_override: str
    port_override: int
    ssl_mode: SslMode
    master_username: str
    """The RDS master user the postgresql provider connects as (from the database section)."""
    engine_version: str
    """The PostgreSQL version the provider may assume (from the database section)."""
    protect: bool
    """Pulumi `protect` on the database resource (prod): `destroy` must not drop the app's data."""
    secret_recovery_window_days: int
    """How long a deleted login secret can be restored (0 = deleted at once)."""
    ssl_root_cert: str = ""

    LOGIN_ROLES = ("app", "migrator")
    """The model's roles that log in and get a Secrets Manager secret each."""

    def login_name(self, role: str) -> str:
        """The PostgreSQL name of a login role of the model ('app' -> '<prefix>_app')."""
        if role not in self.LOGIN_ROLES:
            raise KeyError(f"{role!r} is not a login role (one of {', '.join(self.LOGIN_ROLES)})")
        return role_names(self.role_prefix)[role]

    def password_logins(self) -> tuple[str, ...]:
        """The login roles with a password (rotated); the others use IAM auth."""
        return tuple(r for r in self.LOGIN_ROLES if r not in self.iam_auth_roles)

    def secret_name(self, role: str) -> str:
        """The Secrets Manager name of a login role's credential."""
        return db_secret_name(self.prefix, role)

    def model(self) -> DbModel:
        """The privilege model (components/pgmodel.py) these settings describe."""
        return build_model(
            database=self.name,
            schema=self.schema,
            role_prefix=self.role_prefix,
            master=self.master_username,
            extensions=self.extensions,
            iam_auth_roles=self.iam_auth_roles,
            connection_limit=self.connection_limit,
            statement_timeout_ms=self.statement_timeout_ms,
            idle_in_transaction_timeout_ms=self.idle_in_transaction_timeout_ms,
        )


@dataclass(frozen=True)
class SecuritySettings:
    waivers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    region: str
    environment: Environment
    app_name: str
    tags: Mapping[str, str]
    network: NetworkSettings
    database: DatabaseSettings
    registry: RegistrySettings
    service: ServiceSettings
    app_database: AppDatabaseSettings
    security: SecuritySettings
    monitoring: MonitoringSettings
    restore: RestoreChecks = RestoreChecks()
    """What `bootstrap restore` checks beyond the model (config/restore_checks.py)."""

    @property
    def is_prod(self) -> bool:
        return self.environment is Environment.PROD

    @property
    def prefix(self) -> str:
        """Physical name prefix shared by every resource of this stack: <app>-<stack>."""
        return stack_prefix(self.app_name, self.stack)

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    @property
    def db_identifier(self) -> str:
        return self.database.identifier

    SECRET_ROLES = ("master", "app", "migrator")

    def secret_name(self, role: str) -> str:
        """The Secrets Manager name of a database credential: '<prefix>/db/<role>'."""
        if role not in self.SECRET_ROLES:
            raise KeyError(f"{role!r} has no secret (one of {', '.join(self.SECRET_ROLES)})")
        return db_secret_name(self.prefix, role)

    def db_username(self, role: str) -> str:
        """The PostgreSQL user behind a secret: the master's configured name, or a login role of the model."""
        return self.database.master_username if role == "master" else self.app_database.login_name(role)


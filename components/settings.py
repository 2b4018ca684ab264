"""The typed settings: everything a component reads, frozen, already validated.

Built once by `components.config.load_settings`; components receive one section each. Names
(physical prefix, secret names, login roles) and per-environment decisions live here or are
decided by the section rules (`components/sections.py`), so no component or tool re-derives them.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from components.pgmodel import DbModel, build_model


class Environment(enum.StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


class NatStrategy(enum.StrEnum):
    NONE = "none"
    SINGLE = "single"
    PER_AZ = "per_az"


@dataclass(frozen=True)
class NetworkSettings:
    cidr: ipaddress.IPv4Network
    az_count: int
    subnet_prefix_length: int
    nat_strategy: NatStrategy
    flow_log_retention_days: int
    s3_gateway_endpoint: bool
    interface_endpoints: bool


@dataclass(frozen=True)
class DatabaseSettings:
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
    log_retention_days: int = 30
    """Retention of the RDS log groups (/aws/rds/instance/<id>/postgresql and /upgrade)."""

    @property
    def engine_major(self) -> int:
        return int(self.engine_version.split(".")[0])

    @property
    def parameter_group_family(self) -> str:
        return f"postgres{self.engine_major}"


@dataclass(frozen=True)
class RegistrySettings:
    untagged_expiry_days: int
    keep_tagged_count: int
    force_delete: bool


@dataclass(frozen=True)
class ServiceSettings:
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
    waf_enabled: bool = False
    waf_rate_limit: int = 2000

    @property
    def has_image(self) -> bool:
        """False until the first release: the service then runs no task."""
        return bool(self.container_image or self.image_tag)

    @property
    def https(self) -> bool:
        return bool(self.certificate_arn or (self.domain_name and self.hosted_zone_id))


class SslMode(enum.StrEnum):
    REQUIRE = "require"
    VERIFY_FULL = "verify-full"


@dataclass(frozen=True)
class AppDatabaseSettings:
    enabled: bool
    name: str
    schema: str
    role_prefix: str
    extensions: tuple[str, ...]
    iam_auth: bool
    connection_limit: int
    statement_timeout_ms: int
    idle_in_transaction_timeout_ms: int
    host_override: str
    port_override: int
    ssl_mode: SslMode
    ssl_root_cert: str = ""

    def model(self, master_username: str) -> DbModel:
        """The privilege model (components/pgmodel.py) these settings describe."""
        return build_model(
            database=self.name,
            schema=self.schema,
            role_prefix=self.role_prefix,
            master=master_username,
            extensions=self.extensions,
            iam_auth=self.iam_auth,
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

    @property
    def is_prod(self) -> bool:
        return self.environment is Environment.PROD

    @property
    def prefix(self) -> str:
        """Physical name prefix shared by every resource of this stack: <app>-<stack>."""
        return f"{self.app_name}-{self.stack}"

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"


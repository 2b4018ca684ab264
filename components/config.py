"""All stack configuration, read once, validated in one place, into frozen typed settings.

`Pulumi.yaml` declares every project key (type, description, default). This module applies the
defaults, parses each raw value by its declared type, checks what AWS and PostgreSQL accept, and
rejects keys it does not know. Every problem found is collected and raised as one `ConfigError`
before any resource is registered, so a bad value never leaves a half-built graph behind.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from components.pgmodel import DbModel, build_model
from components.pgmodel import validate as validate_model

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT_FILE = PROJECT_DIR / "Pulumi.yaml"

T = TypeVar("T")


class ConfigError(ValueError):
    """One or more invalid configuration values; the message names each key and what is allowed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{len(problems)} invalid configuration values:\n" + "\n".join(
                f"  - {p}" for p in problems
            )
        super().__init__(message)


# --------------------------------------------------------------------------------------------
# Settings objects (the contract every component reads)
# --------------------------------------------------------------------------------------------


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
    container_health_check: str  # "" = wget probe of health_check_path, "none" = off, else a CMD-SHELL command
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


# --------------------------------------------------------------------------------------------
# Project schema (the `config:` block of Pulumi.yaml)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: str  # string | integer | boolean | array
    description: str
    default: Any
    has_default: bool


@dataclass(frozen=True)
class ProjectSchema:
    project: str
    keys: Mapping[str, KeySpec]

    @classmethod
    def load(cls, path: Path = PROJECT_FILE) -> ProjectSchema:
        doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 (a safe loader)
        keys: dict[str, KeySpec] = {}
        for name, spec in (doc.get("config") or {}).items():
            keys[name] = KeySpec(
                name=name,
                type=spec.get("type", "string"),
                description=spec.get("description", ""),
                default=spec.get("default"),
                has_default="default" in spec,
            )
        return cls(project=doc["name"], keys=keys)


_SCHEMA_CACHE: dict[Path, ProjectSchema] = {}


def project_schema(path: Path = PROJECT_FILE) -> ProjectSchema:
    if path not in _SCHEMA_CACHE:
        _SCHEMA_CACHE[path] = ProjectSchema.load(path)
    return _SCHEMA_CACHE[path]


# --------------------------------------------------------------------------------------------
# Raw value reader: typed access that collects problems instead of stopping at the first one
# --------------------------------------------------------------------------------------------

_MISSING = object()


class _Reader:
    def __init__(self, raw: Mapping[str, Any], schema: ProjectSchema):
        self.schema = schema
        self.problems: list[str] = []
        self.failed: set[str] = set()
        self.read: set[str] = set()
        self.values: dict[str, Any] = {}
        prefix = schema.project + ":"
        for full_key, value in raw.items():
            if full_key.startswith(prefix):
                self.values[full_key[len(prefix) :]] = value
        self.other = {k: v for k, v in raw.items() if not k.startswith(prefix)}

    def qualified(self, key: str) -> str:
        return f"{self.schema.project}:{key}"

    def fail(self, key: str, value: Any, allowed: str) -> None:
        # One error per key: a follow-on rule about a value already rejected adds only noise.
        if key in self.failed:
            return
        self.failed.add(key)
        self.problems.append(f"{self.qualified(key)} = {_show(value)} is invalid: {allowed}")

    def _raw(self, key: str) -> Any:
        spec = self.schema.keys.get(key)
        if spec is None:  # a programming error, not a user error
            raise KeyError(f"config key {key!r} is read but not declared in Pulumi.yaml")
        self.read.add(key)
        if key in self.values:
            return self.values[key]
        return spec.default if spec.has_default else _MISSING

    def string(self, key: str, *, pattern: str | None = None, allowed: str = "") -> str:
        value = self._raw(key)
        if value is _MISSING:
            self.problems.append(f"{self.qualified(key)} is required: {allowed or 'set it in the stack file'}")
            return ""
        if not isinstance(value, str):
            value = str(value)
        if pattern is not None and not re.fullmatch(pattern, value):
            self.fail(key, value, allowed or f"must match {pattern}")
        return value

    def integer(self, key: str, lo: int | None = None, hi: int | None = None) -> int:
        value = self._raw(key)
        bounds = _bounds_text(lo, hi)
        try:
            if isinstance(value, bool) or value is _MISSING:
                raise ValueError
            number = int(value) if not isinstance(value, str) else int(value.strip(), 10)
        except (TypeError, ValueError):
            self.fail(key, value, f"must be an integer{bounds}")
            return lo if lo is not None else 0
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            self.fail(key, value, f"must be an integer{bounds}")
        return number

    def boolean(self, key: str) -> bool:
        value = self._raw(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(key, value, "must be true or false")
        return False

    def choice(self, key: str, enum_type: type[T]) -> T:
        allowed = [m.value for m in enum_type]  # type: ignore[attr-defined]
        value = self.string(key, allowed=f"one of {', '.join(allowed)}")
        try:
            return enum_type(value)  # type: ignore[call-arg]
        except ValueError:
            if value:
                self.fail(key, value, f"must be one of {', '.join(allowed)}")
            return enum_type(allowed[0])  # type: ignore[call-arg]

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._raw(key)
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else []
            except json.JSONDecodeError:
                self.fail(key, value, "must be a list of strings (YAML list, or a JSON array)")
                return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, value, "must be a list of strings")
            return ()
        return tuple(value)

    def check(self, ok: bool, key: str, value: Any, allowed: str) -> None:
        if not ok:
            self.fail(key, value, allowed)


def _show(value: Any) -> str:
    if value is _MISSING:
        return "<unset>"
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def _bounds_text(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


# --------------------------------------------------------------------------------------------
# Section parsers
# --------------------------------------------------------------------------------------------

APP_NAME_RE = r"[a-z][a-z0-9-]{0,18}[a-z0-9]"
AWS_REGION_RE = r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d"
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
TAG_KEY_RE = r"[\w .:/=+\-@]{1,128}"
TAG_VALUE_RE = r"[\w .:/=+\-@]{0,256}"


def _general(r: _Reader) -> tuple[str, Environment, str, dict[str, str]]:
    region = r.other.get("aws:region", "")
    if not isinstance(region, str) or not re.fullmatch(AWS_REGION_RE, region):
        r.problems.append(
            f"aws:region = {_show(region) if region else '<unset>'} is invalid: "
            "set it in the stack file to an AWS region such as eu-west-1"
        )
    environment = r.choice("environment", Environment)
    app_name = r.string(
        "appName",
        pattern=APP_NAME_RE,
        allowed="2-20 chars of lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen",
    )
    tags: dict[str, str] = {}
    for item in r.strings("tags"):
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(TAG_KEY_RE, key) or not re.fullmatch(TAG_VALUE_RE, value) or key.lower().startswith("aws:"):
            r.fail("tags", item, "each entry must be Key=Value (key 1-128 chars, not starting with aws:)")
        else:
            tags[key] = value
    return region, environment, app_name, tags


def _network(r: _Reader) -> NetworkSettings:
    cidr_text = r.string("vpcCidr")
    az_count = r.integer("azCount", 1, 6)
    prefix = r.integer("subnetPrefixLength", 16, 28)
    try:
        cidr = ipaddress.IPv4Network(cidr_text, strict=True)
    except ValueError:
        r.fail("vpcCidr", cidr_text, "must be an IPv4 network in CIDR notation with no host bits set, e.g. 10.0.0.0/16")
        cidr = ipaddress.IPv4Network("10.0.0.0/16")
    else:
        private_blocks = [ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
        if not any(cidr.subnet_of(b) for b in private_blocks):
            r.fail("vpcCidr", cidr_text, "must lie in a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)")
        if not 16 <= cidr.prefixlen <= 24:
            r.fail("vpcCidr", cidr_text, "must have a prefix length from /16 to /24 (the sizes AWS allows for a VPC we can split)")
    # Four tier blocks (public, private, isolated, spare), each holding az_count subnets.
    if prefix < cidr.prefixlen + 2:
        r.fail("subnetPrefixLength", prefix, f"must be at least /{cidr.prefixlen + 2} for VPC {cidr} (four tier blocks)")
    elif 2 ** (prefix - cidr.prefixlen - 2) < az_count:
        fits = 2 ** max(prefix - cidr.prefixlen - 2, 0)
        r.fail(
            "azCount",
            az_count,
            f"VPC {cidr} with /{prefix} subnets holds {fits} subnet(s) per tier; lower azCount, "
            f"raise subnetPrefixLength (up to /28) or widen vpcCidr",
        )
    nat = r.choice("natStrategy", NatStrategy)
    retention = r.integer("flowLogRetentionDays")
    r.check(retention in LOG_RETENTION_DAYS, "flowLogRetentionDays", retention, f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return NetworkSettings(
        cidr=cidr,
        az_count=az_count,
        subnet_prefix_length=prefix,
        nat_strategy=nat,
        flow_log_retention_days=retention,
        s3_gateway_endpoint=r.boolean("s3GatewayEndpoint"),
        interface_endpoints=r.boolean("interfaceEndpoints"),
    )


# RDS instance families that run PostgreSQL, and the sizes AWS sells. A typo in either is an error.
DB_INSTANCE_FAMILIES = frozenset(
    "t3 t4g m5 m5d m6g m6gd m6i m6id m6idn m6in m7g m7gd m7i m8g m8gd r5 r5b r5d r6g r6gd r6i r6id r6idn r6in r7g r7gd r7i r8g r8gd x2g x2iedn".split()
)
DB_INSTANCE_SIZES = frozenset(
    ["micro", "small", "medium", "large", "xlarge"] + [f"{n}xlarge" for n in (2, 4, 8, 12, 16, 24, 32, 48)]
)
RESERVED_MASTER_USERNAMES = frozenset(
    "postgres admin administrator root rdsadmin rds_superuser rdsrepladmin master sa user superuser public".split()
)
# RDS standard support (release calendar, Nov 2026): 15 until Feb 2028, 16 2029, 17 2030, 18 2031. 13 is in
# paid Extended Support; 14 leaves standard support in Feb 2027 and keeps PUBLIC's CREATE on the public
# schema, which a non-superuser master cannot revoke. .ci/run tests every major here.
PG_MAJOR_VERSIONS = range(15, 19)
PI_RETENTION_OK = "7, or a multiple of 31 from 31 to 731"
RDS_CA_RE = r"rds-ca-(rsa2048-g1|rsa4096-g1|ecc384-g1)"


def _database(r: _Reader, env: Environment, az_count: int) -> DatabaseSettings:
    version = r.string(
        "dbEngineVersion",
        pattern=r"\d{2}(\.\d{1,2})?",
        allowed=f"a PostgreSQL major or major.minor version, majors {PG_MAJOR_VERSIONS.start}-{PG_MAJOR_VERSIONS.stop - 1} (e.g. 16 or 16.4)",
    )
    if re.fullmatch(r"\d{2}(\.\d{1,2})?", version) and int(version.split(".")[0]) not in PG_MAJOR_VERSIONS:
        r.fail("dbEngineVersion", version, f"major version must be {PG_MAJOR_VERSIONS.start}-{PG_MAJOR_VERSIONS.stop - 1}")
    instance_class = r.string("dbInstanceClass")
    m = re.fullmatch(r"db\.([a-z0-9]+)\.([a-z0-9]+)", instance_class)
    if not m or m.group(1) not in DB_INSTANCE_FAMILIES or m.group(2) not in DB_INSTANCE_SIZES:
        r.fail(
            "dbInstanceClass",
            instance_class,
            "must be db.<family>.<size> with a PostgreSQL family (e.g. t4g, m7g, r7g) and a size (micro ... 48xlarge), e.g. db.t4g.micro",
        )
    allocated = r.integer("dbAllocatedStorageGb", 20, 65536)
    max_allocated = r.integer("dbMaxAllocatedStorageGb", 20, 65536)
    r.check(max_allocated >= allocated, "dbMaxAllocatedStorageGb", max_allocated, f"must be >= dbAllocatedStorageGb ({allocated})")
    multi_az = r.boolean("dbMultiAz")
    r.check(not multi_az or az_count >= 2, "dbMultiAz", multi_az, "needs azCount >= 2 (the DB subnet group must span two AZs)")
    deletion_protection = r.boolean("dbDeletionProtection")
    backup = r.integer("dbBackupRetentionDays", 7, 35)
    final_snapshot = r.boolean("dbFinalSnapshot")
    if env is Environment.PROD:
        r.check(deletion_protection, "dbDeletionProtection", deletion_protection, "must be true in prod")
        r.check(backup >= 14, "dbBackupRetentionDays", backup, "must be >= 14 in prod")
        r.check(final_snapshot, "dbFinalSnapshot", final_snapshot, "must be true in prod")
    master = r.string(
        "dbMasterUsername",
        pattern=r"[a-z][a-z0-9_]{0,15}",
        allowed="1-16 chars: a lowercase letter, then lowercase letters, digits or _",
    )
    if master in RESERVED_MASTER_USERNAMES or master.startswith(("rds", "pg_")):
        r.fail("dbMasterUsername", master, "must not be a default or reserved name (postgres, admin, root, rds*, pg_* ...)")
    pi_days = r.integer("dbPerformanceInsightsRetentionDays")
    r.check(pi_days == 7 or (pi_days % 31 == 0 and 31 <= pi_days <= 731), "dbPerformanceInsightsRetentionDays", pi_days, PI_RETENTION_OK)
    interval = r.integer("dbMonitoringIntervalSeconds")
    r.check(interval in (1, 5, 10, 15, 30, 60), "dbMonitoringIntervalSeconds", interval, "must be one of 1, 5, 10, 15, 30, 60")
    admin_cidrs = r.strings("dbAdminCidrs")
    for c in admin_cidrs:
        r.check(_is_private_cidr(c), "dbAdminCidrs", c, "each entry must be a private IPv4 CIDR (RFC 1918), never 0.0.0.0/0")
    log_retention = r.integer("dbLogRetentionDays")
    r.check(log_retention in LOG_RETENTION_DAYS, "dbLogRetentionDays", log_retention, f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    admin_sgs = r.strings("dbAdminSecurityGroupIds")
    for sg in admin_sgs:
        r.check(bool(re.fullmatch(r"sg-[0-9a-f]{8,17}", sg)), "dbAdminSecurityGroupIds", sg, "each entry must be a security group id sg-<8 or 17 hex>")
    return DatabaseSettings(
        engine_version=version,
        instance_class=instance_class,
        allocated_storage_gb=allocated,
        max_allocated_storage_gb=max_allocated,
        multi_az=multi_az,
        deletion_protection=deletion_protection,
        protect=r.boolean("dbProtect"),
        backup_retention_days=backup,
        final_snapshot=final_snapshot,
        master_username=master,
        port=r.integer("dbPort", 1150, 65535),
        performance_insights_retention_days=pi_days,
        monitoring_interval_seconds=interval,
        log_min_duration_ms=r.integer("dbLogMinDurationMs", -1, 2_147_483_647),
        ca_cert_identifier=r.string("dbCaCertIdentifier", pattern=RDS_CA_RE, allowed="one of rds-ca-rsa2048-g1, rds-ca-rsa4096-g1, rds-ca-ecc384-g1"),
        admin_cidrs=admin_cidrs,
        admin_security_group_ids=admin_sgs,
        log_retention_days=log_retention,
    )


def _registry(r: _Reader, env: Environment) -> RegistrySettings:
    force_delete = r.boolean("ecrForceDelete")
    if env is Environment.PROD:
        r.check(not force_delete, "ecrForceDelete", force_delete, "must be false in prod (it deletes every image with the repository)")
    return RegistrySettings(
        untagged_expiry_days=r.integer("ecrUntaggedExpiryDays", 1, 365),
        keep_tagged_count=r.integer("ecrKeepTaggedCount", 1, 1000),
        force_delete=force_delete,
    )


# Fargate's valid task CPU units -> allowed memory (MiB).
FARGATE_SIZES: Mapping[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
# registry/repository[:tag][@sha256:digest] (the reference grammar of the OCI distribution spec, simplified).
IMAGE_RE = (
    r"(?:(?:[a-zA-Z0-9-]+\.)+[a-zA-Z0-9-]+(?::\d+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
IMAGE_TAG_RE = r"[\w][\w.-]{0,127}"
CERT_ARN_RE = r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}"
DOMAIN_RE = r"(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"


def _service(r: _Reader, env: Environment) -> ServiceSettings:
    image = r.string("containerImage")
    r.check(image == "" or bool(re.fullmatch(IMAGE_RE, image)), "containerImage", image,
            "must be empty (use this stack's ECR repository) or an image reference registry/repository[:tag][@sha256:digest]")
    tag = r.string("imageTag", pattern=IMAGE_TAG_RE, allowed="an image tag: letters, digits, _, . and -, up to 128 chars")
    cpu = r.integer("taskCpu")
    memory = r.integer("taskMemory")
    if cpu not in FARGATE_SIZES:
        r.fail("taskCpu", cpu, f"must be one of {', '.join(map(str, FARGATE_SIZES))}")
    elif memory not in FARGATE_SIZES[cpu]:
        allowed = FARGATE_SIZES[cpu]
        r.fail("taskMemory", memory, f"with taskCpu {cpu} must be one of {allowed[0]}..{allowed[-1]} in the Fargate steps ({', '.join(map(str, allowed))})")
    min_capacity = r.integer("minCapacity", 0, 1000)
    max_capacity = r.integer("maxCapacity", 1, 1000)
    desired = r.integer("desiredCount", 0, 1000)
    r.check(min_capacity <= max_capacity, "minCapacity", min_capacity, f"must be <= maxCapacity ({max_capacity})")
    r.check(min_capacity <= desired <= max_capacity, "desiredCount", desired, f"must be between minCapacity ({min_capacity}) and maxCapacity ({max_capacity})")
    fargate_weight = r.integer("fargateWeight", 0, 1000)
    spot_weight = r.integer("fargateSpotWeight", 0, 1000)
    r.check(fargate_weight + spot_weight > 0, "fargateSpotWeight", spot_weight, "fargateWeight and fargateSpotWeight cannot both be 0")
    path = r.string("healthCheckPath", pattern=r"/[\w\-./~%!$&'()*+,;=:@]{0,1023}", allowed="must start with / and be a URL path (max 1024 chars)")
    retention = r.integer("logRetentionDays")
    r.check(retention in LOG_RETENTION_DAYS, "logRetentionDays", retention, f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    exec_cmd = r.boolean("enableExecuteCommand")
    user = r.string("containerUser", pattern=r"[1-9]\d{0,9}(:\d{1,10})?", allowed="a non-zero numeric UID or UID:GID (never root)")
    r.check(not user.endswith(":0"), "containerUser", user, "the GID must not be 0 (the root group)")
    health_cmd = r.string("containerHealthCheck")
    r.check(len(health_cmd) <= 1000 and "\n" not in health_cmd, "containerHealthCheck", health_cmd,
            "must be empty (wget probe of healthCheckPath), none, or a single-line shell command of at most 1000 chars")
    cidrs = r.strings("albIngressCidrs")
    for c in cidrs:
        try:
            ipaddress.ip_network(c, strict=True)
        except ValueError:
            r.fail("albIngressCidrs", c, "each entry must be a CIDR such as 0.0.0.0/0 or 203.0.113.0/24")
    cert = r.string("certificateArn")
    r.check(cert == "" or bool(re.fullmatch(CERT_ARN_RE, cert)), "certificateArn", cert, "must be empty or an ACM certificate ARN arn:aws:acm:<region>:<account>:certificate/<uuid>")
    domain = r.string("domainName")
    r.check(domain == "" or bool(re.fullmatch(DOMAIN_RE, domain)), "domainName", domain, "must be empty or a lowercase DNS name such as app.example.com")
    zone = r.string("hostedZoneId")
    r.check(zone == "" or bool(re.fullmatch(r"Z[A-Z0-9]{1,31}", zone)), "hostedZoneId", zone, "must be empty or a Route 53 zone id Z...")
    r.check(bool(domain) == bool(zone) or bool(cert), "hostedZoneId", zone, "domainName and hostedZoneId go together (or set certificateArn)")
    deletion_protection = r.boolean("albDeletionProtection")
    if env is Environment.PROD:
        r.check(bool(cert or (domain and zone)), "certificateArn", cert, "prod needs HTTPS: set certificateArn, or domainName and hostedZoneId")
        r.check(not exec_cmd, "enableExecuteCommand", exec_cmd, "must be false in prod")
        r.check(deletion_protection, "albDeletionProtection", deletion_protection, "must be true in prod")
    return ServiceSettings(
        container_image=image,
        image_tag=tag,
        container_port=r.integer("containerPort", 1024, 65535),
        container_user=user,
        task_cpu=cpu,
        task_memory=memory,
        desired_count=desired,
        min_capacity=min_capacity,
        max_capacity=max_capacity,
        cpu_target_percent=r.integer("cpuTargetPercent", 10, 90),
        memory_target_percent=r.integer("memoryTargetPercent", 10, 90),
        requests_per_target=r.integer("requestsPerTarget", 0, 1_000_000),
        fargate_weight=fargate_weight,
        fargate_spot_weight=spot_weight,
        health_check_path=path,
        container_health_check=health_cmd,
        health_check_grace_seconds=r.integer("healthCheckGraceSeconds", 0, 7200),
        log_retention_days=retention,
        enable_execute_command=exec_cmd,
        alb_ingress_cidrs=cidrs,
        alb_http_redirect=r.boolean("albHttpRedirect"),
        alb_deletion_protection=deletion_protection,
        certificate_arn=cert,
        domain_name=domain,
        hosted_zone_id=zone,
        access_log_retention_days=r.integer("accessLogRetentionDays", 1, 3650),
    )


PG_IDENTIFIER_RE = r"[a-z_][a-z0-9_]{0,62}"
ALLOWED_EXTENSIONS = frozenset("pgcrypto uuid-ossp citext pg_trgm btree_gin btree_gist hstore unaccent".split())


def _app_database(r: _Reader, app_name: str, master_username: str, environ: Mapping[str, str], check_credentials: bool) -> AppDatabaseSettings:
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
    root_cert = r.string("appDbSslRootCert")
    r.check(ssl_mode is not SslMode.VERIFY_FULL or bool(root_cert), "appDbSslRootCert", root_cert,
            "must name the RDS CA bundle file (e.g. certs/rds-global-bundle.pem) when appDbSslMode is verify-full")
    settings = AppDatabaseSettings(
        enabled=r.boolean("appDbEnabled"),
        name=name,
        schema=schema,
        role_prefix=prefix,
        extensions=extensions,
        iam_auth=r.boolean("appDbIamAuth"),
        connection_limit=r.integer("appDbConnectionLimit", 1, 1000),
        statement_timeout_ms=r.integer("appDbStatementTimeoutMs", 0, 86_400_000),
        idle_in_transaction_timeout_ms=r.integer("appDbIdleInTransactionTimeoutMs", 0, 86_400_000),
        host_override=host,
        port_override=r.integer("appDbPortOverride", 0, 65535),
        ssl_mode=ssl_mode,
        ssl_root_cert=root_cert,
    )
    if not r.failed & {"appDbRolePrefix", "appDbName", "appDbSchema", "appDbExtensions"}:
        for problem in validate_model(settings.model(master_username)):
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


CONTROL_ID_RE = r"[A-Za-z0-9]+\.\d+"


def _security(r: _Reader, env: Environment) -> SecuritySettings:
    waivers: dict[str, str] = {}
    for item in r.strings("securityWaivers"):
        control, sep, reason = item.partition("=")
        if not sep or not re.fullmatch(CONTROL_ID_RE, control.strip()) or len(reason.strip()) < 10:
            r.fail("securityWaivers", item, "each entry must be CONTROL_ID=reason, e.g. 'ELB.1=dev has no certificate' (reason >= 10 chars)")
        else:
            waivers[control.strip()] = reason.strip()
    if env is Environment.PROD and waivers:
        r.fail("securityWaivers", sorted(waivers), "prod cannot waive security controls")
    if waivers:
        # The control catalogue decides what exists and what may be waived. Imported only when
        # there is something to check (prod has no waivers), and lazily: it reads this module.
        from bootstrap.controls import waiver_problems

        problems = waiver_problems(waivers)
        if problems:
            r.fail("securityWaivers", [p.split(" ", 1)[0] for p in problems], "; ".join(problems))
    return SecuritySettings(waivers=waivers)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def load_settings(
    raw: Mapping[str, Any],
    *,
    stack: str,
    schema: ProjectSchema | None = None,
    environ: Mapping[str, str] | None = None,
    check_credentials: bool = True,
) -> Settings:
    """Parse and validate a full config map ({'<project>:<key>': value, 'aws:region': ...}).

    Values may be the strings the Pulumi CLI passes (numbers, booleans and JSON arrays as text)
    or already-typed YAML values. Raises ConfigError listing every problem. `check_credentials`
    (on for the program) also requires PGPASSWORD when the app database is enabled; tools that
    never connect (the SQL rendering) turn it off.
    """
    schema = schema or project_schema()
    r = _Reader(raw, schema)
    unknown = sorted(set(r.values) - set(schema.keys))
    for key in unknown:
        close = _closest(key, schema.keys)
        hint = f"; did you mean {schema.project}:{close}?" if close else ""
        r.problems.append(f"{r.qualified(key)} is not a known key of project {schema.project}{hint} (declared keys are listed in Pulumi.yaml)")
    region, env, app_name, tags = _general(r)
    network = _network(r)
    database = _database(r, env, network.az_count)
    registry = _registry(r, env)
    service = _service(r, env)
    app_database = _app_database(r, app_name, database.master_username, os.environ if environ is None else environ, check_credentials)
    security = _security(r, env)
    if env is Environment.PROD:
        r.check(network.nat_strategy is not NatStrategy.SINGLE or network.az_count == 1, "natStrategy", network.nat_strategy.value,
                "prod with more than one AZ needs per_az (or none with interfaceEndpoints) so one AZ failure cannot cut egress")
        r.check(database.multi_az, "dbMultiAz", database.multi_az, "must be true in prod")
    if network.nat_strategy is NatStrategy.NONE and not network.interface_endpoints and "natStrategy" not in r.failed:
        r.fail("natStrategy", "none", "with no NAT the tasks need interfaceEndpoints: true to pull images and write logs")
    unread = set(schema.keys) - r.read
    if unread:  # programming error: a declared key nobody reads
        raise KeyError(f"Pulumi.yaml declares keys the loader never reads: {sorted(unread)}")
    if r.problems:
        raise ConfigError(r.problems)
    return Settings(
        project=schema.project,
        stack=stack,
        region=region,
        environment=env,
        app_name=app_name,
        tags={"Project": schema.project, "Stack": stack, "ManagedBy": "pulumi", **tags},
        network=network,
        database=database,
        registry=registry,
        service=service,
        app_database=app_database,
        security=security,
    )


def _is_private_cidr(text: str) -> bool:
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        return False
    return any(net.subnet_of(ipaddress.IPv4Network(b)) for b in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _closest(key: str, candidates: Iterable[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.75)
    return matches[0] if matches else None


def raw_pulumi_config() -> dict[str, Any]:
    """The full config map the Pulumi engine handed this program (all namespaces)."""
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    return raw


def load_from_pulumi() -> Settings:
    """Settings for the running Pulumi program (the CLI, the Automation API or the mocks)."""
    import pulumi

    return load_settings(raw_pulumi_config(), stack=pulumi.get_stack())

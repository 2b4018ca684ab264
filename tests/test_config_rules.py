"""The section rules (config/sections.py, config/appdb_section.py) without a graph: every value
reaches its typed field, every integer key is checked at both bounds, and every rule's error is
pinned as the whole sentence the user reads. Each case loads settings in a few milliseconds, so
mutation testing (issue 30, docs/testing.md) kills a changed rule or word in the first second.

The configurations are written here, not read from the stack files: the tests state the rule,
not what a stack happens to hold. Keys not named take Pulumi.yaml's defaults.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import pytest

from config.load import ConfigError, load_settings
from config.settings import (
    AppDatabaseSettings,
    DatabaseSettings,
    NatStrategy,
    NetworkSettings,
    RegistrySettings,
    SecuritySettings,
    ServiceSettings,
    Settings,
    SslMode,
)

DEV = {"aws:region": "eu-west-1", "pghome:environment": "dev", "pghome:appName": "shop"}
PROD_ARNS = {
    "dbDeployRoleArn": "arn:aws:iam::123456789012:role/deploy",
    "dbBreakGlassRoleArn": "arn:aws:iam::123456789012:role/ops/break-glass",
}
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-4000-8000-000000000000"
# The least a prod stack must set to pass every prod rule.
PROD = {
    **DEV, "pghome:environment": "prod", "pghome:natStrategy": "per_az", "pghome:dbMultiAz": "true", "pghome:dbProtect": "true",
    "pghome:dbBackupRetentionDays": "14", "pghome:albDeletionProtection": "true", "pghome:certificateArn": CERT,
    "pghome:appDbSslMode": "verify-full", "pghome:appDbSslRootCert": "certs/rds-global-bundle.pem",
    **{f"pghome:{k}": v for k, v in PROD_ARNS.items()},
}


def _raw(base: Mapping[str, object], overrides: Mapping[str, object]) -> dict[str, object]:
    return {**base, **{(k if ":" in k else f"pghome:{k}"): v for k, v in overrides.items()}}


def settings(overrides: Mapping[str, object] | None = None, base: Mapping[str, object] = DEV) -> Settings:
    return load_settings(_raw(base, overrides or {}), stack="dev", check_credentials=False)


def problems(overrides: Mapping[str, object] | None = None, base: Mapping[str, object] = DEV, **kw: object) -> list[str]:
    try:
        load_settings(_raw(base, overrides or {}), stack="dev", **{"check_credentials": False, **kw})  # type: ignore[arg-type]
    except ConfigError as exc:
        return exc.problems
    return []


def test_the_minimal_stacks_are_valid() -> None:
    assert problems() == [] and problems(base=PROD) == []


# --- every value reaches its field ---------------------------------------------------------------

EVERY = {
    "tags": '["Team=platform", "Owner=a=b", "Empty="]',
    "vpcCidr": "10.40.0.0/20", "azCount": "3", "subnetPrefixLength": "26", "natStrategy": "per_az", "flowLogRetentionDays": "60",
    "s3GatewayEndpoint": "false", "interfaceEndpoints": "true", "interfaceEndpointServices": '["sts", "logs"]', "interfaceEndpointAzCount": "2",
    "dbEngineVersion": "17.2", "dbInstanceClass": "db.r7g.2xlarge", "dbAllocatedStorageGb": "21", "dbMaxAllocatedStorageGb": "24",
    "dbMultiAz": "true", "dbDeletionProtection": "false", "dbProtect": "true", "dbBackupRetentionDays": "8", "dbFinalSnapshot": "false",
    "dbMasterUsername": "boss", "dbPort": "6543", "dbPerformanceInsightsRetentionDays": "62", "dbMonitoringIntervalSeconds": "15",
    "dbLogMinDurationMs": "-1", "dbCaCertIdentifier": "rds-ca-ecc384-g1", "dbAdminCidrs": '["10.40.1.0/24"]',
    "dbAdminSecurityGroupIds": '["sg-0123456789abcdef0"]', "dbAccess": "false", "dbLogRetentionDays": "7", "dbSecretRotationDays": "9",
    "dbDeployRoleArn": PROD_ARNS["dbDeployRoleArn"],
    "ecrUntaggedExpiryDays": "3", "ecrKeepTaggedCount": "4", "ecrForceDelete": "true",
    "containerImage": "ghcr.io/acme/shop:1.2", "imageTag": "v7", "containerPort": "8080", "containerUser": "1001:1002",
    "taskCpu": "512", "taskMemory": "3072", "desiredCount": "3", "minCapacity": "2", "maxCapacity": "5",
    "cpuTargetPercent": "55", "memoryTargetPercent": "65", "requestsPerTarget": "700", "fargateWeight": "2", "fargateSpotWeight": "3",
    "healthCheckPath": "/up", "containerHealthCheck": "curl -f localhost:8080/up", "healthCheckGraceSeconds": "45",
    "logRetentionDays": "180", "enableExecuteCommand": "true", "albIngressCidrs": '["203.0.113.0/24"]', "albHttpRedirect": "false",
    "albDeletionProtection": "true", "certificateArn": CERT, "domainName": "shop.example.com", "hostedZoneId": "Z0123ABC",
    "accessLogRetentionDays": "400", "wafEnabled": "true", "wafRateLimit": "5000", "migrationCommand": "python manage.py 'migrate all'",
    "migrationTimeoutSeconds": "600", "deploymentStrategy": "rolling", "bakeTimeMinutes": "5", "testListenerPort": "9443",
    "testListenerCidrs": '["198.51.100.0/24"]',
    "appDbEnabled": "true", "appDbName": "shopdb", "appDbSchema": "core", "appDbRolePrefix": "sh", "appDbExtensions": '["citext", "pgcrypto"]',
    "appDbIamAuthRoles": '["migrator"]', "appDbConnectionLimit": "7", "appDbStatementTimeoutMs": "1000",
    "appDbIdleInTransactionTimeoutMs": "2000", "appDbHostOverride": "127.0.0.1", "appDbPortOverride": "15432", "appDbSslMode": "verify-full",
    "appDbSslRootCert": "certs/ca.pem", "securityWaivers": '[" RDS.5 = one AZ = half the cost "]',
}


def test_every_value_reaches_its_typed_field() -> None:
    s = settings(EVERY)
    assert s.tags == {"Project": "pghome", "Stack": "dev", "Environment": "dev", "ManagedBy": "pulumi", "Team": "platform", "Owner": "a=b", "Empty": ""}
    assert (s.region, s.app_name) == ("eu-west-1", "shop")
    assert s.network == NetworkSettings(
        prefix="shop-dev", cidr=ipaddress.IPv4Network("10.40.0.0/20"), az_count=3, subnet_prefix_length=26, nat_strategy=NatStrategy.PER_AZ,
        flow_log_retention_days=60, s3_gateway_endpoint=False, interface_endpoints=True, interface_endpoint_services=("logs", "sts"),
        endpoint_az_count=2, keep_on_destroy=False,
    )
    assert s.database == DatabaseSettings(
        prefix="shop-dev", engine_version="17.2", instance_class="db.r7g.2xlarge", allocated_storage_gb=21, max_allocated_storage_gb=24,
        multi_az=True, deletion_protection=False, protect=True, backup_retention_days=8, final_snapshot=False, master_username="boss",
        port=6543, performance_insights_retention_days=62, monitoring_interval_seconds=15, log_min_duration_ms=-1,
        ca_cert_identifier="rds-ca-ecc384-g1", admin_cidrs=("10.40.1.0/24",), admin_security_group_ids=("sg-0123456789abcdef0",),
        apply_immediately=True, delete_automated_backups=True, secret_recovery_window_days=0, log_retention_days=7, secret_rotation_days=9,
        access=False, master_secret_readers=(PROD_ARNS["dbDeployRoleArn"],), keep_on_destroy=False,
    )
    assert s.registry == RegistrySettings(prefix="shop-dev", untagged_expiry_days=3, keep_tagged_count=4, force_delete=True)
    assert s.service == ServiceSettings(
        prefix="shop-dev", container_image="ghcr.io/acme/shop:1.2", image_tag="v7", container_port=8080, container_user="1001:1002",
        task_cpu=512, task_memory=3072, desired_count=3, min_capacity=2, max_capacity=5, cpu_target_percent=55, memory_target_percent=65,
        requests_per_target=700, fargate_weight=2, fargate_spot_weight=3, health_check_path="/up", container_health_check="curl -f localhost:8080/up",
        health_check_grace_seconds=45, log_retention_days=180, enable_execute_command=True, alb_ingress_cidrs=("203.0.113.0/24",),
        alb_http_redirect=False, alb_deletion_protection=True, certificate_arn=CERT, domain_name="shop.example.com", hosted_zone_id="Z0123ABC",
        access_log_retention_days=400, container_insights="enabled", waf_enabled=True, waf_rate_limit=5000,
        migration_command=("python", "manage.py", "migrate all"), migration_timeout_seconds=600, deployment_strategy="rolling",
        bake_time_minutes=5, test_listener_port=9443, test_listener_cidrs=("198.51.100.0/24",), keep_on_destroy=False,
    )
    assert s.security == SecuritySettings(waivers={"RDS.5": "one AZ = half the cost"})  # split at the first =, trimmed
    assert settings({"deploymentStrategy": "blue_green"}).service.deployment_strategy == "blue_green"
    assert s.app_database == AppDatabaseSettings(
        prefix="shop-dev", enabled=True, name="shopdb", schema="core", role_prefix="sh", extensions=("citext", "pgcrypto"),
        iam_auth_roles=("migrator",), connection_limit=7, statement_timeout_ms=1000, idle_in_transaction_timeout_ms=2000,
        host_override="127.0.0.1", port_override=15432, ssl_mode=SslMode.VERIFY_FULL, master_username="boss", engine_version="17.2",
        protect=True, secret_recovery_window_days=0, ssl_root_cert="certs/ca.pem",
    )


def test_prod_decides_its_own_values() -> None:
    dev, prod = settings(), settings(base=PROD)
    assert (dev.database.apply_immediately, prod.database.apply_immediately) == (True, False)
    assert (dev.database.delete_automated_backups, prod.database.delete_automated_backups) == (True, False)
    assert (dev.database.secret_recovery_window_days, prod.database.secret_recovery_window_days) == (0, 30)
    assert (dev.app_database.secret_recovery_window_days, prod.app_database.secret_recovery_window_days) == (0, 30)
    assert (dev.network.endpoint_az_count, prod.network.endpoint_az_count) == (1, 2)  # one AZ in dev; every AZ in prod
    assert prod.database.master_secret_readers == (PROD_ARNS["dbDeployRoleArn"], PROD_ARNS["dbBreakGlassRoleArn"])
    assert (dev.service.container_insights, prod.service.container_insights) == ("enabled", "enhanced")
    assert (dev.service.waf_enabled, prod.service.waf_enabled) == (False, True)
    assert settings({"wafEnabled": "false"}, base=PROD).service.waf_enabled is False
    for section in ("network", "database", "service"):
        assert (getattr(dev, section).keep_on_destroy, getattr(prod, section).keep_on_destroy) == (False, True), section
    staging = settings({"environment": "staging"})
    assert (staging.database.apply_immediately, staging.network.keep_on_destroy, staging.database.secret_recovery_window_days) == (True, False, 0)


def test_names_default_to_the_app_name() -> None:
    s = settings({"appName": "my-shop", "appDbName": "", "appDbRolePrefix": ""})
    assert (s.app_database.name, s.app_database.role_prefix) == ("my_shop", "my_shop")
    assert s.service.deployment_strategy == "rolling" and settings({"deploymentStrategy": ""}).service.deployment_strategy == "rolling"


@pytest.mark.parametrize(("roles", "legacy", "result"), [
    ('["migrator", "app"]', None, ("app", "migrator")),
    ("[]", "true", ("app",)),
    ("[]", "false", ()),
    ("[]", None, ()),
    ('["migrator"]', "false", ("migrator",)),
])
def test_iam_auth_roles_and_their_deprecated_form(roles: str, legacy: str | None, result: tuple[str, ...]) -> None:
    over = {"appDbIamAuthRoles": roles, **({"appDbIamAuth": legacy} if legacy is not None else {})}
    assert settings(over).app_database.iam_auth_roles == result


# --- integer bounds ------------------------------------------------------------------------------

# key, lowest, highest, what else the highest (or lowest) value needs to be consistent.
# None: that bound is never accepted on its own (another rule always refuses it), only its sentence is checked.
BOUNDS: list[tuple[str, int, int, dict[str, str]]] = [
    ("azCount", 2, 6, {"subnetPrefixLength": "21"}),
    ("subnetPrefixLength", 16, 28, {}),
    ("dbAllocatedStorageGb", 20, 65536, {}),
    ("dbMaxAllocatedStorageGb", 20, 65536, {}),
    ("dbBackupRetentionDays", 7, 35, {}),
    ("dbPort", 1150, 65535, {}),
    ("dbLogMinDurationMs", -1, 2_147_483_647, {}),
    ("dbSecretRotationDays", 1, 365, {}),
    ("ecrUntaggedExpiryDays", 1, 365, {}),
    ("ecrKeepTaggedCount", 1, 1000, {}),
    ("minCapacity", 0, 1000, {"maxCapacity": "1000", "desiredCount": "1000"}),
    ("maxCapacity", 1, 1000, {}),
    ("desiredCount", 0, 1000, {"minCapacity": "0", "maxCapacity": "1000"}),
    ("fargateWeight", 0, 1000, {}),
    ("fargateSpotWeight", 0, 1000, {}),
    ("requestsPerTarget", 0, 1_000_000, {}),
    ("containerPort", 1024, 65535, {}),
    ("cpuTargetPercent", 10, 90, {}),
    ("memoryTargetPercent", 10, 90, {}),
    ("healthCheckGraceSeconds", 0, 7200, {}),
    ("accessLogRetentionDays", 1, 3650, {}),
    ("wafRateLimit", 10, 2_000_000_000, {}),
    ("migrationTimeoutSeconds", 60, 86_400, {}),
    ("bakeTimeMinutes", 0, 1440, {}),
    ("testListenerPort", 1, 65535, {}),
    ("appDbConnectionLimit", 1, 1000, {}),
    ("appDbStatementTimeoutMs", 0, 86_400_000, {}),
    ("appDbIdleInTransactionTimeoutMs", 0, 86_400_000, {}),
    ("appDbPortOverride", 0, 65535, {}),
]
# subnetPrefixLength 16 never fits a VPC (/16 at least, plus four tier blocks); dbMaxAllocatedStorageGb 20
# is below 110% of the smallest allocation (20).
NOT_ALONE = {("subnetPrefixLength", 16), ("dbMaxAllocatedStorageGb", 20)}


@pytest.mark.parametrize(("key", "lo", "hi", "ctx"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_integer_keys_accept_their_bounds_and_refuse_one_past(key: str, lo: int, hi: int, ctx: dict[str, str]) -> None:
    for value in (lo, hi):
        if (key, value) not in NOT_ALONE:
            assert [p for p in problems({**ctx, key: value}) if p.startswith(f"pghome:{key} ")] == [], value
    for value in (lo - 1, hi + 1):
        assert f"pghome:{key} = {value} is invalid: must be an integer from {lo} to {hi}" in problems({**ctx, key: value}), value

"""The section rules: one parser per config section, each checking what AWS and PostgreSQL accept
and deciding the per-environment values, so components never branch on the environment."""

from __future__ import annotations

import ipaddress
import re
import shlex

from config.limits import (
    APP_NAME_RE,
    AWS_REGION_RE,
    CERT_ARN_RE,
    CONTROL_ID_RE,
    DB_INSTANCE_FAMILIES,
    DB_INSTANCE_SIZES,
    DOMAIN_RE,
    FARGATE_SIZES,
    IAM_ROLE_ARN_RE,
    IMAGE_RE,
    IMAGE_TAG_RE,
    LOG_RETENTION_DAYS,
    PG_MAJOR_VERSIONS,
    PI_RETENTION_OK,
    RDS_CA_RE,
    RESERVED_MASTER_USERNAMES,
    TAG_KEY_RE,
    TAG_VALUE_RE,
)
from config.reader import Reader, show
from config.settings import (
    INTERFACE_ENDPOINT_SERVICES,
    DatabaseSettings,
    Environment,
    NatStrategy,
    NetworkSettings,
    RegistrySettings,
    SecuritySettings,
    ServiceSettings,
)
from controls import is_private_cidr, waiver_problems

RESERVED_TAG_KEYS = ("Project", "Stack", "Environment", "ManagedBy")
"""Default tags pghome sets itself; the security controls read Environment (controls/readers.py)."""


def secret_recovery_window_days(env: Environment) -> int:
    """Days a deleted secret stays restorable: 30 in prod; 0 elsewhere, so a destroyed stack's
    secrets are gone at once and destroy -> up can reuse their names (one rule for every secret)."""
    return 30 if env is Environment.PROD else 0


def keep_on_destroy(env: Environment) -> bool:
    """Prod's data keys and log groups outlive the stack (protect + retainOnDelete): a final snapshot
    is only restorable while its key exists (issue 28). One rule for every section."""
    return env is Environment.PROD


def general(r: Reader) -> tuple[str, Environment, str, dict[str, str]]:
    region = r.other.get("aws:region", "")
    if not isinstance(region, str) or not re.fullmatch(AWS_REGION_RE, region):
        r.problems.append(
            f"aws:region = {show(region) if region else '<unset>'} is invalid: "
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
        elif key in RESERVED_TAG_KEYS:
            r.fail("tags", item, f"the keys {', '.join(RESERVED_TAG_KEYS)} are set by pghome (Environment comes from the environment key)")
        else:
            tags[key] = value
    return region, environment, app_name, tags


def network(r: Reader, name_prefix: str, env: Environment = Environment.DEV) -> NetworkSettings:
    cidr_text = r.string("vpcCidr")
    # 2 at least: the database always exists, and a DB subnet group must span two AZs.
    az_count = r.integer("azCount", 2, 6)
    prefix = r.integer("subnetPrefixLength", 16, 28)
    try:
        cidr = ipaddress.IPv4Network(cidr_text, strict=True)
    except ValueError:
        r.fail("vpcCidr", cidr_text, "must be an IPv4 network in CIDR notation with no host bits set, e.g. 10.0.0.0/16")
        cidr = ipaddress.IPv4Network("10.0.0.0/16")
    else:
        if not is_private_cidr(cidr_text):
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
    retention = _log_retention(r, "flowLogRetentionDays")
    prod = env is Environment.PROD
    endpoint_azs = r.optional_integer("interfaceEndpointAzCount", az_count if prod else 1, 1, az_count)
    # Private DNS sends the whole VPC's calls to these services through the endpoints: in prod one AZ's
    # outage must not cut image pulls and logs in the others (the same rule as natStrategy per_az).
    r.check(not prod or endpoint_azs == az_count, "interfaceEndpointAzCount", endpoint_azs,
            f"must equal azCount ({az_count}) in prod, so one AZ failure cannot cut the AWS APIs behind the endpoints")
    return NetworkSettings(
        prefix=name_prefix,
        cidr=cidr,
        az_count=az_count,
        subnet_prefix_length=prefix,
        nat_strategy=nat,
        flow_log_retention_days=retention,
        s3_gateway_endpoint=r.boolean("s3GatewayEndpoint"),
        s3_endpoint_any_principal=r.boolean("s3EndpointAnyPrincipal"),
        interface_endpoints=r.boolean("interfaceEndpoints"),
        interface_endpoint_services=_endpoint_services(r),
        endpoint_az_count=endpoint_azs,
        keep_on_destroy=keep_on_destroy(env),
    )


def _endpoint_services(r: Reader) -> tuple[str, ...]:
    services = r.strings("interfaceEndpointServices")
    unknown = [s for s in services if s not in INTERFACE_ENDPOINT_SERVICES]
    if unknown or len(set(services)) != len(services):
        r.fail("interfaceEndpointServices", list(services), f"must list distinct services among {', '.join(INTERFACE_ENDPOINT_SERVICES)}")
    return tuple(s for s in INTERFACE_ENDPOINT_SERVICES if s in services)



def database(r: Reader, name_prefix: str, env: Environment, az_count: int) -> DatabaseSettings:
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
    floor = -(-allocated * 11 // 10)  # RDS: the autoscaling ceiling must be >= 110% of the allocated storage
    r.check(max_allocated >= floor, "dbMaxAllocatedStorageGb", max_allocated, f"must be >= {floor} (110% of dbAllocatedStorageGb {allocated})")
    multi_az = r.boolean("dbMultiAz")
    r.check(not multi_az or az_count >= 2, "dbMultiAz", multi_az, "needs azCount >= 2 (the DB subnet group must span two AZs)")
    deletion_protection = r.boolean("dbDeletionProtection")
    backup = r.integer("dbBackupRetentionDays", 7, 35)
    final_snapshot = r.boolean("dbFinalSnapshot")
    protect = r.boolean("dbProtect")
    if env is Environment.PROD:
        r.check(protect, "dbProtect", protect, "must be true in prod (Pulumi protect: `destroy` and a replacing update cannot delete the database)")
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
    r.check(pi_days in (7, 731) or (pi_days % 31 == 0 and 31 <= pi_days <= 713), "dbPerformanceInsightsRetentionDays", pi_days, PI_RETENTION_OK)
    interval = r.integer("dbMonitoringIntervalSeconds")
    r.check(interval in (1, 5, 10, 15, 30, 60), "dbMonitoringIntervalSeconds", interval, "must be one of 1, 5, 10, 15, 30, 60")
    admin_cidrs = r.strings("dbAdminCidrs")
    for c in admin_cidrs:
        r.check(_is_private_ipv4_network(c), "dbAdminCidrs", c, "each entry must be a private IPv4 CIDR (RFC 1918), never 0.0.0.0/0")
    log_retention = _log_retention(r, "dbLogRetentionDays")
    readers = tuple(
        arn for arn in (r.string("dbDeployRoleArn", pattern=f"(?:{IAM_ROLE_ARN_RE})?", allowed="empty or an IAM role ARN arn:aws:iam::<account>:role/<path/name>"),
                        r.string("dbBreakGlassRoleArn", pattern=f"(?:{IAM_ROLE_ARN_RE})?", allowed="empty or an IAM role ARN arn:aws:iam::<account>:role/<path/name>"))
        if arn
    )
    if env is Environment.PROD:
        r.check(len(readers) == 2, "dbDeployRoleArn", list(readers),
                "prod needs dbDeployRoleArn and dbBreakGlassRoleArn: only they and the rotation function may read the master secret")
    admin_sgs = r.strings("dbAdminSecurityGroupIds")
    for sg in admin_sgs:
        r.check(bool(re.fullmatch(r"sg-[0-9a-f]{8,17}", sg)), "dbAdminSecurityGroupIds", sg, "each entry must be a security group id sg-<8 or 17 hex>")
    return DatabaseSettings(
        prefix=name_prefix,
        engine_version=version,
        instance_class=instance_class,
        allocated_storage_gb=allocated,
        max_allocated_storage_gb=max_allocated,
        multi_az=multi_az,
        deletion_protection=deletion_protection,
        protect=protect,
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
        apply_immediately=env is not Environment.PROD,
        delete_automated_backups=env is not Environment.PROD,
        secret_recovery_window_days=secret_recovery_window_days(env),
        log_retention_days=log_retention,
        secret_rotation_days=r.integer("dbSecretRotationDays", 1, 365),
        access=r.boolean("dbAccess"),
        master_secret_readers=readers,
        keep_on_destroy=keep_on_destroy(env),
    )


def registry(r: Reader, name_prefix: str, env: Environment) -> RegistrySettings:
    force_delete = r.boolean("ecrForceDelete")
    if env is Environment.PROD:
        r.check(not force_delete, "ecrForceDelete", force_delete, "must be false in prod (it deletes every image with the repository)")
    return RegistrySettings(
        prefix=name_prefix,
        untagged_expiry_days=r.integer("ecrUntaggedExpiryDays", 1, 365),
        keep_tagged_count=r.integer("ecrKeepTaggedCount", 1, 1000),
        force_delete=force_delete,
    )

def service(r: Reader, name_prefix: str, env: Environment) -> ServiceSettings:
    image = r.string("containerImage")
    r.check(image == "" or bool(re.fullmatch(IMAGE_RE, image)), "containerImage", image,
            "must be empty (use this stack's ECR repository) or an image reference registry/repository[:tag][@sha256:digest]")
    tag = r.string("imageTag", pattern=f"(?:{IMAGE_TAG_RE})?", allowed="empty (no image yet) or an image tag: letters, digits, _, . and -, up to 128 chars")
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
    retention = _log_retention(r, "logRetentionDays")
    exec_cmd = r.boolean("enableExecuteCommand")
    user = r.string("containerUser", pattern=r"[1-9]\d{0,9}(:\d{1,10})?", allowed="a non-zero numeric UID or UID:GID (never root)")
    r.check(not user.endswith(":0"), "containerUser", user, "the GID must not be 0 (the root group)")
    health_cmd = r.string("containerHealthCheck")
    r.check(len(health_cmd) <= 1000 and "\n" not in health_cmd, "containerHealthCheck", health_cmd,
            "must be empty or none (no container check; the load balancer checks healthCheckPath), or a single-line shell command of at most 1000 chars")
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
    migration = r.string("migrationCommand")
    try:
        migration_argv = tuple(shlex.split(migration))
    except ValueError as exc:
        migration_argv = ()
        r.fail("migrationCommand", migration, f"must be a command line with balanced quotes ({exc})")
    r.check(len(migration) <= 4000 and "\n" not in migration, "migrationCommand", migration,
            "must be empty (no migration step) or one command line of at most 4000 chars, run in exec form (no shell)")
    strategy = r.string("deploymentStrategy") or "rolling"
    r.check(strategy in ("rolling", "blue_green"), "deploymentStrategy", strategy, "must be rolling or blue_green")
    requests_per_target = r.integer("requestsPerTarget", 0, 1_000_000)
    test_cidrs = r.strings("testListenerCidrs")
    for c in test_cidrs:
        try:
            open_to_all = ipaddress.ip_network(c, strict=True).prefixlen == 0
        except ValueError:
            r.fail("testListenerCidrs", c, "each entry must be a CIDR such as 203.0.113.0/24")
            continue
        r.check(not open_to_all, "testListenerCidrs", c, "must not open the test listener to the whole internet; list your office, VPN or CI CIDRs")
    if strategy == "blue_green":
        r.check(requests_per_target == 0, "requestsPerTarget", requests_per_target,
                "must be 0 with deploymentStrategy blue_green (the request-count metric names one target group; blue/green alternates two)")
    if env is Environment.PROD:
        r.check(not exec_cmd, "enableExecuteCommand", exec_cmd, "must be false in prod")
        r.check(deletion_protection, "albDeletionProtection", deletion_protection, "must be true in prod")
    settings = ServiceSettings(
        prefix=name_prefix,
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
        requests_per_target=requests_per_target,
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
        container_insights="enhanced" if env is Environment.PROD else "enabled",
        waf_enabled=r.optional_boolean("wafEnabled", env is Environment.PROD),
        waf_rate_limit=r.integer("wafRateLimit", 10, 2_000_000_000),
        migration_command=migration_argv,
        migration_timeout_seconds=r.integer("migrationTimeoutSeconds", 60, 86_400),
        deployment_strategy=strategy,
        bake_time_minutes=r.integer("bakeTimeMinutes", 0, 1440),
        test_listener_port=r.integer("testListenerPort", 1, 65535),
        test_listener_cidrs=test_cidrs,
        keep_on_destroy=keep_on_destroy(env),
    )
    if env is Environment.PROD:
        r.check(settings.https, "certificateArn", cert, "prod needs HTTPS: set certificateArn, or domainName and hostedZoneId")
    return settings


def security(r: Reader, env: Environment) -> SecuritySettings:
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
        # The control catalogue decides what exists and what may be waived.
        problems = waiver_problems(waivers)
        if problems:
            r.fail("securityWaivers", [p.split(" ", 1)[0] for p in problems], "; ".join(problems))
    return SecuritySettings(waivers=waivers)


def _log_retention(r: Reader, key: str) -> int:
    """A CloudWatch Logs retention: only the day counts the API accepts."""
    days = r.integer(key)
    r.check(days in LOG_RETENTION_DAYS, key, days, f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}")
    return days


def _is_private_ipv4_network(text: str) -> bool:
    """A well-formed IPv4 network (no host bits) inside the private ranges."""
    try:
        ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        return False
    return is_private_cidr(text)

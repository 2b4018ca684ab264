"""One pricing rule per resource type: graph resource -> monthly line items.

A rule returns `Line`s (fixed = charged even with no traffic, usage = from the usage
assumptions) and `Unpriced` parts (a charge it knows exists but cannot figure; never zero).
Types that AWS does not bill are listed in free.FREE with the reason. A type in neither is
reported as not priced by the estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bootstrap.cost.free import FREE
from bootstrap.cost.model import Context, Line, Res, Rule, Unpriced, money
from bootstrap.cost.rules_rds import rds_instance
from bootstrap.cost.tables import HOURS

__all__ = ["FREE", "RULES", "Context", "Line", "Unpriced"]


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


IPV4_NOTE = "one per NAT gateway (natStrategy) + one per AZ of the internet-facing ALB (azCount)"


def nat_gateway(r: Res, c: Context) -> list[Line | Unpriced]:
    n = max(c.counts.get("aws:ec2/natGateway:NatGateway", 1), 1)
    hour, gb = c.prices.p("nat_hour"), c.prices.p("nat_gb")
    share = c.u("nat_gb") / n
    strategy = c.cfg("natStrategy", "single")
    note = f"natStrategy={strategy}: {n} NAT gateway(s) x {money(hour * HOURS)}" + (
        f" (per_az = one per AZ, azCount={c.cfg('azCount')}; single = 1)" if strategy == "per_az" else " (per_az = one per AZ)"
    )
    return [
        Line("NAT gateway hours", hour * HOURS, 0.0, f"{HOURS} h x ${hour}/h", ("natStrategy", "azCount"), note),
        Line("NAT gateway data", 0.0, share * gb, f"nat_gb {c.u('nat_gb'):g} GB / {n} gateway(s) x ${gb}/GB", ("natStrategy",)),
    ]


def eip(r: Res, c: Context) -> list[Line | Unpriced]:
    hour = c.prices.p("public_ipv4_hour")
    return [Line("public IPv4 addresses", hour * HOURS, 0.0, f"{HOURS} h x ${hour}/h", ("natStrategy", "azCount"), IPV4_NOTE)]


def vpc_endpoint(r: Res, c: Context) -> list[Line | Unpriced]:
    if str(r.get("vpcEndpointType", "Gateway")) != "Interface":
        return []  # gateway endpoints (S3, DynamoDB) carry no charge
    azs = len(r.get("subnetIds") or []) or 1
    n = max(c.counts.get("interface endpoints", 1), 1)
    hour, gb = c.prices.p("endpoint_az_hour"), c.prices.p("endpoint_gb")
    share = c.u("endpoint_gb") / n
    # dbAccess brings five (its task's only way out); interfaceEndpoints adds the chosen ones
    note = f"dbAccess / interfaceEndpoints=true: {n} endpoints x {azs} AZs (interfaceEndpointAzCount) x {money(hour * HOURS)}"
    return [
        Line("interface endpoint hours", azs * hour * HOURS, 0.0, f"{azs} AZ x {HOURS} h x ${hour}/h",
             ("dbAccess", "interfaceEndpoints", "interfaceEndpointAzCount"), note),
        Line("interface endpoint data", 0.0, share * gb, f"endpoint_gb {c.u('endpoint_gb'):g} GB / {n} endpoints x ${gb}/GB", ("interfaceEndpoints",)),
    ]


# --------------------------------------------------------------------------------------------
# Load balancer, WAF
# --------------------------------------------------------------------------------------------


def load_balancer(r: Res, c: Context) -> list[Line | Unpriced]:
    if str(r.get("loadBalancerType", "application")) != "application":
        return [Unpriced("load balancer", f"loadBalancerType {r.get('loadBalancerType')} has no rule (only application)")]
    hour, lcu = c.prices.p("alb_hour"), c.prices.p("alb_lcu_hour")
    lines: list[Line | Unpriced] = [
        Line("load balancer hours", hour * HOURS, 0.0, f"{HOURS} h x ${hour}/h"),
        Line("load balancer LCUs", 0.0, c.u("alb_lcu") * lcu * HOURS, f"alb_lcu {c.u('alb_lcu'):g} LCU x {HOURS} h x ${lcu}/LCU-h"),
    ]
    if not r.get("internal", False):
        azs = len(r.get("subnets") or r.get("subnetMappings") or []) or 2
        ip = c.prices.p("public_ipv4_hour")
        lines.append(Line("public IPv4 addresses", azs * ip * HOURS, 0.0, f"internet-facing: {azs} AZ x {HOURS} h x ${ip}/h", ("azCount",), IPV4_NOTE))
    return lines


def waf_web_acl(r: Res, c: Context) -> list[Line | Unpriced]:
    acl, rule, req = c.prices.p("waf_web_acl_month"), c.prices.p("waf_rule_month"), c.prices.p("waf_requests_per_million")
    rules = r.get("rules") or []
    lines: list[Line | Unpriced] = [
        Line("WAF web ACL and rules", acl + rule * len(rules), 0.0, f"${acl} + {len(rules)} rule(s) x ${rule}"),
        Line("WAF requests", 0.0, c.u("waf_requests_million") * req, f"waf_requests_million {c.u('waf_requests_million'):g} x ${req}/million"),
    ]
    paid = [str(x.get("name")) for x in rules if isinstance(x, dict) and _paid_managed_group(x)]
    if paid:
        lines.append(Unpriced("WAF paid managed rule groups", f"{', '.join(paid)} carry their own subscription and request fees"))
    return lines


def _paid_managed_group(rule: Mapping[str, Any]) -> bool:
    stmt = (rule.get("statement") or {}).get("managedRuleGroupStatement") or {}
    return str(stmt.get("name", "")) in ("AWSManagedRulesBotControlRuleSet", "AWSManagedRulesATPRuleSet", "AWSManagedRulesACFPRuleSet")


# --------------------------------------------------------------------------------------------
# Service
# --------------------------------------------------------------------------------------------


def _task_definition(service: Res, c: Context) -> Res | None:
    ref = str(service.get("taskDefinition", ""))
    for r in c.resources:
        if r.type == "aws:ecs/taskDefinition:TaskDefinition" and ref in (r.state.get("arn"), r.state.get("arnWithoutRevision"), r.get("family")):
            return r  # type: ignore[no-any-return]
    return None


def _spot_share(service: Res, tasks: float) -> float:
    strategies = service.get("capacityProviderStrategies") or []
    if not strategies:
        return 0.0
    base = {s["capacityProvider"]: float(s.get("base", 0) or 0) for s in strategies}
    weight = {s["capacityProvider"]: float(s.get("weight", 0) or 0) for s in strategies}
    rest = max(tasks - sum(base.values()), 0.0)
    total_weight = sum(weight.values()) or 1.0
    spot = min(base.get("FARGATE_SPOT", 0.0), tasks) + rest * weight.get("FARGATE_SPOT", 0.0) / total_weight
    return spot / tasks if tasks else 0.0


def ecs_service(r: Res, c: Context) -> list[Line | Unpriced]:
    td = _task_definition(r, c)
    if td is None:
        return [Unpriced("Fargate tasks", f"task definition {r.get('taskDefinition')} is not in the graph")]
    if str(r.get("launchType", "FARGATE")) not in ("FARGATE", ""):
        return [Unpriced("tasks", f"launchType {r.get('launchType')} is not priced (only Fargate)")]
    tasks = c.u("tasks") or float(r.get("desiredCount", 1) or 0)
    if not tasks and not c.u("tasks"):
        # A stack with no image yet runs no task until its first release; price what it will run.
        tasks = float(c.cfg("desiredCount", "1") or 1)
    vcpu = int(td.get("cpu", 256)) / 1024
    gb = int(td.get("memory", 512)) / 1024
    arm = str(td.get("runtimePlatform.cpuArchitecture", "X86_64")).upper() == "ARM64"
    arch = c.prices.p("fargate_arm_factor") if arm else 1.0
    v_price, m_price = c.prices.p("fargate_vcpu_hour") * arch, c.prices.p("fargate_gb_hour") * arch
    per_task = (vcpu * v_price + gb * m_price) * HOURS
    spot = _spot_share(r, tasks)
    spot_factor = c.prices.p("fargate_spot_factor")
    cost = tasks * per_task * ((1 - spot) + spot * spot_factor)
    source = "usage tasks" if c.u("tasks") else "desiredCount"
    basis = (
        f"{tasks:g} task(s) ({source}) x ({vcpu:g} vCPU x ${v_price:.5f} + {gb:g} GB x ${m_price:.6f}) x {HOURS} h"
        + (" [ARM]" if arm else " [x86]")
        + (f", {spot:.0%} on Spot at ~{spot_factor:g} x on-demand" if spot else ", on-demand")
    )
    # the count charged (a plan's desiredCount is 0 until the first release: the configured count runs then)
    note = f"{tasks:g} task(s) ({source}) x taskCpu={td.get('cpu')}/taskMemory={td.get('memory')}, Spot share {spot:.0%} (fargateSpotWeight={c.cfg('fargateSpotWeight')})"
    lines: list[Line | Unpriced] = [Line("Fargate tasks", cost, 0.0, basis, ("desiredCount", "taskCpu", "taskMemory", "fargateSpotWeight", "fargateWeight"), note)]
    if str(r.get("networkConfiguration.assignPublicIp", False)).lower() == "true":
        ip = c.prices.p("public_ipv4_hour")
        lines.append(Line("public IPv4 addresses", tasks * ip * HOURS, 0.0, f"{tasks:g} task(s) with a public IP x {HOURS} h x ${ip}/h"))
    return lines


# Custom metrics Container Insights (containerInsights=enabled) publishes for a cluster with one
# service and one task family: the cluster-, service- and task-family-level metrics of the
# ECS/ContainerInsights namespace (about 12 + 15 + 10, the CloudWatch "Amazon ECS Container Insights
# metrics" page); the review measured ~$9-12/month in dev, i.e. 30-40 metrics at $0.30.
CONTAINER_INSIGHTS_METRICS = 35


def ecs_cluster(r: Res, c: Context) -> list[Line | Unpriced]:
    insights = {s.get("name"): s.get("value") for s in (r.get("settings") or []) if isinstance(s, dict)}.get("containerInsights")
    refs = {r.state.get("arn"), r.get("name")} - {None, ""}
    services = [s for s in c.resources if s.type == "aws:ecs/service:Service" and s.get("cluster") in refs]
    if not services:  # no service, no task, no metric (the db-access cluster idles)
        return []
    if insights == "enabled":  # billed as CloudWatch custom metrics (the CloudWatch pricing page)
        metrics, price = CONTAINER_INSIGHTS_METRICS * len(services), c.prices.p("cloudwatch_metric_month")
        return [Line("Container Insights metrics", metrics * price, 0.0,
                     f"{len(services)} service(s) x {CONTAINER_INSIGHTS_METRICS} metrics x ${price}/metric-month",
                     (), "containerInsights=enabled on the cluster: custom metrics per cluster, service and task family, while tasks run")]
    if insights == "enhanced":
        return [Unpriced("Container Insights metrics", "containerInsights=enhanced: CloudWatch bills observations per task and container")]
    return []


def lambda_function(r: Res, c: Context) -> list[Line | Unpriced]:
    n = c.u("lambda_invocations")
    mem_gb = float(r.get("memorySize", 128) or 128) / 1024
    arm = "arm64" in (r.get("architectures") or [])
    gbs_price = c.prices.p("lambda_gb_second_arm" if arm else "lambda_gb_second_x86")
    req = c.prices.p("lambda_requests_per_million")
    gb_s = n * mem_gb * c.u("lambda_duration_ms") / 1000
    return [
        Line(
            "Lambda invocations",
            0.0,
            n / 1e6 * req + gb_s * gbs_price,
            f"lambda_invocations {n:g} x ${req}/million + {gb_s:,.0f} GB-s (lambda_duration_ms {c.u('lambda_duration_ms'):g}) x ${gbs_price}",
        )
    ]


# --------------------------------------------------------------------------------------------
# Logs, keys, secrets, storage
# --------------------------------------------------------------------------------------------

# Which usage key feeds which log group (by name), and the config key setting its retention.
LOG_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("/vpc/", "flow_log_gb", "flowLogRetentionDays"),
    ("/aws/rds/instance/", "db_log_gb", "dbLogRetentionDays"),
    ("/ecs/", "app_log_gb", "logRetentionDays"),
    ("/exec", "other_log_gb", ""),  # ECS Exec session transcripts (/ecs/<prefix>/exec): small, not app volume
)


def log_group(r: Res, c: Context) -> list[Line | Unpriced]:
    name = str(r.get("name", r.name))
    key, retention_key = "other_log_gb", ""
    for fragment, usage_key, config_key in LOG_GROUPS:
        if fragment in name:
            key, retention_key = usage_key, config_key
    quiet = "upgrade log (negligible)"
    if name.startswith("/aws/rds/instance/") and not name.endswith("/postgresql"):
        key = ""  # the upgrade log: a few KB per engine upgrade
    if "/db-access/" in name:
        key, quiet = "", "tunnel sessions only (negligible)"  # written only while a tunnel is open
    gb = c.u(key) if key else 0.0
    days = int(r.get("retentionInDays", 0) or 0)
    months = days / (365 / 12) if days else 12.0  # never-expiring groups: a year's worth
    stored = gb * months * c.u("log_stored_fraction")
    ingest, store = c.prices.p("logs_ingest_gb"), c.prices.p("logs_storage_gb_month")
    label = f"{key} {gb:g} GB" if key else quiet
    return [
        Line(
            "CloudWatch Logs",
            0.0,
            gb * ingest + stored * store,
            f"{label} x ${ingest}/GB + {stored:.2f} GB stored ({days or 'no'} days retention) x ${store}",
            (retention_key,) if retention_key else (),
            "log volume (usage app_log_gb, flow_log_gb, db_log_gb) x retention (logRetentionDays, flowLogRetentionDays, dbLogRetentionDays)",
        )
    ]


def kms_key(r: Res, c: Context) -> list[Line | Unpriced]:
    month, req = c.prices.p("kms_key_month"), c.prices.p("kms_requests_per_10k")
    n = c.u("kms_requests_per_key")
    rotation = " (automatic rotation adds $1/month after each of the first two yearly rotations)" if r.get("enableKeyRotation") else ""
    return [
        Line("KMS keys", month, 0.0, f"${month}/key-month{rotation}"),
        Line("KMS requests", 0.0, n / 10_000 * req, f"kms_requests_per_key {n:g} x ${req}/10k (20k/month account free tier not applied)"),
    ]


def secret(r: Res, c: Context) -> list[Line | Unpriced]:
    month, api = c.prices.p("secrets_secret_month"), c.prices.p("secrets_api_per_10k")
    n = c.u("secrets_api_calls_per_secret")
    return [
        Line("Secrets Manager secrets", month, 0.0, f"${month}/secret-month"),
        Line("Secrets Manager API calls", 0.0, n / 10_000 * api, f"secrets_api_calls_per_secret {n:g} x ${api}/10k"),
    ]


def s3_bucket(r: Res, c: Context) -> list[Line | Unpriced]:
    gb, put = c.prices.p("s3_gb_month"), c.prices.p("s3_put_per_1000")
    return [
        Line(
            "S3 storage and requests",
            0.0,
            c.u("s3_gb") * gb + c.u("s3_put_requests") / 1000 * put,
            f"s3_gb {c.u('s3_gb'):g} GB x ${gb} + s3_put_requests {c.u('s3_put_requests'):g} x ${put}/1000",
            ("accessLogRetentionDays",),
        )
    ]


def ecr_repository(r: Res, c: Context) -> list[Line | Unpriced]:
    gb = c.prices.p("ecr_storage_gb_month")
    name = str(r.get("name", ""))
    prefixes = [str(p.get("ecrRepositoryPrefix", "")) for p in c.resources if p.type == "aws:ecr/pullThroughCacheRule:PullThroughCacheRule"]
    if any(p and name.startswith(f"{p}/") for p in prefixes):  # the access image's cache, not the app's images (ecr_gb)
        return [Line("ECR storage", 0.0, 0.0, "pull-through cache of the access image: a few MB, under $0.01/month")]
    return [Line("ECR storage", 0.0, c.u("ecr_gb") * gb, f"ecr_gb {c.u('ecr_gb'):g} GB x ${gb}/GB-month", ("ecrKeepTaggedCount",))]


def metric_alarm(r: Res, c: Context) -> list[Line | Unpriced]:
    # CloudWatch bills an alarm per metric it evaluates: a metric-math alarm over two metrics costs two.
    queries = r.get("metricQueries") or []
    metrics = sum(1 for q in queries if isinstance(q, dict) and q.get("metric")) or 1
    price = c.prices.p("cloudwatch_alarm_month")
    return [Line("CloudWatch alarms", metrics * price, 0.0, f"{metrics} metric(s) x ${price}/alarm metric-month (standard resolution)")]


def dashboard(r: Res, c: Context) -> list[Line | Unpriced]:
    price = c.prices.p("cloudwatch_dashboard_month")
    return [Line("CloudWatch dashboards", price, 0.0, f"${price}/dashboard-month (the free tier's 3 dashboards are not counted)")]


def sns_topic(r: Res, c: Context) -> list[Line | Unpriced]:
    """No charge for the topic; each notification is one publish plus one delivery per subscriber."""
    topic = r.state.get("arn")
    subs = [s for s in c.resources if s.type == "aws:sns/topicSubscription:TopicSubscription" and s.get("topic") in (topic, r.get("name"))]
    n = c.u("alarm_notifications")
    publish, email, https = c.prices.p("sns_publish_per_million"), c.prices.p("sns_email_per_100k"), c.prices.p("sns_https_per_million")
    emails = sum(1 for s in subs if s.get("protocol") == "email")
    hooks = sum(1 for s in subs if s.get("protocol") == "https")
    cost = n / 1e6 * publish + n * emails / 1e5 * email + n * hooks / 1e6 * https
    basis = f"alarm_notifications {n:g} x (${publish}/M publishes + {emails} email x ${email}/100k + {hooks} HTTPS x ${https}/M)"
    return [Line("SNS notifications", 0.0, cost, basis, ("alarmEmails", "alarmHttpsEndpoints"))]


def dynamodb_on_demand(r: Res, c: Context) -> list[Line | Unpriced]:
    # The release ledger: a few requests per release and kilobytes of items; on demand bills only
    # those (about $1.25 per million writes, $0.25/GB-month), so it rounds to zero.
    return [Line("DynamoDB (release ledger)", 0.0, 0.0, "on demand: a few requests per release, KB of storage: under $0.01/month")]


RULES: dict[str, Rule] = {
    "aws:ec2/natGateway:NatGateway": nat_gateway,
    "aws:ec2/eip:Eip": eip,
    "aws:ec2/vpcEndpoint:VpcEndpoint": vpc_endpoint,
    "aws:lb/loadBalancer:LoadBalancer": load_balancer,
    "aws:alb/loadBalancer:LoadBalancer": load_balancer,
    "aws:wafv2/webAcl:WebAcl": waf_web_acl,
    "aws:rds/instance:Instance": rds_instance,
    "aws:ecs/service:Service": ecs_service,
    "aws:ecs/cluster:Cluster": ecs_cluster,
    "aws:lambda/function:Function": lambda_function,
    "aws:cloudwatch/logGroup:LogGroup": log_group,
    "aws:kms/key:Key": kms_key,
    "aws:secretsmanager/secret:Secret": secret,
    "aws:s3/bucket:Bucket": s3_bucket,
    "aws:s3/bucketV2:BucketV2": s3_bucket,
    "aws:ecr/repository:Repository": ecr_repository,
    "aws:cloudwatch/metricAlarm:MetricAlarm": metric_alarm,
    "aws:dynamodb/table:Table": dynamodb_on_demand,
    "aws:cloudwatch/dashboard:Dashboard": dashboard,
    "aws:sns/topic:Topic": sns_topic,
}

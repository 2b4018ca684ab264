"""The alarm table, as plain data: which metric, which dimensions, which threshold, per tier.

No resource is created here (components/monitoring.py does that), so every alarm can be read and
tested without Pulumi: `database_alarms(...)` is the list the stack creates for the database, and
docs/monitoring.md describes the same list with what to do when each alarm fires. Dimension
values are what CloudWatch wants, which is not always a name: the load balancer and the target
group are identified by their ARN suffixes (`app/<name>/<id>`, `targetgroup/<name>/<id>`), the
DB instance by its identifier, the ECS service by cluster and service names.

Thresholds follow AWS's recommended alarms (CloudWatch "Best practice alarm recommendations"
for RDS, ApplicationELB, ECS and Lambda) with the figures the stack settings choose per
environment (config/monitoring.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config.monitoring import MonitoringSettings
from config.settings import DatabaseSettings

GIB = 1024**3
# RDS for PostgreSQL's default parameter group: max_connections = LEAST({DBInstanceClassMemory/9531392}, 5000)
# (AWS Prescriptive Guidance, "Tuning PostgreSQL parameters: max_connections").
MAX_CONNECTIONS_DIVISOR = 9_531_392
MAX_CONNECTIONS_CAP = 5000
# Memory of the burstable sizes (GiB); the other families scale with vCPUs: large = 2 vCPUs,
# xlarge = 4, Nxlarge = 4N, times the family's GiB per vCPU.
BURSTABLE_GIB = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32}
GIB_PER_VCPU = {"m": 4, "r": 8, "x2g": 16, "x2iedn": 32}

DATABASE, LOAD_BALANCER, SERVICE, ROTATION, WAF = "database", "load balancer", "service", "rotation", "waf"
TIERS = (LOAD_BALANCER, SERVICE, DATABASE, ROTATION, WAF)  # the dashboard's row order, front to back


def instance_memory_gib(instance_class: str) -> float:
    """Memory of an RDS instance class (db.t4g.micro -> 1, db.m7g.large -> 8, db.r6g.xlarge -> 32)."""
    family, _, size = instance_class.removeprefix("db.").partition(".")
    if family.startswith("t"):
        return float(BURSTABLE_GIB[size])
    vcpus = 2 if size == "large" else 4 if size == "xlarge" else 4 * int(size.removesuffix("xlarge"))
    per_vcpu = next((v for k, v in sorted(GIB_PER_VCPU.items(), key=lambda kv: -len(kv[0])) if family.startswith(k)), 4)
    return float(vcpus * per_vcpu)


def default_max_connections(instance_class: str) -> int:
    """The class's max_connections under RDS's default formula. DBInstanceClassMemory is a little
    below the nominal memory (the OS keeps some), so the real limit is a few percent lower."""
    return min(int(instance_memory_gib(instance_class) * GIB // MAX_CONNECTIONS_DIVISOR), MAX_CONNECTIONS_CAP)


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: Mapping[str, Any]
    """Dimension name -> value (a plain string, or a pulumi Output such as an ARN suffix)."""
    stat: str
    """Average, Sum, Minimum, Maximum or a percentile such as p99."""


@dataclass(frozen=True)
class AlarmSpec:
    key: str
    """The alarm is named '<prefix>-<key>'; docs/monitoring.md has a section per key."""
    tier: str
    summary: str
    comparison: str
    threshold: float
    shown: str
    """The threshold as a person reads it ('80 %', '1.6 GiB free')."""
    metric: Metric | None = None
    expression: str = ""
    """Metric math over `inputs` (ids m1, m2, ...) when one metric is not enough."""
    inputs: Mapping[str, Metric] = field(default_factory=dict)
    period: int = 300
    evaluation_periods: int = 3
    datapoints: int = 3
    missing: str = "missing"
    rollback: bool = False
    """One of the ECS deployment alarms: firing during a rollout rolls it back."""

    @property
    def metrics(self) -> list[Metric]:
        return [self.metric] if self.metric is not None else list(self.inputs.values())


def alarm_name(prefix: str, key: str) -> str:
    return f"{prefix}-{key}"


def database_alarms(s: MonitoringSettings, db: DatabaseSettings) -> list[AlarmSpec]:
    dims = {"DBInstanceIdentifier": db.identifier}

    def rds(name: str, stat: str) -> Metric:
        return Metric("AWS/RDS", name, dims, stat)

    storage = db.allocated_storage_gb * GIB * s.db_free_storage_percent / 100
    memory = instance_memory_gib(db.instance_class) * GIB * s.db_free_memory_percent / 100
    connections = default_max_connections(db.instance_class) * s.db_connections_percent // 100
    latency = s.db_latency_ms / 1000  # RDS reports latency in seconds
    return [
        AlarmSpec("db-cpu", DATABASE, "RDS CPU is high", "GreaterThanThreshold", s.db_cpu_percent, f"{s.db_cpu_percent} %", rds("CPUUtilization", "Average")),
        AlarmSpec("db-free-storage", DATABASE, f"RDS free storage is below {s.db_free_storage_percent} % of {db.allocated_storage_gb} GiB", "LessThanThreshold",
                  storage, f"{storage / GIB:.1f} GiB free", rds("FreeStorageSpace", "Minimum"), evaluation_periods=1, datapoints=1),
        AlarmSpec("db-free-memory", DATABASE, f"RDS freeable memory is below {s.db_free_memory_percent} % of {db.instance_class}", "LessThanThreshold",
                  memory, f"{memory / 2**20:.0f} MiB free", rds("FreeableMemory", "Minimum")),
        AlarmSpec("db-connections", DATABASE, f"RDS connections are above {s.db_connections_percent} % of max_connections "
                  f"({default_max_connections(db.instance_class)} on {db.instance_class})", "GreaterThanThreshold",
                  connections, f"{connections} connections", rds("DatabaseConnections", "Maximum"), evaluation_periods=2, datapoints=2),
        AlarmSpec("db-read-latency", DATABASE, "RDS read latency is high", "GreaterThanThreshold", latency, f"{s.db_latency_ms} ms", rds("ReadLatency", "Average")),
        AlarmSpec("db-write-latency", DATABASE, "RDS write latency is high", "GreaterThanThreshold", latency, f"{s.db_latency_ms} ms", rds("WriteLatency", "Average")),
    ]


def load_balancer_alarms(s: MonitoringSettings, alb_arn_suffix: Any, target_group_arn_suffixes: Sequence[Any]) -> list[AlarmSpec]:
    """The load balancer tier. With one target group (rolling deployments) each alarm reads it;
    with blue/green's two, each reads both through metric math, since ECS moves production traffic
    from one group to the other at every deployment and an alarm on one group would go quiet (and
    stop rolling deployments back) after the first switch."""
    if len(target_group_arn_suffixes) == 1:
        return _one_target_group(s, alb_arn_suffix, target_group_arn_suffixes[0])
    return _every_target_group(s, alb_arn_suffix, target_group_arn_suffixes)


def _elb(name: str, dims: Mapping[str, Any], stat: str) -> Metric:
    return Metric("AWS/ApplicationELB", name, dims, stat)


def _elb_5xx(s: MonitoringSettings, alb_arn_suffix: Any) -> AlarmSpec:
    return AlarmSpec("alb-elb-5xx", LOAD_BALANCER, "The load balancer itself answers 5xx (no healthy target, timeouts, bad gateway)",
                     "GreaterThanThreshold", s.elb_5xx_count, f"{s.elb_5xx_count} per 5 min", _elb("HTTPCode_ELB_5XX_Count", {"LoadBalancer": alb_arn_suffix}, "Sum"),
                     evaluation_periods=1, datapoints=1, missing="notBreaching")


def _every_target_group(s: MonitoringSettings, alb_arn_suffix: Any, target_group_arn_suffixes: Sequence[Any]) -> list[AlarmSpec]:
    """Blue/green: the same four alarms over every target group. A group with no traffic has no
    datapoints, so each series is FILLed with 0 before it is summed or compared."""
    groups = [{"LoadBalancer": alb_arn_suffix, "TargetGroup": suffix} for suffix in target_group_arn_suffixes]
    ids = [f"m{i + 1}" for i in range(len(groups))]

    def each(name: str, stat: str, first: int = 1) -> dict[str, Metric]:
        return {f"m{first + i}": _elb(name, g, stat) for i, g in enumerate(groups)}

    def total(names: Sequence[str]) -> str:
        return " + ".join(f"FILL({n}, 0)" for n in names)

    def largest(names: Sequence[str]) -> str:
        return "MAX([" + ", ".join(f"FILL({n}, 0)" for n in names) + "])"

    errors, requests = ids, [f"m{len(ids) + i + 1}" for i in range(len(ids))]
    return [
        _elb_5xx(s, alb_arn_suffix),
        AlarmSpec("alb-target-5xx-rate", LOAD_BALANCER, f"More than {s.target_5xx_percent} % of requests fail with a 5xx from the app",
                  "GreaterThanThreshold", s.target_5xx_percent, f"{s.target_5xx_percent} %",
                  expression=f"IF(({total(requests)}) > 0, 100 * ({total(errors)}) / ({total(requests)}), 0)",
                  inputs={**each("HTTPCode_Target_5XX_Count", "Sum"), **each("RequestCount", "Sum", first=len(ids) + 1)},
                  period=60, evaluation_periods=5, datapoints=3, missing="notBreaching", rollback=True),
        AlarmSpec("alb-unhealthy-hosts", LOAD_BALANCER, "At least one task fails the load balancer's health check", "GreaterThanOrEqualToThreshold",
                  1, "1 host", expression=largest(ids), inputs=each("UnHealthyHostCount", "Maximum"),
                  period=60, evaluation_periods=3, datapoints=3, missing="notBreaching", rollback=True),
        # The slower group's p99: percentiles of two groups cannot be merged exactly, and the slower one is what users feel.
        AlarmSpec("alb-p99-latency", LOAD_BALANCER, "The slowest 1 % of requests are slow", "GreaterThanThreshold", s.target_p99_ms / 1000,
                  f"{s.target_p99_ms} ms", expression=largest(ids), inputs=each("TargetResponseTime", "p99"), missing="notBreaching"),
    ]


def _one_target_group(s: MonitoringSettings, alb_arn_suffix: Any, target_group_arn_suffix: Any) -> list[AlarmSpec]:
    tg = {"LoadBalancer": alb_arn_suffix, "TargetGroup": target_group_arn_suffix}
    return [
        _elb_5xx(s, alb_arn_suffix),
        # A rate, not a count: 20 errors of 20 requests is an outage, 20 of 100,000 is noise.
        AlarmSpec("alb-target-5xx-rate", LOAD_BALANCER, f"More than {s.target_5xx_percent} % of requests fail with a 5xx from the app",
                  "GreaterThanThreshold", s.target_5xx_percent, f"{s.target_5xx_percent} %",
                  expression="IF(m2 > 0, 100 * m1 / m2, 0)",
                  inputs={"m1": _elb("HTTPCode_Target_5XX_Count", tg, "Sum"), "m2": _elb("RequestCount", tg, "Sum")},
                  period=60, evaluation_periods=5, datapoints=3, missing="notBreaching", rollback=True),
        AlarmSpec("alb-unhealthy-hosts", LOAD_BALANCER, "At least one task fails the load balancer's health check", "GreaterThanOrEqualToThreshold",
                  1, "1 host", _elb("UnHealthyHostCount", tg, "Maximum"), period=60, evaluation_periods=3, datapoints=3, missing="notBreaching", rollback=True),
        AlarmSpec("alb-p99-latency", LOAD_BALANCER, "The slowest 1 % of requests are slow", "GreaterThanThreshold", s.target_p99_ms / 1000,
                  f"{s.target_p99_ms} ms", _elb("TargetResponseTime", tg, "p99"), missing="notBreaching"),
    ]


def service_alarms(s: MonitoringSettings, cluster_name: Any, service_name: Any) -> list[AlarmSpec]:
    dims = {"ClusterName": cluster_name, "ServiceName": service_name}
    return [
        AlarmSpec("ecs-cpu", SERVICE, "The app's tasks use most of their CPU", "GreaterThanThreshold", s.ecs_cpu_percent, f"{s.ecs_cpu_percent} %",
                  Metric("AWS/ECS", "CPUUtilization", dims, "Average")),
        AlarmSpec("ecs-memory", SERVICE, "The app's tasks use most of their memory", "GreaterThanThreshold", s.ecs_memory_percent,
                  f"{s.ecs_memory_percent} %", Metric("AWS/ECS", "MemoryUtilization", dims, "Average")),
        # Container Insights (on in every environment) publishes both counts; the gap is what is missing.
        AlarmSpec("ecs-running-tasks", SERVICE, "Fewer tasks run than the service wants", "GreaterThanOrEqualToThreshold", 1, "1 task missing",
                  expression="m1 - m2",
                  inputs={"m1": Metric("ECS/ContainerInsights", "DesiredTaskCount", dims, "Maximum"),
                          "m2": Metric("ECS/ContainerInsights", "RunningTaskCount", dims, "Minimum")},
                  period=300, evaluation_periods=3, datapoints=3, missing="notBreaching"),
    ]


def rotation_alarms(s: MonitoringSettings, function_name: Any) -> list[AlarmSpec]:
    dims = {"FunctionName": function_name}
    return [
        AlarmSpec("rotation-errors", ROTATION, "The rotation function failed", "GreaterThanThreshold", 0, "any error",
                  Metric("AWS/Lambda", "Errors", dims, "Sum"), evaluation_periods=1, datapoints=1, missing="notBreaching"),
        AlarmSpec("rotation-throttles", ROTATION, "The rotation function was throttled", "GreaterThanThreshold", 0, "any throttle",
                  Metric("AWS/Lambda", "Throttles", dims, "Sum"), evaluation_periods=1, datapoints=1, missing="notBreaching"),
    ]


def waf_alarms(s: MonitoringSettings, web_acl_name: str, region: str) -> list[AlarmSpec]:
    # Rule=ALL is the web ACL's total; WAFV2 metrics carry the region as a dimension.
    dims = {"WebACL": web_acl_name, "Rule": "ALL", "Region": region}
    return [
        AlarmSpec("waf-blocked-spike", WAF, "The web ACL blocks an unusual number of requests", "GreaterThanThreshold", s.waf_blocked_count,
                  f"{s.waf_blocked_count} per 5 min", Metric("AWS/WAFV2", "BlockedRequests", dims, "Sum"), evaluation_periods=1, datapoints=1,
                  missing="notBreaching"),
    ]


# --- events -------------------------------------------------------------------------------------

RDS_EVENT_CATEGORIES = ("failover", "failure", "low storage", "maintenance", "configuration change")


def ecs_deployment_failed_pattern(service_arn: Any) -> dict[str, Any]:
    """ECS Deployment State Change events of this service that end a deployment as failed (the
    circuit breaker or a deployment alarm gave up; ECS docs: 'Amazon ECS service deployment state change events')."""
    return {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Deployment State Change"],
        "resources": [service_arn],
        "detail": {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]},
    }


def rotation_failed_pattern(secret_arns: Sequence[Any]) -> dict[str, Any]:
    """Secrets Manager's rotation outcome events (CloudTrail 'AWS Service Event', no trail needed)
    for the stack's own secrets: these events name the secret (its ARN) in
    detail.additionalEventData.SecretId, so another stack's failures in the account never page
    this one's on-call."""
    return {
        "source": ["aws.secretsmanager"],
        "detail-type": ["AWS Service Event via CloudTrail"],
        "detail": {"eventSource": ["secretsmanager.amazonaws.com"], "eventName": ["RotationFailed", "RotationAbandoned", "TestRotationFailed"],
                   "additionalEventData": {"SecretId": list(secret_arns)}},
    }


# --- the dashboard -----------------------------------------------------------------------------


def _widget_metrics(spec: AlarmSpec, region: str) -> list[Any]:
    def row(m: Metric, extra: dict[str, Any]) -> list[Any]:
        dims: list[Any] = [part for k, v in m.dimensions.items() for part in (k, v)]
        return [m.namespace, m.name, *dims, {"stat": m.stat, "region": region, **extra}]

    if spec.metric is not None:
        return [row(spec.metric, {})]
    return [[{"expression": spec.expression, "label": spec.key, "id": "e1", "region": region}],
            *(row(m, {"id": mid, "visible": False}) for mid, m in spec.inputs.items())]


def dashboard_body(specs: list[AlarmSpec], region: str, title: str) -> dict[str, Any]:
    """One row per tier (a text header, then one graph per alarm with its threshold drawn on it)."""
    widgets: list[dict[str, Any]] = [{"type": "text", "x": 0, "y": 0, "width": 24, "height": 1, "properties": {"markdown": f"## {title}"}}]
    y = 1
    for tier in TIERS:
        row = [s for s in specs if s.tier == tier]
        if not row:
            continue
        width = max(24 // len(row), 4)
        widgets.append({"type": "text", "x": 0, "y": y, "width": 24, "height": 1, "properties": {"markdown": f"### {tier}"}})
        for i, spec in enumerate(row):
            widgets.append({
                "type": "metric", "x": (i * width) % 24, "y": y + 1 + (i * width) // 24 * 6, "width": width, "height": 6,
                "properties": {
                    "title": spec.summary, "region": region, "view": "timeSeries", "period": spec.period,
                    "metrics": _widget_metrics(spec, region),
                    "annotations": {"horizontal": [{"label": f"alarm: {spec.shown}", "value": spec.threshold}]},
                },
            })
        y += 1 + 6 * (-(-len(row) * width // 24))
    return {"widgets": widgets}

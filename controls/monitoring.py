"""Rules: operability. Every metric that must be watched has an alarm that tells someone.

An alarm counts for a resource when one of its metrics (plain or inside metric math) is a
must-watch metric of that resource's type and its dimensions point at that resource: built from
it (a recorded dependency, e.g. an ALB's ARN suffix) or holding its id, ARN, name or identifier.
An alarm without an alarm action (nobody notified, nothing done) does not count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from controls.catalogue import WAIVABLE, control
from controls.inventory import Inventory, Res
from controls.readers import as_list

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
MONITORING = "pghome:monitoring:Monitoring"

# Resource type -> (namespace, metric) pairs that must each have an alarm with an action (AWS's
# recommended alarms for RDS, Application Load Balancers, ECS services, Lambda and WAF).
MUST_WATCH: Mapping[str, tuple[tuple[str, str], ...]] = {
    "aws:rds/instance:Instance": (
        ("AWS/RDS", "CPUUtilization"), ("AWS/RDS", "FreeStorageSpace"), ("AWS/RDS", "FreeableMemory"),
        ("AWS/RDS", "DatabaseConnections"), ("AWS/RDS", "ReadLatency"), ("AWS/RDS", "WriteLatency"),
    ),
    "aws:lb/loadBalancer:LoadBalancer": (
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"), ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
        ("AWS/ApplicationELB", "UnHealthyHostCount"), ("AWS/ApplicationELB", "TargetResponseTime"),
    ),
    "aws:ecs/service:Service": (("AWS/ECS", "CPUUtilization"), ("AWS/ECS", "MemoryUtilization"), ("ECS/ContainerInsights", "RunningTaskCount")),
    "aws:lambda/function:Function": (("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles")),
    "aws:wafv2/webAcl:WebAcl": (("AWS/WAFV2", "BlockedRequests"),),
}


def _metrics(alarm: Res) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(namespace, metric, dimensions) of every metric the alarm evaluates."""
    if alarm.get("metricName"):
        return [(str(alarm.get("namespace")), str(alarm.get("metricName")), alarm.get("dimensions") or {})]
    out = []
    for q in as_list(alarm.get("metricQueries")):
        m = q.get("metric") if isinstance(q, dict) else None
        if isinstance(m, dict):
            out.append((str(m.get("namespace")), str(m.get("metricName")), m.get("dimensions") or {}))
    return out


def _points_at(alarm: Res, dims: Mapping[str, Any], target: Res) -> bool:
    if any(target.urn in alarm.deps.get(prop, ()) for prop in ("dimensions", "metricQueries")):
        return True
    # ARN suffixes (load balancers, target groups) end the ARN; names and identifiers equal a key.
    return any(isinstance(v, str) and any(k == v or k.endswith("/" + v) for k in target.keys) for v in dims.values())


def unwatched(r: Res, inv: Inventory) -> list[str]:
    """The must-watch metrics of `r` that no alarm with an action watches."""
    watched: set[tuple[str, str]] = set()
    for alarm in inv.of_type(ALARM):
        if not as_list(alarm.get("alarmActions")):
            continue
        for namespace, metric, dims in _metrics(alarm):
            if _points_at(alarm, dims, r):
                watched.add((namespace, metric))
    return [f"{ns} {m}" for ns, m in MUST_WATCH.get(r.type, ()) if (ns, m) not in watched]


@control("PGH.7", "Every must-watch metric of the database, load balancer, service, rotation function and WAF has an alarm with an action",
         WAIVABLE, tuple(MUST_WATCH), component=MONITORING, context=True,
         note="AWS's recommended alarms (CloudWatch best-practice alarms); an alarm without an action pages nobody")
def _pgh7(r: Res, inv: Inventory) -> Iterator[str]:
    for metric in unwatched(r, inv):
        yield f"no alarm with an alarm action watches {metric} of this resource"

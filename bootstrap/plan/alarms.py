"""The offline plan's alarm section: every alarm the stack would create, and who would hear it.

Read from the recorded graph (the inputs `pulumi up` would send), not from the alarm table in
components/alarms.py, so what is listed is what AWS would get. A stack whose alarm topic has no
subscription is said to alarm nobody.
"""

from __future__ import annotations

from typing import Any

from bootstrap.plan.mockgraph import Graph, Resource

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
RULE = "aws:cloudwatch/eventRule:EventRule"
RDS_EVENTS = "aws:rds/eventSubscription:EventSubscription"
ECS_SERVICE = "aws:ecs/service:Service"
OPERATORS = {"GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": ">=", "LessThanThreshold": "<", "LessThanOrEqualToThreshold": "<="}
NO_SUBSCRIBER = "NO SUBSCRIBER: the alarm topic has no subscription, so alarms reach nobody (set alarmEmails or alarmHttpsEndpoints)"


def _metric(alarm: Resource) -> str:
    if alarm.get("metricName"):
        stat = alarm.get("extendedStatistic") or alarm.get("statistic")
        return f"{alarm.get('namespace')} {alarm.get('metricName')} ({stat})"
    queries = alarm.get("metricQueries") or []
    expression = next((q.get("expression") for q in queries if q.get("returnData")), "")
    names = {q["id"]: q["metric"]["metricName"] for q in queries if q.get("metric")}
    for mid, name in names.items():
        expression = expression.replace(mid, name)
    return expression


def _dimensions(alarm: Resource) -> dict[str, Any]:
    if alarm.get("dimensions"):
        return dict(alarm.get("dimensions"))
    dims: dict[str, Any] = {}
    for q in alarm.get("metricQueries") or []:
        dims.update((q.get("metric") or {}).get("dimensions") or {})
    return dims


def alarm_rows(graph: Graph) -> list[dict[str, Any]]:
    rollback = {n for s in graph.of_type(ECS_SERVICE) for n in (s.get("alarms.alarmNames") or []) if s.get("alarms.rollback")}
    return [
        {
            "name": a.get("name"),
            "metric": _metric(a),
            "dimensions": _dimensions(a),
            "condition": f"{OPERATORS.get(a.get('comparisonOperator'), a.get('comparisonOperator'))} {_number(a.get('threshold'))}",
            "periods": f"{a.get('datapointsToAlarm') or a.get('evaluationPeriods')} of {a.get('evaluationPeriods')} x {a.get('period') or _query_period(a)} s",
            "actions": len(a.get("alarmActions") or []),
            "okActions": len(a.get("okActions") or []),
            "rollsBack": a.get("name") in rollback,
        }
        for a in sorted(graph.of_type(ALARM), key=lambda r: str(r.get("name")))
    ]


def _number(value: Any) -> str:
    # Byte thresholds (free storage, freeable memory) read better with separators than as 2.14748e+09.
    if not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:g}"


def _query_period(alarm: Resource) -> Any:
    return next(((q.get("metric") or {}).get("period") for q in alarm.get("metricQueries") or [] if q.get("metric")), "?")


def subscribers(graph: Graph) -> list[str]:
    return [f"{s.get('protocol')}: {s.get('endpoint')}" for s in graph.of_type(SUBSCRIPTION)]


def as_json(graph: Graph) -> dict[str, Any]:
    return {
        "alarms": alarm_rows(graph),
        "subscribers": subscribers(graph),
        "eventRules": [r.get("name") for r in graph.of_type(RULE)],
        "rdsEventCategories": [c for s in graph.of_type(RDS_EVENTS) for c in s.get("eventCategories") or []],
    }


def render(graph: Graph) -> str:
    rows = alarm_rows(graph)
    if not rows:
        return "Alarms: none."
    lines = [f"Alarms ({len(rows)}; what to do when one fires: docs/monitoring.md):"]
    width = max(len(str(r["name"])) for r in rows)
    for r in rows:
        flag = "  [rolls a deployment back]" if r["rollsBack"] else ""
        acted = "" if r["actions"] else "  NO ACTION"
        lines.append(f"  {r['name']:<{width}}  {r['metric']} {r['condition']}, {r['periods']}{acted}{flag}")
    extra = as_json(graph)
    if extra["eventRules"]:
        lines.append(f"Event rules: {', '.join(map(str, extra['eventRules']))}")
    if extra["rdsEventCategories"]:
        lines.append(f"RDS events: {', '.join(extra['rdsEventCategories'])}")
    subs = extra["subscribers"]
    lines.append(f"Subscribers: {', '.join(subs)}" if subs else NO_SUBSCRIBER)
    return "\n".join(lines)

"""Issue 26: alarms that reach a person, a dashboard, deployments that roll back on alarms.

Every alarm is checked on the recorded graph: metric, dimensions (the real ids CloudWatch
wants: ARN suffixes for the load balancer and target group, the DB identifier, cluster and
service names, the function name), threshold and actions.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bootstrap.plan import alarms as plan_alarms
from bootstrap.plan import report
from bootstrap.plan.mockanswers import ACCOUNT_ID
from bootstrap.plan.mockgraph import Graph, Resource, run_stack
from components import alarms
from tests.control_graphs import mutated
from tests.helpers import assert_config_error
from tests.resource_types import ALB, CLUSTER, KEY, ROTATION

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
RDS_EVENTS = "aws:rds/eventSubscription:EventSubscription"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
ECS_SERVICE = "aws:ecs/service:Service"
TG = "aws:lb/targetGroup:TargetGroup"
RDS = "aws:rds/instance:Instance"
LAMBDA = "aws:lambda/function:Function"
GIB = 1024**3


def alarm(g: Graph, key: str) -> Resource:
    prefix = "shop-" + g.stack
    (found,) = [a for a in g.of_type(ALARM) if a.inputs["name"] == f"{prefix}-{key}"]
    return found


def metrics(a: Resource) -> dict[str, tuple[str, dict[str, Any], str]]:
    """metricName -> (namespace, dimensions, stat) for plain and metric-math alarms."""
    if a.get("metricName"):
        return {a.inputs["metricName"]: (a.inputs["namespace"], a.inputs["dimensions"], a.get("extendedStatistic") or a.inputs["statistic"])}
    return {q["metric"]["metricName"]: (q["metric"]["namespace"], q["metric"]["dimensions"], q["metric"]["stat"]) for q in a.inputs["metricQueries"] if q.get("metric")}


def ids(g: Graph) -> dict[str, Any]:
    """The ids CloudWatch wants, read from the recorded resources (not from our naming rules)."""
    rotation = next(f for f in g.of_type(LAMBDA) if f.inputs["name"].endswith("-db-rotation"))
    app = next(s for s in g.of_type(ECS_SERVICE) if s.inputs.get("loadBalancers"))
    return {
        "alb": g.one(ALB).state["arnSuffix"],
        "tg": g.one(TG).state["arnSuffix"],
        "db": g.one(RDS).inputs["identifier"],
        "cluster": next(c for c in g.of_type(CLUSTER) if c.state["arn"] == app.inputs["cluster"]).inputs["name"],
        "service": app.inputs["name"],
        "function": rotation.inputs["name"],
    }


def expected_alarms(g: Graph) -> dict[str, tuple[str, str, dict[str, Any], str, str, float]]:
    """key -> (namespace, metric, dimensions, stat, operator, threshold) of each plain-metric alarm."""
    i, prod = ids(g), g.stack == "prod"
    rds, lb, tg = {"DBInstanceIdentifier": i["db"]}, {"LoadBalancer": i["alb"]}, {"LoadBalancer": i["alb"], "TargetGroup": i["tg"]}
    svc, fn = {"ClusterName": i["cluster"], "ServiceName": i["service"]}, {"FunctionName": i["function"]}
    # db.t4g.micro: 1 GiB -> max_connections 112; db.m7g.large: 8 GiB -> 901 (LEAST(memory/9531392, 5000)).
    out = {
        "db-cpu": ("AWS/RDS", "CPUUtilization", rds, "Average", "GreaterThanThreshold", 80 if prod else 90),
        "db-free-storage": ("AWS/RDS", "FreeStorageSpace", rds, "Minimum", "LessThanThreshold", (100 * GIB * 0.2) if prod else (20 * GIB * 0.1)),
        "db-free-memory": ("AWS/RDS", "FreeableMemory", rds, "Minimum", "LessThanThreshold", (8 * GIB * 0.1) if prod else (1 * GIB * 0.05)),
        "db-connections": ("AWS/RDS", "DatabaseConnections", rds, "Maximum", "GreaterThanThreshold", 720 if prod else 100),
        "db-read-latency": ("AWS/RDS", "ReadLatency", rds, "Average", "GreaterThanThreshold", 0.02 if prod else 0.1),
        "db-write-latency": ("AWS/RDS", "WriteLatency", rds, "Average", "GreaterThanThreshold", 0.02 if prod else 0.1),
        "alb-elb-5xx": ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", lb, "Sum", "GreaterThanThreshold", 10 if prod else 50),
        "alb-unhealthy-hosts": ("AWS/ApplicationELB", "UnHealthyHostCount", tg, "Maximum", "GreaterThanOrEqualToThreshold", 1),
        "alb-p99-latency": ("AWS/ApplicationELB", "TargetResponseTime", tg, "p99", "GreaterThanThreshold", 1.0 if prod else 3.0),
        "ecs-cpu": ("AWS/ECS", "CPUUtilization", svc, "Average", "GreaterThanThreshold", 85 if prod else 90),
        "ecs-memory": ("AWS/ECS", "MemoryUtilization", svc, "Average", "GreaterThanThreshold", 85 if prod else 90),
        "rotation-errors": ("AWS/Lambda", "Errors", fn, "Sum", "GreaterThanThreshold", 0),
        "rotation-throttles": ("AWS/Lambda", "Throttles", fn, "Sum", "GreaterThanThreshold", 0),
    }
    if prod:
        out["waf-blocked-spike"] = ("AWS/WAFV2", "BlockedRequests", {"WebACL": "shop-prod-web", "Rule": "ALL", "Region": "eu-west-1"}, "Sum", "GreaterThanThreshold", 500)
    return out


def test_each_plain_alarm_watches_the_real_resource_at_its_threshold(graph: Graph) -> None:
    topic = graph.one(TOPIC).state["arn"]
    for key, (namespace, metric, dims, stat, operator, threshold) in expected_alarms(graph).items():
        a = alarm(graph, key)
        assert metrics(a) == {metric: (namespace, dims, stat)}, key
        assert a.inputs["comparisonOperator"] == operator and a.inputs["threshold"] == pytest.approx(threshold), key
        assert a.inputs["alarmActions"] == [topic] and a.inputs["okActions"] == [topic], key
        assert f"docs/monitoring.md#{key}" in a.inputs["alarmDescription"], key
    assert alarm(graph, "alb-p99-latency").inputs["evaluateLowSampleCountPercentiles"] == "ignore"
    keys = {a.inputs["name"].removeprefix(f"shop-{graph.stack}-") for a in graph.of_type(ALARM)}
    assert keys == set(expected_alarms(graph)) | {"alb-target-5xx-rate", "ecs-running-tasks"}


def test_metric_math_alarms_compute_a_rate_and_a_gap(graph: Graph) -> None:
    i = ids(graph)
    rate = alarm(graph, "alb-target-5xx-rate")
    tg = {"LoadBalancer": i["alb"], "TargetGroup": i["tg"]}
    assert metrics(rate) == {"HTTPCode_Target_5XX_Count": ("AWS/ApplicationELB", tg, "Sum"), "RequestCount": ("AWS/ApplicationELB", tg, "Sum")}
    (expr,) = [q for q in rate.inputs["metricQueries"] if q.get("returnData")]
    assert expr["expression"] == "IF(m2 > 0, 100 * m1 / m2, 0)" and rate.inputs["threshold"] == (5 if graph.stack == "prod" else 10)
    gap = alarm(graph, "ecs-running-tasks")
    svc = {"ClusterName": i["cluster"], "ServiceName": i["service"]}
    assert metrics(gap) == {"DesiredTaskCount": ("ECS/ContainerInsights", svc, "Maximum"), "RunningTaskCount": ("ECS/ContainerInsights", svc, "Minimum")}
    assert gap.inputs["threshold"] == 1 and gap.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_alarm_dimensions_come_from_the_resources_they_watch(dev_graph: Graph) -> None:
    alb, tg, fn = dev_graph.one(ALB), dev_graph.one(TG), next(f for f in dev_graph.of_type(LAMBDA) if f.inputs["name"].endswith("-db-rotation"))
    assert alb.urn in alarm(dev_graph, "alb-elb-5xx").property_dependencies["dimensions"]
    assert tg.urn in alarm(dev_graph, "alb-unhealthy-hosts").property_dependencies["dimensions"]
    assert fn.urn in alarm(dev_graph, "rotation-errors").property_dependencies["dimensions"]
    # The suffix, not the ARN and not the name: CloudWatch's LoadBalancer dimension is app/<name>/<id>.
    assert alarm(dev_graph, "alb-elb-5xx").inputs["dimensions"]["LoadBalancer"].startswith("app/") and alb.state["arn"].endswith(alb.state["arnSuffix"])


def test_deployments_roll_back_on_the_5xx_and_unhealthy_host_alarms(graph: Graph) -> None:
    service = next(s for s in graph.of_type(ECS_SERVICE) if s.inputs.get("loadBalancers"))
    names = [f"shop-{graph.stack}-alb-target-5xx-rate", f"shop-{graph.stack}-alb-unhealthy-hosts"]
    assert service.inputs["alarms"] == {"alarmNames": names, "enable": True, "rollback": True}
    assert service.inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    for key in ("alb-target-5xx-rate", "alb-unhealthy-hosts"):
        assert alarm(graph, key).urn in service.dependencies  # the alarms exist before the service names them
    off = run_stack("dev", {"alarmRollback": False})
    assert next(s for s in off.of_type(ECS_SERVICE) if s.inputs.get("loadBalancers")).inputs["alarms"]["rollback"] is False


def test_topic_is_encrypted_with_a_key_only_its_publishers_may_use_for_it(graph: Graph) -> None:
    topic = graph.one(TOPIC)
    arn = f"arn:aws:sns:eu-west-1:{ACCOUNT_ID}:shop-{graph.stack}-alarms"
    assert topic.inputs["name"] == f"shop-{graph.stack}-alarms" and topic.state["arn"] == arn
    key = next(k for k in graph.of_type(KEY) if k.state["arn"] == topic.inputs["kmsMasterKeyId"])
    assert key.inputs["enableKeyRotation"] is True
    statements = json.loads(key.inputs["policy"])["Statement"]
    services = [s for s in statements if "Service" in s["Principal"]]
    assert sorted(s["Principal"]["Service"] for s in services) == ["cloudwatch.amazonaws.com", "events.amazonaws.com", "events.rds.amazonaws.com"]
    for s in services:
        assert sorted(s["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
        assert s["Condition"] == {"StringEquals": {"kms:EncryptionContext:aws:sns:topicArn": arn}}
    policy = json.loads(graph.one(TOPIC_POLICY).inputs["policy"])["Statement"]
    sources = {s["Principal"]["Service"]: s["Condition"]["ArnLike"]["aws:SourceArn"] for s in policy if s["Effect"] == "Allow"}
    assert sources == {
        "cloudwatch.amazonaws.com": f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT_ID}:alarm:shop-{graph.stack}-*",
        "events.amazonaws.com": f"arn:aws:events:eu-west-1:{ACCOUNT_ID}:rule/shop-{graph.stack}-*",
        "events.rds.amazonaws.com": f"arn:aws:rds:eu-west-1:{ACCOUNT_ID}:db:shop-{graph.stack}-db",
    }
    assert all(s["Resource"] == arn for s in policy)
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy)


def test_subscribers_come_from_the_settings_and_their_absence_is_said(dev_graph: Graph, prod_graph: Graph) -> None:
    assert dev_graph.of_type(SUBSCRIPTION) == []
    assert plan_alarms.NO_SUBSCRIBER in plan_alarms.render(dev_graph)
    (email,) = prod_graph.of_type(SUBSCRIPTION)
    assert email.inputs["protocol"] == "email" and email.inputs["endpoint"] == "oncall@example.com"
    assert email.inputs["topic"] == prod_graph.one(TOPIC).state["arn"]
    assert "Subscribers: email: oncall@example.com" in plan_alarms.render(prod_graph)
    hooked = run_stack("dev", {"alarmHttpsEndpoints": ["https://hooks.example.com/pghome"]})
    (hook,) = hooked.of_type(SUBSCRIPTION)
    assert hook.inputs["protocol"] == "https" and hook.inputs["endpoint"] == "https://hooks.example.com/pghome"


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"alarmEmails": ["not-an-address"]}, "pghome:alarmEmails = 'not-an-address' is invalid: each entry must be an email address"),
        ({"alarmHttpsEndpoints": ["http://hooks.example.com"]}, "must be an https:// URL"),
        ({"alarmDbCpuPercent": 150}, "pghome:alarmDbCpuPercent = '150' is invalid: must be an integer from 10 to 100"),
    ],
)
def test_bad_monitoring_settings_fail_before_any_resource(overrides: dict[str, Any], fragment: str) -> None:
    assert_config_error("dev", overrides, fragment)


def test_thresholds_are_settings(dev_graph: Graph) -> None:
    tuned = run_stack("dev", {"alarmDbCpuPercent": 70, "alarmTargetP99Ms": 500, "alarmDbFreeStoragePercent": 25})
    assert alarm(tuned, "db-cpu").inputs["threshold"] == 70
    assert alarm(tuned, "alb-p99-latency").inputs["threshold"] == 0.5
    assert alarm(tuned, "db-free-storage").inputs["threshold"] == pytest.approx(20 * GIB * 0.25)


def test_events_reach_the_topic(graph: Graph) -> None:
    topic = graph.one(TOPIC).state["arn"]
    subscription = graph.one(RDS_EVENTS)
    assert subscription.inputs["snsTopic"] == topic and subscription.inputs["sourceType"] == "db-instance"
    assert subscription.inputs["sourceIds"] == [graph.one(RDS).inputs["identifier"]]
    assert set(subscription.inputs["eventCategories"]) >= {"failover", "low storage", "maintenance", "configuration change"}
    rules = {r.inputs["name"]: r for r in graph.of_type(RULE)}
    ecs = json.loads(rules[f"shop-{graph.stack}-ecs-deployment-failed"].inputs["eventPattern"])
    service = next(s for s in graph.of_type(ECS_SERVICE) if s.inputs.get("loadBalancers"))
    assert ecs == {"source": ["aws.ecs"], "detail-type": ["ECS Deployment State Change"], "resources": [service.state["arn"]],
                   "detail": {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]}}
    rotation = json.loads(rules[f"shop-{graph.stack}-rotation-failed"].inputs["eventPattern"])
    assert rotation["source"] == ["aws.secretsmanager"] and "RotationFailed" in rotation["detail"]["eventName"]
    # only this stack's rotated secrets: each one a SecretRotation rotates, and nothing else
    rotated = sorted(r.inputs["secretId"] for r in graph.of_type(ROTATION))
    assert rotated and sorted(rotation["detail"]["additionalEventData"]["SecretId"]) == rotated
    targets = graph.of_type(TARGET)
    assert sorted(t.inputs["rule"] for t in targets) == sorted(rules) and all(t.inputs["arn"] == topic for t in targets)


def test_dashboard_has_one_row_per_tier_with_every_alarm_metric(graph: Graph) -> None:
    body = json.loads(graph.one(DASHBOARD).inputs["dashboardBody"])
    headers = [w["properties"]["markdown"] for w in body["widgets"] if w["type"] == "text"][1:]
    tiers = ["load balancer", "service", "database", "rotation"] + (["waf"] if graph.stack == "prod" else [])
    assert headers == [f"### {t}" for t in tiers]
    rows: dict[int, int] = {}
    for w in body["widgets"]:
        if w["type"] == "metric":
            rows[w["y"]] = rows.get(w["y"], 0) + w["width"]
    assert all(width <= 24 for width in rows.values()) and len(rows) == len(tiers)  # each tier fits one row
    drawn = {row[1] for w in body["widgets"] if w["type"] == "metric" for row in w["properties"]["metrics"] if isinstance(row[0], str)}
    assert drawn == {m for a in graph.of_type(ALARM) for m in metrics(a)}


def test_every_must_watch_metric_needs_an_alarm_with_an_action(graph: Graph) -> None:
    result = report.check_graph(graph).result("PGH.7")
    assert result.status == "PASS" and result.checked == (5 if graph.stack == "prod" else 4)

    def silence(g: Graph) -> None:
        a = next(r for r in g.resources if r.type == ALARM and r.inputs["name"].endswith("-db-cpu"))
        a.inputs["alarmActions"] = []

    def drop(g: Graph) -> None:
        g.resources[:] = [r for r in g.resources if not (r.type == ALARM and r.inputs["name"].endswith("-alb-target-5xx-rate"))]

    failed = report.check_graph(mutated(graph, silence)).result("PGH.7")
    assert failed.status == "FAIL" and [f.message for f in failed.findings] == ["no alarm with an alarm action watches AWS/RDS CPUUtilization of this resource"]
    failed = report.check_graph(mutated(graph, drop)).result("PGH.7")
    assert [f.message for f in failed.findings] == ["no alarm with an alarm action watches AWS/ApplicationELB HTTPCode_Target_5XX_Count of this resource"]


def test_plan_lists_every_alarm(graph: Graph) -> None:
    text = plan_alarms.render(graph)
    for a in graph.of_type(ALARM):
        assert a.inputs["name"] in text
    assert "[rolls a deployment back]" in text and "NO ACTION" not in text
    rows = {r["name"]: r for r in plan_alarms.alarm_rows(graph)}
    assert rows[f"shop-{graph.stack}-db-cpu"]["dimensions"] == {"DBInstanceIdentifier": f"shop-{graph.stack}-db"}


@pytest.mark.parametrize(
    "instance_class, gib, connections",
    [("db.t4g.micro", 1, 112), ("db.t3.medium", 4, 450), ("db.m7g.large", 8, 901), ("db.r6g.xlarge", 32, 3604), ("db.r7g.2xlarge", 64, 5000), ("db.x2g.large", 32, 3604)],
)
def test_max_connections_follow_rds_default_formula(instance_class: str, gib: int, connections: int) -> None:
    assert alarms.instance_memory_gib(instance_class) == gib
    assert alarms.default_max_connections(instance_class) == connections


def test_outputs_name_the_topic_and_the_alarm_prefix(graph: Graph) -> None:
    assert graph.outputs["alarmTopicArn"] == graph.one(TOPIC).state["arn"]
    assert graph.outputs["alarmNamePrefix"] == f"shop-{graph.stack}-"
    assert sorted(graph.outputs["alarmNames"]) == sorted(a.inputs["name"] for a in graph.of_type(ALARM))
    assert all(name.startswith(graph.outputs["alarmNamePrefix"]) for name in graph.outputs["alarmNames"])


def test_docs_say_what_to_do_for_every_alarm_and_list_every_default(prod_graph: Graph) -> None:
    from pathlib import Path

    from config.monitoring import DEFAULTS

    text = (Path(__file__).resolve().parent.parent / "docs" / "monitoring.md").read_text()
    for a in prod_graph.of_type(ALARM):
        key = a.inputs["name"].removeprefix("shop-prod-")
        assert f"\n### {key}\n" in text and f"| `{key}` |" in text, f"docs/monitoring.md has no row or section for {key}"
    for r in prod_graph.of_type(RULE):
        key = r.inputs["name"].removeprefix("shop-prod-")
        assert f"\n### {key}\n" in text and f"`<prefix>-{key}`" in text, f"docs/monitoring.md has no row or section for {key}"
    for key, (_, dev, prod, _, _) in DEFAULTS.items():
        assert f"| `{key}` | {dev} | {prod} |" in text, key

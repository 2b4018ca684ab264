"""What issue 25 adds to the resource graph, asserted under Pulumi mocks: the migration task
definition (the migrator's secret and its own roles, never the app's), the release ledger table,
and ECS native blue/green (a second target group, a test listener, rules ECS moves, its role)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bootstrap.plan.mockgraph import Graph, Resource, run_stack
from tests.helpers import assert_config_error

TASKDEF = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"


def family(graph: Graph, name: str) -> Resource:
    return next(t for t in graph.of_type(TASKDEF) if t.inputs["family"] == name)


def role_policy(graph: Graph, role_arn: str) -> dict[str, Any]:
    role = next(r for r in graph.of_type("aws:iam/role:Role") if r.state.get("arn") == role_arn or r.id == role_arn.rsplit("/", 1)[-1])
    doc = next(p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role.id)
    return dict(json.loads(doc.inputs["policy"]))


def secrets_read(graph: Graph, td: Resource) -> list[str]:
    doc = role_policy(graph, td.inputs["executionRoleArn"])
    return [r for st in doc["Statement"] if "secretsmanager:GetSecretValue" in st["Action"] for r in ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"])]


def test_the_migration_task_runs_the_command_as_the_migrator() -> None:
    graph = run_stack("dev", {"migrationCommand": "python manage.py migrate --noinput", "imageTag": "1.4.2"})
    td = family(graph, "shop-dev-migrate")
    (c,) = json.loads(td.inputs["containerDefinitions"])
    assert c["name"] == "migrate" and c["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert c["image"].endswith("shop-dev:1.4.2") and "portMappings" not in c and "healthCheck" not in c
    assert c["readonlyRootFilesystem"] is True and c["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
    assert c["logConfiguration"]["options"]["awslogs-stream-prefix"] == "migrate"
    assert c["logConfiguration"]["options"]["awslogs-group"] == "/ecs/shop-dev/app"
    assert {s["valueFrom"].split(":")[-4] for s in c["secrets"]} == {"shop-dev/db/migrator-AbCdEf"}
    app = family(graph, "shop-dev-app")
    # separate roles: the app's execution role never reads the migrator's secret, the migration's never the app's
    assert td.inputs["executionRoleArn"] != app.inputs["executionRoleArn"] and td.inputs["taskRoleArn"] != app.inputs["taskRoleArn"]
    assert secrets_read(graph, td) and all("migrator" in arn for arn in secrets_read(graph, td))
    assert secrets_read(graph, app) and all("migrator" not in arn for arn in secrets_read(graph, app))
    assert graph.outputs["migrationTaskDefinitionArn"].endswith("task-definition/shop-dev-migrate:1")


def test_no_migration_command_no_migration_task_but_always_a_ledger() -> None:
    for stack in ("dev", "prod"):
        graph = run_stack(stack)
        assert not any(t.inputs["family"].endswith("-migrate") for t in graph.of_type(TASKDEF))
        assert graph.outputs["migrationTaskDefinitionArn"] == ""
        table = graph.one("aws:dynamodb/table:Table")
        assert table.inputs["name"] == f"shop-{stack}-releases" and graph.outputs["releaseTableName"] == f"shop-{stack}-releases"
        assert table.inputs["billingMode"] == "PAY_PER_REQUEST" and table.inputs["hashKey"] == "pk" and table.inputs["rangeKey"] == "sk"
        assert table.inputs["serverSideEncryption"]["enabled"] is True and table.inputs["pointInTimeRecovery"]["enabled"] is True
        assert table.inputs["deletionProtectionEnabled"] is (stack == "prod")


def test_bad_migration_command_is_one_sentence() -> None:
    assert_config_error("dev", {"migrationCommand": "python 'unbalanced"}, "migrationCommand", "balanced quotes")


def test_rolling_is_the_default() -> None:
    svc = run_stack("dev").one(SERVICE)
    assert "deploymentConfiguration" not in svc.inputs and "advancedConfiguration" not in svc.inputs["loadBalancers"][0]
    assert svc.inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}


def test_blue_green_uses_ecs_native_deployments_with_a_test_listener() -> None:
    graph = run_stack("prod", {"deploymentStrategy": "blue_green", "bakeTimeMinutes": 15, "requestsPerTarget": 0, "testListenerCidrs": ["203.0.113.0/24"]})
    svc = graph.one(SERVICE)
    assert svc.inputs["deploymentConfiguration"] == {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": "15"}
    lb = svc.inputs["loadBalancers"][0]
    adv = lb["advancedConfiguration"]
    groups = {t.state.get("arn"): t for t in graph.of_type("aws:lb/targetGroup:TargetGroup")}
    assert lb["targetGroupArn"] in groups and adv["alternateTargetGroupArn"] in groups and lb["targetGroupArn"] != adv["alternateTargetGroupArn"]
    assert groups[lb["targetGroupArn"]].inputs["healthCheck"] == groups[adv["alternateTargetGroupArn"]].inputs["healthCheck"]
    rules = {r.state.get("arn"): r for r in graph.of_type("aws:lb/listenerRule:ListenerRule")}
    assert {adv["productionListenerRule"], adv["testListenerRule"]} <= set(rules)
    for r in rules.values():
        assert r.ignore_changes == ["actions"]  # ECS moves the weights; Pulumi must not move them back
    test = next(li for li in graph.of_type("aws:lb/listener:Listener") if li.inputs["port"] == 8443)
    assert test.inputs["protocol"] == "HTTPS" and test.inputs["defaultActions"][0]["type"] == "fixed-response"
    ingress = [r for r in graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if r.inputs.get("fromPort") == 8443]
    assert [r.inputs["cidrIpv4"] for r in ingress] == ["203.0.113.0/24"]
    role = next(r for r in graph.of_type("aws:iam/role:Role") if "ecs.amazonaws.com" in json.dumps(r.inputs["assumeRolePolicy"]))
    attached = [a.inputs["policyArn"] for a in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if a.inputs["role"] == role.id]
    assert attached == ["arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"]


@pytest.mark.parametrize(("overrides", "key", "fragment"), [
    ({"deploymentStrategy": "canary"}, "deploymentStrategy", "rolling or blue_green"),
    ({"deploymentStrategy": "blue_green", "requestsPerTarget": 500}, "requestsPerTarget", "must be 0 with deploymentStrategy blue_green"),
    ({"deploymentStrategy": "blue_green", "testListenerCidrs": ["0.0.0.0/0"]}, "testListenerCidrs", "whole internet"),
    ({"bakeTimeMinutes": 2000}, "bakeTimeMinutes", "1440"),
])
def test_bad_strategy_settings_are_one_sentence(overrides: dict[str, Any], key: str, fragment: str) -> None:
    assert_config_error("dev", overrides, key, fragment)


def test_blue_green_alarms_read_both_target_groups() -> None:
    """ECS moves production traffic to the other target group at every blue/green deployment: an
    alarm on one group goes quiet after the first switch, and a rollback alarm then watches the
    idle group. Each target-group alarm (the two the service rolls back on included) reads both
    groups, each series FILLed with 0 (an idle group has no datapoints). Mutation tried: passing
    only the blue group's suffix to the alarms fails this test."""
    graph = run_stack("prod", {"deploymentStrategy": "blue_green", "requestsPerTarget": 0})
    suffixes = sorted(t.state["arnSuffix"] for t in graph.of_type("aws:lb/targetGroup:TargetGroup"))
    assert len(suffixes) == 2
    alarms = {a.inputs["name"]: a for a in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}

    def groups_read(alarm: Resource) -> list[str]:
        return sorted(q["metric"]["dimensions"]["TargetGroup"] for q in alarm.inputs["metricQueries"] if q.get("metric"))

    rate, unhealthy, p99 = (next(a for n, a in alarms.items() if n.endswith(k)) for k in ("alb-target-5xx-rate", "alb-unhealthy-hosts", "alb-p99-latency"))
    assert groups_read(rate) == sorted(suffixes * 2)  # 5xx count and request count of each group
    assert groups_read(unhealthy) == suffixes and groups_read(p99) == suffixes
    rate_e, unhealthy_e, p99_e = (next(q["expression"] for q in a.inputs["metricQueries"] if q.get("expression")) for a in (rate, unhealthy, p99))
    assert rate_e == "IF((FILL(m3, 0) + FILL(m4, 0)) > 0, 100 * (FILL(m1, 0) + FILL(m2, 0)) / (FILL(m3, 0) + FILL(m4, 0)), 0)"
    assert unhealthy_e == p99_e == "MAX([FILL(m1, 0), FILL(m2, 0)])"
    rollback = graph.one(SERVICE).inputs["alarms"]["alarmNames"]
    assert sorted(rollback) == sorted([rate.inputs["name"], unhealthy.inputs["name"]])


def test_rolling_alarms_read_the_one_target_group() -> None:
    graph = run_stack("prod")
    [group] = graph.of_type("aws:lb/targetGroup:TargetGroup")
    unhealthy = next(a for a in graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm") if a.inputs["name"].endswith("alb-unhealthy-hosts"))
    assert unhealthy.inputs["dimensions"]["TargetGroup"] == group.state["arnSuffix"] and not unhealthy.inputs.get("metricQueries")

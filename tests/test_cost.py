"""The offline cost estimate (bootstrap/cost, data/prices.json, data/usage.json; docs/cost.md).

Expected totals are worked out by hand below from the eu-west-1 figures of data/prices.json
(as of 2026-11-23). When the table changes, redo the arithmetic in the comments: a changed
price must change these numbers on purpose, never silently.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bootstrap import cost
from bootstrap.cost import rules, tables
from bootstrap.plan.mockgraph import Graph, run_stack
from tests.helpers import run_bootstrap

ROOT = Path(__file__).resolve().parent.parent
IDLE = {k: 0.0 for k in tables.usage_keys()} | {"em_kb_per_sample": 8.0, "log_stored_fraction": 0.15}
H = 730

# eu-west-1, by hand -------------------------------------------------------------------------
NAT = H * 0.048  # 35.04 per gateway
IPV4 = H * 0.005  # 3.65 per public address
ALB = H * 0.0252  # 18.396
KMS, SECRET = 1.0, 0.4
EM_60 = 43_800 * 8 / 1e6 * 0.57 + 43_800 * 8 / 1e6 * 0.15 * 0.03  # 0.3504 GB ingested + stored
EM_30 = 2 * EM_60
ENDPOINT_AZ = H * 0.011  # 8.03 per endpoint per AZ
# Monitoring (components/monitoring.py): the alarm topic's key, one dashboard, and $0.10 per alarm
# metric: 15 alarms in dev (16 with the WAF alarm in prod), two of them metric math over 2 metrics.
ALARMS_DEV, ALARMS_PROD = (15 + 2) * 0.1, (16 + 2) * 0.1
MONITORING = KMS + 3.0


def fargate(tasks: float, vcpu: float, gb: float, spot: float = 0.0) -> float:
    full = tasks * (vcpu * 0.04048 + gb * 0.004445) * H
    return full * (1 - spot) + full * spot * 0.33


CONTAINER_INSIGHTS = 35 * 0.30  # metrics of one service x CloudWatch custom metric price

DEV_IDLE = (
    NAT + IPV4  # one NAT gateway and its EIP (natStrategy single)
    + ALB + 2 * IPV4  # internet-facing ALB in 2 AZs
    + 0.016 * 1.1 * H  # db.t4g.micro, eu-west-1 = us-east-1 x rds_factor 1.1
    + 20 * 0.127  # 20 GB gp3
    + EM_60
    + 6 * KMS + 3 * SECRET  # network, database, service logs, registry, db-access, ECS Exec session keys
    + fargate(1, 0.25, 0.5, spot=1.0)  # dev runs on FARGATE_SPOT only
    + CONTAINER_INSIGHTS  # the app cluster's custom metrics (issue 23 item 10)
    + ALARMS_DEV + MONITORING
    + 5 * ENDPOINT_AZ  # the access task's endpoints (ecr.api, ecr.dkr, kms, logs, ssmmessages), one AZ in dev (issue 28 item 7)
)
PROD_IDLE = (
    3 * (NAT + IPV4)  # per_az over 3 AZs
    + ALB + 3 * IPV4
    + 0.168 * 1.1 * 2 * H  # db.m7g.large Multi-AZ
    + 100 * 0.127 * 2  # 100 GB gp3, both copies
    # Performance Insights 31 days: not priced in eu-west-1 (only a ratio of Tokyo's figure, issue 23 item 10)
    + EM_30
    + 5 * 3 * ENDPOINT_AZ  # the access task's five endpoints in every AZ; no others (issue 23 item 9, issue 28 item 7)
    + 6 * KMS + 3 * SECRET  # network, database, service logs, registry, db-access, WAF logs keys
    + 5 + 5 * 1  # WAF: web ACL + 5 rules
    + fargate(3, 1, 2)
    + ALARMS_PROD + MONITORING
)


def log_line(gb: float, days: int) -> float:
    return gb * 0.57 + gb * days / (365 / 12) * 0.15 * 0.03


# 30 invocations of 5 s at 256 MB (components/rotation_function.py): requests + GB-seconds
ROTATION_LAMBDA = 30 * 0.2 / 1e6 + 30 * 5 * 0.25 * 1.33334e-05
DEV_USAGE = (
    20 * 0.048  # nat_gb
    + 0.1 * 0.008 * H  # alb_lcu
    + log_line(1, 14) + log_line(2, 30) + log_line(0.5, 30)  # app, flow, postgresql logs
    + log_line(0.1, 14)  # ECS Exec session logs (other_log_gb)
    + 7 * 2000 / 1e4 * 0.03 + 3 * 1000 / 1e4 * 0.05  # KMS requests (7 keys with the alarm topic's), Secrets Manager calls
    + 1 * 0.023 + 9000 / 1000 * 0.005  # S3 access logs
    + 2 * 0.1  # ECR
    + ROTATION_LAMBDA + log_line(0.1, 30)  # rotation function: invocations and its log group
    + 200 * 0.5 / 1e6  # alarm_notifications published, no subscriber
    + 5 * 0.01  # endpoint_gb through the access task's endpoints
)
PROD_USAGE = (
    200 * 0.048
    + 1.0 * 0.008 * H
    + log_line(20, 365) + log_line(30, 365) + log_line(5, 365)
    + 7 * 20_000 / 1e4 * 0.03 + 3 * 10_000 / 1e4 * 0.05
    + 20 * 0.60 + log_line(0.5, 365)  # WAF: 20 M requests, its log group (other_log_gb)
    + 20 * 0.023 + 27_000 / 1000 * 0.005
    + 5 * 0.1
    + 50 * 0.095  # backup beyond the free allowance
    + ROTATION_LAMBDA + log_line(0.5, 365)  # rotation function: invocations and its log group
    + 300 * 0.5 / 1e6 + 300 / 1e5 * 2.0  # alarm_notifications: publishes + one email subscriber
    + 50 * 0.01  # endpoint_gb
)

_GRAPHS: dict[tuple[str, tuple[tuple[str, str], ...]], Graph] = {}


def graph_of(stack: str, **overrides: str) -> Graph:
    key = (stack, tuple(sorted(overrides.items())))
    if key not in _GRAPHS:
        _GRAPHS[key] = run_stack(stack, overrides)
    return _GRAPHS[key]


def idle(graph: Graph) -> float:
    return cost.estimate(graph, IDLE).total


# --------------------------------------------------------------------------------------------
# Hand-computed totals
# --------------------------------------------------------------------------------------------


def test_dev_and_prod_totals(dev_graph, prod_graph):
    dev, prod = cost.estimate(dev_graph), cost.estimate(prod_graph)
    assert dev.idle == pytest.approx(DEV_IDLE, abs=0.005) and round(dev.idle, 2) == 146.50
    assert dev.total == pytest.approx(DEV_IDLE + DEV_USAGE, abs=0.005) and round(dev.total, 2) == 150.54
    assert prod.idle == pytest.approx(PROD_IDLE, abs=0.005) and round(prod.idle, 2) == round(PROD_IDLE, 2)
    assert prod.total == pytest.approx(PROD_IDLE + PROD_USAGE, abs=0.005)
    assert idle(dev_graph) == pytest.approx(dev.idle)  # idle = the fixed lines alone


@pytest.mark.parametrize(
    ("overrides", "delta"),
    [
        ({"natStrategy": "per_az"}, NAT + IPV4),  # a second NAT gateway and EIP
        # the default list adds secretsmanager and sts to the access task's five, in dev's one AZ
        ({"interfaceEndpoints": "true"}, 2 * 1 * ENDPOINT_AZ),  # natStrategy none is refused (issue 23 item 3)
        ({"dbMultiAz": "true"}, 0.016 * 1.1 * H + 20 * 0.127),  # standby instance and storage
        ({"dbInstanceClass": "db.r6g.large"}, (0.225 - 0.016) * 1.1 * H),
        ({"desiredCount": "2", "taskCpu": "512", "taskMemory": "1024", "fargateSpotWeight": "0", "fargateWeight": "1"},
         fargate(2, 0.5, 1) - fargate(1, 0.25, 0.5, spot=1.0)),
        ({"dbPerformanceInsightsRetentionDays": "93"}, 0.0),  # not priced in eu-west-1: see the Tokyo test
        ({"dbMonitoringIntervalSeconds": "30"}, EM_60),
    ],
    ids=["natStrategy", "endpoints", "dbMultiAz", "dbInstanceClass", "tasks-cpu-memory", "pi-retention", "monitoring"],
)
def test_each_cost_driver_moves_the_total_by_the_hand_computed_amount(overrides, delta):
    assert idle(graph_of("dev", **overrides)) - DEV_IDLE == pytest.approx(delta, abs=0.005)


def test_region_changes_prices():
    est = cost.estimate(graph_of("dev", **{"aws:region": "us-east-1"}), IDLE)
    expected = (
        H * 0.045 + IPV4 + H * 0.0225 + 2 * IPV4 + 0.016 * H + 20 * 0.115
        + 43_800 * 8 / 1e6 * (0.5 + 0.15 * 0.03) + 6 * KMS + 3 * SECRET + 0.33 * 0.25 * 0.04048 * H + 0.33 * 0.5 * 0.004445 * H
        + CONTAINER_INSIGHTS + ALARMS_DEV + MONITORING  # same everywhere
        + 5 * 0.01 * H  # the access task's endpoints, one AZ
    )
    assert est.total == pytest.approx(expected, abs=0.005)


def test_usage_overrides_change_only_their_lines(dev_graph):
    base = cost.estimate(dev_graph)
    more = cost.estimate(dev_graph, {"nat_gb": 1020.0})
    assert more.total - base.total == pytest.approx(1000 * 0.048)
    assert more.idle == pytest.approx(base.idle)
    assert "--usage file" in more.usage_origin


def test_spot_share_follows_base_and_weights():
    svc = SimpleNamespace(get=lambda k, d=None: {"capacityProviderStrategies": [
        {"capacityProvider": "FARGATE", "base": 1, "weight": 1}, {"capacityProvider": "FARGATE_SPOT", "base": 0, "weight": 3}]}.get(k, d))
    assert rules._spot_share(svc, 5) == pytest.approx(3 / 5)  # 1 on-demand base, then 4 split 1:3


# --------------------------------------------------------------------------------------------
# Coverage of the table: every type priced in every region, or not priced with a reason
# --------------------------------------------------------------------------------------------


def test_table_covers_the_required_regions_and_continents():
    regions = tables.price_regions()
    assert {"eu-west-1", "us-east-1", "us-west-2"} <= set(regions)
    doc = json.loads(tables.PRICES_FILE.read_text())
    continents = {doc["regions"][r]["continent"] for r in regions}
    assert {"Europe", "North America", "Asia", "Oceania", "South America"} <= continents
    assert doc["as_of"] and doc["sources"]["rds_postgresql"].startswith("https://aws.amazon.com/")
    keys = set(doc["regions"]["us-east-1"]) - {"derived"}
    for name in regions:
        region = doc["regions"][name]
        assert set(region) - {"derived"} == keys, f"{name} lacks {keys - set(region)}"
        assert all(isinstance(region[k], (int, float)) and region[k] >= 0 for k in keys - {"name", "continent"})
        assert set(region.get("derived", {})) <= keys, f"{name}: 'derived' names a key it does not have"


def test_every_type_in_both_graphs_is_priced_in_every_region_or_not_priced_with_a_reason(dev_graph, prod_graph, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "offline")
    graphs = [dev_graph, prod_graph, graph_of("prod", appDbEnabled="true")]
    types = {r.type for g in graphs for r in g.resources if r.custom and not r.type.startswith("pulumi:providers:")}
    unknown = {t for t in types if t not in rules.RULES and t not in rules.FREE and not t.startswith("postgresql:")}
    assert not unknown, f"no price rule and no FREE reason for {sorted(unknown)}"
    for region in tables.price_regions():
        for g in graphs:
            est = cost.estimate(replace(g, config={**g.config, "aws:region": region}))
            assert all(math.isfinite(i.line.fixed + i.line.usage) and i.line.fixed >= 0 and i.line.usage >= 0 for i in est.items)
            assert all(n.reason for n in est.not_priced)
            # stated: enhanced Container Insights, and RDS figures the table has only as a ratio (issue 23 item 10)
            assert {n.type for n in est.not_priced} <= {"aws:ecs/cluster:Cluster", "aws:rds/instance:Instance"}
            priced = {i.type for i in est.items}
            expected = {r.type for r in g.resources if r.type in rules.RULES} - {"aws:ecs/cluster:Cluster"}
            if not any(r.get("vpcEndpointType") == "Interface" for r in g.resources):
                expected.discard("aws:ec2/vpcEndpoint:VpcEndpoint")  # gateway endpoints are free
            assert expected <= priced, region


def fake_graph(*resources: Any) -> Any:
    res = [SimpleNamespace(urn=f"urn:{r['name']}", custom=True, parent="urn:c", state={}, **r) for r in resources]
    for r in res:
        r.get = (lambda inputs: lambda path, d=None: inputs.get(path, d))(r.inputs)
    comp = SimpleNamespace(urn="urn:c", type="pghome:extra:Extra", name="extra", custom=False, parent="urn:stack", inputs={}, state={})
    return SimpleNamespace(stack="dev", project="pghome", config={"aws:region": "eu-west-1", "pghome:environment": "dev"}, resources=[comp, *res])


def test_types_other_issues_add_are_priced_and_unknown_types_are_listed_not_zero():
    g = fake_graph(
        {"type": "aws:wafv2/webAcl:WebAcl", "name": "waf", "inputs": {"rules": [{"name": "a"}, {"name": "b"}]}},
        {"type": "aws:lambda/function:Function", "name": "rotator", "inputs": {"memorySize": 128}},
        {"type": "aws:ecs/taskDefinition:TaskDefinition", "name": "access-task", "inputs": {"cpu": "256", "memory": "512"}},
        {"type": "aws:neptune/cluster:Cluster", "name": "mystery", "inputs": {}},
    )
    est = cost.estimate(g)
    waf = 5 + 2 * 1 + 1 * 0.6  # web ACL, 2 rules, 1 million requests (dev default)
    lam = 30 / 1e6 * 0.2 + 30 * 0.125 * 5 * 0.0000166667  # 30 invocations of 5 s at 128 MB
    assert est.total == pytest.approx(waf + lam)
    assert [(n.resource, n.type) for n in est.not_priced] == [("mystery", "aws:neptune/cluster:Cluster")]
    assert "not priced" in est.render_summary().lower() and "mystery" in est.render_summary()
    assert ("access-task", "aws:ecs/taskDefinition:TaskDefinition") in [(n, t) for n, t, _ in est.free]


def test_an_instance_class_missing_from_the_table_is_not_priced_never_zero():
    est = cost.estimate(graph_of("dev", dbInstanceClass="db.x2g.large"), IDLE)
    assert [(n.type, n.kind) for n in est.not_priced if n.type == "aws:rds/instance:Instance"] == [("aws:rds/instance:Instance", "database instance hours")]
    assert est.total == pytest.approx(DEV_IDLE - 0.016 * 1.1 * H, abs=0.005)


# --------------------------------------------------------------------------------------------
# Bad input: one sentence, exit 2
# --------------------------------------------------------------------------------------------


def bootstrap(*args: str) -> subprocess.CompletedProcess[str]:
    return run_bootstrap(*args, timeout=180)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"nat_gb": "lots"}', "usage nat_gb = 'lots' is invalid: it must be a number >= 0"),
        ("nat_gbb: 3", "unknown usage key 'nat_gbb'"),
        ("[1, 2", "not valid JSON or YAML"),
        ("- 1", "must be a mapping"),
        ('{"nat_gb": -1}', "must be a number >= 0"),
    ],
)
def test_bad_usage_file_is_one_sentence_and_exit_2(tmp_path, content, message):
    path = tmp_path / "usage.json"
    path.write_text(content)
    result = bootstrap("cost", "--stack", "dev", "--usage", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_region_is_one_sentence_and_exit_2():
    result = bootstrap("cost", "--stack", "dev", "--set", "aws:region=af-south-1")
    assert result.returncode == 2 and result.stdout == ""
    assert "no prices for region 'af-south-1'" in result.stderr and "eu-west-1" in result.stderr and result.stderr.count("\n") == 1


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_plan_ends_with_the_estimate_and_cost_prints_resources():
    plain = bootstrap("plan", "--stack", "dev")
    assert plain.returncode == 0, plain.stderr
    tail = plain.stdout[plain.stdout.index("Estimated monthly cost of stack dev in eu-west-1"):]
    assert "TOTAL" in tail and "$146.50" in tail and "$150.54" in tail
    assert "natStrategy=single" in tail and "Not priced: nothing" in tail and "nat_gb=20 GB/month" in tail
    detailed = bootstrap("plan", "--stack", "dev", "--cost")
    assert "shop-dev-network-nat-eu-west-1a" in detailed.stdout and "730 h x $0.048/h" in detailed.stdout


def test_plan_json_carries_the_estimate():
    result = bootstrap("plan", "--stack", "prod", "--json")
    doc = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert doc["cost"]["monthlyIdle"] == round(PROD_IDLE, 2) and doc["cost"]["region"] == "eu-west-1"
    assert doc["cost"]["components"]["network"]["idle"] == pytest.approx(3 * (NAT + IPV4) + KMS + 5 * 3 * ENDPOINT_AZ, abs=0.01)
    assert {"natStrategy", "azCount"} <= {k for b in doc["cost"]["biggest"] for k in b["drivers"]}


def test_cost_compare_and_set_show_the_difference():
    result = bootstrap("cost", "--stack", "dev", "--set", "natStrategy=per_az")
    assert result.returncode == 0, result.stderr
    assert f"+${NAT + IPV4:,.2f}" in result.stdout and "NAT gateway hours" in result.stdout
    both = bootstrap("cost", "--stack", "dev", "--compare", "prod")
    assert "dev" in both.stdout and "prod" in both.stdout and "database instance hours" in both.stdout
    assert f"Idle: ${DEV_IDLE:,.2f} vs ${PROD_IDLE:,.2f}" in both.stdout


def test_rds_families_the_config_accepts_are_priced_or_named_not_priced():
    from config.limits import DB_INSTANCE_FAMILIES

    prices = tables.load_prices("eu-west-1")
    priced = {f for f in DB_INSTANCE_FAMILIES if prices.rds_instance_hour(f"db.{f}.large")[0] is not None}
    assert {"t3", "t4g", "m5", "m6g", "m6i", "m7g", "m7i", "r5", "r6g", "r6i", "r7g", "r7i"} <= priced
    for family in DB_INSTANCE_FAMILIES - priced:
        hour, why = prices.rds_instance_hour(f"db.{family}.large")
        assert hour is None and "not in this table yet" in why
    assert prices.rds_instance_hour("db.m7g.4xlarge")[0] == pytest.approx(0.168 * 8 * 1.1)  # sizes scale from large


def test_cost_json_carries_items_with_their_arithmetic():
    result = bootstrap("cost", "--stack", "prod", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    nat = [i for i in doc["items"] if i["kind"] == "NAT gateway hours"]
    assert len(nat) == 3 and all(i["fixed"] == pytest.approx(NAT) and "natStrategy" in i["drivers"] for i in nat)
    assert doc["pricesAsOf"] == "2026-11-23" and doc["usageOrigin"] == "prod defaults"
    assert sorted(n["kind"] for n in doc["notPriced"]) == ["Container Insights metrics", "Performance Insights retention"]  # enhanced in prod


def test_arm_tasks_and_a_spot_mix_are_priced_by_hand():
    g = fake_graph(
        {"type": "aws:ecs/taskDefinition:TaskDefinition", "name": "td", "inputs": {"family": "app", "cpu": "1024", "memory": "2048", "runtimePlatform.cpuArchitecture": "ARM64"}},
        {"type": "aws:ecs/service:Service", "name": "svc", "inputs": {"taskDefinition": "app", "desiredCount": 4, "capacityProviderStrategies": [
            {"capacityProvider": "FARGATE", "base": 2, "weight": 1}, {"capacityProvider": "FARGATE_SPOT", "base": 0, "weight": 1}]}},
    )
    est = cost.estimate(g, IDLE)
    per_task = (1 * 0.04048 + 2 * 0.004445) * 0.8 * H  # ARM is 0.8 x x86
    assert est.total == pytest.approx(2 * per_task + 1 * per_task + 1 * per_task * 0.33)  # base 2 on-demand, then 1:1
    assert "[ARM]" in est.items[0].line.basis and "25% on Spot" in est.items[0].line.basis


def test_plan_without_prices_for_the_region_still_plans_but_a_bad_cost_usage_value_stops_it():
    result = bootstrap("plan", "--stack", "dev", "--set", "aws:region=af-south-1")
    assert result.returncode == 0 and "Cost estimate: not available: there are no prices for region 'af-south-1'" in result.stdout
    bad = bootstrap("plan", "--stack", "dev", "--set", 'costUsage=["nat_gb=lots"]')
    assert bad.returncode == 2 and "costUsage: usage nat_gb = 'lots' is invalid" in bad.stderr and "Traceback" not in bad.stderr


# --------------------------------------------------------------------------------------------
# Issue 23 item 10: only sourced figures are priced; Container Insights; the Fargate note
# --------------------------------------------------------------------------------------------


def _in(graph: Graph, region: str) -> Any:
    return cost.estimate(replace(graph, config={**graph.config, "aws:region": region}))


def test_performance_insights_is_priced_only_where_the_table_has_the_regions_own_figure(prod_graph):
    tokyo = [i for i in _in(prod_graph, "ap-northeast-1").items if i.line.kind == "Performance Insights retention"]
    assert len(tokyo) == 1 and tokyo[0].line.fixed == pytest.approx(1.7561 * 2 * 2)  # the documented Tokyo figure, 2 vCPU x 2
    for region in ("us-east-1", "eu-west-1", "ap-southeast-1"):
        (pi,) = [n for n in _in(prod_graph, region).not_priced if n.kind == "Performance Insights retention"]
        assert f"no sourced list price of pi_vcpu_month_first for {region}" in pi.reason


def test_rds_instances_outside_the_us_and_europe_are_not_priced_from_a_ratio(dev_graph):
    for region, priced in (("eu-west-1", True), ("us-west-1", True), ("ap-southeast-1", False), ("sa-east-1", False)):
        est = _in(dev_graph, region)
        hours = [i for i in est.items if i.line.kind == "database instance hours"]
        assert bool(hours) is priced, region
        if not priced:
            (why,) = [n.reason for n in est.not_priced if n.kind == "database instance hours"]
            assert "11-25% off outside the US and Europe" in why


def test_backup_storage_from_a_ratio_is_not_priced():
    g = graph_of("prod")
    for region in ("us-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "ap-southeast-1", "ap-southeast-2", "sa-east-1"):
        assert [n for n in _in(g, region).not_priced if n.kind == "database backup storage"], region
    assert [i for i in _in(g, "us-east-1").items if i.line.kind == "database backup storage"]


def test_container_insights_is_priced_as_custom_metrics(dev_graph):
    (ci,) = [i for i in cost.estimate(dev_graph).items if i.line.kind == "Container Insights metrics"]
    assert ci.line.fixed == pytest.approx(CONTAINER_INSIGHTS) and 9 <= ci.line.fixed <= 12  # the review's ~$9-12/month


def test_the_fargate_note_names_the_count_it_charges(dev_graph):
    (fargate_line,) = [i for i in cost.estimate(dev_graph).items if i.line.kind == "Fargate tasks"]
    service = dev_graph.one("aws:ecs/service:Service")
    assert service.inputs.get("desiredCount") == 0  # no image yet: the plan runs none
    assert fargate_line.line.driver_note.startswith("1 task(s) (desiredCount)")  # but the charge is for the configured one

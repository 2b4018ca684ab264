"""WAF on the internet-facing ALB: prod by default, dev on request; rules, logging, cost; and the
network fixes of issue 16 (opt-in zones, flow log ordering, endpoint policies)."""

from __future__ import annotations

import json

from bootstrap.plan import report as plan
from bootstrap.plan.mockanswers import ACCOUNT_ID
from bootstrap.plan.mockgraph import Graph, run_stack
from components import waf
from tests.resource_types import ALB, LOG_GROUP

ACL = "aws:wafv2/webAcl:WebAcl"
ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"


def test_prod_has_a_web_acl_on_the_alb(prod_graph: Graph) -> None:
    acl = prod_graph.one(ACL)
    assert acl.inputs["name"] == "shop-prod-web" and acl.inputs["scope"] == "REGIONAL"
    assert acl.inputs["defaultAction"] == {"allow": {}}
    rules = acl.inputs["rules"]
    assert [r["name"] for r in rules] == [
        "AWSManagedRulesAmazonIpReputationList", "rate-limit-per-ip", "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesSQLiRuleSet",
    ]
    assert [r["priority"] for r in rules] == [0, 1, 2, 3, 4]
    for r in rules:
        assert r["visibilityConfig"]["cloudwatchMetricsEnabled"] is True and r["visibilityConfig"]["sampledRequestsEnabled"] is True
        managed = r["statement"].get("managedRuleGroupStatement")
        if managed:
            assert managed["vendorName"] == "AWS" and managed["name"] == r["name"] and r["overrideAction"] == {"none": {}}
    rate = rules[1]
    assert rate["action"] == {"block": {}}
    assert rate["statement"]["rateBasedStatement"] == {"limit": 2000, "aggregateKeyType": "IP", "evaluationWindowSec": 300}
    association = prod_graph.one(ASSOCIATION)
    alb = prod_graph.one(ALB)
    assert association.inputs["resourceArn"] == alb.state["arn"] and association.inputs["webAclArn"] == acl.state["arn"]


def test_waf_logs_go_to_an_encrypted_aws_waf_logs_group(prod_graph: Graph) -> None:
    logging_cfg = prod_graph.one(LOGGING)
    group = next(g for g in prod_graph.of_type(LOG_GROUP) if g.inputs["name"] == "aws-waf-logs-shop-prod")
    assert logging_cfg.inputs["resourceArn"] == prod_graph.one(ACL).state["arn"]
    assert logging_cfg.inputs["logDestinationConfigs"] == [group.state["arn"]]
    assert {f["singleHeader"]["name"] for f in logging_cfg.inputs["redactedFields"]} == {"authorization", "cookie"}
    key = next(k for k in prod_graph.of_type("aws:kms/key:Key") if k.state["arn"] == group.inputs["kmsKeyId"])
    assert key.inputs["enableKeyRotation"] is True
    assert group.inputs["retentionInDays"] == 365


def test_dev_has_no_waf_unless_asked_and_prod_can_turn_it_off_only_by_failing_pgh4(dev_graph: Graph) -> None:
    assert dev_graph.of_type(ACL) == []
    assert plan.check_graph(dev_graph).result("PGH.6").status == "WAIVED"
    with_waf = run_stack("dev", {"wafEnabled": True, "wafRateLimit": 500})
    assert with_waf.one(ACL).inputs["rules"][1]["statement"]["rateBasedStatement"]["limit"] == 500
    without = run_stack("prod", {"wafEnabled": False})
    assert without.of_type(ACL) == []
    assert plan.check_graph(without).result("PGH.6").status == "FAIL"  # prod cannot waive it


def test_prod_passes_the_waf_controls(prod_graph: Graph) -> None:
    report = plan.check_graph(prod_graph)
    for cid in ("PGH.6", "WAF.10", "WAF.11", "WAF.12"):
        assert report.result(cid).status == "PASS" and report.result(cid).checked == 1, cid


def test_waf_cost_and_capacity() -> None:
    assert waf.capacity_units() == 1127 < 1500  # within the WCUs the base price includes
    assert waf.monthly_cost() == 10.0  # $5 ACL + 5 rules x $1
    assert round(waf.monthly_cost(million_requests=50), 2) == 40.0


# --- network: opt-in zones, flow log ordering, endpoint policies -------------------------------------


def test_availability_zones_exclude_opt_in_zones(graph: Graph) -> None:
    (call,) = [i for i in graph.invokes if i.token == "aws:index/getAvailabilityZones:getAvailabilityZones"]
    assert call.args["filters"] == [{"name": "opt-in-status", "values": ["opt-in-not-required"]}]
    assert not any("lcl" in az for az in graph.outputs["availabilityZones"])  # the mock's Local Zone sorts first otherwise


def test_flow_log_waits_for_its_role_policy(graph: Graph) -> None:
    flow_log = graph.one("aws:ec2/flowLog:FlowLog")
    policy = next(p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("flow-logs-write"))
    assert policy.urn in flow_log.dependencies


def test_interface_endpoints_admit_only_this_accounts_principals() -> None:
    prod_graph = run_stack("prod", {"interfaceEndpoints": "true"})  # prod's stack file leaves them off (issue 23 item 9)
    endpoints = [e for e in prod_graph.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e.inputs["vpcEndpointType"] == "Interface"]
    assert len(endpoints) == 7  # the default list's five and the access task's kms and ssmmessages
    for e in endpoints:
        (st,) = json.loads(e.inputs["policy"])["Statement"]
        assert st["Effect"] == "Allow" and st["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT_ID}}

"""Rules: AWS WAF on the internet-facing load balancer (ECS Exec sessions: controls/exec_access.py, PGH.4)."""

from __future__ import annotations

from collections.abc import Iterator

from controls.catalogue import MUST_HOLD, SERVICE, WAIVABLE, control
from controls.inventory import Inventory, Res
from controls.readers import as_list

LB = "aws:lb/loadBalancer:LoadBalancer"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
WEB_ACL_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
WAF_OFF = "wafEnabled is false (the default outside prod)"


def _internet_facing_alb(r: Res, inv: Inventory) -> bool:
    return (r.get("loadBalancerType") or "application") == "application" and r.get("internal") is not True


@control("PGH.6", "Internet-facing Application Load Balancers should be protected by an AWS WAF web ACL", WAIVABLE, LB, component=SERVICE,
         applies=_internet_facing_alb, context=True, note="third-party scanners' 'public ALB without WAF' (e.g. Checkov CKV2_AWS_28)")
def _pgh6(r: Res, inv: Inventory) -> Iterator[str]:
    if not inv.referring(r, "resourceArn", WEB_ACL_ASSOCIATION):
        yield "no aws:wafv2/webAclAssociation:WebAclAssociation attaches a web ACL (set wafEnabled: true)"


@control("WAF.10", "AWS WAF web ACLs should have at least one rule or rule group", MUST_HOLD, WEB_ACL, component=SERVICE, condition=WAF_OFF)
def _waf10(r: Res, inv: Inventory) -> Iterator[str]:
    if not as_list(r.get("rules")) and not r.get("ruleJson"):
        yield "the web ACL has no rules"


@control("WAF.11", "AWS WAF web ACL logging should be enabled", MUST_HOLD, WEB_ACL, component=SERVICE, context=True, condition=WAF_OFF)
def _waf11(r: Res, inv: Inventory) -> Iterator[str]:
    if not inv.referring(r, "resourceArn", WEB_ACL_LOGGING):
        yield "no aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration for this web ACL"


@control("WAF.12", "AWS WAF rules should have CloudWatch metrics enabled", MUST_HOLD, WEB_ACL, component=SERVICE, condition=WAF_OFF)
def _waf12(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("visibilityConfig.cloudwatchMetricsEnabled") is not True:
        yield "visibilityConfig.cloudwatchMetricsEnabled is not true"
    for rule in as_list(r.get("rules")):
        if isinstance(rule, dict) and (rule.get("visibilityConfig") or {}).get("cloudwatchMetricsEnabled") is not True:
            yield f"rule {rule.get('name')!r} has no CloudWatch metrics"

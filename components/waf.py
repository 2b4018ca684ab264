"""AWS WAF in front of the internet-facing ALB: managed rule groups, a per-IP rate limit, logs.

- `web_acl_rules` is plain data (no Pulumi resources), so the rule set is testable and its cost
  computable: AWS IP reputation first (cheapest, drops known-bad sources), then the rate limit,
  then the core rule set, known bad inputs and SQL injection. Managed groups run with their own
  actions (override "none"); every rule publishes metrics and samples.
- Logs go to a CloudWatch log group whose name WAF requires to start with `aws-waf-logs-`,
  encrypted with its own CMK; the Authorization and Cookie headers are redacted.

Price (us-east-1/eu-west-1, 2025): $5/month per web ACL + $1/month per rule or managed group
(5 here) + $0.60 per million requests, plus CloudWatch Logs ingestion of the WAF logs. The rules
use ~1,127 WCU, under the 1,500 included in the base price. See docs/waf.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.kms import encrypted_log_group, logs_key
from config import naming
from config.settings import ServiceSettings

# (rule group name, WCU) in priority order after the rate limit; all vendor "AWS", no subscription fee.
MANAGED_RULE_GROUPS: tuple[tuple[str, int], ...] = (
    ("AWSManagedRulesAmazonIpReputationList", 25),
    ("AWSManagedRulesCommonRuleSet", 700),
    ("AWSManagedRulesKnownBadInputsRuleSet", 200),
    ("AWSManagedRulesSQLiRuleSet", 200),
)
RATE_RULE_WCU = 2
RATE_RULE_NAME = "rate-limit-per-ip"
REDACTED_HEADERS = ("authorization", "cookie")
PRICE_PER_ACL = 5.0
PRICE_PER_RULE = 1.0
PRICE_PER_MILLION_REQUESTS = 0.60


def _visibility(metric: str) -> Any:
    return {"cloudwatch_metrics_enabled": True, "metric_name": metric, "sampled_requests_enabled": True}


def web_acl_rules(rate_limit: int, rate_window_seconds: int = 300) -> list[dict[str, Any]]:
    """The web ACL's rules in evaluation order (snake_case, as pulumi_aws takes them)."""
    rules: list[dict[str, Any]] = []
    ip_rep, *others = MANAGED_RULE_GROUPS

    def managed(group: str, priority: int) -> dict[str, Any]:
        return {
            "name": group,
            "priority": priority,
            "override_action": {"none": {}},
            "statement": {"managed_rule_group_statement": {"vendor_name": "AWS", "name": group}},
            "visibility_config": _visibility(group),
        }

    rules.append(managed(ip_rep[0], 0))
    rules.append(
        {
            "name": RATE_RULE_NAME,
            "priority": 1,
            "action": {"block": {}},
            "statement": {"rate_based_statement": {"limit": rate_limit, "aggregate_key_type": "IP", "evaluation_window_sec": rate_window_seconds}},
            "visibility_config": _visibility(RATE_RULE_NAME),
        }
    )
    rules.extend(managed(group, 2 + i) for i, (group, _) in enumerate(others))
    return rules


def capacity_units() -> int:
    return sum(w for _, w in MANAGED_RULE_GROUPS) + RATE_RULE_WCU


def monthly_cost(million_requests: float = 0.0) -> float:
    """USD per month: the ACL, one charge per rule, and the requests."""
    rule_count = len(MANAGED_RULE_GROUPS) + 1
    return PRICE_PER_ACL + PRICE_PER_RULE * rule_count + PRICE_PER_MILLION_REQUESTS * million_requests


@dataclass
class WafArgs:
    """The service's settings section (prefix, waf_rate_limit: requests per IP per 5 minutes before
    the IP is blocked, log retention) and the load balancer the web ACL protects."""

    settings: ServiceSettings
    load_balancer_arn: pulumi.Input[str]


class Waf(pulumi.ComponentResource):
    web_acl_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: WafArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:service:Waf", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s = args.settings
        rules: Any = web_acl_rules(s.waf_rate_limit)  # plain dicts: pulumi_aws's typed dicts are too deep to spell out
        acl = aws.wafv2.WebAcl(
            f"{name}-acl",
            name=naming.waf_acl(s.prefix),
            description=f"{s.prefix}: managed rules and a per-IP rate limit in front of the load balancer",
            scope="REGIONAL",
            default_action=aws.wafv2.WebAclDefaultActionArgs(allow=aws.wafv2.WebAclDefaultActionAllowArgs()),
            rules=rules,
            visibility_config=_visibility(naming.waf_acl(s.prefix)),
            opts=child,
        )
        aws.wafv2.WebAclAssociation(f"{name}-association", resource_arn=args.load_balancer_arn, web_acl_arn=acl.arn, opts=child)
        key = logs_key(
            f"{name}-logs-key",
            alias=f"{s.prefix}-waf-logs",
            description=f"{s.prefix}: WAF logs",
            log_groups=[naming.waf_log_group(s.prefix)],
            parent=self,
            keep=s.keep_on_destroy,
        )
        group = encrypted_log_group(f"{name}-logs", name=naming.waf_log_group(s.prefix), retention_days=s.log_retention_days, key_arn=key.arn, parent=self,
                                    keep=s.keep_on_destroy)
        # WAF adds the log group's resource policy for delivery itself (logs:PutResourcePolicy of the caller).
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-logging",
            resource_arn=acl.arn,
            log_destination_configs=[group.arn],
            redacted_fields=[{"single_header": {"name": h}} for h in REDACTED_HEADERS],
            opts=child,
        )
        self.web_acl_arn = acl.arn
        self.log_group_name = group.name
        self.register_outputs({"web_acl_arn": self.web_acl_arn, "log_group_name": self.log_group_name})

"""Rules: Elastic Load Balancing (the ALB and its listeners)."""

from __future__ import annotations

from collections.abc import Iterator

from controls.catalogue import MUST_HOLD, SERVICE, WAIVABLE, control, must_be_true
from controls.inventory import Inventory, Res
from controls.readers import (
    as_list,
)

LB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
# FSBP ELB.17's recommended policies, minus the TLS 1.0/1.1 ones: TLS 1.3 with a TLS 1.2 floor.
RECOMMENDED_TLS_POLICIES = frozenset(
    {
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
    }
)


def _is_alb(r: Res, inv: Inventory) -> bool:
    return (r.get("loadBalancerType") or "application") == "application"


@control("ELB.1", "Application Load Balancers should redirect all HTTP requests to HTTPS", WAIVABLE, LB, component=SERVICE, applies=_is_alb, context=True)
def _elb1(r: Res, inv: Inventory) -> Iterator[str]:
    for listener in inv.referring(r, "loadBalancerArn", LISTENER):
        if str(listener.get("protocol") or "HTTP").upper() != "HTTP":
            continue
        actions = [a for a in as_list(listener.get("defaultActions")) if isinstance(a, dict)]
        redirects = [a for a in actions if a.get("type") == "redirect" and str((a.get("redirect") or {}).get("protocol", "")).upper() == "HTTPS"]
        if not redirects:
            yield f"HTTP listener {listener.name} (port {listener.get('port')}) does not redirect to HTTPS"


control("ELB.4", "Application Load Balancers should drop invalid HTTP headers", MUST_HOLD, LB, component=SERVICE, applies=_is_alb)(must_be_true("dropInvalidHeaderFields"))


@control("ELB.5", "Application and Classic Load Balancers logging should be enabled", WAIVABLE, LB, component=SERVICE, applies=_is_alb)
def _elb5(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("accessLogs.enabled") is not True or not r.get("accessLogs.bucket"):
        yield "accessLogs is not enabled with a bucket"


control("ELB.6", "Application, Gateway and Network Load Balancers should have deletion protection enabled", WAIVABLE, LB, component=SERVICE)(must_be_true("enableDeletionProtection"))


@control("ELB.12", "Application Load Balancers should be configured with defensive or strictest desync mitigation mode", MUST_HOLD, LB, component=SERVICE,
         applies=_is_alb, note="unset passes: the AWS default is defensive")
def _elb12(r: Res, inv: Inventory) -> Iterator[str]:
    mode = r.get("desyncMitigationMode")
    if mode not in (None, "", "defensive", "strictest"):
        yield f"desyncMitigationMode is {mode!r}"


@control("ELB.17", "Load balancer HTTPS/TLS listeners should use a recommended (TLS 1.3) security policy", MUST_HOLD, LISTENER, component=SERVICE,
         applies=lambda r, inv: str(r.get("protocol") or "").upper() in ("HTTPS", "TLS"),
         condition="only HTTPS/TLS listeners are checked; a stack without a certificate (dev) has none")
def _elb17(r: Res, inv: Inventory) -> Iterator[str]:
    policy = r.get("sslPolicy")
    if policy not in RECOMMENDED_TLS_POLICIES:
        yield f"sslPolicy is {policy or '<unset: ELBSecurityPolicy-2016-08>'}, not a TLS 1.3 recommended policy"



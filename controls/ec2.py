"""Rules: EC2 / VPC: default security group, flow logs, subnets, security groups."""

from __future__ import annotations

from collections.abc import Iterator

from controls.catalogue import MUST_HOLD, NETWORK, SERVICE, control
from controls.inventory import Inventory, Res
from controls.readers import (
    SG_RULE_TYPES,
    WORLD,
    IngressRule,
    as_list,
    ingress_rules,
)

VPC = "aws:ec2/vpc:Vpc"
HIGH_RISK_PORTS = (20, 21, 22, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333, 5000, 5432, 5500, 5601, 8080, 8088, 8888, 9200, 9300)
AUTHORIZED_PUBLIC_PORTS = (80, 443)


@control("EC2.2", "VPC default security groups should not allow inbound or outbound traffic", MUST_HOLD, VPC, component=NETWORK, context=True)
def _ec2_2(r: Res, inv: Inventory) -> Iterator[str]:
    defaults = inv.referring(r, "vpcId", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    if not defaults:
        yield "the VPC's default security group is not adopted (aws:ec2/defaultSecurityGroup) so it keeps AWS's allow rules"
    for sg in defaults:
        for direction in ("ingress", "egress"):
            rules = as_list(sg.get(direction))
            if rules:
                yield f"default security group {sg.name} has {len(rules)} {direction} rule(s)"


@control("EC2.6", "VPC flow logging should be enabled in all VPCs", MUST_HOLD, VPC, component=NETWORK, context=True)
def _ec2_6(r: Res, inv: Inventory) -> Iterator[str]:
    logs = [f for f in inv.referring(r, "vpcId", "aws:ec2/flowLog:FlowLog") if f.get("trafficType") in ("ALL", "REJECT")]
    if not logs:
        yield "no aws:ec2/flowLog:FlowLog (trafficType ALL or REJECT) on this VPC"


@control("EC2.15", "EC2 subnets should not automatically assign public IP addresses", MUST_HOLD, "aws:ec2/subnet:Subnet", component=NETWORK)
def _ec2_15(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("mapPublicIpOnLaunch") is True:
        yield "mapPublicIpOnLaunch is true"


def _world_rules(r: Res) -> list[IngressRule]:
    return [rule for rule in ingress_rules(r) if any(c in WORLD for c in rule.cidrs)]


@control("EC2.18", "Security groups should only allow unrestricted incoming traffic for authorized ports (80, 443)", MUST_HOLD, SG_RULE_TYPES, component=SERVICE)
def _ec2_18(r: Res, inv: Inventory) -> Iterator[str]:
    for rule in _world_rules(r):
        if not (rule.protocol in ("tcp", "6") and rule.from_port == rule.to_port and rule.from_port in AUTHORIZED_PUBLIC_PORTS):
            yield rule.describe()


@control("EC2.19", "Security groups should not allow unrestricted access to ports with high risk", MUST_HOLD, SG_RULE_TYPES, component=SERVICE)
def _ec2_19(r: Res, inv: Inventory) -> Iterator[str]:
    for rule in _world_rules(r):
        risky = [p for p in HIGH_RISK_PORTS if rule.covers(p)]
        if risky:
            yield f"{rule.describe()} exposes high-risk port(s) {', '.join(map(str, risky[:6]))}{'...' if len(risky) > 6 else ''}"



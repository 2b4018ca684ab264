"""Small readers shared by the rules: policy documents, security-group rules, container definitions."""

from __future__ import annotations

import fnmatch
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from controls.inventory import Inventory, Res

WORLD = ("0.0.0.0/0", "::/0")


def json_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def policy_statements(document: Any) -> list[dict[str, Any]]:
    """The statements of an IAM policy document given as JSON text or a dict."""
    doc = json_value(document)
    if not isinstance(doc, dict):
        return []
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, dict)]


def allows(st: dict[str, Any], action: str) -> bool:
    """Does an Allow statement's Action (wildcards allowed) cover `action`?"""
    if st.get("Effect", "Allow") != "Allow":
        return False
    return any(fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in as_list(st.get("Action")))


def all_resources(st: dict[str, Any]) -> bool:
    return "*" in [str(r) for r in as_list(st.get("Resource"))]


def iam_documents(r: Res) -> list[tuple[str, Any]]:
    """(label, document) for every identity policy a resource carries."""
    if r.type == "aws:iam/role:Role":
        return [(f"inline policy {p.get('name', '?')}", p.get("policy")) for p in as_list(r.get("inlinePolicies")) if isinstance(p, dict)]
    return [("policy", r.get("policy"))]


@dataclass(frozen=True)
class IngressRule:
    """A normalised security-group ingress rule, whatever resource declared it."""

    source: Res  # the resource holding the rule
    protocol: str  # "tcp", "udp", "icmp", "-1" (all)
    from_port: int
    to_port: int
    cidrs: tuple[str, ...]
    label: str

    def covers(self, port: int) -> bool:
        if self.protocol in ("-1", "all"):
            return True
        return self.protocol in ("tcp", "6") and self.from_port <= port <= self.to_port

    @property
    def all_ports(self) -> bool:
        return self.protocol in ("-1", "all") or (self.from_port <= 0 and self.to_port >= 65535)

    def describe(self) -> str:
        ports = "all ports" if self.all_ports else (f"port {self.from_port}" if self.from_port == self.to_port else f"ports {self.from_port}-{self.to_port}")
        return f"{self.source.name} ({self.label}): {self.protocol} {ports} from {', '.join(self.cidrs) or 'security groups only'}"


def to_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def ingress_rules(r: Res) -> list[IngressRule]:
    """Ingress rules declared by a SecurityGroup (inline), SecurityGroupRule or SecurityGroupIngressRule."""
    out: list[IngressRule] = []
    if r.type == "aws:ec2/securityGroup:SecurityGroup":
        for i, rule in enumerate(as_list(r.get("ingress"))):
            if isinstance(rule, dict):
                cidrs = tuple(as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks")))
                out.append(IngressRule(r, str(rule.get("protocol", "-1")).lower(), to_int(rule.get("fromPort"), 0), to_int(rule.get("toPort"), 65535), cidrs, f"ingress[{i}]"))
    elif r.type == "aws:ec2/securityGroupRule:SecurityGroupRule" and r.get("type") == "ingress":
        cidrs = tuple(as_list(r.get("cidrBlocks")) + as_list(r.get("ipv6CidrBlocks")))
        out.append(IngressRule(r, str(r.get("protocol", "-1")).lower(), to_int(r.get("fromPort"), 0), to_int(r.get("toPort"), 65535), cidrs, "rule"))
    elif r.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        cidrs = tuple(c for c in (r.get("cidrIpv4"), r.get("cidrIpv6")) if c)
        out.append(IngressRule(r, str(r.get("ipProtocol", "-1")).lower(), to_int(r.get("fromPort"), 0), to_int(r.get("toPort"), 65535), cidrs, "rule"))
    return out


SG_RULE_TYPES = (
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
)


def rules_of_group(inv: Inventory, sg: Res) -> list[IngressRule]:
    rules = ingress_rules(sg)
    for rule_res in inv.of_type("aws:ec2/securityGroupRule:SecurityGroupRule", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        if inv.refers_to(rule_res, "securityGroupId", sg):
            rules.extend(ingress_rules(rule_res))
    return rules


# The one private-address rule of the project (the config's vpcCidr and dbAdminCidrs use it too).
PRIVATE_IPV4_RANGES = tuple(ipaddress.IPv4Network(b) for b in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
PRIVATE_IPV6_RANGE = ipaddress.IPv6Network("fc00::/7")


def is_private_cidr(cidr: str) -> bool:
    """True for a network inside RFC 1918 (IPv4) or fc00::/7 (IPv6); False for anything else or unparsable."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    if isinstance(net, ipaddress.IPv4Network):
        return any(net.subnet_of(b) for b in PRIVATE_IPV4_RANGES)
    return net.subnet_of(PRIVATE_IPV6_RANGE)


def container_definitions(r: Res) -> list[dict[str, Any]]:
    defs = json_value(r.get("containerDefinitions"))
    return [d for d in as_list(defs) if isinstance(d, dict)]



AWS_PROVIDER = "pulumi:providers:aws"


def environment(inv: Inventory) -> str:
    """The stack's tier ('dev', 'staging', 'prod') from the AWS provider's default tag `Environment`
    (components/config.py sets it after the user's tags, so a stack file cannot relabel itself);
    "" when no provider carries it. The engine records a provider's object inputs as JSON text."""
    for p in inv.of_type(AWS_PROVIDER):
        tags = json_value(p.inputs.get("defaultTags"))
        value = tags.get("tags", {}).get("Environment") if isinstance(tags, dict) and isinstance(tags.get("tags"), dict) else None
        if isinstance(value, str) and value:
            return value
    return ""

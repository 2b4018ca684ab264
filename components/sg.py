"""Security group rules: one TCP port each, as standalone resources.

Standalone `aws.vpc.SecurityGroup{Ingress,Egress}Rule` resources (never inline rules, which fight
with them) keep every rule visible in the graph, where the tests and the security controls read
them. Every rule names exactly one peer: a CIDR or another security group.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def ingress(
    name: str,
    security_group_id: pulumi.Input[str],
    port: pulumi.Input[int],
    description: str,
    parent: pulumi.Resource,
    *,
    cidr_ipv4: pulumi.Input[str] | None = None,
    cidr_ipv6: pulumi.Input[str] | None = None,
    source_security_group_id: pulumi.Input[str] | None = None,
) -> aws.vpc.SecurityGroupIngressRule:
    """Admit TCP `port` into the group from one CIDR or one security group."""
    return aws.vpc.SecurityGroupIngressRule(
        name,
        security_group_id=security_group_id,
        description=description,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        cidr_ipv4=cidr_ipv4,
        cidr_ipv6=cidr_ipv6,
        referenced_security_group_id=source_security_group_id,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def egress(
    name: str,
    security_group_id: pulumi.Input[str],
    port: pulumi.Input[int],
    description: str,
    parent: pulumi.Resource,
    *,
    cidr_ipv4: pulumi.Input[str] | None = None,
    destination_security_group_id: pulumi.Input[str] | None = None,
) -> aws.vpc.SecurityGroupEgressRule:
    """Let the group out to TCP `port` of one CIDR or one security group."""
    return aws.vpc.SecurityGroupEgressRule(
        name,
        security_group_id=security_group_id,
        description=description,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        cidr_ipv4=cidr_ipv4,
        referenced_security_group_id=destination_security_group_id,
        opts=pulumi.ResourceOptions(parent=parent),
    )

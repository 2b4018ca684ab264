"""Security group rules: one TCP port each, as standalone resources.

Standalone `aws.vpc.SecurityGroup{Ingress,Egress}Rule` resources (never inline rules, which fight
with them) keep every rule visible in the graph, where the tests and the security controls read
them. Every rule names exactly one peer: a CIDR, another security group or a prefix list.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from config import naming


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
        **_tcp_rule(security_group_id, port, description),
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
    prefix_list_id: pulumi.Input[str] | None = None,
) -> aws.vpc.SecurityGroupEgressRule:
    """Let the group out to TCP `port` of one CIDR, one security group or one prefix list (e.g. the
    S3 gateway endpoint's)."""
    return aws.vpc.SecurityGroupEgressRule(
        name,
        **_tcp_rule(security_group_id, port, description),
        cidr_ipv4=cidr_ipv4,
        referenced_security_group_id=destination_security_group_id,
        prefix_list_id=prefix_list_id,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _tcp_rule(security_group_id: pulumi.Input[str], port: pulumi.Input[int], description: str) -> dict[str, Any]:
    """The arguments every single-port TCP rule shares."""
    return {"security_group_id": security_group_id, "description": description, "ip_protocol": "tcp", "from_port": port, "to_port": port}


def security_group(resource_name: str, physical_name: str, description: str, vpc_id: pulumi.Input[str], parent: pulumi.Resource) -> aws.ec2.SecurityGroup:
    """A security group with no inline rules (rules are added with `ingress`/`egress`), tagged with its name.

    The AWS name is `<physical_name>-<generated suffix>` (config/naming.py): a changed
    description or VPC replaces the group, and the replacement is created before the old one goes."""
    return aws.ec2.SecurityGroup(
        resource_name,
        name_prefix=naming.sg_prefix(physical_name),
        description=description,
        vpc_id=vpc_id,
        tags={"Name": physical_name},
        opts=pulumi.ResourceOptions(parent=parent),
    )

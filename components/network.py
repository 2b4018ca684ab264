"""The VPC: three subnet tiers across N AZs, NAT egress, flow logs and optional VPC endpoints.

Tiers:
  public   - the load balancer and NAT gateways only; the only tier with a route to the internet gateway.
  private  - the ECS tasks (and interface endpoints); egress through NAT, or none.
  isolated - the database; no route out of the VPC at all.

No subnet maps public IPs on launch, and the VPC's default security group is adopted and emptied
so nothing can silently fall back to it.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import sg as rules
from components.awsinfo import aws_facts
from components.iam import log_streams, service_trust_policy
from components.kms import encrypted_log_group, logs_key
from config import naming
from config.settings import INTERFACE_ENDPOINT_SERVICES, NatStrategy, NetworkSettings

TIERS = ("public", "private", "isolated")
__all__ = ["INTERFACE_ENDPOINT_SERVICES", "Network", "NetworkArgs", "endpoint_policy", "s3_endpoint_policy", "subnet_layout"]


def subnet_layout(cidr: str, subnet_prefix_length: int, az_count: int) -> dict[str, list[str]]:
    """CIDRs per tier. The VPC splits into four equal tier blocks (public, private, isolated,
    spare for later); AZ i takes the i-th subnet of each block, so adding an AZ never renumbers
    existing subnets."""
    vpc = ipaddress.IPv4Network(cidr)
    blocks = list(vpc.subnets(new_prefix=vpc.prefixlen + 2))
    layout: dict[str, list[str]] = {}
    for tier, block in zip(TIERS, blocks):
        subnets = list(block.subnets(new_prefix=subnet_prefix_length))
        if len(subnets) < az_count:
            raise ValueError(f"{block} holds {len(subnets)} /{subnet_prefix_length} subnets, {az_count} needed")
        layout[tier] = [str(s) for s in subnets[:az_count]]
    return layout


def _this_accounts_principals(account_id: str) -> dict[str, Any]:
    return {
        "Sid": "OnlyThisAccountsPrincipals",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalAccount": account_id}},
    }


def endpoint_policy(account_id: str) -> str:
    """Interface endpoint policy: any action, but only by principals of this account, so the
    endpoints cannot carry another account's credentials out of the VPC."""
    return json.dumps({"Version": "2012-10-17", "Statement": [_this_accounts_principals(account_id)]})


def s3_endpoint_policy(account_id: str, region: str, partition: str = "aws") -> str:
    """S3 gateway endpoint policy: what the interface endpoints allow (this account's principals),
    plus reads of the bucket ECR serves image layers from. Layer downloads are presigned URLs that
    ECR signs, so their principal is not this account's; the AWS ECR user guide ("Minimum Amazon
    S3 bucket permissions for Amazon ECR") names that bucket. Anything else, such as a write with
    another account's credentials to that account's bucket, stops at the endpoint."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                _this_accounts_principals(account_id),
                {
                    "Sid": "EcrImageLayers",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:{partition}:s3:::prod-{region}-starport-layer-bucket/*",
                },
            ],
        }
    )


@dataclass
class NetworkArgs:
    """Inputs of the network: its settings section only (plain values: the subnet math must be
    known when the plan is made)."""

    settings: NetworkSettings
    """VPC CIDR, AZ count, subnet size, NAT strategy, flow-log retention, endpoints (config/settings.py)."""


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    availability_zones: list[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    isolated_subnet_ids: pulumi.Output[list[str]]
    private_route_table_ids: pulumi.Output[list[str]]
    nat_gateway_ids: pulumi.Output[list[str]]
    flow_log_group_name: pulumi.Output[str]
    endpoint_security_group_id: pulumi.Output[str] | None
    """The interface endpoints' security group (None without endpoints): a peer for egress rules."""
    s3_prefix_list_id: pulumi.Output[str] | None
    """The S3 gateway endpoint's prefix list (None without it): a peer for egress rules to S3."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:network:Network", name, None, opts)
        self._name, self._args = name, args
        self._prefix = args.settings.prefix

        self.availability_zones = self._zones()
        vpc = self._vpc()
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={"Name": f"{self._prefix}-igw"}, opts=pulumi.ResourceOptions(parent=self))
        subnets = self._subnets(vpc)
        self._public_routes(vpc, igw, subnets["public"])
        nats = self._nat_gateways(subnets["public"], igw)
        private_rts = self._private_routes(vpc, nats, subnets["private"])
        self._isolated_routes(vpc, subnets["isolated"])
        self.flow_log_group_name = self._flow_logs(vpc)
        self.s3_prefix_list_id = self._s3_endpoint(vpc, private_rts)
        self.endpoint_security_group_id = self._endpoints(vpc, subnets["private"])

        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["public"]])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["private"]])
        self.isolated_subnet_ids = pulumi.Output.all(*[s.id for s in subnets["isolated"]])
        self.private_route_table_ids = pulumi.Output.all(*[rt.id for rt in private_rts])
        self.nat_gateway_ids = pulumi.Output.all(*[n.id for n in nats])
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
                "isolated_subnet_ids": self.isolated_subnet_ids,
                "nat_gateway_ids": self.nat_gateway_ids,
                "flow_log_group_name": self.flow_log_group_name,
            }
        )

    # --- VPC, subnets and routes -----------------------------------------------------------------

    def _zones(self) -> list[str]:
        count = self._args.settings.az_count
        # Only the region's standard zones: Local and Wavelength Zones are opt-in and may sort first.
        zones = aws.get_availability_zones(
            state="available", filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}], opts=pulumi.InvokeOptions(parent=self)
        ).names
        if len(zones) < count:
            raise ValueError(f"azCount is {count} but the region offers only {len(zones)} availability zones: {zones}")
        return list(zones[:count])

    def _vpc(self) -> aws.ec2.Vpc:
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(self._args.settings.cidr),
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": f"{self._prefix}-vpc"},
            opts=child,
        )
        # Adopt the default SG with no rules: anything placed in it can talk to nothing.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags={"Name": f"{self._prefix}-default-do-not-use"},
            opts=child,
        )
        return vpc

    def _subnets(self, vpc: aws.ec2.Vpc) -> dict[str, list[aws.ec2.Subnet]]:
        s = self._args.settings
        layout = subnet_layout(str(s.cidr), s.subnet_prefix_length, s.az_count)
        return {
            tier: [
                aws.ec2.Subnet(
                    f"{self._name}-{tier}-{az}",
                    vpc_id=vpc.id,
                    cidr_block=cidr,
                    availability_zone=az,
                    map_public_ip_on_launch=False,
                    tags={"Name": f"{self._prefix}-{tier}-{az}", "Tier": tier},
                    opts=pulumi.ResourceOptions(parent=self),
                )
                for az, cidr in zip(self.availability_zones, layout[tier])
            ]
            for tier in TIERS
        }

    def _public_routes(self, vpc: aws.ec2.Vpc, igw: aws.ec2.InternetGateway, public: list[aws.ec2.Subnet]) -> None:
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags={"Name": f"{self._prefix}-public"}, opts=child)
        aws.ec2.Route(f"{name}-public-default", route_table_id=rt.id, destination_cidr_block="0.0.0.0/0", gateway_id=igw.id, opts=child)
        for az, subnet in zip(self.availability_zones, public):
            aws.ec2.RouteTableAssociation(f"{name}-public-{az}", subnet_id=subnet.id, route_table_id=rt.id, opts=child)

    def _private_routes(self, vpc: aws.ec2.Vpc, nats: list[aws.ec2.NatGateway], private: list[aws.ec2.Subnet]) -> list[aws.ec2.RouteTable]:
        """One route table per AZ, so per-AZ NAT keeps each AZ's egress in that AZ."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        tables = []
        for i, (az, subnet) in enumerate(zip(self.availability_zones, private)):
            rt = aws.ec2.RouteTable(f"{name}-private-rt-{az}", vpc_id=vpc.id, tags={"Name": f"{self._prefix}-private-{az}"}, opts=child)
            if nats:
                nat = nats[i] if self._args.settings.nat_strategy is NatStrategy.PER_AZ else nats[0]
                aws.ec2.Route(f"{name}-private-default-{az}", route_table_id=rt.id, destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{az}", subnet_id=subnet.id, route_table_id=rt.id, opts=child)
            tables.append(rt)
        return tables

    def _isolated_routes(self, vpc: aws.ec2.Vpc, isolated: list[aws.ec2.Subnet]) -> None:
        """The isolated tier gets a route table with only the implicit local route."""
        name, child = self._name, pulumi.ResourceOptions(parent=self)
        rt = aws.ec2.RouteTable(f"{name}-isolated-rt", vpc_id=vpc.id, tags={"Name": f"{self._prefix}-isolated"}, opts=child)
        for az, subnet in zip(self.availability_zones, isolated):
            aws.ec2.RouteTableAssociation(f"{name}-isolated-{az}", subnet_id=subnet.id, route_table_id=rt.id, opts=child)

    def _nat_gateways(self, public: list[aws.ec2.Subnet], igw: aws.ec2.InternetGateway) -> list[aws.ec2.NatGateway]:
        name, s = self._name, self._args.settings
        count = {NatStrategy.NONE: 0, NatStrategy.SINGLE: 1, NatStrategy.PER_AZ: s.az_count}[s.nat_strategy]
        nats = []
        for az, subnet in list(zip(self.availability_zones, public))[:count]:
            eip = aws.ec2.Eip(f"{name}-nat-eip-{az}", domain="vpc", tags={"Name": f"{self._prefix}-nat-{az}"}, opts=pulumi.ResourceOptions(parent=self))
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{az}",
                    allocation_id=eip.id,
                    subnet_id=subnet.id,
                    connectivity_type="public",
                    tags={"Name": f"{self._prefix}-nat-{az}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )
        return nats

    # --- flow logs and endpoints -----------------------------------------------------------------

    def _flow_logs(self, vpc: aws.ec2.Vpc) -> pulumi.Output[str]:
        name, s = self._name, self._args.settings
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)
        facts = aws_facts(self)
        key = logs_key(
            f"{name}-logs-key",
            alias=f"{self._prefix}-network-logs",
            description=f"{self._prefix}: VPC flow logs",
            log_groups=[naming.flow_log_group(self._prefix)],
            parent=self,
            keep=s.keep_on_destroy,
        )
        group = encrypted_log_group(
            f"{name}-flow-logs", name=naming.flow_log_group(self._prefix), retention_days=s.flow_log_retention_days, key_arn=key.arn, parent=self,
            keep=s.keep_on_destroy,
        )
        assume = service_trust_policy("vpc-flow-logs.amazonaws.com", facts.account_id, self)
        role = aws.iam.Role(f"{name}-flow-logs-role", name_prefix=naming.role_prefix(self._prefix, "flow-logs"), assume_role_policy=assume, opts=child)
        write = aws.iam.get_policy_document_output(
            statements=[
                aws.iam.GetPolicyDocumentStatementArgs(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    # the _output invoke resolves Outputs nested in its args; the SDK types them as str
                    resources=[group.arn, log_streams(group.arn)],  # type: ignore[list-item]
                )
            ],
            opts=invoke,
        )
        role_policy = aws.iam.RolePolicy(f"{name}-flow-logs-write", role=role.id, policy=write.json, opts=child)
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags={"Name": f"{self._prefix}-flow-log"},
            # AWS checks the role's permissions when the flow log is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )
        return group.name

    def _s3_endpoint(self, vpc: aws.ec2.Vpc, private_rts: list[aws.ec2.RouteTable]) -> pulumi.Output[str] | None:
        """The free S3 gateway endpoint on the private route tables; its prefix list is what a security
        group names to reach S3 (ECR image layers) without the internet. Its policy admits this
        account's principals and ECR's layer reads only (s3_endpoint_policy), unless
        s3EndpointAnyPrincipal opens it."""
        if not self._args.settings.s3_gateway_endpoint:
            return None
        facts = aws_facts(self)
        endpoint = aws.ec2.VpcEndpoint(
            f"{self._name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{facts.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            policy=None if self._args.settings.s3_endpoint_any_principal else s3_endpoint_policy(facts.account_id, facts.region, facts.partition),
            tags={"Name": f"{self._prefix}-s3"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        return endpoint.prefix_list_id

    def _endpoints(self, vpc: aws.ec2.Vpc, private: list[aws.ec2.Subnet]) -> pulumi.Output[str] | None:
        """Interface endpoints (settings.endpoint_services: the chosen ones and the access task's) with
        private DNS, in the first `endpoint_az_count` private subnets, behind one security group."""
        name, s = self._name, self._args.settings
        child = pulumi.ResourceOptions(parent=self)
        region = aws_facts(self).region
        if not s.endpoint_services:
            return None
        sg = rules.security_group(f"{name}-endpoints-sg", f"{self._prefix}-endpoints", "Interface endpoints: HTTPS from inside the VPC only", vpc.id, self)
        rules.ingress(f"{name}-endpoints-https", sg.id, 443, "HTTPS from the VPC", self, cidr_ipv4=str(s.cidr))
        policy = endpoint_policy(aws_facts(self).account_id)
        for service in s.endpoint_services:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[subnet.id for subnet in private[: s.endpoint_az_count]],
                security_group_ids=[sg.id],
                policy=policy,
                tags={"Name": f"{self._prefix}-{service}"},
                opts=child,
            )
        return sg.id

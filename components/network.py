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

import pulumi
import pulumi_aws as aws

from components import naming
from components import sg as rules
from components.awsinfo import aws_facts
from components.kms import create_key, logs_grant
from components.settings import NatStrategy

TIERS = ("public", "private", "isolated")
INTERFACE_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "sts")


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


def endpoint_policy(account_id: str) -> str:
    """Interface endpoint policy: any action, but only by principals of this account, so the
    endpoints cannot carry stolen credentials of another account out of the VPC."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OnlyThisAccountsPrincipals",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:PrincipalAccount": account_id}},
                }
            ],
        }
    )


@dataclass
class NetworkArgs:
    """Inputs of the network. Plain values: the subnet math must be known when the plan is made."""

    name: str
    """Physical name prefix, e.g. 'shop-dev'."""
    cidr_block: str
    """Private IPv4 CIDR of the VPC."""
    az_count: int
    """How many availability zones to use (the first N available ones)."""
    subnet_prefix_length: int
    """Prefix length of each subnet."""
    nat_strategy: NatStrategy
    """none, single or per_az NAT gateways for the private tier."""
    flow_log_retention_days: int
    """Retention of the flow log group."""
    s3_gateway_endpoint: bool = True
    """Add an S3 gateway endpoint on the private route tables."""
    interface_endpoints: bool = False
    """Add interface endpoints (ECR, logs, Secrets Manager, STS) in the private subnets."""


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

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:network:Network", name, None, opts)
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)

        # Only the region's standard zones: Local and Wavelength Zones are opt-in and may sort first.
        zones = aws.get_availability_zones(
            state="available", filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}], opts=invoke
        ).names
        if len(zones) < args.az_count:
            raise ValueError(f"azCount is {args.az_count} but the region offers only {len(zones)} availability zones: {zones}")
        self.availability_zones = list(zones[: args.az_count])
        layout = subnet_layout(args.cidr_block, args.subnet_prefix_length, args.az_count)

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr_block,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": f"{args.name}-vpc"},
            opts=child,
        )
        # Adopt the default SG with no rules: anything placed in it can talk to nothing.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags={"Name": f"{args.name}-default-do-not-use"},
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={"Name": f"{args.name}-igw"}, opts=child)

        subnets: dict[str, list[aws.ec2.Subnet]] = {tier: [] for tier in TIERS}
        for tier in TIERS:
            for az, cidr in zip(self.availability_zones, layout[tier]):
                subnets[tier].append(
                    aws.ec2.Subnet(
                        f"{name}-{tier}-{az}",
                        vpc_id=vpc.id,
                        cidr_block=cidr,
                        availability_zone=az,
                        map_public_ip_on_launch=False,
                        tags={"Name": f"{args.name}-{tier}-{az}", "Tier": tier},
                        opts=child,
                    )
                )

        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=vpc.id, tags={"Name": f"{args.name}-public"}, opts=child)
        aws.ec2.Route(f"{name}-public-default", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0", gateway_id=igw.id, opts=child)
        for az, subnet in zip(self.availability_zones, subnets["public"]):
            aws.ec2.RouteTableAssociation(f"{name}-public-{az}", subnet_id=subnet.id, route_table_id=public_rt.id, opts=child)

        nats = self._nat_gateways(name, args, subnets["public"], igw)
        private_rts = []
        for i, (az, subnet) in enumerate(zip(self.availability_zones, subnets["private"])):
            rt = aws.ec2.RouteTable(f"{name}-private-rt-{az}", vpc_id=vpc.id, tags={"Name": f"{args.name}-private-{az}"}, opts=child)
            if nats:
                nat = nats[i] if args.nat_strategy is NatStrategy.PER_AZ else nats[0]
                aws.ec2.Route(f"{name}-private-default-{az}", route_table_id=rt.id, destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{az}", subnet_id=subnet.id, route_table_id=rt.id, opts=child)
            private_rts.append(rt)

        # The isolated tier gets a route table with only the implicit local route.
        isolated_rt = aws.ec2.RouteTable(f"{name}-isolated-rt", vpc_id=vpc.id, tags={"Name": f"{args.name}-isolated"}, opts=child)
        for az, subnet in zip(self.availability_zones, subnets["isolated"]):
            aws.ec2.RouteTableAssociation(f"{name}-isolated-{az}", subnet_id=subnet.id, route_table_id=isolated_rt.id, opts=child)

        self.flow_log_group_name = self._flow_logs(name, args, vpc)
        self.endpoint_security_group_id = self._endpoints(name, args, vpc, private_rts, subnets["private"])

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

    def _nat_gateways(self, name: str, args: NetworkArgs, public: list[aws.ec2.Subnet], igw: aws.ec2.InternetGateway) -> list[aws.ec2.NatGateway]:
        count = {NatStrategy.NONE: 0, NatStrategy.SINGLE: 1, NatStrategy.PER_AZ: args.az_count}[args.nat_strategy]
        nats = []
        for az, subnet in list(zip(self.availability_zones, public))[:count]:
            eip = aws.ec2.Eip(f"{name}-nat-eip-{az}", domain="vpc", tags={"Name": f"{args.name}-nat-{az}"}, opts=pulumi.ResourceOptions(parent=self))
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{az}",
                    allocation_id=eip.id,
                    subnet_id=subnet.id,
                    connectivity_type="public",
                    tags={"Name": f"{args.name}-nat-{az}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )
        return nats

    def _flow_logs(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc) -> pulumi.Output[str]:
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)
        facts = aws_facts(self)
        region = facts.region
        key, _ = create_key(
            f"{name}-logs-key",
            alias=f"{args.name}-network-logs",
            description=f"{args.name}: VPC flow logs",
            services=[logs_grant(region, facts.account_id)],
            parent=self,
        )
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=naming.flow_log_group(args.name),
            retention_in_days=args.flow_log_retention_days,
            kms_key_id=key.arn,
            opts=child,
        )
        assume = aws.iam.get_policy_document_output(
            statements=[
                aws.iam.GetPolicyDocumentStatementArgs(
                    actions=["sts:AssumeRole"],
                    principals=[aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="Service", identifiers=["vpc-flow-logs.amazonaws.com"])],
                    conditions=[
                        aws.iam.GetPolicyDocumentStatementConditionArgs(test="StringEquals", variable="aws:SourceAccount", values=[facts.account_id])
                    ],
                )
            ],
            opts=invoke,
        )
        role = aws.iam.Role(f"{name}-flow-logs-role", name_prefix=naming.role_prefix(args.name, "flow-logs"), assume_role_policy=assume.json, opts=child)
        write = aws.iam.get_policy_document_output(
            statements=[
                aws.iam.GetPolicyDocumentStatementArgs(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    # the _output invoke resolves Outputs nested in its args; the SDK types them as str
                    resources=[group.arn, group.arn.apply(lambda arn: f"{arn}:*")],  # type: ignore[list-item]
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
            tags={"Name": f"{args.name}-flow-log"},
            # AWS checks the role's permissions when the flow log is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )
        return group.name

    def _endpoints(
        self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc, private_rts: list[aws.ec2.RouteTable], private: list[aws.ec2.Subnet]
    ) -> pulumi.Output[str] | None:
        child = pulumi.ResourceOptions(parent=self)
        region = aws_facts(self).region
        if args.s3_gateway_endpoint:
            aws.ec2.VpcEndpoint(
                f"{name}-s3",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{region}.s3",
                vpc_endpoint_type="Gateway",
                route_table_ids=[rt.id for rt in private_rts],
                tags={"Name": f"{args.name}-s3"},
                opts=child,
            )
        if not args.interface_endpoints:
            return None
        sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            name_prefix=naming.sg_prefix(args.name, "endpoints"),
            description="Interface endpoints: HTTPS from inside the VPC only",
            vpc_id=vpc.id,
            tags={"Name": f"{args.name}-endpoints"},
            opts=child,
        )
        rules.ingress(f"{name}-endpoints-https", sg.id, 443, "HTTPS from the VPC", self, cidr_ipv4=args.cidr_block)
        policy = endpoint_policy(aws_facts(self).account_id)
        for service in INTERFACE_ENDPOINT_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in private],
                security_group_ids=[sg.id],
                policy=policy,
                tags={"Name": f"{args.name}-{service}"},
                opts=child,
            )
        return sg.id

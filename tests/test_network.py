"""The network component, checked on the recorded graphs of both stacks."""

from __future__ import annotations

import fnmatch
import ipaddress
import json

import pytest

from bootstrap.plan.mockgraph import Graph, run_stack
from components.network import INTERFACE_ENDPOINT_SERVICES, s3_endpoint_policy, subnet_layout

SUBNET = "aws:ec2/subnet:Subnet"
ROUTE = "aws:ec2/route:Route"
RT = "aws:ec2/routeTable:RouteTable"
ASSOC = "aws:ec2/routeTableAssociation:RouteTableAssociation"
NAT = "aws:ec2/natGateway:NatGateway"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"


def tier(r) -> str:
    return r.inputs["tags"]["Tier"]


# --- subnet math ------------------------------------------------------------------------------


def test_layout_known_answer():
    layout = subnet_layout("10.20.0.0/16", 20, 2)
    assert layout == {
        "public": ["10.20.0.0/20", "10.20.16.0/20"],
        "private": ["10.20.64.0/20", "10.20.80.0/20"],
        "isolated": ["10.20.128.0/20", "10.20.144.0/20"],
    }


@pytest.mark.parametrize(("cidr", "prefix", "azs"), [("10.0.0.0/16", 20, 4), ("172.16.0.0/20", 24, 3), ("192.168.10.0/24", 28, 4), ("10.1.0.0/18", 21, 1)])
def test_layout_fits_disjoint_and_stable(cidr, prefix, azs):
    vpc = ipaddress.IPv4Network(cidr)
    layout = subnet_layout(cidr, prefix, azs)
    nets = [ipaddress.IPv4Network(c) for cs in layout.values() for c in cs]
    assert len(nets) == 3 * azs
    assert all(n.subnet_of(vpc) and n.prefixlen == prefix for n in nets)
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    # adding an AZ only appends: existing subnets keep their CIDRs
    if azs > 1:
        smaller = subnet_layout(cidr, prefix, azs - 1)
        for t, cidrs in smaller.items():
            assert layout[t][: azs - 1] == cidrs


def test_layout_refuses_too_many_azs():
    with pytest.raises(ValueError, match="holds 4"):
        subnet_layout("10.0.0.0/16", 20, 5)


def test_recorded_subnets_match_the_layout(graph: Graph):
    vpc = graph.one("aws:ec2/vpc:Vpc")
    cidr = vpc.inputs["cidrBlock"]
    azs = graph.outputs["availabilityZones"]
    prefix = int(graph.config["pghome:subnetPrefixLength"])
    layout = subnet_layout(cidr, prefix, len(azs))
    for t in ("public", "private", "isolated"):
        recorded = sorted((r.inputs["availabilityZone"], r.inputs["cidrBlock"]) for r in graph.of_type(SUBNET) if tier(r) == t)
        assert recorded == sorted(zip(azs, layout[t]))


# --- resources and their inputs ----------------------------------------------------------------


def test_vpc_has_dns_and_is_the_configured_cidr(graph: Graph):
    vpc = graph.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["enableDnsSupport"] is True and vpc.inputs["enableDnsHostnames"] is True
    assert vpc.inputs["cidrBlock"] == graph.config["pghome:vpcCidr"]


def test_az_count_per_stack(dev_graph: Graph, prod_graph: Graph):
    assert len(dev_graph.of_type(SUBNET)) == 3 * 2
    assert len(prod_graph.of_type(SUBNET)) == 3 * 3
    assert prod_graph.outputs["availabilityZones"] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]


def test_no_subnet_maps_public_ips(graph: Graph):
    subnets = graph.of_type(SUBNET)
    assert subnets and all(s.inputs.get("mapPublicIpOnLaunch") is False for s in subnets)


def test_default_security_group_is_adopted_and_empty(graph: Graph):
    sg = graph.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert sg.inputs.get("ingress", []) == [] and sg.inputs.get("egress", []) == []
    assert sg.inputs["vpcId"] == graph.one("aws:ec2/vpc:Vpc").id


def _routes_by_table(graph: Graph) -> dict[str, list]:
    tables: dict[str, list] = {rt.id: [] for rt in graph.of_type(RT)}
    for route in graph.of_type(ROUTE):
        tables[route.inputs["routeTableId"]].append(route)
    return tables


def _table_of(graph: Graph, subnet) -> str:
    (assoc,) = [a for a in graph.of_type(ASSOC) if a.inputs["subnetId"] == subnet.id]
    return assoc.inputs["routeTableId"]


def test_tiers_route_as_designed(graph: Graph):
    routes = _routes_by_table(graph)
    igw = graph.one("aws:ec2/internetGateway:InternetGateway")
    nat_ids = {n.id for n in graph.of_type(NAT)}
    for subnet in graph.of_type(SUBNET):
        table_routes = routes[_table_of(graph, subnet)]
        if tier(subnet) == "public":
            assert [(r.inputs["destinationCidrBlock"], r.inputs.get("gatewayId")) for r in table_routes] == [("0.0.0.0/0", igw.id)]
        elif tier(subnet) == "private":
            assert len(table_routes) == 1 and table_routes[0].inputs["natGatewayId"] in nat_ids
            assert "gatewayId" not in table_routes[0].inputs
        else:  # isolated: no way out of the VPC at all
            assert table_routes == []


@pytest.mark.parametrize(("strategy", "azs", "expected"), [("single", 3, 1), ("per_az", 3, 3), ("per_az", 2, 2)])
def test_nat_count_per_strategy(strategy, azs, expected):
    overrides = {"natStrategy": strategy, "azCount": str(azs), "dbMultiAz": "false"}
    g = run_stack("dev", overrides)
    nats = g.of_type(NAT)
    assert len(nats) == expected
    assert len(g.of_type("aws:ec2/eip:Eip")) == expected
    public_ids = {s.id for s in g.of_type(SUBNET) if tier(s) == "public"}
    assert all(n.inputs["subnetId"] in public_ids for n in nats)
    private_routes = [r for r in g.of_type(ROUTE) if r.inputs.get("natGatewayId")]
    assert len(private_routes) == (azs if expected else 0)
    if strategy == "per_az":  # each AZ egresses through its own NAT
        assert len({r.inputs["natGatewayId"] for r in private_routes}) == azs


def test_flow_logs_go_to_an_encrypted_log_group(graph: Graph):
    flow = graph.one("aws:ec2/flowLog:FlowLog")
    group = graph.one("aws:cloudwatch/logGroup:LogGroup", name=f"{graph.one('pghome:network:Network').name}-flow-logs")
    key = graph.by_urn(next(u for u in group.property_dependencies["kmsKeyId"]))
    assert flow.inputs["trafficType"] == "ALL" and flow.inputs["vpcId"] == graph.one("aws:ec2/vpc:Vpc").id
    assert flow.inputs["logDestination"] == group.state["arn"]
    assert group.inputs["retentionInDays"] == int(graph.config["pghome:flowLogRetentionDays"])
    assert key.type == "aws:kms/key:Key" and key.inputs["enableKeyRotation"] is True
    assert group.inputs["kmsKeyId"] == key.state["arn"]
    policy = json.loads(key.inputs["policy"])
    logs = [s for s in policy["Statement"] if s.get("Principal", {}).get("Service", "").startswith("logs.")]
    # the flow-log group only (issue 23 item 7), not every log group of the account
    assert logs and logs[0]["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"] == group.state["arn"]
    assert not any(s["Action"] == "kms:*" or "kms:*" in s["Action"] for s in policy["Statement"])


def test_flow_log_role_is_scoped(graph: Graph):
    role = graph.one("aws:iam/role:Role", name=f"{graph.one('pghome:network:Network').name}-flow-logs-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"
    (policy,) = [p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role.id]
    doc = json.loads(policy.inputs["policy"])
    resources = doc["Statement"][0]["Resource"]
    assert "*" not in resources and all(":log-group:/vpc/" in r for r in resources)


@pytest.fixture(scope="module")
def endpoints_graph() -> Graph:
    """prod with the interface endpoints on (prod's stack file leaves them off: issue 23 item 9)."""
    return run_stack("prod", {"interfaceEndpoints": "true"})


def test_endpoints_follow_the_flag(dev_graph: Graph, prod_graph: Graph, endpoints_graph: Graph):
    def services(g):
        return sorted(e.inputs["serviceName"].split(".", 3)[-1] for e in g.of_type(ENDPOINT))

    # interfaceEndpoints off: only the access task's five (dbAccess, issue 28 item 7) and the free S3 gateway
    access = ["ecr.api", "ecr.dkr", "kms", "logs", "s3", "ssmmessages"]
    assert services(dev_graph) == access
    assert services(prod_graph) == access
    assert services(endpoints_graph) == sorted(["s3", *INTERFACE_ENDPOINT_SERVICES])
    prod_graph = endpoints_graph
    s3 = next(e for e in prod_graph.of_type(ENDPOINT) if e.inputs["serviceName"].endswith(".s3"))
    private_rts = {rt.id for rt in prod_graph.of_type(RT) if "private" in rt.name}
    assert s3.inputs["vpcEndpointType"] == "Gateway" and set(s3.inputs["routeTableIds"]) == private_rts
    for e in prod_graph.of_type(ENDPOINT):
        if e.inputs["vpcEndpointType"] == "Interface":
            assert e.inputs["privateDnsEnabled"] is True
            assert len(e.inputs["subnetIds"]) == 3


def test_endpoint_security_group_admits_https_from_the_vpc_only(endpoints_graph: Graph):
    prod_graph = endpoints_graph
    sg = prod_graph.one("aws:ec2/securityGroup:SecurityGroup", name=f"{prod_graph.one('pghome:network:Network').name}-endpoints-sg")
    rules = [r for r in prod_graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if r.inputs["securityGroupId"] == sg.id]
    assert [(r.inputs["fromPort"], r.inputs["toPort"], r.inputs["cidrIpv4"]) for r in rules] == [(443, 443, prod_graph.config["pghome:vpcCidr"])]


def test_every_network_resource_is_a_child_of_the_component(graph: Graph):
    net = graph.one("pghome:network:Network")
    children = graph.children(net)
    assert len(children) >= 30
    for r in graph.resources:
        if r.name.startswith(net.name + "-"):
            assert r.parent == net.urn, r.name
    vpc_types = {"aws:ec2/subnet:Subnet", "aws:ec2/routeTable:RouteTable", "aws:ec2/natGateway:NatGateway", "aws:ec2/flowLog:FlowLog"}
    assert all(r.parent == net.urn for r in graph.resources if r.type in vpc_types)


def test_every_aws_resource_uses_the_explicit_tagged_provider(graph: Graph):
    provider = graph.one("pulumi:providers:aws")
    assert provider.inputs["region"] == graph.config["aws:region"]
    tags = json.loads(provider.inputs["defaultTags"]) if isinstance(provider.inputs["defaultTags"], str) else provider.inputs["defaultTags"]
    assert tags["tags"]["Stack"] == graph.stack and tags["tags"]["ManagedBy"] == "pulumi"
    for r in graph.resources:
        if r.custom and r.type.startswith("aws:"):
            assert r.provider.startswith(provider.urn + "::"), f"{r.name} does not use the stack's aws provider"


def test_network_outputs_are_exported(graph: Graph):
    assert graph.outputs["vpcId"] == graph.one("aws:ec2/vpc:Vpc").id
    for key, t in (("publicSubnetIds", "public"), ("privateSubnetIds", "private"), ("isolatedSubnetIds", "isolated")):
        assert sorted(graph.outputs[key]) == sorted(s.id for s in graph.of_type(SUBNET) if tier(s) == t)


def test_account_region_and_partition_are_asked_once_per_run(graph: Graph):
    tokens = [i.token for i in graph.invokes]
    for token in ("aws:index/getCallerIdentity:getCallerIdentity", "aws:index/getPartition:getPartition", "aws:index/getRegion:getRegion"):
        assert tokens.count(token) == 1, token


def _endpoint_allows(policy: str, principal_account: str, action: str, resource: str) -> bool:
    """What a VPC endpoint policy lets through (Allow statements only; StringEquals conditions)."""
    for st in json.loads(policy)["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        wanted = st.get("Condition", {}).get("StringEquals", {})
        if (st["Effect"] == "Allow" and st["Principal"] == "*" and any(fnmatch.fnmatchcase(action, a) for a in actions)
                and any(fnmatch.fnmatchcase(resource, r) for r in resources)
                and all(v == principal_account for k, v in wanted.items() if k == "aws:PrincipalAccount") and set(wanted) <= {"aws:PrincipalAccount"}):
            return True
    return False


def test_the_s3_endpoint_lets_this_account_and_ecr_layer_reads_through_and_nothing_else() -> None:
    """An exfiltration through the free S3 gateway endpoint (another account's credentials writing
    to its own bucket) stops at the endpoint; ECR's presigned layer reads (signed by ECR, not by
    this account) still pass, in the stack's region only."""
    own, other = "123456789012", "999988887777"
    policy = s3_endpoint_policy(own, "eu-west-1")
    assert _endpoint_allows(policy, own, "s3:PutObject", "arn:aws:s3:::shop-uploads/report.csv")
    assert not _endpoint_allows(policy, other, "s3:PutObject", "arn:aws:s3:::attacker-drop/dump.sql")
    assert not _endpoint_allows(policy, other, "s3:GetObject", "arn:aws:s3:::attacker-tools/payload")
    layer = "arn:aws:s3:::prod-eu-west-1-starport-layer-bucket/sha256/abc"
    assert _endpoint_allows(policy, "ecr-signer", "s3:GetObject", layer)
    assert not _endpoint_allows(policy, "ecr-signer", "s3:PutObject", layer)
    assert not _endpoint_allows(policy, "ecr-signer", "s3:GetObject", layer.replace("eu-west-1", "us-east-1"))
    assert "arn:aws-cn:s3:::prod-cn-north-1-starport" in s3_endpoint_policy(own, "cn-north-1", "aws-cn")


@pytest.mark.parametrize("which", ["dev", "prod"])
def test_the_stacks_s3_endpoint_carries_that_policy(which: str, dev_graph: Graph, prod_graph: Graph) -> None:
    graph = dev_graph if which == "dev" else prod_graph
    s3 = next(e for e in graph.of_type(ENDPOINT) if e.inputs["serviceName"].endswith(".s3"))
    region = s3.inputs["serviceName"].split(".")[2]
    assert json.loads(s3.inputs["policy"]) == json.loads(s3_endpoint_policy("123456789012", region))


def test_any_principal_drops_the_s3_endpoint_policy() -> None:
    graph = run_stack("dev", {"s3EndpointAnyPrincipal": "true"})
    s3 = next(e for e in graph.of_type(ENDPOINT) if e.inputs["serviceName"].endswith(".s3"))
    assert "policy" not in s3.inputs or s3.inputs["policy"] is None

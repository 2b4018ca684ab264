"""Rules: RDS for PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from controls.catalogue import ADVISORY, DATABASE, MUST_HOLD, WAIVABLE, control, must_be_true
from controls.inventory import Inventory, Res
from controls.readers import (
    as_list,
    is_private_cidr,
    rules_of_group,
    to_int,
)

RDS = "aws:rds/instance:Instance"
DEFAULT_MASTER_USERNAMES = frozenset({"postgres", "admin", "administrator", "root", "master", "rdsadmin", "sa", "user", "dbadmin", "awsuser"})


def _engine(r: Res) -> str:
    return str(r.get("engine", "postgres"))  # unset counts as postgres, the only engine this program deploys


def _is_postgres(r: Res, inv: Inventory) -> bool:
    return _engine(r).startswith("postgres")


@control("RDS.2", "RDS DB instances should prohibit public access (PubliclyAccessible is false)", MUST_HOLD, RDS, component=DATABASE)
def _rds2(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("publiclyAccessible") is True:
        yield "publiclyAccessible is true"


@control("RDS.3", "RDS DB instances should have encryption at rest enabled", MUST_HOLD, RDS, component=DATABASE)
def _rds3(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("storageEncrypted") is not True:
        yield f"storageEncrypted is {r.get('storageEncrypted')!r}, not true"


control("RDS.5", "RDS DB instances should be configured with multiple Availability Zones", WAIVABLE, RDS, component=DATABASE)(must_be_true("multiAz"))


@control("RDS.6", "Enhanced monitoring should be configured for RDS DB instances", WAIVABLE, RDS, component=DATABASE)
def _rds6(r: Res, inv: Inventory) -> Iterator[str]:
    if to_int(r.get("monitoringInterval"), 0) <= 0:
        yield "monitoringInterval is not set (enhanced monitoring off)"
    elif not r.get("monitoringRoleArn"):
        yield "monitoringInterval is set but monitoringRoleArn is empty"


control("RDS.8", "RDS DB instances should have deletion protection enabled", WAIVABLE, RDS, component=DATABASE)(must_be_true("deletionProtection"))


@control("RDS.9", "RDS DB instances should publish logs to CloudWatch Logs (PostgreSQL: postgresql, upgrade)", MUST_HOLD, RDS, component=DATABASE)
def _rds9(r: Res, inv: Inventory) -> Iterator[str]:
    missing = {"postgresql", "upgrade"} - set(as_list(r.get("enabledCloudwatchLogsExports")))
    if missing:
        yield f"enabledCloudwatchLogsExports lacks {', '.join(sorted(missing))}"


control("RDS.10", "IAM authentication should be configured for RDS instances", WAIVABLE, RDS, component=DATABASE)(must_be_true("iamDatabaseAuthenticationEnabled"))


@control("RDS.11", "RDS instances should have automatic backups enabled (retention >= 7 days)", WAIVABLE, RDS, component=DATABASE)
def _rds11(r: Res, inv: Inventory) -> Iterator[str]:
    days = to_int(r.get("backupRetentionPeriod"), 0)
    if days < 7:
        yield f"backupRetentionPeriod is {days} (< 7)"


@control("RDS.13", "RDS automatic minor version upgrades should be enabled", WAIVABLE, RDS, component=DATABASE)
def _rds13(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("autoMinorVersionUpgrade") is False:  # AWS default is true
        yield "autoMinorVersionUpgrade is false"


control("RDS.17", "RDS DB instances should be configured to copy tags to snapshots", WAIVABLE, RDS, component=DATABASE)(must_be_true("copyTagsToSnapshot"))


@control(
    "RDS.23",
    "RDS instances should not use a database engine default port",
    ADVISORY,
    RDS,
    component=DATABASE,
    note="advisory by design: the DB sits in isolated subnets and its SG admits only the service (RDS.46, PGH.3); "
    "a non-default port adds no protection against a client already inside the VPC. Set dbPort to satisfy it.",
)
def _rds23(r: Res, inv: Inventory) -> Iterator[str]:
    defaults = {"postgres": 5432, "mysql": 3306, "mariadb": 3306}
    default = defaults.get(_engine(r), 5432)
    port = to_int(r.get("port"), default)
    if port == default:
        yield f"port is the engine default {port}"


@control("RDS.25", "RDS database instances should use a custom administrator username", MUST_HOLD, RDS, component=DATABASE)
def _rds25(r: Res, inv: Inventory) -> Iterator[str]:
    user = str(r.get("username") or "postgres")
    if user.lower() in DEFAULT_MASTER_USERNAMES:
        yield f"username {user!r} is a default administrator name"


@control("RDS.36", "RDS for PostgreSQL DB instances should publish logs to CloudWatch Logs", MUST_HOLD, RDS, component=DATABASE,
         applies=_is_postgres)
def _rds36(r: Res, inv: Inventory) -> Iterator[str]:
    if "postgresql" not in as_list(r.get("enabledCloudwatchLogsExports")):
        yield "enabledCloudwatchLogsExports lacks postgresql"


@control("RDS.38", "RDS for PostgreSQL DB instances should be encrypted in transit (rds.force_ssl=1)", MUST_HOLD, RDS, component=DATABASE, context=True,
         applies=_is_postgres)
def _rds38(r: Res, inv: Inventory) -> Iterator[str]:
    groups = inv.referenced(r, "parameterGroupName", "aws:rds/parameterGroup:ParameterGroup")
    if not groups:
        yield f"parameterGroupName {r.get('parameterGroupName') or '<unset>'} is not a parameter group of this stack (a default group does not set rds.force_ssl explicitly)"
        return
    for group in groups:
        values = {str(p.get("name")): str(p.get("value")) for p in as_list(group.get("parameters")) if isinstance(p, dict)}
        if values.get("rds.force_ssl") != "1":
            yield f"parameter group {group.name} has rds.force_ssl={values.get('rds.force_ssl', '<unset>')}, not 1"


INTERNET_TARGETS = ("gatewayId", "natGatewayId", "egressOnlyGatewayId", "transitGatewayId", "vpcPeeringConnectionId", "networkInterfaceId", "carrierGatewayId")


def _internet_routes(inv: Inventory, table: Res) -> list[str]:
    """Routes of a route table that lead out of the VPC (IGW, NAT, ...), described."""
    found = []
    routes: list[tuple[str, dict[str, Any]]] = [(f"{table.name} routes[{i}]", rt) for i, rt in enumerate(as_list(table.get("routes"))) if isinstance(rt, dict)]
    for route_res in inv.of_type("aws:ec2/route:Route"):
        if inv.refers_to(route_res, "routeTableId", table):
            routes.append((route_res.name, dict(route_res.inputs)))
    # A target that is present but unknown (preview) still leaves the VPC: judged by the key.
    for label, route in routes:
        dest = route.get("destinationCidrBlock") or route.get("cidrBlock") or route.get("destinationIpv6CidrBlock") or route.get("ipv6CidrBlock")
        target = next((k for k in INTERNET_TARGETS if route.get(k)), None)
        if target and not (target == "gatewayId" and route.get("gatewayId") == "local"):
            found.append(f"{label} sends {dest} to {target}")
    return found


@control(
    "RDS.46",
    "RDS DB instances should not be deployed in subnets with routes out of the VPC (IGW or NAT)",
    MUST_HOLD,
    RDS,
    component=DATABASE,
    context=True,
    note="stricter than FSBP RDS.46 (IGW only): the DB subnets must have no NAT route either",
)
def _rds46(r: Res, inv: Inventory) -> Iterator[str]:
    groups = inv.referenced(r, "dbSubnetGroupName", "aws:rds/subnetGroup:SubnetGroup")
    if not groups:
        yield f"dbSubnetGroupName {r.get('dbSubnetGroupName') or '<unset>'} is not a subnet group of this stack (the instance would land in the default VPC)"
        return
    for group in groups:
        subnets = inv.referenced(group, "subnetIds", "aws:ec2/subnet:Subnet")
        if not subnets:
            yield f"subnet group {group.name} lists no subnet of this stack"
        for subnet in subnets:
            tables = [t for a in inv.referring(subnet, "subnetId", "aws:ec2/routeTableAssociation:RouteTableAssociation")
                      for t in inv.referenced(a, "routeTableId", "aws:ec2/routeTable:RouteTable", "aws:ec2/defaultRouteTable:DefaultRouteTable")]
            if not tables:  # implicit: the VPC's main route table
                tables = inv.of_type("aws:ec2/defaultRouteTable:DefaultRouteTable")
            for table in tables:
                for route in _internet_routes(inv, table):
                    yield f"subnet {subnet.name} (group {group.name}): {route}"


@control("PGH.3", "Database security groups admit only security groups and private CIDRs (never 0.0.0.0/0)", MUST_HOLD, RDS, component=DATABASE, context=True)
def _pgh3(r: Res, inv: Inventory) -> Iterator[str]:
    groups = inv.referenced(r, "vpcSecurityGroupIds", "aws:ec2/securityGroup:SecurityGroup")
    if not groups:
        yield "vpcSecurityGroupIds names no security group of this stack (the VPC default group would apply)"
    for sg in groups:
        for rule in rules_of_group(inv, sg):
            public = [c for c in rule.cidrs if not is_private_cidr(c)]
            if public:
                yield f"security group {sg.name}: {rule.describe()} admits non-private {', '.join(public)}"
            elif rule.all_ports:
                yield f"security group {sg.name}: {rule.describe()} opens every port"



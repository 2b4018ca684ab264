"""AWS Foundational Security Best Practices (FSBP), checked on a stack's recorded resource graph.

One rule set, three users: the offline plan (`python -m bootstrap plan`), the tests, and the
`pulumi-policy` pack in `policy/` (which feeds the engine's resources to the same rules). Every rule
reads the *recorded inputs* of resources (camelCase names, as the engine sees them), never a
component's Python attributes, so what is checked is what would be sent to AWS.

Classes of control:
  must-hold  never waivable (public DB, encryption, 0.0.0.0/0 on a DB/admin port, ...).
  waivable   a dev stack may waive it with `securityWaivers: [ID=reason]`; prod cannot waive.
  advisory   reported, never blocks: the program cannot make it pass by itself (see `note`).

A control whose resource types are absent from the graph is "n/a" (0 resources checked), never
a pass. During a real `pulumi preview` some inputs are unknown; a resource whose checked input is
unknown is "undecided" for that control (the policy pack reports it as "can't run during preview").
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from bootstrap.mockgraph import Graph

MUST_HOLD = "must-hold"
WAIVABLE = "waivable"
ADVISORY = "advisory"

PASS = "PASS"
FAIL = "FAIL"
WAIVED = "WAIVED"
NOT_APPLICABLE = "n/a"
ADVISED = "ADVISORY"  # an advisory control that does not pass (shown with its note)

# Component tokens: a control names the component whose resources it needs, so a test can say
# "the database is wired but no RDS instance was checked".
NETWORK = "pghome:network:Network"
DATABASE = "pghome:database:Database"
REGISTRY = "pghome:registry:Registry"
SERVICE = "pghome:service:Service"
APP_DATABASE = "pghome:appdb:AppDatabase"


# --------------------------------------------------------------------------------------------
# A neutral view of resources (built from a mock Graph or from the policy engine's resources)
# --------------------------------------------------------------------------------------------


class Unknown:
    """A value the engine does not know yet (preview). Reading it makes the check undecided."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()


class UndecidedError(Exception):
    """Raised by `Res.get` when the value needed is unknown until apply."""

    def __init__(self, resource: Res, path: str):
        super().__init__(f"{resource.name}: input {path} is not known until apply")
        self.resource = resource
        self.path = path


def _contains_unknown(value: Any) -> bool:
    if isinstance(value, Unknown):
        return True
    if isinstance(value, dict):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_unknown(v) for v in value)
    return False


@dataclass(frozen=True)
class Res:
    """One resource: its type, names and recorded inputs, plus which resources each input came from."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    id: str = ""
    arn: str = ""
    parent: str = ""
    deps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, path: str, default: Any = None) -> Any:
        """The input at a dotted path (e.g. 'accessLogs.enabled'); raises UndecidedError if unknown."""
        value: Any = self.inputs
        for part in path.split("."):
            if isinstance(value, Unknown):
                raise UndecidedError(self, path)
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return default
        if _contains_unknown(value):
            raise UndecidedError(self, path)
        return value

    @property
    def keys(self) -> set[str]:
        """Strings other resources may use to refer to this one (id, ARN, physical name)."""
        names = {self.id, self.arn}
        for k in ("name", "bucket", "identifier"):
            v = self.inputs.get(k)
            if isinstance(v, str):
                names.add(v)
        names.discard("")
        return names


class Inventory:
    """All resources of one stack, with lookups by type and by reference."""

    def __init__(self, resources: Iterable[Res]):
        self.resources = [r for r in resources]
        self.by_urn = {r.urn: r for r in self.resources}

    def __iter__(self) -> Iterator[Res]:
        return iter(self.resources)

    def of_type(self, *types: str) -> list[Res]:
        return [r for r in self.resources if r.type in types]

    def has_component(self, token: str) -> bool:
        return any(r.type == token for r in self.resources)

    def refers_to(self, source: Res, prop: str, target: Res) -> bool:
        """True if `source.<prop>` was built from `target` (dependency) or holds its id/ARN/name."""
        if target.urn in source.deps.get(prop, ()):
            return True
        value = source.inputs.get(prop)
        values = value if isinstance(value, list) else [value]
        return any(isinstance(v, str) and v in target.keys for v in values)

    def referenced(self, source: Res, prop: str, *types: str) -> list[Res]:
        """The resources of `types` that `source.<prop>` refers to."""
        return [t for t in self.of_type(*types) if self.refers_to(source, prop, t)]

    def referring(self, target: Res, prop: str, *types: str) -> list[Res]:
        """The resources of `types` whose `<prop>` refers to `target`."""
        return [s for s in self.of_type(*types) if self.refers_to(s, prop, target)]

    @classmethod
    def from_graph(cls, graph: Graph) -> Inventory:
        return cls(
            Res(
                urn=r.urn,
                type=r.type,
                name=r.name,
                inputs=r.inputs,
                id=r.id,
                arn=str(r.state.get("arn", "")) if isinstance(r.state, dict) else "",
                parent=r.parent,
                deps={k: tuple(v) for k, v in r.property_dependencies.items()},
            )
            for r in graph.resources
        )


# --------------------------------------------------------------------------------------------
# Small readers shared by the rules
# --------------------------------------------------------------------------------------------

WORLD = ("0.0.0.0/0", "::/0")


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def policy_statements(document: Any) -> list[dict[str, Any]]:
    """The statements of an IAM policy document given as JSON text or a dict."""
    doc = _json(document)
    if not isinstance(doc, dict):
        return []
    return [s for s in _as_list(doc.get("Statement")) if isinstance(s, dict)]


def _allows(st: dict[str, Any], action: str) -> bool:
    """Does an Allow statement's Action (wildcards allowed) cover `action`?"""
    if st.get("Effect", "Allow") != "Allow":
        return False
    return any(fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in _as_list(st.get("Action")))


def _all_resources(st: dict[str, Any]) -> bool:
    return "*" in [str(r) for r in _as_list(st.get("Resource"))]


def _iam_documents(r: Res) -> list[tuple[str, Any]]:
    """(label, document) for every identity policy a resource carries."""
    if r.type == "aws:iam/role:Role":
        return [(f"inline policy {p.get('name', '?')}", p.get("policy")) for p in _as_list(r.get("inlinePolicies")) if isinstance(p, dict)]
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


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def ingress_rules(r: Res) -> list[IngressRule]:
    """Ingress rules declared by a SecurityGroup (inline), SecurityGroupRule or SecurityGroupIngressRule."""
    out: list[IngressRule] = []
    if r.type == "aws:ec2/securityGroup:SecurityGroup":
        for i, rule in enumerate(_as_list(r.get("ingress"))):
            if isinstance(rule, dict):
                cidrs = tuple(_as_list(rule.get("cidrBlocks")) + _as_list(rule.get("ipv6CidrBlocks")))
                out.append(IngressRule(r, str(rule.get("protocol", "-1")).lower(), _int(rule.get("fromPort"), 0), _int(rule.get("toPort"), 65535), cidrs, f"ingress[{i}]"))
    elif r.type == "aws:ec2/securityGroupRule:SecurityGroupRule" and r.get("type") == "ingress":
        cidrs = tuple(_as_list(r.get("cidrBlocks")) + _as_list(r.get("ipv6CidrBlocks")))
        out.append(IngressRule(r, str(r.get("protocol", "-1")).lower(), _int(r.get("fromPort"), 0), _int(r.get("toPort"), 65535), cidrs, "rule"))
    elif r.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        cidrs = tuple(c for c in (r.get("cidrIpv4"), r.get("cidrIpv6")) if c)
        out.append(IngressRule(r, str(r.get("ipProtocol", "-1")).lower(), _int(r.get("fromPort"), 0), _int(r.get("toPort"), 65535), cidrs, "rule"))
    return out


SG_RULE_TYPES = (
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
)


def _rules_of_group(inv: Inventory, sg: Res) -> list[IngressRule]:
    rules = ingress_rules(sg)
    for rule_res in inv.of_type("aws:ec2/securityGroupRule:SecurityGroupRule", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        if inv.refers_to(rule_res, "securityGroupId", sg):
            rules.extend(ingress_rules(rule_res))
    return rules


def _is_private(cidr: str) -> bool:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    if isinstance(net, ipaddress.IPv4Network):
        return any(net.subnet_of(ipaddress.IPv4Network(b)) for b in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
    return net.subnet_of(ipaddress.IPv6Network("fc00::/7"))


def container_definitions(r: Res) -> list[dict[str, Any]]:
    defs = _json(r.get("containerDefinitions"))
    return [d for d in _as_list(defs) if isinstance(d, dict)]


# --------------------------------------------------------------------------------------------
# The control catalogue
# --------------------------------------------------------------------------------------------

Check = Callable[[Res, Inventory], Iterable[str]]


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    level: str  # MUST_HOLD | WAIVABLE | ADVISORY
    types: tuple[str, ...]  # resource types evaluated (each one "checked")
    check: Check  # yields one problem per violation; nothing means the resource passes
    component: str | None = None  # the component whose wiring must produce `types`
    applies: Callable[[Res, Inventory], bool] | None = None
    needs_context: bool = False  # looks at other resources (stack policy) vs. one resource
    note: str = ""  # shown in the table (rationale of advisory controls, deviations from FSBP)
    condition: str = ""  # when the stack legitimately has none of `types` (then n/a is expected)

    def resources(self, inv: Inventory) -> list[Res]:
        return [r for r in inv.of_type(*self.types) if self.applies is None or self.applies(r, inv)]


CONTROLS: list[Control] = []


def control(
    id: str,  # noqa: A002 - FSBP vocabulary
    title: str,
    level: str,
    types: str | Sequence[str],
    *,
    component: str | None = None,
    applies: Callable[[Res, Inventory], bool] | None = None,
    context: bool = False,
    note: str = "",
    condition: str = "",
) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CONTROLS.append(
            Control(id, title, level, (types,) if isinstance(types, str) else tuple(types), fn, component, applies, context, note, condition)
        )
        return fn

    return register


def by_id(control_id: str) -> Control:
    for c in CONTROLS:
        if c.id == control_id:
            return c
    raise KeyError(control_id)


# ---- RDS ------------------------------------------------------------------------------------

RDS = "aws:rds/instance:Instance"
DEFAULT_MASTER_USERNAMES = frozenset({"postgres", "admin", "administrator", "root", "master", "rdsadmin", "sa", "user", "dbadmin", "awsuser"})


@control("RDS.2", "RDS DB instances should prohibit public access (PubliclyAccessible is false)", MUST_HOLD, RDS, component=DATABASE)
def _rds2(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("publiclyAccessible") is True:
        yield "publiclyAccessible is true"


@control("RDS.3", "RDS DB instances should have encryption at rest enabled", MUST_HOLD, RDS, component=DATABASE)
def _rds3(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("storageEncrypted") is not True:
        yield f"storageEncrypted is {r.get('storageEncrypted')!r}, not true"


@control("RDS.5", "RDS DB instances should be configured with multiple Availability Zones", WAIVABLE, RDS, component=DATABASE)
def _rds5(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("multiAz") is not True:
        yield "multiAz is not true"


@control("RDS.6", "Enhanced monitoring should be configured for RDS DB instances", WAIVABLE, RDS, component=DATABASE)
def _rds6(r: Res, inv: Inventory) -> Iterator[str]:
    if _int(r.get("monitoringInterval"), 0) <= 0:
        yield "monitoringInterval is not set (enhanced monitoring off)"
    elif not r.get("monitoringRoleArn"):
        yield "monitoringInterval is set but monitoringRoleArn is empty"


@control("RDS.8", "RDS DB instances should have deletion protection enabled", WAIVABLE, RDS, component=DATABASE)
def _rds8(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("deletionProtection") is not True:
        yield "deletionProtection is not true"


@control("RDS.9", "RDS DB instances should publish logs to CloudWatch Logs (PostgreSQL: postgresql, upgrade)", MUST_HOLD, RDS, component=DATABASE)
def _rds9(r: Res, inv: Inventory) -> Iterator[str]:
    missing = {"postgresql", "upgrade"} - set(_as_list(r.get("enabledCloudwatchLogsExports")))
    if missing:
        yield f"enabledCloudwatchLogsExports lacks {', '.join(sorted(missing))}"


@control("RDS.10", "IAM authentication should be configured for RDS instances", WAIVABLE, RDS, component=DATABASE)
def _rds10(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("iamDatabaseAuthenticationEnabled") is not True:
        yield "iamDatabaseAuthenticationEnabled is not true"


@control("RDS.11", "RDS instances should have automatic backups enabled (retention >= 7 days)", WAIVABLE, RDS, component=DATABASE)
def _rds11(r: Res, inv: Inventory) -> Iterator[str]:
    days = _int(r.get("backupRetentionPeriod"), 0)
    if days < 7:
        yield f"backupRetentionPeriod is {days} (< 7)"


@control("RDS.13", "RDS automatic minor version upgrades should be enabled", WAIVABLE, RDS, component=DATABASE)
def _rds13(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("autoMinorVersionUpgrade") is False:  # AWS default is true
        yield "autoMinorVersionUpgrade is false"


@control("RDS.17", "RDS DB instances should be configured to copy tags to snapshots", WAIVABLE, RDS, component=DATABASE)
def _rds17(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("copyTagsToSnapshot") is not True:
        yield "copyTagsToSnapshot is not true"


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
    port = _int(r.get("port"), defaults.get(str(r.get("engine", "postgres")), 5432))
    if port == defaults.get(str(r.get("engine", "postgres")), 5432):
        yield f"port is the engine default {port}"


@control("RDS.25", "RDS database instances should use a custom administrator username", MUST_HOLD, RDS, component=DATABASE)
def _rds25(r: Res, inv: Inventory) -> Iterator[str]:
    user = str(r.get("username") or "postgres")
    if user.lower() in DEFAULT_MASTER_USERNAMES:
        yield f"username {user!r} is a default administrator name"


@control("RDS.36", "RDS for PostgreSQL DB instances should publish logs to CloudWatch Logs", MUST_HOLD, RDS, component=DATABASE,
         applies=lambda r, inv: str(r.get("engine", "postgres")).startswith("postgres"))
def _rds36(r: Res, inv: Inventory) -> Iterator[str]:
    if "postgresql" not in _as_list(r.get("enabledCloudwatchLogsExports")):
        yield "enabledCloudwatchLogsExports lacks postgresql"


@control("RDS.38", "RDS for PostgreSQL DB instances should be encrypted in transit (rds.force_ssl=1)", MUST_HOLD, RDS, component=DATABASE, context=True,
         applies=lambda r, inv: str(r.get("engine", "postgres")).startswith("postgres"))
def _rds38(r: Res, inv: Inventory) -> Iterator[str]:
    groups = inv.referenced(r, "parameterGroupName", "aws:rds/parameterGroup:ParameterGroup")
    if not groups:
        yield f"parameterGroupName {r.get('parameterGroupName') or '<unset>'} is not a parameter group of this stack (a default group does not set rds.force_ssl explicitly)"
        return
    for group in groups:
        values = {str(p.get("name")): str(p.get("value")) for p in _as_list(group.get("parameters")) if isinstance(p, dict)}
        if values.get("rds.force_ssl") != "1":
            yield f"parameter group {group.name} has rds.force_ssl={values.get('rds.force_ssl', '<unset>')}, not 1"


INTERNET_TARGETS = ("gatewayId", "natGatewayId", "egressOnlyGatewayId", "transitGatewayId", "vpcPeeringConnectionId", "networkInterfaceId", "carrierGatewayId")


def _internet_routes(inv: Inventory, table: Res) -> list[str]:
    """Routes of a route table that lead out of the VPC (IGW, NAT, ...), described."""
    found = []
    routes: list[tuple[str, dict[str, Any]]] = [(f"{table.name} routes[{i}]", rt) for i, rt in enumerate(_as_list(table.get("routes"))) if isinstance(rt, dict)]
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
        for rule in _rules_of_group(inv, sg):
            public = [c for c in rule.cidrs if not _is_private(c)]
            if public:
                yield f"security group {sg.name}: {rule.describe()} admits non-private {', '.join(public)}"
            elif rule.all_ports:
                yield f"security group {sg.name}: {rule.describe()} opens every port"


# ---- ECS ------------------------------------------------------------------------------------

TASKDEF = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
SECRET_NAME_RE = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_KEY|ENGINE_AUTH)", re.I)
REFERENCE_SUFFIX_RE = re.compile(r"_(ARN|ID|NAME|FILE|PATH|REGION|URL_FILE)$", re.I)
URL_WITH_PASSWORD_RE = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
AWS_KEY_RE = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")


@control("ECS.2", "ECS services should not have public IP addresses assigned to them automatically", MUST_HOLD, ECS_SERVICE, component=SERVICE)
def _ecs2(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("networkConfiguration.assignPublicIp") is True:
        yield "networkConfiguration.assignPublicIp is true"


@control("ECS.3", "ECS task definitions should not share the host's process namespace", MUST_HOLD, TASKDEF, component=SERVICE)
def _ecs3(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("pidMode") == "host":
        yield "pidMode is host"


@control("ECS.4", "ECS containers should run as non-privileged", MUST_HOLD, TASKDEF, component=SERVICE)
def _ecs4(r: Res, inv: Inventory) -> Iterator[str]:
    for c in container_definitions(r):
        if c.get("privileged") is True:
            yield f"container {c.get('name')!r} is privileged"


@control("ECS.5", "ECS containers should be limited to read-only access to root filesystems", WAIVABLE, TASKDEF, component=SERVICE)
def _ecs5(r: Res, inv: Inventory) -> Iterator[str]:
    for c in container_definitions(r):
        if c.get("readonlyRootFilesystem") is not True:
            yield f"container {c.get('name')!r} has readonlyRootFilesystem {c.get('readonlyRootFilesystem')!r}, not true"


@control("ECS.8", "Secrets should not be passed as container environment variables", MUST_HOLD, TASKDEF, component=SERVICE,
         note="covers AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/ECS_ENGINE_AUTH_DATA (FSBP) plus password/secret/token-like names, AWS keys and URLs with passwords")
def _ecs8(r: Res, inv: Inventory) -> Iterator[str]:
    for c in container_definitions(r):
        for env in _as_list(c.get("environment")):
            if not isinstance(env, dict):
                continue
            name, value = str(env.get("name", "")), str(env.get("value", ""))
            if SECRET_NAME_RE.search(name) and not REFERENCE_SUFFIX_RE.search(name) and not value.startswith("arn:"):
                yield f"container {c.get('name')!r} sets secret-like environment variable {name} (use `secrets` with valueFrom)"
            elif URL_WITH_PASSWORD_RE.search(value) or AWS_KEY_RE.search(value):
                yield f"container {c.get('name')!r} environment variable {name} holds a credential"


@control("ECS.9", "ECS task definitions should have a logging configuration", MUST_HOLD, TASKDEF, component=SERVICE)
def _ecs9(r: Res, inv: Inventory) -> Iterator[str]:
    defs = container_definitions(r)
    if not defs:
        yield "containerDefinitions is empty or not JSON"
    for c in defs:
        if not (c.get("logConfiguration") or {}).get("logDriver"):
            yield f"container {c.get('name')!r} has no logConfiguration.logDriver"


FARGATE_LATEST = ("LATEST", "1.4.0")


def _is_fargate(r: Res, inv: Inventory) -> bool:
    if r.get("launchType") == "FARGATE":
        return True
    return any(str(s.get("capacityProvider", "")).startswith("FARGATE") for s in _as_list(r.get("capacityProviderStrategies")) if isinstance(s, dict))


@control("ECS.10", "ECS Fargate services should run on the latest Fargate platform version", WAIVABLE, ECS_SERVICE, component=SERVICE, applies=_is_fargate)
def _ecs10(r: Res, inv: Inventory) -> Iterator[str]:
    version = r.get("platformVersion")
    if version not in (None, "", *FARGATE_LATEST):
        yield f"platformVersion is {version!r}, not LATEST (1.4.0)"


@control("ECS.12", "ECS clusters should use Container Insights", WAIVABLE, "aws:ecs/cluster:Cluster", component=SERVICE)
def _ecs12(r: Res, inv: Inventory) -> Iterator[str]:
    settings = {s.get("name"): s.get("value") for s in _as_list(r.get("settings")) if isinstance(s, dict)}
    if settings.get("containerInsights") not in ("enabled", "enhanced"):
        yield f"settings containerInsights is {settings.get('containerInsights', '<unset>')!r}, not enabled"


# ---- ECR ------------------------------------------------------------------------------------

ECR_REPO = "aws:ecr/repository:Repository"


@control("ECR.1", "ECR private repositories should have image scanning configured (scan on push)", MUST_HOLD, ECR_REPO, component=REGISTRY, context=True)
def _ecr1(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("imageScanningConfiguration.scanOnPush") is True:
        return
    for reg in inv.of_type("aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration"):
        if reg.get("scanType") == "ENHANCED" or any(
            isinstance(rule, dict) and rule.get("scanFrequency") in ("SCAN_ON_PUSH", "CONTINUOUS_SCAN") for rule in _as_list(reg.get("rules"))
        ):
            return
    yield "imageScanningConfiguration.scanOnPush is not true and no registry scanning configuration scans on push"


@control("ECR.2", "ECR private repositories should have tag immutability configured", MUST_HOLD, ECR_REPO, component=REGISTRY)
def _ecr2(r: Res, inv: Inventory) -> Iterator[str]:
    mutability = r.get("imageTagMutability") or "MUTABLE"
    if not str(mutability).startswith("IMMUTABLE"):
        yield f"imageTagMutability is {mutability}"


@control("ECR.3", "ECR repositories should have at least one lifecycle policy configured", WAIVABLE, ECR_REPO, component=REGISTRY, context=True)
def _ecr3(r: Res, inv: Inventory) -> Iterator[str]:
    policies = [p for p in inv.referring(r, "repository", "aws:ecr/lifecyclePolicy:LifecyclePolicy") if policy_statements(p.get("policy")) or _json(p.get("policy"))]
    if not policies:
        yield "no aws:ecr/lifecyclePolicy:LifecyclePolicy refers to this repository"


@control("ECR.5", "ECR repositories should be encrypted with customer managed AWS KMS keys", MUST_HOLD, ECR_REPO, component=REGISTRY)
def _ecr5(r: Res, inv: Inventory) -> Iterator[str]:
    configs = [c for c in _as_list(r.get("encryptionConfigurations")) if isinstance(c, dict)]
    if not any(c.get("encryptionType") == "KMS" and c.get("kmsKey") for c in configs):
        yield "encryptionConfigurations has no KMS entry with a kmsKey (customer managed key)"


# ---- ELB ------------------------------------------------------------------------------------

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
        actions = [a for a in _as_list(listener.get("defaultActions")) if isinstance(a, dict)]
        redirects = [a for a in actions if a.get("type") == "redirect" and str((a.get("redirect") or {}).get("protocol", "")).upper() == "HTTPS"]
        if not redirects:
            yield f"HTTP listener {listener.name} (port {listener.get('port')}) does not redirect to HTTPS"


@control("ELB.4", "Application Load Balancers should drop invalid HTTP headers", MUST_HOLD, LB, component=SERVICE, applies=_is_alb)
def _elb4(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("dropInvalidHeaderFields") is not True:
        yield "dropInvalidHeaderFields is not true"


@control("ELB.5", "Application and Classic Load Balancers logging should be enabled", WAIVABLE, LB, component=SERVICE, applies=_is_alb)
def _elb5(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("accessLogs.enabled") is not True or not r.get("accessLogs.bucket"):
        yield "accessLogs is not enabled with a bucket"


@control("ELB.6", "Application, Gateway and Network Load Balancers should have deletion protection enabled", WAIVABLE, LB, component=SERVICE)
def _elb6(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("enableDeletionProtection") is not True:
        yield "enableDeletionProtection is not true"


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


# ---- EC2 / VPC --------------------------------------------------------------------------------

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
            rules = _as_list(sg.get(direction))
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


# ---- KMS / IAM --------------------------------------------------------------------------------

MANAGED_POLICY = "aws:iam/policy:Policy"
INLINE_POLICY_TYPES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/userPolicy:UserPolicy", "aws:iam/groupPolicy:GroupPolicy", "aws:iam/role:Role")


def _kms_decrypt_on_all(r: Res) -> Iterator[str]:
    for label, doc in _iam_documents(r):
        for st in policy_statements(doc):
            if _all_resources(st) and (_allows(st, "kms:Decrypt") or _allows(st, "kms:ReEncryptFrom")):
                yield f"{label} allows {st.get('Action')} on Resource '*' (statement {st.get('Sid', '?')})"


@control("KMS.1", "IAM customer managed policies should not allow decryption actions on all KMS keys", MUST_HOLD, MANAGED_POLICY)
def _kms1(r: Res, inv: Inventory) -> Iterator[str]:
    yield from _kms_decrypt_on_all(r)


@control("KMS.2", "IAM principals should not have IAM inline policies that allow decryption actions on all KMS keys", MUST_HOLD, INLINE_POLICY_TYPES, component=NETWORK)
def _kms2(r: Res, inv: Inventory) -> Iterator[str]:
    yield from _kms_decrypt_on_all(r)


@control("KMS.4", "AWS KMS key rotation should be enabled", MUST_HOLD, "aws:kms/key:Key", component=NETWORK,
         applies=lambda r, inv: (r.get("customerMasterKeySpec") or r.get("keySpec") or "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT")
def _kms4(r: Res, inv: Inventory) -> Iterator[str]:
    if r.get("enableKeyRotation") is not True:
        yield "enableKeyRotation is not true"


@control("IAM.1", "IAM policies should not allow full '*' administrative privileges", MUST_HOLD, (MANAGED_POLICY, *INLINE_POLICY_TYPES), component=NETWORK,
         note="FSBP checks customer managed policies; inline policies are checked too")
def _iam1(r: Res, inv: Inventory) -> Iterator[str]:
    for label, doc in _iam_documents(r):
        for st in policy_statements(doc):
            if st.get("Effect", "Allow") == "Allow" and _all_resources(st) and any(str(a) in ("*", "*:*") for a in _as_list(st.get("Action"))):
                yield f"{label} allows Action '*' on Resource '*' (statement {st.get('Sid', '?')})"


@control("IAM.21", "IAM policies should not allow wildcard actions for services (e.g. s3:*)", WAIVABLE, (MANAGED_POLICY, *INLINE_POLICY_TYPES), component=NETWORK,
         note="FSBP checks customer managed policies; inline policies are checked too")
def _iam21(r: Res, inv: Inventory) -> Iterator[str]:
    for label, doc in _iam_documents(r):
        for st in policy_statements(doc):
            if st.get("Effect", "Allow") != "Allow":
                continue
            wild = [str(a) for a in _as_list(st.get("Action")) if re.fullmatch(r"[A-Za-z0-9-]+:\*", str(a))]
            if wild:
                yield f"{label} allows {', '.join(wild)} (statement {st.get('Sid', '?')})"


# ---- Secrets, logs, S3 -------------------------------------------------------------------------

SECRET = "aws:secretsmanager/secret:Secret"
BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")


@control("PGH.1", "Secrets Manager secrets should be encrypted with a customer managed KMS key", MUST_HOLD, SECRET, component=DATABASE)
def _pgh1(r: Res, inv: Inventory) -> Iterator[str]:
    if not r.get("kmsKeyId"):
        yield "kmsKeyId is not set (aws/secretsmanager key)"


@control("PGH.2", "CloudWatch log groups should be encrypted with a KMS key", MUST_HOLD, "aws:cloudwatch/logGroup:LogGroup", component=NETWORK)
def _pgh2(r: Res, inv: Inventory) -> Iterator[str]:
    if not r.get("kmsKeyId"):
        yield "kmsKeyId is not set"


@control(
    "SecretsManager.1",
    "Secrets Manager secrets should have automatic rotation enabled",
    MUST_HOLD,
    SECRET,
    component=DATABASE,
    context=True,
    note="the rotation function (components/rotation_function.py) rotates every DB secret on a schedule",
)
def _sm1(r: Res, inv: Inventory) -> Iterator[str]:
    rotations = [x for x in inv.referring(r, "secretId", "aws:secretsmanager/secretRotation:SecretRotation") if x.get("rotationEnabled") is not False]
    if not rotations:
        yield "no aws:secretsmanager/secretRotation:SecretRotation"
    for x in rotations:
        if not x.get("rotationLambdaArn"):
            yield "its SecretRotation names no rotation function"


SM4_MAX_DAYS = 90  # Security Hub's default maxDaysSinceRotation


@control(
    "SecretsManager.4",
    f"Secrets Manager secrets should be rotated within {SM4_MAX_DAYS} days",
    MUST_HOLD,
    SECRET,
    component=DATABASE,
    context=True,
    note="checked against the configured schedule (dbSecretRotationDays); the live check also needs the rotations to succeed",
)
def _sm4(r: Res, inv: Inventory) -> Iterator[str]:
    rotations = inv.referring(r, "secretId", "aws:secretsmanager/secretRotation:SecretRotation")
    if not rotations:
        yield "not rotated on a schedule"
    for x in rotations:
        days = x.get("rotationRules.automaticallyAfterDays")
        if days is None:
            yield "its rotation schedule is not a number of days (automaticallyAfterDays)"
        elif int(days) > SM4_MAX_DAYS:
            yield f"rotated every {days} days (more than {SM4_MAX_DAYS})"


def _bucket_children(inv: Inventory, bucket: Res, type_: str) -> list[Res]:
    return inv.referring(bucket, "bucket", type_)


def _denies_insecure_transport(doc: Any) -> bool:
    for st in policy_statements(doc):
        if st.get("Effect") != "Deny":
            continue
        for test, pairs in (st.get("Condition") or {}).items():
            if test.startswith("Bool") and isinstance(pairs, dict) and str(pairs.get("aws:SecureTransport", "")).lower() == "false":
                return True
    return False


@control("S3.5", "S3 general purpose buckets should require requests to use SSL", MUST_HOLD, BUCKET_TYPES, component=SERVICE, context=True,
         condition="only stacks with a bucket (the ALB access-log bucket) have one")
def _s3_5(r: Res, inv: Inventory) -> Iterator[str]:
    docs = [r.get("policy")] + [p.get("policy") for p in _bucket_children(inv, r, "aws:s3/bucketPolicy:BucketPolicy")]
    if not any(_denies_insecure_transport(d) for d in docs if d):
        yield "no bucket policy denies requests with aws:SecureTransport false"


@control("S3.8", "S3 general purpose buckets should block public access", MUST_HOLD, BUCKET_TYPES, component=SERVICE, context=True,
         condition="only stacks with a bucket (the ALB access-log bucket) have one")
def _s3_8(r: Res, inv: Inventory) -> Iterator[str]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    blocks = _bucket_children(inv, r, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    if not blocks:
        yield "no aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock for this bucket"
    for block in blocks:
        off = [f for f in flags if block.get(f) is not True]
        if off:
            yield f"{block.name}: {', '.join(off)} not true"


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    control_id: str
    resource: str  # resource name
    urn: str
    message: str

    def __str__(self) -> str:
        return f"{self.control_id} {self.resource}: {self.message}"


@dataclass
class ControlResult:
    control: Control
    status: str
    checked: int
    findings: list[Finding]
    undecided: list[str] = field(default_factory=list)
    reason: str = ""  # waiver reason, or the advisory note

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclass
class Report:
    stack: str
    results: list[ControlResult]
    waiver_notes: list[str]  # waivers that are unused or refused

    def result(self, control_id: str) -> ControlResult:
        for r in self.results:
            if r.control.id == control_id:
                return r
        raise KeyError(control_id)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[ControlResult]:
        return [r for r in self.results if r.failed]

    @property
    def must_hold_failed(self) -> list[ControlResult]:
        return [r for r in self.failed if r.control.level == MUST_HOLD]

    def summary(self) -> str:
        return (
            f"Security controls for stack {self.stack}: {self.count(PASS)} passed / {self.count(WAIVED)} waived / "
            f"{self.count(FAIL)} failed / {self.count(ADVISED)} advisory / {self.count(NOT_APPLICABLE)} n/a "
            f"({len(self.must_hold_failed)} must-hold failed)"
        )

    def render(self, full: bool = True) -> str:
        """The table (all controls when `full`, else only those not passing), then the summary."""
        rows = [("CONTROL", "CLASS", "CHECKED", "STATUS", "TITLE / DETAIL")]
        lines: list[str] = []
        for res in self.results:
            if not full and res.status in (PASS, NOT_APPLICABLE):
                continue
            rows.append((res.control.id, res.control.level, str(res.checked), res.status, res.control.title))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        details: dict[str, list[str]] = {}
        for res in self.results:
            extra = []
            if res.status == WAIVED:
                extra.append(f"waived: {res.reason}")
            elif res.status == ADVISED:
                extra.append(f"note: {res.reason}")
            elif res.status == NOT_APPLICABLE:
                extra.append(f"n/a: no {' / '.join(res.control.types)} in this graph" + (f" ({res.control.condition})" if res.control.condition else ""))
            if res.status in (FAIL, WAIVED, ADVISED):
                extra.extend(f"- {f.resource}: {f.message}" for f in res.findings)
            if res.undecided:
                extra.extend(f"? {u}" for u in res.undecided)
            details[res.control.id] = extra
        if len(rows) == 1:  # nothing to list: only the summary
            rows = []
        for i, row in enumerate(rows):
            lines.append("  ".join(f"{cell:<{widths[j]}}" for j, cell in enumerate(row[:4])) + "  " + row[4])
            if i == 0:
                lines.append("-" * min(160, sum(widths) + 60))
                continue
            indent = " " * (sum(widths) + 8)
            lines.extend(indent + d for d in details.get(row[0], []) if full or not d.startswith("n/a"))
        lines.extend(f"note: {n}" for n in self.waiver_notes)
        lines.append(self.summary())
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "controls": [
                {
                    "id": r.control.id,
                    "title": r.control.title,
                    "class": r.control.level,
                    "checked": r.checked,
                    "status": r.status,
                    "reason": r.reason,
                    "findings": [{"resource": f.resource, "message": f.message} for f in r.findings],
                    "undecided": r.undecided,
                }
                for r in self.results
            ],
            "waiverNotes": self.waiver_notes,
            "summary": self.summary(),
        }


def check_resource(ctl: Control, r: Res, inv: Inventory) -> list[Finding]:
    """The findings of one control on one resource (raises UndecidedError if an input is unknown)."""
    return [Finding(ctl.id, r.name, r.urn, msg) for msg in ctl.check(r, inv)]


def evaluate_control(ctl: Control, inv: Inventory, waivers: Mapping[str, str] | None = None) -> ControlResult:
    waivers = waivers or {}
    findings: list[Finding] = []
    undecided: list[str] = []
    checked = 0
    for r in inv.of_type(*ctl.types):
        try:
            if ctl.applies is not None and not ctl.applies(r, inv):
                continue
            checked += 1
            findings.extend(check_resource(ctl, r, inv))
        except UndecidedError as exc:
            undecided.append(str(exc))
    if checked == 0:
        return ControlResult(ctl, NOT_APPLICABLE, 0, [], undecided)
    if not findings:
        return ControlResult(ctl, PASS, checked, [], undecided)
    if ctl.level == ADVISORY:
        return ControlResult(ctl, ADVISED, checked, findings, undecided, ctl.note)
    if ctl.level == WAIVABLE and ctl.id in waivers:
        return ControlResult(ctl, WAIVED, checked, findings, undecided, waivers[ctl.id])
    return ControlResult(ctl, FAIL, checked, findings, undecided)


def waiver_problems(waivers: Mapping[str, str]) -> list[str]:
    """Waivers naming an unknown control or one that may never be waived (used by the config loader)."""
    known = {c.id: c for c in CONTROLS}
    problems = []
    for control_id in sorted(waivers):
        ctl = known.get(control_id)
        if ctl is None:
            problems.append(f"{control_id} is not a control this project checks (known: {', '.join(c.id for c in CONTROLS)})")
        elif ctl.level != WAIVABLE:
            problems.append(f"{control_id} is a {ctl.level} control and cannot be waived")
    return problems


def evaluate(inv: Inventory, *, stack: str = "", waivers: Mapping[str, str] | None = None, controls: Sequence[Control] | None = None) -> Report:
    waivers = dict(waivers or {})
    results = [evaluate_control(c, inv, waivers) for c in (controls or CONTROLS)]
    notes = [f"waiver {p} (ignored)" for p in waiver_problems(waivers)]
    for res in results:
        if res.control.id in waivers and res.control.level == WAIVABLE and res.status != WAIVED:
            why = "the control is n/a in this graph" if res.status == NOT_APPLICABLE else f"the control is {res.status}"
            notes.append(f"waiver {res.control.id} is unused: {why}")
    return Report(stack, results, notes)


def check_graph(graph: Graph, waivers: Mapping[str, str] | None = None) -> Report:
    """Evaluate every control on a recorded graph; waivers default to the stack's securityWaivers."""
    if waivers is None:
        from components.config import load_settings

        waivers = load_settings(graph.config, stack=graph.stack).security.waivers
    return evaluate(Inventory.from_graph(graph), stack=graph.stack, waivers=waivers)

"""The offline plan: run the program under mocks and print what `pulumi up` would create."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import controls
from bootstrap.plan.mockgraph import Graph, Resource
from config.load import load_settings

# The settings worth seeing at a glance, per resource type (input paths, dotted).
KEY_SETTINGS: Mapping[str, tuple[str, ...]] = {
    "pulumi:providers:aws": ("region",),
    "aws:ec2/vpc:Vpc": ("cidrBlock", "enableDnsSupport", "enableDnsHostnames"),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "cidrBlock", "mapPublicIpOnLaunch"),
    "aws:ec2/route:Route": ("destinationCidrBlock",),
    "aws:ec2/natGateway:NatGateway": ("connectivityType",),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcEndpointType"),
    "aws:ec2/flowLog:FlowLog": ("trafficType", "logDestinationType"),
    "aws:ec2/securityGroup:SecurityGroup": ("name",),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("ipProtocol", "fromPort", "toPort", "cidrIpv4", "referencedSecurityGroupId"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("ipProtocol", "fromPort", "toPort", "cidrIpv4", "referencedSecurityGroupId"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:kms/key:Key": ("enableKeyRotation", "deletionWindowInDays"),
    "aws:kms/alias:Alias": ("name",),
    "aws:iam/role:Role": ("name",),
    "aws:rds/instance:Instance": (
        "identifier", "engineVersion", "instanceClass", "storageType", "allocatedStorage", "maxAllocatedStorage", "multiAz",
        "storageEncrypted", "publiclyAccessible", "iamDatabaseAuthenticationEnabled", "deletionProtection", "backupRetentionPeriod",
        "skipFinalSnapshot", "performanceInsightsEnabled", "monitoringInterval", "caCertIdentifier",
    ),
    "aws:rds/parameterGroup:ParameterGroup": ("name", "family"),
    "aws:rds/subnetGroup:SubnetGroup": ("name",),
    "aws:secretsmanager/secret:Secret": ("name", "recoveryWindowInDays"),
    "aws:ecr/repository:Repository": ("name", "imageTagMutability"),
    "aws:ecs/service:Service": ("desiredCount", "launchType", "enableExecuteCommand"),
    "aws:ecs/taskDefinition:TaskDefinition": ("family", "cpu", "memory"),
    "aws:lb/loadBalancer:LoadBalancer": ("internal", "dropInvalidHeaderFields", "enableDeletionProtection"),
    "aws:lb/listener:Listener": ("protocol", "port", "sslPolicy"),
    "aws:lb/targetGroup:TargetGroup": ("protocol", "port", "targetType"),
    "aws:ecs/cluster:Cluster": ("name", "settings.0.value"),
    "aws:appautoscaling/target:Target": ("minCapacity", "maxCapacity"),
    "aws:s3/bucket:Bucket": ("bucket",),
    "aws:acm/certificate:Certificate": ("domainName", "validationMethod"),
    "random:index/randomPassword:RandomPassword": ("length", "special"),
}


def _short_type(type_: str) -> str:
    pkg, _, rest = type_.partition(":")
    module, _, kind = rest.partition(":")
    kind = kind or module
    module = module.split("/")[0]
    return f"{pkg}:{module}:{kind}" if module and module != "index" else f"{pkg}:{kind}"


def _settings(resource: Resource) -> str:
    parts = []
    for path in KEY_SETTINGS.get(resource.type, ()):
        value = resource.get(path)
        if value is None:
            continue
        shown = "[secret]" if resource.is_secret(path) else (json.dumps(value) if not isinstance(value, str) else value)
        parts.append(f"{path}={shown}")
    options = []
    if resource.protect:
        options.append("protect")
    if resource.ignore_changes:
        options.append("ignoreChanges=" + ",".join(resource.ignore_changes))
    if resource.secret_paths:
        options.append("secret inputs: " + ",".join(sorted(resource.secret_paths)))
    return " ".join(parts + options)


def ordered(graph: Graph) -> list[Resource]:
    """Resources grouped under their component, in a stable order (registration order is racy)."""
    children: dict[str, list[Resource]] = {}
    for r in graph.resources:
        children.setdefault(r.parent, []).append(r)
    out: list[Resource] = []

    def walk(parent: str) -> None:
        for r in sorted(children.get(parent, []), key=lambda r: (r.custom, r.type, r.name)):
            out.append(r)
            walk(r.urn)

    roots = {r.parent for r in graph.resources} - {r.urn for r in graph.resources}
    for root in sorted(roots):
        walk(root)
    return out


def render_table(graph: Graph) -> str:
    rows = [("TYPE", "NAME", "PARENT", "KEY SETTINGS")]
    names = {r.urn: r.name for r in graph.resources}
    for r in ordered(graph):
        rows.append((_short_type(r.type), r.name, names.get(r.parent, "(stack)"), _settings(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip() for a, b, c, d in rows]
    lines.insert(1, "-" * min(160, sum(widths) + 20))
    counts: dict[str, int] = {}
    for r in graph.resources:
        key = "component" if not r.custom else ("provider" if r.type.startswith("pulumi:providers:") else "resource")
        counts[key] = counts.get(key, 0) + 1
    lines.append("")
    lines.append(
        f"Plan for stack {graph.stack}: {len(graph.resources)} to create "
        f"({counts.get('resource', 0)} resources, {counts.get('component', 0)} components, {counts.get('provider', 0)} providers)."
    )
    return "\n".join(lines)


def render_outputs(graph: Graph) -> str:
    lines = ["Outputs:"]
    for key in sorted(graph.outputs):
        value = "[secret]" if key in graph.secret_outputs else json.dumps(graph.outputs[key])
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def _asset(value: Any) -> Any:
    """A pulumi FileArchive/FileAsset as its path (relative to the project when inside it), not its repr."""
    path = getattr(value, "path", None)
    if type(value).__module__ == "pulumi.asset" and isinstance(path, str):
        project = Path(__file__).resolve().parents[2]
        shown = Path(path).resolve()
        return {type(value).__name__: str(shown.relative_to(project)) if shown.is_relative_to(project) else path}
    return value


# `plan --json`'s schemaVersion (docs/plan-json.md): bumped when a field is removed, renamed or
# changes meaning; new fields may appear within a version.
JSON_SCHEMA_VERSION = 1


def as_json(graph: Graph) -> dict[str, Any]:
    return {
        "stack": graph.stack,
        "resources": [
            {
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "inputs": {k: ("[secret]" if r.is_secret(k) else _asset(v)) for k, v in r.inputs.items()},
                "protect": r.protect,
                "ignoreChanges": r.ignore_changes,
            }
            for r in ordered(graph)
        ],
        "outputs": {k: ("[secret]" if k in graph.secret_outputs else v) for k, v in graph.outputs.items()},
        "count": len(graph.resources),
    }


def check_graph(graph: Graph, waivers: Mapping[str, str] | None = None) -> controls.Report:
    """Evaluate every security control on a recorded graph; waivers default to the stack's securityWaivers."""
    if waivers is None:
        waivers = load_settings(graph.config, stack=graph.stack).security.waivers
    return controls.evaluate(graph.inventory(), stack=graph.stack, waivers=waivers)

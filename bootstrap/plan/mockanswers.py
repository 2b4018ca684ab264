"""What the mocks answer: computed state for registered resources and canned data-source results.

Two tables, both keyed by Pulumi type token: `STATE_BUILDERS` (ids, ARNs, endpoints a resource
gets once created) and `CALL_HANDLERS` (AZs, caller identity, policy documents, ...). An invoke
missing from `CALL_HANDLERS` fails loudly in the harness; a resource type missing from
`STATE_BUILDERS` gets a default id and ARN.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ACCOUNT_ID = "123456789012"
# The regional Elastic Load Balancing account ids (for ALB access-log bucket policies).
ELB_ACCOUNTS = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-west-3": "009996457667",
    "eu-central-1": "054676820928",
    "eu-north-1": "897822967062",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864",
}





def _policy_document(args: dict[str, Any]) -> dict[str, Any]:
    """Render aws.iam.get_policy_document arguments the way the provider does (enough for checks)."""

    def one_or_list(values: list[str]) -> Any:
        return values[0] if len(values) == 1 else list(values)

    statements = []
    for st in args.get("statements") or []:
        out: dict[str, Any] = {}
        if st.get("sid"):
            out["Sid"] = st["sid"]
        out["Effect"] = st.get("effect") or "Allow"
        for src, dst in (("actions", "Action"), ("notActions", "NotAction"), ("resources", "Resource"), ("notResources", "NotResource")):
            if st.get(src):
                out[dst] = one_or_list(st[src])
        for src, dst in (("principals", "Principal"), ("notPrincipals", "NotPrincipal")):
            if st.get(src):
                principal: dict[str, Any] = {}
                for p in st[src]:
                    principal.setdefault(p["type"], []).extend(p["identifiers"])
                if dst == "Principal" and list(principal) == ["*"] and principal["*"] == ["*"]:
                    out[dst] = "*"
                else:
                    out[dst] = {k: one_or_list(v) for k, v in principal.items()}
        if st.get("conditions"):
            cond: dict[str, dict[str, Any]] = {}
            for c in st["conditions"]:
                cond.setdefault(c["test"], {})[c["variable"]] = one_or_list(c["values"])
            out["Condition"] = cond
        statements.append(out)
    return {"Version": args.get("version") or "2012-10-17", "Statement": statements}


def _fake_secret(seed: str, length: int) -> str:
    """A deterministic stand-in for a generated secret (mocks never hand out real randomness)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    digest = hashlib.sha256(seed.encode()).digest()
    while len(digest) < length:
        digest += hashlib.sha256(digest).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


CallHandler = Callable[[dict[str, Any], str], dict[str, Any]]


def _azs(args: dict[str, Any], region: str) -> dict[str, Any]:
    """Six standard zones, plus an opted-in Local Zone that sorts first (as real regions can have)
    unless the caller filters on opt-in-status opt-in-not-required."""
    letters = "abcdef"
    names = [f"{region}{c}" for c in letters]
    ids = [f"{region[:3]}{region.split('-')[-1]}-az{i + 1}" for i in range(len(letters))]
    standard_only = any(f.get("name") == "opt-in-status" and f.get("values") == ["opt-in-not-required"] for f in args.get("filters") or [])
    if not standard_only:
        names, ids = [f"{region}-lcl-1a", *names], [f"{region[:3]}-lcl1-az1", *ids]
    return {"id": region, "names": names, "zoneIds": ids, "state": "available", "groupNames": [region]}


CALL_HANDLERS: dict[str, CallHandler] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": _azs,
    "aws:index/getCallerIdentity:getCallerIdentity": lambda a, region: {
        "id": ACCOUNT_ID,
        "accountId": ACCOUNT_ID,
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/mock",
        "userId": "AIDAMOCK",
    },
    "aws:index/getRegion:getRegion": lambda a, region: {
        "id": region,
        "name": region,
        "region": region,
        "endpoint": f"ec2.{region}.amazonaws.com",
        "description": region,
    },
    "aws:index/getPartition:getPartition": lambda a, region: {
        "id": "aws",
        "partition": "aws",
        "dnsSuffix": "amazonaws.com",
        "reverseDnsPrefix": "com.amazonaws",
    },
    "aws:iam/getPolicyDocument:getPolicyDocument": lambda a, region: {
        "id": "policy",
        "json": json.dumps(_policy_document(a), indent=2),
        "minifiedJson": json.dumps(_policy_document(a), separators=(",", ":")),
    },
    "aws:elb/getServiceAccount:getServiceAccount": lambda a, region: {
        "id": ELB_ACCOUNTS.get(a.get("region") or region, "156460612806"),
        "arn": f"arn:aws:iam::{ELB_ACCOUNTS.get(a.get('region') or region, '156460612806')}:root",
    },
}


def _hashed(prefix: str, name: str, length: int = 17) -> str:
    return prefix + hashlib.sha1(name.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Ctx:
    """What a state builder knows about the resource being registered."""

    name: str
    inputs: dict[str, Any]
    region: str
    physical: str


# type -> builder(ctx) -> (id or None to keep the default, extra state). The default id is
# '<physical>-id' and the default ARN 'arn:aws:<module>:<region>:<account>:<kind>/<physical>'.
StateBuilder = Callable[[Ctx], tuple[str | None, dict[str, Any]]]


def _rds_instance(c: Ctx) -> tuple[str | None, dict[str, Any]]:
    ident = str(c.inputs.get("identifier") or c.name)
    address = f"{ident}.abcdefghijkl.{c.region}.rds.amazonaws.com"
    port = c.inputs.get("port", 5432)
    return ident, {
        "address": address,
        "endpoint": f"{address}:{port}",
        "port": port,
        "resourceId": "db-" + hashlib.sha1(c.name.encode()).hexdigest()[:26].upper(),
        "arn": f"arn:aws:rds:{c.region}:{ACCOUNT_ID}:db:{ident}",
        "hostedZoneId": "Z29XKXDKYMONMX",
    }


def _kms_key(c: Ctx) -> tuple[str | None, dict[str, Any]]:
    key_id = _hashed("", c.name, 8) + "-0000-4000-8000-000000000000"
    return key_id, {"keyId": key_id, "arn": f"arn:aws:kms:{c.region}:{ACCOUNT_ID}:key/{key_id}"}


def _task_definition(c: Ctx) -> tuple[str | None, dict[str, Any]]:
    family = str(c.inputs.get("family") or c.physical)
    base = f"arn:aws:ecs:{c.region}:{ACCOUNT_ID}:task-definition/{family}"
    return None, {"arn": f"{base}:1", "arnWithoutRevision": base, "revision": 1}


def _acm_certificate(c: Ctx) -> tuple[str | None, dict[str, Any]]:
    domain = c.inputs.get("domainName", "")
    return None, {
        "domainValidationOptions": [
            {"domainName": domain, "resourceRecordName": f"_x1.{domain}.", "resourceRecordType": "CNAME", "resourceRecordValue": "_x2.acm-validations.aws."}
        ]
    }


def _route53_record(c: Ctx) -> tuple[str | None, dict[str, Any]]:
    fqdn = str(c.inputs.get("name", "")).rstrip(".")
    return f"{c.inputs.get('zoneId', 'Z')}_{fqdn}_{c.inputs.get('type', 'A')}", {"fqdn": fqdn}


def _s3_bucket(c: Ctx) -> tuple[str | None, dict[str, Any]]:
    bucket = str(c.inputs.get("bucket") or c.physical)
    return bucket, {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "id": bucket}


def _secret(c: Ctx) -> tuple[str | None, dict[str, Any]]:
    arn = f"arn:aws:secretsmanager:{c.region}:{ACCOUNT_ID}:secret:{c.physical}-AbCdEf"
    return arn, {"arn": arn}


def _random_password(c: Ctx) -> tuple[str | None, dict[str, Any]]:
    return None, {"result": _fake_secret(c.name, int(c.inputs.get("length", 32))), "bcryptHash": "$2a$10$mock"}


def _random_id(c: Ctx) -> tuple[str | None, dict[str, Any]]:
    raw = hashlib.sha1(c.name.encode()).hexdigest()[: 2 * int(c.inputs.get("byteLength", 4))]
    return raw, {"hex": raw, "dec": str(int(raw, 16)), "b64Std": raw, "b64Url": raw}


def _arn_as_id(arn: str) -> tuple[str | None, dict[str, Any]]:
    return arn, {"arn": arn}


STATE_BUILDERS: dict[str, StateBuilder] = {
    # ARN shapes from the services' references: SNS topics and CloudWatch alarms name the resource
    # after a colon, EventBridge rules after "rule/"; an SNS topic's id is its ARN.
    "aws:sns/topic:Topic": lambda c: _arn_as_id(f"arn:aws:sns:{c.region}:{ACCOUNT_ID}:{c.physical}"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": lambda c: (c.physical, {"arn": f"arn:aws:cloudwatch:{c.region}:{ACCOUNT_ID}:alarm:{c.physical}"}),
    "aws:cloudwatch/eventRule:EventRule": lambda c: (c.physical, {"arn": f"arn:aws:events:{c.region}:{ACCOUNT_ID}:rule/{c.physical}"}),
    "aws:ec2/vpc:Vpc": lambda c: (
        _hashed("vpc-", c.name),
        {"defaultSecurityGroupId": f"sg-default-{c.name}", "mainRouteTableId": f"rtb-main-{c.name}", "defaultNetworkAclId": f"acl-{c.name}"},
    ),
    "aws:ec2/subnet:Subnet": lambda c: (_hashed("subnet-", c.name), {}),
    "aws:ec2/securityGroup:SecurityGroup": lambda c: (_hashed("sg-", c.name), {}),
    # A gateway endpoint exports the AWS-managed prefix list of its service (pl-..., the S3 ranges of the region).
    "aws:ec2/vpcEndpoint:VpcEndpoint": lambda c: (
        _hashed("vpce-", c.name),
        {"prefixListId": _hashed("pl-", c.name, 8)} if c.inputs.get("vpcEndpointType") == "Gateway" else {},
    ),
    "aws:kms/key:Key": _kms_key,
    "aws:rds/instance:Instance": _rds_instance,
    "aws:ecr/repository:Repository": lambda c: (None, {"repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{c.region}.amazonaws.com/{c.physical}", "registryId": ACCOUNT_ID}),
    "aws:lb/loadBalancer:LoadBalancer": lambda c: (
        None,
        {
            "dnsName": f"{c.physical}-1234567890.{c.region}.elb.amazonaws.com",
            "zoneId": "Z32O12XQLNTSW2",
            "arn": f"arn:aws:elasticloadbalancing:{c.region}:{ACCOUNT_ID}:loadbalancer/app/{c.physical}/0123456789abcdef",
            "arnSuffix": f"app/{c.physical}/0123456789abcdef",
        },
    ),
    "aws:lb/targetGroup:TargetGroup": lambda c: (
        None,
        {
            "arn": f"arn:aws:elasticloadbalancing:{c.region}:{ACCOUNT_ID}:targetgroup/{c.physical}/0123456789abcdef",
            "arnSuffix": f"targetgroup/{c.physical}/0123456789abcdef",
        },
    ),
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:cloudwatch/logGroup:LogGroup": lambda c: (c.physical, {"arn": f"arn:aws:logs:{c.region}:{ACCOUNT_ID}:log-group:{c.physical}"}),
    "aws:lambda/function:Function": lambda c: (c.physical, {"arn": f"arn:aws:lambda:{c.region}:{ACCOUNT_ID}:function:{c.physical}"}),
    "aws:iam/role:Role": lambda c: (c.physical, {"arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{c.physical}"}),
    "aws:s3/bucket:Bucket": _s3_bucket,
    "aws:ecs/cluster:Cluster": lambda c: (None, {"arn": f"arn:aws:ecs:{c.region}:{ACCOUNT_ID}:cluster/{c.physical}"}),
    "aws:ecs/taskDefinition:TaskDefinition": _task_definition,
    "aws:acm/certificate:Certificate": _acm_certificate,
    "aws:route53/record:Record": _route53_record,
    "random:index/randomPassword:RandomPassword": _random_password,
    "random:index/randomId:RandomId": _random_id,
}


def generated_name(type_: str, name: str, inputs: dict[str, Any]) -> str | None:
    """The name AWS/Pulumi would generate: `namePrefix` + the provider's 26-digit unique suffix, or
    Pulumi's autoname `<logical>-<7 hex>` (cut to 32 chars for target groups), deterministic here."""
    from config.naming import GENERATED

    digest = hashlib.sha1(name.encode()).hexdigest()
    if inputs.get("namePrefix"):
        return f"{inputs['namePrefix']}{int(digest[:16], 16) % 10**26:026d}"
    if type_ in GENERATED and not inputs.get("name"):
        return f"{name[: 32 - 8]}-{digest[:7]}"
    return None


def computed_state(type_: str, name: str, inputs: dict[str, Any], region: str) -> tuple[str, dict[str, Any]]:
    """Plausible outputs for a registered resource: an id, an ARN and the attributes we read."""
    pkg, _, rest = type_.partition(":")
    physical = str(inputs.get("name") or inputs.get("identifier") or generated_name(type_, name, inputs) or name)
    state = dict(inputs)
    if "name" not in inputs and physical != name:
        state["name"] = physical
    if pkg == "aws":
        module, kind = rest.split("/")[0].split(":")[0], rest.split(":")[-1].lower()
        state.setdefault("arn", f"arn:aws:{module}:{region}:{ACCOUNT_ID}:{kind}/{physical}")
    id_: str | None = None
    builder = STATE_BUILDERS.get(type_)
    if builder is not None:
        id_, extra = builder(Ctx(name, inputs, region, physical))
        state.update(extra)
    return id_ or f"{physical}-id", state

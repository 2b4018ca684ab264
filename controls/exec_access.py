"""Rules: ECS Exec (the database access path), its egress, and Resource "*" in identity policies."""

from __future__ import annotations

from collections.abc import Iterator

from controls.catalogue import DB_ACCESS, MUST_HOLD, WAIVABLE, control
from controls.inventory import Inventory, Res
from controls.readers import all_resources, as_list, iam_documents, policy_statements

CLUSTER = "aws:ecs/cluster:Cluster"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
EGRESS_TYPES = (SECURITY_GROUP, "aws:ec2/securityGroupRule:SecurityGroupRule", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
INLINE_POLICY_TYPES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/userPolicy:UserPolicy", "aws:iam/groupPolicy:GroupPolicy", "aws:iam/role:Role")
# The ECS Exec channels of the SSM agent: no resource-level permissions, so granted on Resource "*".
EXEC_CHANNEL_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
# Actions AWS authorizes only on Resource "*" (no resource-level permissions), per the IAM service
# authorization reference and the ECS Exec guide; every other action must name its resources.
# The components grant these as spelled here; the rule compares case-insensitively, as IAM does.
STAR_ONLY_ACTIONS = frozenset(
    {
        "ecr:GetAuthorizationToken",
        *EXEC_CHANNEL_ACTIONS,
        "logs:DescribeLogGroups",  # the ECS Exec logging configuration looks its group up this way
    }
)
_STAR_ONLY_LOWER = frozenset(a.lower() for a in STAR_ONLY_ACTIONS)


def _exec_configured(r: Res, inv: Inventory) -> bool:
    return r.get("configuration.executeCommandConfiguration") is not None


@control("PGH.4", "ECS clusters that allow ECS Exec encrypt the sessions with a customer managed key and log them to an encrypted log group",
         WAIVABLE, CLUSTER, component=DB_ACCESS, applies=_exec_configured, context=True,
         note="ECS Exec is a shell/tunnel into the VPC: who opened it is in CloudTrail, what ran is in this log")
def _pgh4(r: Res, inv: Inventory) -> Iterator[str]:
    cfg = r.get("configuration.executeCommandConfiguration") or {}
    if not cfg.get("kmsKeyId"):
        yield "executeCommandConfiguration.kmsKeyId is not set (sessions use AWS's TLS only, no customer managed key)"
    if cfg.get("logging") != "OVERRIDE":
        yield f"executeCommandConfiguration.logging is {cfg.get('logging', '<unset>')!r}, not OVERRIDE to a dedicated log group"
        return
    log = cfg.get("logConfiguration") or {}
    if log.get("cloudWatchEncryptionEnabled") is not True:
        yield "logConfiguration.cloudWatchEncryptionEnabled is not true"
    name = log.get("cloudWatchLogGroupName")
    groups = [g for g in inv.of_type(LOG_GROUP) if name and name in g.keys]
    if not groups:
        yield f"logConfiguration.cloudWatchLogGroupName {name or '<unset>'} is not a log group of this stack"
    for g in groups:
        if not g.get("kmsKeyId"):
            yield f"exec log group {name} is not encrypted with a KMS key"


@control("PGH.5", "IAM policies grant Resource '*' only to actions that have no resource-level permissions", MUST_HOLD, INLINE_POLICY_TYPES,
         component=DB_ACCESS, note=f"allowed on '*': {', '.join(sorted(STAR_ONLY_ACTIONS))}")
def _pgh5(r: Res, inv: Inventory) -> Iterator[str]:
    for label, doc in iam_documents(r):
        for st in policy_statements(doc):
            if st.get("Effect", "Allow") != "Allow" or not all_resources(st):
                continue
            extra = sorted(str(a) for a in as_list(st.get("Action")) if str(a).lower() not in _STAR_ONLY_LOWER)
            if extra:
                yield f"{label} allows {', '.join(extra)} on Resource '*' (statement {st.get('Sid', '?')}): name the resources"


def _access_path(r: Res, inv: Inventory) -> bool:
    # The policy engine and the mock graph both give the parent's URN, which names its type.
    return DB_ACCESS in r.parent


def _egress_ranges(r: Res) -> list[str]:
    """The address ranges an egress rule (or a group's inline egress) lets traffic out to."""
    if r.type == SECURITY_GROUP:
        return [str(c) for rule in as_list(r.get("egress")) if isinstance(rule, dict)
                for c in as_list(rule.get("cidrBlocks")) + as_list(rule.get("ipv6CidrBlocks"))]
    if r.type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        return [str(c) for c in as_list(r.get("cidrBlocks")) + as_list(r.get("ipv6CidrBlocks"))] if r.get("type") == "egress" else []
    return [str(c) for c in (r.get("cidrIpv4"), r.get("cidrIpv6")) if c]


@control("PGH.8", "The database access task reaches only the database, the VPC endpoints and S3's prefix list: no egress to an address range",
         MUST_HOLD, EGRESS_TYPES, component=DB_ACCESS, applies=_access_path, condition="dbAccess is false",
         note="an address range would let a session use the task to reach the internet through the NAT (issue 28 item 7)")
def _pgh8(r: Res, inv: Inventory) -> Iterator[str]:
    for cidr in _egress_ranges(r):
        yield f"egress to {cidr}: name a security group or a prefix list instead"

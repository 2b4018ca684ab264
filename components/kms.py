"""Customer-managed KMS keys, one per purpose, with rotation on and a policy scoped to their users.

Every component that stores data at rest (flow logs, RDS, secrets, ECR, app logs) asks for its own
key here, so a key's policy names exactly the services that use it and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.awsinfo import aws_facts

# The account root (i.e. IAM policies in this account) administers and may use the key. Listed
# action by action rather than "kms:*" so no statement grants every KMS action on every key.
ACCOUNT_ACTIONS = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ReEncrypt*",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
]
USE_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]


@dataclass
class ServiceGrant:
    """Lets an AWS service principal use the key, optionally only under a condition."""

    principal: str  # e.g. "logs.eu-west-1.amazonaws.com"
    actions: Sequence[str] = field(default_factory=lambda: list(USE_ACTIONS))
    conditions: Sequence[aws.iam.GetPolicyDocumentStatementConditionArgs] = ()


def create_key(
    name: str,
    *,
    alias: str,
    description: str,
    services: Sequence[ServiceGrant],
    parent: pulumi.Resource,
    deletion_window_days: int = 30,
    keep: bool = False,
    via_services: Sequence[str] = (),
) -> tuple[aws.kms.Key, aws.kms.Alias]:
    """A symmetric CMK with yearly rotation and its alias `alias/<alias>`, both children of `parent`.
    `keep` (prod data keys): protected and retained on delete, so what it encrypted stays readable.
    `via_services` (e.g. rds.<region>.amazonaws.com): the account's principals may use the key only
    through these services (kms:ViaService), never call Decrypt on it directly; administration stays open."""
    opts = pulumi.InvokeOptions(parent=parent)
    facts = aws_facts(parent)
    partition = facts.partition
    account = [aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="AWS", identifiers=[f"arn:{partition}:iam::{facts.account_id}:root"])]
    # DescribeKey shows no data: it stays with administration. CreateGrant is how RDS uses the key.
    use = [a for a in ACCOUNT_ACTIONS if (a in USE_ACTIONS and a != "kms:DescribeKey") or a == "kms:CreateGrant"] if via_services else []
    statements = [
        aws.iam.GetPolicyDocumentStatementArgs(
            sid="AccountAdministration",
            principals=account,
            actions=[a for a in ACCOUNT_ACTIONS if a not in use],
            resources=["*"],  # in a key policy "*" means this key
        )
    ]
    if use:
        statements.append(
            aws.iam.GetPolicyDocumentStatementArgs(
                sid="AccountUseThroughServices",
                principals=account,
                actions=use,
                resources=["*"],
                conditions=[aws.iam.GetPolicyDocumentStatementConditionArgs(test="StringEquals", variable="kms:ViaService", values=list(via_services))],
            )
        )
    for i, grant in enumerate(services):
        statements.append(
            aws.iam.GetPolicyDocumentStatementArgs(
                sid=f"Service{i}",
                principals=[aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="Service", identifiers=[grant.principal])],
                actions=list(grant.actions),
                resources=["*"],
                conditions=list(grant.conditions) or None,
            )
        )
    policy = aws.iam.get_policy_document_output(statements=statements, opts=opts)
    key = aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        rotation_period_in_days=365,
        deletion_window_in_days=deletion_window_days,
        key_usage="ENCRYPT_DECRYPT",
        customer_master_key_spec="SYMMETRIC_DEFAULT",
        policy=policy.json,
        opts=keep_options(parent, keep),
    )
    key_alias = aws.kms.Alias(
        f"{name}-alias",
        name=f"alias/{alias}",
        target_key_id=key.key_id,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return key, key_alias


def log_group_arn(partition: str, region: str, account_id: str, name: str) -> str:
    """A log group's ARN as CloudWatch Logs puts it in the KMS encryption context (no `:*`)."""
    return f"arn:{partition}:logs:{region}:{account_id}:log-group:{name}"


def logs_grant(region: str, account_id: str, partition: str, log_groups: Sequence[str]) -> ServiceGrant:
    """CloudWatch Logs may use the key only for exactly these log groups (by name): a key whose
    policy allowed `log-group:*` would let any log group of the account be encrypted with it, the
    database's key (storage and secrets) included."""
    if not log_groups:
        raise ValueError("a logs key needs the names of the log groups it encrypts")
    return ServiceGrant(
        principal=f"logs.{region}.amazonaws.com",
        conditions=[
            aws.iam.GetPolicyDocumentStatementConditionArgs(
                test="ArnEquals",
                variable="kms:EncryptionContext:aws:logs:arn",
                values=[log_group_arn(partition, region, account_id, g) for g in sorted(log_groups)],
            )
        ],
    )


def keep_options(parent: pulumi.Resource, keep: bool) -> pulumi.ResourceOptions:
    """Options of a resource that must outlive the stack when `keep`: `destroy` refuses while it is
    protected, and once unprotected on purpose it is left in AWS (docs/data-loss.md)."""
    return pulumi.ResourceOptions(parent=parent, protect=keep, retain_on_delete=keep)


def logs_key(name: str, *, alias: str, description: str, log_groups: Sequence[str], parent: pulumi.Resource, keep: bool = False,
             via_services: Sequence[str] = ()) -> aws.kms.Key:
    """A CMK that CloudWatch Logs may use for the named `log_groups` only (KMS-encrypted log groups),
    besides the account's own principals; a child of `parent`. `keep` and `via_services`: see create_key."""
    facts = aws_facts(parent)
    grant = logs_grant(facts.region, facts.account_id, facts.partition, log_groups)
    key, _ = create_key(name, alias=alias, description=description, services=[grant], parent=parent, keep=keep, via_services=via_services)
    return key


def encrypted_log_group(
    resource_name: str, *, name: pulumi.Input[str], retention_days: pulumi.Input[int], key_arn: pulumi.Input[str], parent: pulumi.Resource,
    keep: bool = False,
) -> aws.cloudwatch.LogGroup:
    """A CloudWatch log group encrypted with a CMK (one from `logs_key`) and kept `retention_days`;
    a child of `parent`. Left to AWS, a group would appear on first write unencrypted and kept forever."""
    return aws.cloudwatch.LogGroup(
        resource_name,
        name=name,
        retention_in_days=retention_days,
        kms_key_id=key_arn,
        opts=keep_options(parent, keep),
    )

"""IAM helpers shared by the components: the one shape of a service trust policy (and the ECS
tasks' one), a policy statement, an inline role policy, and the ARN of a log group's streams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from components.awsinfo import aws_facts


def service_trust_policy(service: str, account_id: str, parent: pulumi.Resource, *, source_arn_like: str | None = None) -> pulumi.Output[str]:
    """A role trust policy: `service` (e.g. 'ecs-tasks.amazonaws.com') may assume the role only on
    behalf of this account (aws:SourceAccount), and of matching resources when `source_arn_like`
    is given (aws:SourceArn): the confused-deputy guard AWS recommends."""
    conditions = [aws.iam.GetPolicyDocumentStatementConditionArgs(test="StringEquals", variable="aws:SourceAccount", values=[account_id])]
    if source_arn_like:
        conditions.append(aws.iam.GetPolicyDocumentStatementConditionArgs(test="ArnLike", variable="aws:SourceArn", values=[source_arn_like]))
    return aws.iam.get_policy_document_output(
        statements=[
            aws.iam.GetPolicyDocumentStatementArgs(
                actions=["sts:AssumeRole"],
                principals=[aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="Service", identifiers=[service])],
                conditions=conditions,
            )
        ],
        opts=pulumi.InvokeOptions(parent=parent),
    ).json


def ecs_tasks_trust_policy(parent: pulumi.Resource) -> pulumi.Output[str]:
    """ecs-tasks may assume the role only for tasks of this account (confused-deputy guard)."""
    facts = aws_facts(parent)
    return service_trust_policy(
        "ecs-tasks.amazonaws.com", facts.account_id, parent, source_arn_like=f"arn:{facts.partition}:ecs:{facts.region}:{facts.account_id}:*"
    )


def inline_policy(
    resource_name: str, policy_name: str, role: aws.iam.Role, statements: Sequence[aws.iam.GetPolicyDocumentStatementArgs], parent: pulumi.Resource
) -> aws.iam.RolePolicy:
    """The inline policy `policy_name` of `role`, made of `statements`; a child of `parent`."""
    document = aws.iam.get_policy_document_output(statements=statements, opts=pulumi.InvokeOptions(parent=parent))
    return aws.iam.RolePolicy(resource_name, name=policy_name, role=role.id, policy=document.json, opts=pulumi.ResourceOptions(parent=parent))


def statement(actions: Sequence[str], resources: Sequence[pulumi.Input[str]], sid: str, **extra: Any) -> aws.iam.GetPolicyDocumentStatementArgs:
    """One Allow statement of an identity policy; every statement gets a Sid so findings can name it."""
    # the _output invoke resolves Outputs nested in its args; the SDK types them as str
    return aws.iam.GetPolicyDocumentStatementArgs(sid=sid, actions=list(actions), resources=list(resources), **extra)  # type: ignore[arg-type]


def log_streams(log_group_arn: pulumi.Input[str]) -> pulumi.Input[str]:
    """Every stream of a log group: logs:CreateLogStream and PutLogEvents are authorized on the
    streams (`<group ARN>:*`), not on the group. A plain string stays plain (for pure tests)."""
    if isinstance(log_group_arn, str):
        return f"{log_group_arn}:*"
    return pulumi.Output.concat(log_group_arn, ":*")


def ecs_exec_statements(session_key_arn: pulumi.Input[str], session_log_group_arn: pulumi.Input[str]) -> list[aws.iam.GetPolicyDocumentStatementArgs]:
    """What a task role needs for ECS Exec, and nothing more, under one set of Sids for every task
    that allows exec (the app service in dev, the database access task): the SSM agent's channels,
    decrypting the session key, finding and writing the session log group."""
    from controls.exec_access import EXEC_CHANNEL_ACTIONS

    return [
        statement(EXEC_CHANNEL_ACTIONS, ["*"], sid="EcsExecChannels"),
        statement(["kms:Decrypt"], [session_key_arn], sid="EcsExecSessionKey"),
        statement(["logs:DescribeLogGroups"], ["*"], sid="EcsExecFindLogGroup"),
        statement(["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"], [log_streams(session_log_group_arn)], sid="EcsExecSessionLogs"),
    ]

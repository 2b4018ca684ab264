"""IAM helpers shared by the components: the one shape of a service trust policy."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


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

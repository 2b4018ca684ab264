"""The service's two IAM roles: the execution role (the ECS agent starting a task) and the task
role (the app's own identity).

The policy statements are pure functions of the ARNs they name (`execution_statements`,
`task_statements`, testable without Pulumi), beside the thin code that creates the roles, as
components/registry.py keeps `lifecycle_policy` beside its component. Both roles trust ecs-tasks
of this account only; every statement names its resources, except the actions AWS authorizes
only on "*" (controls/exec_access.py STAR_ONLY_ACTIONS).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.app_database import DbConnection
from components.iam import ecs_exec_statements, ecs_tasks_trust_policy, inline_policy, log_streams, statement
from config import naming

Statement = aws.iam.GetPolicyDocumentStatementArgs


def execution_statements(repository_arn: pulumi.Input[str], log_group_arn: pulumi.Input[str], database: DbConnection, region: str) -> list[Statement]:
    """Pull this stack's image, write the app's log group, read the DB secret (decrypting it only
    through Secrets Manager)."""
    return [
        statement(["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], [repository_arn], sid="PullThisRepository"),
        # GetAuthorizationToken is account-wide: AWS supports no resource-level ARN for it.
        statement(["ecr:GetAuthorizationToken"], ["*"], sid="EcrLogin"),
        statement(["logs:CreateLogStream", "logs:PutLogEvents"], [log_streams(log_group_arn)], sid="WriteAppLogs"),
        statement(["secretsmanager:GetSecretValue"], [database.secret_arn], sid="ReadDbSecret"),
        statement(
            ["kms:Decrypt"],
            [database.kms_key_arn],
            sid="DecryptDbSecret",
            conditions=[aws.iam.GetPolicyDocumentStatementConditionArgs(test="StringEquals", variable="kms:ViaService", values=[f"secretsmanager.{region}.amazonaws.com"])],
        ),
    ]


def task_statements(database: DbConnection, exec_key_arn: pulumi.Input[str] | None, exec_log_group_arn: pulumi.Input[str] | None) -> list[Statement]:
    """The app's permissions: rds-db:connect with IAM DB auth; with ECS Exec (a session key and
    log group given), what the SSM agent needs and nothing more. Empty means no policy at all."""
    statements = []
    if database.iam_grant is not None:
        statements.append(database.iam_grant)
    if exec_key_arn is not None and exec_log_group_arn is not None:
        statements += ecs_exec_statements(exec_key_arn, exec_log_group_arn)
    return statements


def _role(name: str, kind: str, name_prefix: str, description: str, parent: pulumi.Resource) -> aws.iam.Role:
    return aws.iam.Role(
        f"{name}-{kind}-role", name_prefix=name_prefix, description=description, assume_role_policy=ecs_tasks_trust_policy(parent), opts=pulumi.ResourceOptions(parent=parent)
    )


def execution_role(name: str, prefix: str, statements: list[Statement], parent: pulumi.Resource) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """The execution role and its inline policy (tasks must not start before the policy exists)."""
    description = "ECS agent: pull this stack's image, write its log group, read its DB secret"
    role = _role(name, "execution", naming.role_prefix(prefix, "task-execution"), description, parent)
    return role, inline_policy(f"{name}-execution-policy", "start-task", role, statements, parent)


def task_role(name: str, prefix: str, statements: list[Statement], parent: pulumi.Resource) -> aws.iam.Role:
    """The task role, with an inline policy only when there is something to grant."""
    role = _role(name, "task", naming.role_prefix(prefix, "task"), "The app's own AWS identity (least privilege)", parent)
    if statements:
        inline_policy(f"{name}-task-policy", "app", role, statements, parent)
    return role

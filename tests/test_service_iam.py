"""The service's policy statements (components/service_iam.py) as plain data, without Pulumi: each
names its resources, only the actions AWS authorizes on "*" get "*", and the task role holds
nothing unless IAM DB auth or ECS Exec asks for it. The roles on the graph: tests/test_service.py."""

from __future__ import annotations

import pulumi_aws as aws

from components.app_database import DbConnection
from components.iam import log_streams
from components.service_iam import execution_statements, task_statements
from controls.exec_access import EXEC_CHANNEL_ACTIONS, STAR_ONLY_ACTIONS
from tests.helpers import present

REPO = "arn:aws:ecr:eu-west-1:123456789012:repository/shop-dev"
LOGS = "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/shop-dev/app"
EXEC_KEY = "arn:aws:kms:eu-west-1:123456789012:key/exec"
EXEC_LOGS = "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/shop-dev/exec"
GRANT = aws.iam.GetPolicyDocumentStatementArgs(sid="ConnectAsApp", actions=["rds-db:connect"], resources=["arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-X/app"])


def _db(iam_grant: aws.iam.GetPolicyDocumentStatementArgs | None = None) -> DbConnection:
    return DbConnection(
        host="db.internal",
        port=5432,
        dbname="shop",
        username="app",
        secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-dev/db/app-AbCdEf",
        kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/db",
        iam_grant=iam_grant,
    )


def _by_sid(statements: list[aws.iam.GetPolicyDocumentStatementArgs]) -> dict[str | None, tuple[list[str], list[str]]]:
    return {st.sid: (list(present(st.actions)), list(present(st.resources))) for st in statements}


def test_execution_role_pulls_this_repo_writes_its_logs_reads_its_secret() -> None:
    statements = execution_statements(REPO, LOGS, _db(), "eu-west-1")
    assert _by_sid(statements) == {
        "PullThisRepository": (["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], [REPO]),
        "EcrLogin": (["ecr:GetAuthorizationToken"], ["*"]),
        "WriteAppLogs": (["logs:CreateLogStream", "logs:PutLogEvents"], [LOGS + ":*"]),
        "ReadDbSecret": (["secretsmanager:GetSecretValue"], [_db().secret_arn]),
        "DecryptDbSecret": (["kms:Decrypt"], [_db().kms_key_arn]),
    }
    (decrypt,) = [st for st in statements if st.sid == "DecryptDbSecret"]
    (condition,) = present(decrypt.conditions)
    assert (condition.test, condition.variable, condition.values) == ("StringEquals", "kms:ViaService", ["secretsmanager.eu-west-1.amazonaws.com"])


def test_task_role_is_empty_without_iam_auth_or_exec() -> None:
    assert task_statements(_db(), None, None) == []
    assert task_statements(_db(), EXEC_KEY, None) == [], "exec needs both its key and its log group"


def test_task_role_carries_the_iam_grant_and_the_exec_agent_needs() -> None:
    assert task_statements(_db(GRANT), None, None) == [GRANT]
    statements = task_statements(_db(GRANT), EXEC_KEY, EXEC_LOGS)
    assert statements[0] is GRANT
    assert _by_sid(statements[1:]) == {
        "EcsExecChannels": (list(EXEC_CHANNEL_ACTIONS), ["*"]),
        "EcsExecSessionKey": (["kms:Decrypt"], [EXEC_KEY]),
        "EcsExecFindLogGroup": (["logs:DescribeLogGroups"], ["*"]),
        "EcsExecSessionLogs": (["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"], [EXEC_LOGS + ":*"]),
    }


def test_star_resources_only_for_actions_without_resource_level_permissions() -> None:
    statements = execution_statements(REPO, LOGS, _db(), "eu-west-1") + task_statements(_db(), EXEC_KEY, EXEC_LOGS)
    on_star = {a for st in statements if "*" in present(st.resources) for a in present(st.actions)}
    assert on_star and on_star <= STAR_ONLY_ACTIONS
    assert log_streams(LOGS) == LOGS + ":*"

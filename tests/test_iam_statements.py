"""The shared IAM helpers (components/iam.py) and the service's roles (components/service_iam.py)
without a Pulumi graph: the invoke and the two resource classes they call are replaced by
recorders, so the exact statements, conditions, names and parents can be asserted in
milliseconds. The same helpers on the stack's graph: tests/test_service.py,
tests/test_rotation_function_graph.py. These exist so that mutation testing (scripts/mutation.py,
group `iam`) kills a mutant in the first second instead of after a mocked `pulumi up`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components import iam, service_iam
from components.awsinfo import AwsFacts
from tests.helpers import present

Statement = aws.iam.GetPolicyDocumentStatementArgs
PARENT = SimpleNamespace(name="parent")


class Recorder:
    """Stands for the policy-document invoke and the Role / RolePolicy constructors."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self.resources: list[tuple[str, str, dict[str, Any]]] = []

    def document(self, **kw: Any) -> SimpleNamespace:
        self.documents.append(kw)
        return SimpleNamespace(json=f"document-{len(self.documents)}")

    def facts(self, parent: Any) -> AwsFacts:
        assert parent is PARENT, "the facts are asked through the component's provider"
        return AwsFacts(account_id="123456789012", partition="aws-cn", region="cn-north-1")

    def resource(self, kind: str) -> Any:
        recorder = self

        def create(name: str, /, **kw: Any) -> SimpleNamespace:
            recorder.resources.append((kind, name, kw))
            return SimpleNamespace(id=f"{kind}-id-{name}")

        return create


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    r = Recorder()
    monkeypatch.setattr(aws.iam, "get_policy_document_output", r.document)
    monkeypatch.setattr(aws.iam, "Role", r.resource("Role"))
    monkeypatch.setattr(aws.iam, "RolePolicy", r.resource("RolePolicy"))
    monkeypatch.setattr(iam, "aws_facts", r.facts)
    return r


def _condition(c: Any) -> tuple[str, str, list[str]]:
    return (c.test, c.variable, list(c.values))


def _only_statement(doc: dict[str, Any]) -> Statement:
    (st,) = doc["statements"]
    assert doc["opts"].parent is PARENT
    return st


def test_service_trust_policy_names_the_account_and_optionally_the_source(rec: Recorder) -> None:
    assert iam.service_trust_policy("rds.amazonaws.com", "123456789012", PARENT) == "document-1"  # type: ignore[arg-type]
    st = _only_statement(rec.documents[0])
    assert st.actions == ["sts:AssumeRole"] and st.effect is None  # Allow is the document's default
    (principal,) = present(st.principals)
    assert (principal.type, principal.identifiers) == ("Service", ["rds.amazonaws.com"])
    assert [_condition(c) for c in present(st.conditions)] == [("StringEquals", "aws:SourceAccount", ["123456789012"])]
    iam.service_trust_policy("lambda.amazonaws.com", "123456789012", PARENT, source_arn_like="arn:aws:lambda:*")  # type: ignore[arg-type]
    st = _only_statement(rec.documents[1])
    assert [_condition(c) for c in present(st.conditions)] == [("StringEquals", "aws:SourceAccount", ["123456789012"]), ("ArnLike", "aws:SourceArn", ["arn:aws:lambda:*"])]


def test_ecs_tasks_trust_policy_is_this_accounts_tasks_in_the_stacks_partition_and_region(rec: Recorder) -> None:
    assert iam.ecs_tasks_trust_policy(PARENT) == "document-1"  # type: ignore[arg-type]
    st = _only_statement(rec.documents[0])
    assert present(st.principals)[0].identifiers == ["ecs-tasks.amazonaws.com"]
    assert [_condition(c) for c in present(st.conditions)] == [
        ("StringEquals", "aws:SourceAccount", ["123456789012"]),
        ("ArnLike", "aws:SourceArn", ["arn:aws-cn:ecs:cn-north-1:123456789012:*"]),
    ]


def test_inline_policy_is_a_child_named_as_asked(rec: Recorder) -> None:
    statements = [iam.statement(["s3:GetObject"], ["arn:aws:s3:::b/*"], "Read")]
    iam.inline_policy("fn-policy", "read", SimpleNamespace(id="role-id"), statements, PARENT)  # type: ignore[arg-type]
    assert rec.documents == [{"statements": statements, "opts": rec.documents[0]["opts"]}] and rec.documents[0]["opts"].parent is PARENT
    ((kind, name, kw),) = rec.resources
    assert (kind, name) == ("RolePolicy", "fn-policy")
    assert {k: v for k, v in kw.items() if k != "opts"} == {"name": "read", "role": "role-id", "policy": "document-1"} and kw["opts"].parent is PARENT


def test_statement_has_a_sid_lists_and_extras() -> None:
    actions, resources = ("a:One", "a:Two"), ("r1",)
    st = iam.statement(actions, resources, "Both")
    assert (st.sid, st.actions, st.resources, st.conditions, st.effect) == ("Both", ["a:One", "a:Two"], ["r1"], None, None)
    assert isinstance(st.actions, list) and isinstance(st.resources, list)
    cond = aws.iam.GetPolicyDocumentStatementConditionArgs(test="Bool", variable="aws:SecureTransport", values=["true"])
    assert iam.statement(["a:One"], ["*"], "C", conditions=[cond]).conditions == [cond]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop for resolving a plain Output outside a Pulumi program, closed afterwards (an unclosed
    loop's finalizer runs at a random later collection, inside another test). Earlier tests may have
    left no current loop (mock runs end with set_event_loop(None)), so none is restored either."""
    new = asyncio.new_event_loop()
    asyncio.set_event_loop(new)
    try:
        yield new
    finally:
        new.close()
        asyncio.set_event_loop(None)


def test_log_streams_of_a_plain_arn_and_of_an_output(loop: asyncio.AbstractEventLoop) -> None:
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/shop-dev/app"
    assert iam.log_streams(arn) == arn + ":*"
    out = iam.log_streams(pulumi.Output.from_input(arn))
    assert isinstance(out, pulumi.Output) and loop.run_until_complete(out.future()) == arn + ":*"


def test_ecs_exec_statements_in_order() -> None:
    from controls.exec_access import EXEC_CHANNEL_ACTIONS

    got = [(s.sid, s.actions, s.resources, s.conditions) for s in iam.ecs_exec_statements("key-arn", "group-arn")]
    assert got == [
        ("EcsExecChannels", list(EXEC_CHANNEL_ACTIONS), ["*"], None),
        ("EcsExecSessionKey", ["kms:Decrypt"], ["key-arn"], None),
        ("EcsExecFindLogGroup", ["logs:DescribeLogGroups"], ["*"], None),
        ("EcsExecSessionLogs", ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"], ["group-arn:*"], None),
    ]


def _roles(rec: Recorder) -> list[tuple[str, dict[str, Any]]]:
    return [(name, kw) for kind, name, kw in rec.resources if kind == "Role"]


def test_execution_role_trusts_ecs_tasks_and_carries_its_policy(rec: Recorder) -> None:
    statements = [iam.statement(["ecr:GetAuthorizationToken"], ["*"], "EcrLogin")]
    role, policy = service_iam.execution_role("app", "shop-dev", statements, PARENT)  # type: ignore[arg-type]
    ((name, kw),) = _roles(rec)
    assert name == "app-execution-role" and role.id == "Role-id-app-execution-role"
    assert {k: v for k, v in kw.items() if k != "opts"} == {
        "name_prefix": "shop-dev-task-execution-",
        "description": "ECS agent: pull this stack's image, write its log group, read its DB secret",
        "assume_role_policy": "document-1",
    }
    assert kw["opts"].parent is PARENT and all(d["opts"].parent is PARENT for d in rec.documents)
    assert rec.documents[0]["statements"][0].principals[0].identifiers == ["ecs-tasks.amazonaws.com"]
    (policy_call,) = [(name, kw) for kind, name, kw in rec.resources if kind == "RolePolicy"]
    assert policy_call[0] == "app-execution-policy" and policy.id == "RolePolicy-id-app-execution-policy"
    assert (policy_call[1]["name"], policy_call[1]["role"], policy_call[1]["policy"]) == ("start-task", role.id, "document-2")
    assert policy_call[1]["opts"].parent is PARENT
    assert rec.documents[1]["statements"] == statements


def test_task_role_has_a_policy_only_with_something_to_grant(rec: Recorder) -> None:
    role = service_iam.task_role("app", "shop-dev", [], PARENT)  # type: ignore[arg-type]
    ((name, kw),) = _roles(rec)
    assert name == "app-task-role" and role.id == "Role-id-app-task-role"
    assert (kw["name_prefix"], kw["description"], kw["assume_role_policy"]) == ("shop-dev-task-", "The app's own AWS identity (least privilege)", "document-1")
    assert kw["opts"].parent is PARENT and len(rec.resources) == 1
    statements = [iam.statement(["rds-db:connect"], ["arn:aws:rds-db:eu-west-1:1:dbuser:db-X/app"], "ConnectAsApp")]
    role = service_iam.task_role("app", "shop-dev", statements, PARENT)  # type: ignore[arg-type]
    (kind, name, kw) = rec.resources[-1]
    assert (kind, name, kw["name"], kw["role"], kw["policy"]) == ("RolePolicy", "app-task-policy", "app", role.id, "document-3")
    assert rec.documents[-1]["statements"] == statements
    assert kw["opts"].parent is PARENT and all(d["opts"].parent is PARENT for d in rec.documents)

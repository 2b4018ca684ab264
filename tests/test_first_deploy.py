"""Issue 23: what a fresh AWS account's first deploy would hit, one regression test per item, on the
recorded graph (bootstrap/mockgraph.py) or on config validation. docs/first-deploy.md says for each
item what AWS does and what to watch on the first real run."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bootstrap.plan.mockgraph import Graph, Resource, run_stack
from tests.resource_types import ROTATION, SECRET

FUNCTION = "aws:lambda/function:Function"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
GRANT_ROLE = "postgresql:index/grantRole:GrantRole"
PG_ROLE = "postgresql:index/role:Role"


@pytest.fixture(scope="module")
def phase3(monkeypatch_module: pytest.MonkeyPatch) -> Graph:
    """The dev graph of deploy phase 3: app database on, so every secret gets its rotation."""
    monkeypatch_module.setenv("PGPASSWORD", "offline-plan-connects-nowhere")
    return run_stack("dev", {"appDbEnabled": "true"})


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _deps(graph: Graph, r: Resource) -> set[str]:
    """URNs `r` waits for: explicit dependsOn plus the resources its inputs came from."""
    return set(r.dependencies) | {u for urns in r.property_dependencies.values() for u in urns}


# --- 1. no reserved concurrency ------------------------------------------------------------------


def test_item1_the_rotation_function_reserves_no_concurrency(graph: Graph) -> None:
    (fn,) = graph.of_type(FUNCTION)
    # Lambda refuses any reservation that leaves the account under 100 unreserved executions;
    # serialisation is the database lock (tests/test_rotation_lock.py runs two rotations at once).
    assert fn.inputs.get("reservedConcurrentExecutions") in (None, -1)


# --- 5. ordering Pulumi cannot infer ---------------------------------------------------------------


def test_item5_the_function_waits_for_its_role_grants(graph: Graph) -> None:
    (fn,) = graph.of_type(FUNCTION)
    attachment = next(r for r in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if r.name.endswith("rotation-vpc-access"))
    policy = next(r for r in graph.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("rotation-policy"))
    assert {attachment.urn, policy.urn} <= set(fn.dependencies)


def test_item5_every_rotation_waits_for_its_secrets_first_value(phase3: Graph) -> None:
    rotations = phase3.of_type(ROTATION)
    assert len(rotations) == 3
    secrets_by_arn = {s.state["arn"]: s for s in phase3.of_type(SECRET)}
    versions = phase3.of_type(SECRET_VERSION)
    for rotation in rotations:
        secret = secrets_by_arn[rotation.inputs["secretId"]]
        (version,) = [v for v in versions if v.inputs["secretId"] == secret.id]
        assert version.urn in rotation.dependencies, f"{rotation.name} does not wait for {version.name}"


# --- 7. KMS keys scoped to their log groups; no CMK on the function's environment ---------------------


def test_item7_the_function_environment_uses_lambdas_own_key(graph: Graph) -> None:
    (fn,) = graph.of_type(FUNCTION)
    assert not fn.inputs.get("kmsKeyArn")
    assert not any("PASSWORD" in k for k in fn.inputs["environment"]["variables"])


def _logs_statements(key: Resource) -> list[dict[str, Any]]:
    policy = json.loads(key.inputs["policy"])
    return [s for s in policy["Statement"] if str((s.get("Principal") or {}).get("Service", "")).startswith("logs.")]


def test_item7_no_key_lets_cloudwatch_logs_use_it_for_any_log_group(graph: Graph) -> None:
    groups = graph.of_type("aws:cloudwatch/logGroup:LogGroup")
    keys = {k.state["arn"]: k for k in graph.of_type("aws:kms/key:Key")}
    logs_keys = [k for k in keys.values() if _logs_statements(k)]
    assert logs_keys
    for key in logs_keys:
        (statement,) = _logs_statements(key)
        allowed = statement["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
        allowed = allowed if isinstance(allowed, list) else [allowed]
        assert not any("*" in arn for arn in allowed), f"{key.name} lets CloudWatch Logs use it for {allowed}"
        # exactly the log groups this key encrypts
        encrypted = sorted(g.state["arn"] for g in groups if g.inputs.get("kmsKeyId") == key.state["arn"])
        assert sorted(allowed) == encrypted, key.name

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


# --- 2. ECS Exec with a read-only root filesystem ----------------------------------------------------

EXEC_AGENT_NEEDS = ("/managed-agents", "/var/lib/amazon/ssm", "/var/log/amazon/ssm")


def _exec_containers(graph: Graph) -> list[tuple[Resource, dict[str, Any]]]:
    """(task definition, container) of every container ECS Exec reaches: the access task's always,
    the app's when its service enables execute-command."""
    exec_families = {"shop-dev-db-access", "shop-prod-db-access"}
    for service in graph.of_type("aws:ecs/service:Service"):
        if service.inputs.get("enableExecuteCommand"):
            exec_families.add(next(t.inputs["family"] for t in graph.of_type("aws:ecs/taskDefinition:TaskDefinition")
                                   if service.inputs["taskDefinition"] in (t.id, t.state.get("arn"))))
    found = []
    for td in graph.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        if td.inputs["family"] in exec_families:
            found += [(td, c) for c in json.loads(td.inputs["containerDefinitions"])]
    return found


def test_item2_every_exec_container_mounts_what_the_agent_writes(graph: Graph) -> None:
    containers = _exec_containers(graph)
    families = {td.inputs["family"] for td, _ in containers}
    assert f"shop-{graph.stack}-db-access" in families
    if graph.stack == "dev":  # dev turns exec on for the app (Pulumi.dev.yaml)
        assert f"shop-{graph.stack}-app" in families
    for td, c in containers:
        assert c["readonlyRootFilesystem"] is True  # ECS.5 holds: the paths get volumes instead
        volumes = {v["name"] for v in td.inputs.get("volumes") or []}
        mounts = {m["containerPath"]: m for m in c.get("mountPoints") or []}
        for needed in EXEC_AGENT_NEEDS:
            covering = [p for p in mounts if needed == p or needed.startswith(p.rstrip("/") + "/")]
            assert covering, f"{c['name']} in {td.inputs['family']} has no writable volume for {needed}"
            m = mounts[covering[0]]
            assert m["readOnly"] is False and m["sourceVolume"] in volumes


# --- 3. natStrategy none is refused --------------------------------------------------------------


@pytest.mark.parametrize("endpoints", ["true", "false"])
def test_item3_no_nat_is_refused_with_or_without_interface_endpoints(endpoints: str) -> None:
    from tests.helpers import assert_config_error

    assert_config_error("dev", {"natStrategy": "none", "interfaceEndpoints": endpoints}, "pghome:natStrategy", "ssmmessages", "ECR Public", "single or per_az")


# --- 9. the interface endpoint set is a choice, prod picks none ----------------------------------------


def test_item9_prod_runs_without_interface_endpoints_by_default(prod_graph: Graph) -> None:
    # none chosen; only the access task's own five, its only way out since issue 28 item 7
    interface = sorted(e.inputs["serviceName"].removeprefix("com.amazonaws.eu-west-1.")
                       for e in prod_graph.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e.inputs["vpcEndpointType"] == "Interface")
    assert interface == ["ecr.api", "ecr.dkr", "kms", "logs", "ssmmessages"]
    assert [e.inputs["vpcEndpointType"] for e in prod_graph.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")].count("Gateway") == 1  # S3: free


def test_item9_the_endpoint_set_is_chosen() -> None:
    g = run_stack("prod", {"interfaceEndpoints": "true", "interfaceEndpointServices": '["secretsmanager", "logs"]', "dbAccess": "false"})
    names = sorted(e.inputs["serviceName"] for e in g.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e.inputs["vpcEndpointType"] == "Interface")
    assert names == ["com.amazonaws.eu-west-1.logs", "com.amazonaws.eu-west-1.secretsmanager"]


def test_item9_an_unknown_endpoint_service_is_refused() -> None:
    from tests.helpers import assert_config_error

    assert_config_error("prod", {"interfaceEndpoints": "true", "interfaceEndpointServices": '["rds"]'},
                        "pghome:interfaceEndpointServices", "ecr.api, ecr.dkr, kms, logs, secretsmanager, ssmmessages, sts")


# --- 6. the lifecycle policy never expires a released image --------------------------------------------


def _expired(policy: dict[str, Any], images: list[tuple[int, list[str]]]) -> set[int]:
    """Which images (pushed-at order, tags) ECR's lifecycle rules expire, as the ECR user guide
    describes the evaluation: rules by ascending priority; an image whose tags match a rule's
    selection cannot be expired by a lower-priority rule (which still counts it); imageCountMoreThan
    keeps the newest N of the images it selects. Only the count rules matter here (ages are 0 days)."""
    import fnmatch

    claimed: set[int] = set()
    expired: set[int] = set()
    for rule in sorted(policy["rules"], key=lambda r: r["rulePriority"]):
        sel = rule["selection"]
        if sel["tagStatus"] == "untagged":
            selected = [i for i, tags in images if not tags]
        else:
            patterns = sel.get("tagPatternList") or ["*"]
            selected = [i for i, tags in images if tags and any(fnmatch.fnmatchcase(t, p) for t in tags for p in patterns)]
        if sel["countType"] == "imageCountMoreThan":
            newest_first = sorted(selected, reverse=True)
            expired |= {i for i in newest_first[sel["countNumber"]:] if i not in claimed}
        claimed |= set(selected)
    return expired


def test_item6_thirty_unreleased_pushes_do_not_expire_the_image_prod_runs(prod_graph: Graph) -> None:
    from bootstrap.deploy.keep_image import released_tag

    policy = json.loads(prod_graph.one("aws:ecr/lifecyclePolicy:LifecyclePolicy", "shop-prod-registry-lifecycle").inputs["policy"])
    keep = next(r["selection"]["countNumber"] for r in policy["rules"] if r["selection"].get("tagPatternList") == ["*"])
    images = [(0, ["1.0.0", released_tag("1.0.0")])]  # what prod runs, released long ago
    images += [(n, [f"ci-{n}"]) for n in range(1, keep + 11)]  # then more unreleased CI pushes than the count keeps
    expired = _expired(policy, images)
    assert 0 not in expired
    assert expired == set(range(1, 11))  # the oldest unreleased pushes go, as before
    # the old policy (count rule only) would have expired it: what the test guards against
    old = {"rules": [r for r in policy["rules"] if r["selection"].get("tagPatternList") != ["released-*"]]}
    assert 0 in _expired(old, images)


# --- 4. rds_password first, guarded -------------------------------------------------------------------


def test_item4_rds_password_is_no_provider_resource_and_comes_first_guarded_in_sql(phase3: Graph) -> None:
    from components.pgsql import render_sql, steps
    from config.load import load_settings

    assert not [r for r in phase3.of_type(GRANT_ROLE) if r.inputs["grantRole"] == "rds_password"]
    model = load_settings(phase3.config, stack="dev", check_credentials=False).app_database.model()
    texts = [s.sql for s in steps(model)]
    first_role = next(i for i, t in enumerate(texts) if "CREATE ROLE" in t)
    (grant,) = [i for i, t in enumerate(texts) if 'GRANT "rds_password"' in t]
    assert grant < first_role
    assert f"NOT pg_catalog.pg_has_role('{model.master}', 'rds_password', 'MEMBER')" in texts[grant]
    assert render_sql(model).count('GRANT "rds_password"') == 1

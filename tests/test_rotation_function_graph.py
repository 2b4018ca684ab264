"""The rotation function in the stack's graph: placement, security groups, scoped permissions,
a SecretRotation with the schedule on every secret, the password hardening, the controls."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import controls
from bootstrap.plan import report as plan
from bootstrap.plan.mockgraph import Graph, Resource, run_stack
from bootstrap.rotation.package import PROJECT_MODULES
from tests.helpers import assert_config_error
from tests.resource_types import EGRESS, INGRESS, ROTATION, SECRET

FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"


def _fn(graph: Graph) -> Resource:
    (fn,) = graph.of_type(FUNCTION)
    return fn


def _sg_id(graph: Graph, physical: str) -> str:
    return next(r.id for r in graph.of_type("aws:ec2/securityGroup:SecurityGroup") if r.inputs.get("namePrefix") == physical + "-")


def _statements(graph: Graph, role_name: str) -> list[dict[str, Any]]:
    role = next(r for r in graph.of_type("aws:iam/role:Role") if r.inputs.get("namePrefix") == role_name + "-")
    docs = [json.loads(p.inputs["policy"]) for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role.id]
    return [st for d in docs for st in (d["Statement"] if isinstance(d["Statement"], list) else [d["Statement"]])]


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def test_function_in_private_subnets_with_its_own_group(graph: Graph) -> None:
    fn = _fn(graph)
    prefix = f"shop-{graph.stack}"
    assert fn.inputs["runtime"] == "python3.12" and fn.inputs["handler"] == "rotation_function.handler.lambda_handler"
    assert sorted(fn.inputs["vpcConfig"]["subnetIds"]) == sorted(graph.outputs["privateSubnetIds"])
    sg = _sg_id(graph, f"{prefix}-db-rotation")
    assert fn.inputs["vpcConfig"]["securityGroupIds"] == [sg]
    env = fn.inputs["environment"]["variables"]
    assert env["PGHOME_MASTER_SECRET_ARN"] == graph.outputs["dbMasterSecretArn"]
    assert env["PGHOME_ALTERNATING_SECRET_ARNS"] == graph.outputs["appDbLoginSecretArns"]["app"]
    assert env["PGHOME_LOGIN_SECRET_ARNS"] == graph.outputs["appDbLoginSecretArns"]["migrator"]
    assert env["PGSSLMODE"] == "verify-full" and env["PGSSLROOTCERT"] == "/var/task/rds-ca.pem"
    assert not any("PASSWORD" in k for k in env)
    assert not fn.inputs.get("kmsKeyArn")  # only ARNs: Lambda's own key (issue 23 item 7)
    # egress: the DB group on its port, and HTTPS; no ingress at all
    egress = [r.inputs for r in graph.of_type(EGRESS) if r.inputs["securityGroupId"] == sg]
    db_sg = graph.outputs["dbSecurityGroupId"]
    assert sorted((e["fromPort"], e.get("referencedSecurityGroupId") or e.get("cidrIpv4")) for e in egress) == sorted([(5432, db_sg), (443, "0.0.0.0/0")])
    assert not [r for r in graph.of_type(INGRESS) if r.inputs["securityGroupId"] == sg]
    # the database admits it
    admitted = [r.inputs for r in graph.of_type(INGRESS) if r.inputs["securityGroupId"] == db_sg and r.inputs.get("referencedSecurityGroupId") == sg]
    assert admitted and admitted[0]["fromPort"] == 5432


def test_least_privilege_role(graph: Graph) -> None:
    prefix = f"shop-{graph.stack}"
    secrets = sorted(r.state["arn"] for r in graph.of_type(SECRET))
    assert len(secrets) == 3
    by_sid = {st["Sid"]: st for st in _statements(graph, f"{prefix}-db-rotation")}
    # no RDS rights at all (issue 28 item 8): the master rotates in SQL, ModifyDBInstance (which can
    # also switch off deletion protection and backups) stays with an operator's break-glass role
    assert set(by_sid) == {"RotateTheseSecrets", "SecretsKeyThroughSecretsManager", "RedeployTheAppService"}
    assert not any(a.startswith("rds:") for st in by_sid.values() for a in _as_list(st["Action"]))
    assert sorted(_as_list(by_sid["RotateTheseSecrets"]["Resource"])) == secrets
    assert not any("*" in a for st in by_sid.values() for a in _as_list(st["Action"]))
    kms = by_sid["SecretsKeyThroughSecretsManager"]
    assert _as_list(kms["Resource"]) == [graph.outputs["dbKmsKeyArn"]]
    assert kms["Condition"]["StringEquals"]["kms:ViaService"] == "secretsmanager.eu-west-1.amazonaws.com"
    attach = [r.inputs["policyArn"] for r in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if r.name.endswith("rotation-vpc-access")]
    assert attach == ["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"]


# The modules the rotation function's archive ships (bootstrap/rotation/package.py), and the client
# attribute -> IAM service prefix. dbcore/rds_admin.py ships (the handler builds an RdsAdmin) but no
# step calls it since the master's password changes through SQL, so its ModifyDBInstance is not
# granted, deliberately; a step that starts calling it again fails this test until it is granted.
CALLING_MODULES = tuple(m for m in PROJECT_MODULES if m != "dbcore/rds_admin.py")
CLIENTS = {"sm": "secretsmanager", "rds": "rds", "ecs": "ecs"}


def _actions_the_code_calls() -> set[str]:
    """Every `<client>.<operation>(` call in those modules as a lowercase IAM action."""
    root = Path(__file__).resolve().parent.parent
    found = set()
    for module in CALLING_MODULES:
        for client, op in re.findall(r"\b(sm|rds|ecs)\.([a-z_]+)\(", (root / module).read_text()):
            found.add(f"{CLIENTS[client]}:{op.replace('_', '')}")  # IAM matches action names case-insensitively
    return found


def test_the_role_allows_every_call_the_function_makes_and_nothing_else(graph: Graph) -> None:
    """Read from the code, not from the policy builder: every API the rotation steps call (finishSecret's
    UpdateSecretVersionStage among them) is granted, and the role grants no other action.
    Mutation tried: dropping "secretsmanager:UpdateSecretVersionStage" from the RotateTheseSecrets
    statement in components/rotation_function.py (this failed; before, only the golden plans noticed)."""
    called = _actions_the_code_calls()
    assert {"secretsmanager:updatesecretversionstage", "secretsmanager:putsecretvalue", "secretsmanager:getsecretvalue",
            "secretsmanager:describesecret", "ecs:updateservice"} <= called
    statements = _statements(graph, f"shop-{graph.stack}-db-rotation")
    granted = {a.lower() for st in statements for a in _as_list(st["Action"]) if not a.startswith("kms:")}
    assert granted == called
    rotate = next(st for st in statements if st["Sid"] == "RotateTheseSecrets")
    assert sorted(a.lower() for a in _as_list(rotate["Action"])) == sorted(a for a in called if a.startswith("secretsmanager:"))


def test_the_function_may_redeploy_exactly_the_app_service(graph: Graph) -> None:
    """finishSecret of the app secret forces a new deployment: UpdateService on that service's
    (partition-aware, long-format) ARN, nothing else in ECS; its names in the function's env."""
    prefix = f"shop-{graph.stack}"
    by_sid = {st["Sid"]: st for st in _statements(graph, f"{prefix}-db-rotation")}
    ecs = by_sid["RedeployTheAppService"]
    cluster, service = graph.outputs["clusterName"], graph.outputs["serviceName"]
    # DescribeServices: createSecret refuses while the last forced deployment is unfinished (dbcore/rollout.py)
    assert _as_list(ecs["Action"]) == ["ecs:UpdateService", "ecs:DescribeServices"] and ecs["Effect"] == "Allow"
    assert _as_list(ecs["Resource"]) == [f"arn:aws:ecs:eu-west-1:123456789012:service/{cluster}/{service}"]
    assert not any(a.startswith("ecs:") for st in by_sid.values() if st is not ecs for a in _as_list(st["Action"]))
    env = _fn(graph).inputs["environment"]["variables"]
    assert (env["PGHOME_ECS_CLUSTER"], env["PGHOME_ECS_SERVICE"]) == (cluster, service)
    # the function is created after the service it names
    (svc,) = graph.of_type("aws:ecs/service:Service")
    assert svc.urn in _fn(graph).dependencies


@pytest.fixture(scope="module", params=["dev", "prod"])
def appdb_graph(request: pytest.FixtureRequest) -> Graph:
    """Phase 3's graph (app database on): every secret, the login ones included, rotates."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PGPASSWORD", "offline-plan-connects-nowhere")
    try:
        return run_stack(request.param, {"appDbEnabled": "true"})
    finally:
        mp.undo()


def test_secretsmanager_may_invoke_only_for_these_secrets_and_this_account(appdb_graph: Graph) -> None:
    graph = appdb_graph
    perms = graph.of_type(PERMISSION)
    secrets = sorted(r.state["arn"] for r in graph.of_type(SECRET))
    assert sorted(p.inputs["sourceArn"] for p in perms) == secrets
    for p in perms:
        assert p.inputs["principal"] == "secretsmanager.amazonaws.com" and p.inputs["action"] == "lambda:InvokeFunction"
        assert p.inputs["sourceAccount"] == "123456789012" and p.inputs["function"] == _fn(graph).inputs["name"]


def test_every_secret_rotates_on_the_schedule_immediately(appdb_graph: Graph) -> None:
    graph = appdb_graph
    rotations = graph.of_type(ROTATION)
    assert sorted(r.inputs["secretId"] for r in rotations) == sorted(r.state["arn"] for r in graph.of_type(SECRET))
    for r in rotations:
        assert r.inputs["rotationRules"]["automaticallyAfterDays"] == 30
        assert r.inputs["rotationLambdaArn"] == _fn(graph).state["arn"]
        assert r.inputs["rotateImmediately"] is True


def test_login_rotations_wait_for_the_login_roles(graph: Graph, appdb_graph: Graph, monkeypatch: pytest.MonkeyPatch) -> None:
    """Phase 1 (app database off): only the master rotates; the login roles do not exist yet, so an
    immediate rotation of their secrets would fail. Phase 3: each login rotation depends on every
    role and on the last grant of the app database, and on the master's rotation."""
    assert [r.inputs["secretId"] for r in graph.of_type(ROTATION)] == [graph.outputs["dbMasterSecretArn"]]
    assert [p.inputs["sourceArn"] for p in graph.of_type(PERMISSION)] == [graph.outputs["dbMasterSecretArn"]]
    g = appdb_graph
    roles = {r.urn for r in g.of_type("postgresql:index/role:Role")}
    grants = [r.urn for r in g.of_type("postgresql:index/grantRole:GrantRole")]
    (master,) = [r for r in g.of_type(ROTATION) if r.inputs["secretId"] == g.outputs["dbMasterSecretArn"]]
    logins = [r for r in g.of_type(ROTATION) if r is not master]
    assert len(logins) == 2 and roles and grants
    assert not roles & set(master.dependencies)
    for r in logins:
        assert roles <= set(r.dependencies) and master.urn in r.dependencies
        assert any(u in r.dependencies for u in grants)  # the end of the grant chain
    # SecretsManager.1/.4 hold in both phases: in phase 1 the login secrets wait for their roles
    monkeypatch.setenv("PGPASSWORD", "offline-plan-connects-nowhere")
    for g_ in (graph, g):
        results = {r.control.id: r for r in plan.check_graph(g_).results}
        assert results["SecretsManager.1"].status == results["SecretsManager.4"].status == controls.PASS


def test_schedule_from_config_and_its_bounds() -> None:
    g = run_stack("dev", {"dbSecretRotationDays": 7})
    assert {r.inputs["rotationRules"]["automaticallyAfterDays"] for r in g.of_type(ROTATION)} == {7}
    assert_config_error("dev", {"dbSecretRotationDays": 0}, "pghome:dbSecretRotationDays")
    assert_config_error("dev", {"dbSecretRotationDays": 400}, "pghome:dbSecretRotationDays")


def test_iam_auth_login_roles_are_not_password_rotated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "offline-plan-connects-nowhere")
    g = run_stack("dev", {"appDbIamAuthRoles": ["app", "migrator"], "appDbEnabled": "true"})
    rotated = {r.inputs["secretId"] for r in g.of_type(ROTATION)}
    assert rotated == {g.outputs["dbMasterSecretArn"]}
    env = _fn(g).inputs["environment"]["variables"]
    assert env["PGHOME_LOGIN_SECRET_ARNS"] == env["PGHOME_ALTERNATING_SECRET_ARNS"] == ""
    # no alternating secret: nothing to redeploy after, so no ECS permission and no service named
    assert "PGHOME_ECS_SERVICE" not in env
    assert not any(a.startswith("ecs:") for st in _statements(g, "shop-dev-db-rotation") for a in _as_list(st["Action"]))


def test_password_commands_restricted_to_the_master(graph: Graph) -> None:
    (group,) = [r for r in graph.of_type("aws:rds/parameterGroup:ParameterGroup") if r.name.endswith("-database-params")]
    params = {p["name"]: p for p in group.inputs["parameters"]}
    assert params["rds.restrict_password_commands"] == {"name": "rds.restrict_password_commands", "value": "1", "applyMethod": "pending-reboot"}


def test_rds_password_granted_to_the_master_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from components.pgsql import render_sql

    monkeypatch.setenv("PGPASSWORD", "offline-plan-connects-nowhere")
    g = run_stack("dev", {"appDbEnabled": "true"})
    # not a provider resource: its create runs REVOKE then GRANT, which fails on 16+ for a master holding
    # rds_password through rds_superuser without ADMIN; the deploy grants it, guarded (issue 23 item 4)
    grants = [r for r in g.of_type("postgresql:index/grantRole:GrantRole") if r.inputs["grantRole"] == "rds_password"]
    assert grants == []
    from config.load import load_settings

    s = load_settings(g.config, stack="dev", check_credentials=False)
    text = render_sql(s.app_database.model())
    assert text.count('GRANT "rds_password" TO') == 1 and 'GRANT "rds_password" TO "shop_master"' in text


def test_controls_sm1_and_sm4(graph: Graph) -> None:
    report = plan.check_graph(graph)
    results = {r.control.id: r for r in report.results}
    assert results["SecretsManager.1"].status == controls.PASS and results["SecretsManager.1"].control.level == controls.MUST_HOLD
    assert results["SecretsManager.4"].status == controls.PASS and results["SecretsManager.4"].checked == 3


def test_sm4_fails_for_a_long_schedule() -> None:
    report = plan.check_graph(run_stack("prod", {"dbSecretRotationDays": 180}))
    result = next(r for r in report.results if r.control.id == "SecretsManager.4")
    assert result.status == controls.FAIL and any("180 days" in str(f) for f in result.findings)

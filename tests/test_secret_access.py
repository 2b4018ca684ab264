"""Issue 28 item 9: only the rotation function, the deploy role and a named break-glass role read
the master secret (its resource policy), and the account uses the DB key only through RDS and
Secrets Manager (kms:ViaService), so broad IAM in the account is not enough to read the password."""

from __future__ import annotations

import json

import pytest

from bootstrap.plan.mockgraph import Graph, Resource, run_stack
from components.secret_access import GUARDED_ACTIONS, master_secret_policy
from tests.helpers import assert_config_error

POLICY = "aws:secretsmanager/secretPolicy:SecretPolicy"
DEPLOY = "arn:aws:iam::123456789012:role/shop-prod-deploy"
BREAK_GLASS = "arn:aws:iam::123456789012:role/shop-break-glass"


def _one(g: Graph, type_: str, name_part: str = "") -> Resource:
    found = [r for r in g.resources if r.type == type_ and name_part in r.name]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def test_prod_master_secret_denies_all_but_three_roles(prod_graph: Graph) -> None:
    policy = _one(prod_graph, POLICY)
    secret = _one(prod_graph, "aws:secretsmanager/secret:Secret", "master-secret")
    assert policy.inputs["secretArn"] == secret.state.get("arn") or policy.property_dependencies.get("secretArn")
    assert policy.inputs["blockPublicPolicy"] is True
    (st,) = json.loads(policy.inputs["policy"])["Statement"]
    assert st["Effect"] == "Deny" and st["Principal"] == "*" and "secretsmanager:GetSecretValue" in st["Action"]
    assert {"secretsmanager:DeleteResourcePolicy", "secretsmanager:PutResourcePolicy"} <= set(st["Action"])  # the lock cannot be lifted by others
    readers = st["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    rotation_role = _one(prod_graph, "aws:iam/role:Role", "rotation")
    assert DEPLOY in readers and BREAK_GLASS in readers and len(readers) == 3
    assert any("rotation" in r for r in readers) and rotation_role.urn in policy.dependencies


def test_login_secrets_keep_their_readers_and_dev_without_roles_has_no_policy(dev_graph: Graph, prod_graph: Graph) -> None:
    assert [r for r in dev_graph.resources if r.type == POLICY] == []
    assert len([r for r in prod_graph.resources if r.type == POLICY]) == 1  # the master secret only: tasks read the login secrets


def test_dev_may_opt_in() -> None:
    g = run_stack("dev", {"dbDeployRoleArn": "arn:aws:iam::123456789012:role/dev-deploy"})
    (policy,) = [r for r in g.resources if r.type == POLICY]
    assert "arn:aws:iam::123456789012:role/dev-deploy" in policy.inputs["policy"]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"dbBreakGlassRoleArn": ""}, "prod needs dbDeployRoleArn and dbBreakGlassRoleArn"),
        ({"dbDeployRoleArn": "shop-prod-deploy"}, "pghome:dbDeployRoleArn = 'shop-prod-deploy' is invalid"),
        ({"dbBreakGlassRoleArn": "arn:aws:iam::123456789012:user/alice"}, "an IAM role ARN"),
    ],
)
def test_prod_config_names_both_roles(overrides, fragment) -> None:
    assert_config_error("prod", overrides, fragment)


def test_db_key_decrypts_only_through_rds_and_secrets_manager(graph: Graph) -> None:
    key = _one(graph, "aws:kms/key:Key", "database-key")
    statements = {s.get("Sid"): s for s in json.loads(key.inputs["policy"])["Statement"]}
    admin, use = statements["AccountAdministration"], statements["AccountUseThroughServices"]
    assert not {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:CreateGrant"} & set(admin["Action"])
    assert "kms:DescribeKey" in admin["Action"] and "kms:ScheduleKeyDeletion" in admin["Action"]
    assert "kms:Decrypt" in use["Action"]
    region = graph.config["aws:region"]
    assert sorted(use["Condition"]["StringEquals"]["kms:ViaService"]) == [f"rds.{region}.amazonaws.com", f"secretsmanager.{region}.amazonaws.com"]
    # other keys (ECS Exec sessions are decrypted by the agent and the operator's plugin directly) keep direct use
    other = _one(graph, "aws:kms/key:Key", "registry-key")
    assert "AccountUseThroughServices" not in {s.get("Sid") for s in json.loads(other.inputs["policy"])["Statement"]}


def test_policy_function_refuses_an_empty_reader_list() -> None:
    with pytest.raises(ValueError):
        master_secret_policy([])
    assert "secretsmanager:GetSecretValue" in GUARDED_ACTIONS

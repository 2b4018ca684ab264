"""IAM authentication per login role, explicit in config (appDbIamAuthRoles): those roles get
rds_iam, no password, no SecretRotation, and (the app) the task role rds-db:connect for exactly
that user; `rotate --role <iam role>` is a one-sentence input error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bootstrap.plan.mockgraph import Graph, run_stack
from tests.deploy_world import edit_stack_file
from tests.helpers import assert_config_error
from tests.pulumi_double.fixture import Double
from tests.resource_types import ROTATION

GRANT = "postgresql:index/grantRole:GrantRole"


@pytest.fixture(autouse=True)
def _pgpassword(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PGPASSWORD", "offline-plan-connects-nowhere")
    yield


def _stack(overrides: dict[str, Any]) -> Graph:
    return run_stack("prod", {"appDbEnabled": "true", **overrides})


def _iam_members(g: Graph) -> set[str]:
    return {r.inputs["role"] for r in g.of_type(GRANT) if r.inputs["grantRole"] == "rds_iam"}


def _rotated(g: Graph) -> set[str]:
    by_arn = {v: k for k, v in g.outputs["appDbLoginSecretArns"].items()}
    by_arn[g.outputs["dbMasterSecretArn"]] = "master"
    return {by_arn[r.inputs["secretId"]] for r in g.of_type(ROTATION)}


def _connect_users(g: Graph) -> list[str]:
    users = []
    for p in g.of_type("aws:iam/rolePolicy:RolePolicy"):
        doc = json.loads(p.inputs["policy"])
        for st in doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]:
            if st.get("Action") == "rds-db:connect":
                users += [str(x).rsplit("/", 1)[-1] for x in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])]
    return users


@pytest.mark.parametrize("roles,iam_users,rotated,connect", [
    ([], set(), {"master", "app", "migrator"}, []),
    (["app"], {"shop_app"}, {"master", "migrator"}, ["shop_app"]),
    (["migrator"], {"shop_migrator"}, {"master", "app"}, []),
    (["migrator", "app"], {"shop_app", "shop_migrator"}, {"master"}, ["shop_app"]),
], ids=["none", "app", "migrator", "both"])
def test_iam_roles_get_rds_iam_no_rotation_and_exact_connect(roles: list[str], iam_users: set[str], rotated: set[str], connect: list[str]) -> None:
    g = _stack({"appDbIamAuthRoles": roles})
    assert _iam_members(g) == iam_users
    assert _rotated(g) == rotated
    assert _connect_users(g) == connect  # only the app runs as a task; exactly its user
    env = next(r for r in g.of_type("aws:lambda/function:Function")).inputs["environment"]["variables"]
    assert bool(env["PGHOME_ALTERNATING_SECRET_ARNS"]) == ("app" not in roles)
    assert bool(env["PGHOME_LOGIN_SECRET_ARNS"]) == ("migrator" not in roles)


def test_deprecated_boolean_means_the_app_only() -> None:
    assert _iam_members(_stack({"appDbIamAuth": "true"})) == {"shop_app"}
    assert _iam_members(_stack({"appDbIamAuth": "false"})) == set()


@pytest.mark.parametrize("overrides,fragments", [
    ({"appDbIamAuthRoles": ["admin"]}, ("pghome:appDbIamAuthRoles", "each entry must be one of app, migrator")),
    ({"appDbIamAuthRoles": ["app", "app"]}, ("pghome:appDbIamAuthRoles", "must not list a role twice")),
    ({"appDbIamAuthRoles": "app"}, ("pghome:appDbIamAuthRoles",)),
    ({"appDbIamAuthRoles": ["app"], "appDbIamAuth": "true"}, ("pghome:appDbIamAuth", "appDbIamAuthRoles")),
])
def test_bad_iam_config_is_one_error(overrides: dict[str, Any], fragments: tuple[str, ...]) -> None:
    assert_config_error("dev", overrides, *fragments)


def test_rotate_an_iam_role_is_an_input_error(pulumi_double: Double, capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.main import main

    d = pulumi_double
    edit_stack_file(d.project / "Pulumi.dev.yaml", appDbIamAuthRoles=["app"])
    capsys.readouterr()
    rc = main(["rotate", "--stack", "dev", "--role", "app", "-C", str(d.project)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "role app uses IAM authentication (appDbIamAuthRoles) and has no password to rotate" in err and "master, migrator or all" in err
    assert d.calls() == []  # nothing reached the CLI

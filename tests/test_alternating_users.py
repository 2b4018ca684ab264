"""The app login's clone (alternating rotation) in the model, the SQL on a real server, the graph,
and how the service reads the secret (username and password together)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from bootstrap.plan.mockgraph import Graph
from components.pgmodel import DbModel, clone_of
from tests.helpers import isolated_model
from tests.pgserver import PgServer
from tests.test_app_database_pg import MASTER_PASSWORD, apply_model

PW = "alt-Pw-for-tests-1"


@pytest.fixture(scope="module")
def model() -> DbModel:
    return isolated_model("alt")


@pytest.fixture(scope="module")
def applied(pg: PgServer, model: DbModel) -> Iterator[DbModel]:
    pg.make_rds_master(model.master, MASTER_PASSWORD)
    apply_model(pg, model)
    with pg.connect_super() as conn:
        for role in ("alt_app", "alt_app_clone"):
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(PW)))
    with pg.connect_super(model.database) as conn:
        conn.execute("SET ROLE alt_owner")  # as a migration creates it: default privileges apply
        conn.execute("CREATE TABLE app.items (id int PRIMARY KEY)")
    yield model


def test_model_has_the_clone_with_the_same_settings(model: DbModel) -> None:
    app, clone = model.role("alt_app"), model.role(clone_of("alt_app"))
    assert clone.name == "alt_app_clone" and clone.login
    assert (clone.member_of, clone.connection_limit, clone.search_path, clone.statement_timeout_ms, clone.idle_in_transaction_timeout_ms, clone.assume_role) == (
        app.member_of, app.connection_limit, app.search_path, app.statement_timeout_ms, app.idle_in_transaction_timeout_ms, app.assume_role)
    assert ("alt_app_clone", "alt_rw") in model.memberships
    assert any(g.role == "alt_app_clone" and g.object_type == "database" and g.privileges == ("CONNECT",) for g in model.grants)


def test_clone_and_app_are_the_same_in_the_catalog_and_can_do_the_same(pg: PgServer, applied: DbModel) -> None:
    with pg.connect_super() as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit, rolconfig FROM pg_roles WHERE rolname IN ('alt_app', 'alt_app_clone')")}
        members = {m: sorted(r for r, mm in conn.execute(
            "SELECT r.rolname, m.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member") if mm == m)
            for m in ("alt_app", "alt_app_clone")}
    assert rows["alt_app"] == rows["alt_app_clone"]
    assert members["alt_app"] == members["alt_app_clone"] == ["alt_rw"]
    for user in ("alt_app", "alt_app_clone"):
        with psycopg.connect(pg.dsn(user, PW, applied.database), autocommit=True) as conn:
            conn.execute("INSERT INTO items VALUES (%s)", (len(user),))  # search_path app, rw privileges
            assert conn.execute("SELECT count(*) FROM items").fetchone()[0] >= 1  # type: ignore[index]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE app.nope (x int)")


def test_graph_has_the_clone_role_with_the_apps_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from bootstrap.plan.mockgraph import run_stack

    monkeypatch.setenv("PGPASSWORD", "offline-plan-connects-nowhere")
    g = run_stack("dev", {"appDbEnabled": "true"})
    roles = {r.inputs["name"]: r.inputs for r in g.of_type("postgresql:index/role:Role")}
    app, clone = roles["shop_app"], roles["shop_app_clone"]
    assert {k: v for k, v in clone.items() if k != "name"} == {k: v for k, v in app.items() if k != "name"}
    members = {(r.inputs["role"], r.inputs["grantRole"]) for r in g.of_type("postgresql:index/grantRole:GrantRole")}
    assert ("shop_app_clone", "shop_rw") in members
    grants = [r.inputs for r in g.of_type("postgresql:index/grant:Grant") if r.inputs["role"] == "shop_app_clone"]
    assert [(x["objectType"], x["privileges"]) for x in grants] == [("database", ["CONNECT"])]


def test_service_reads_username_and_password_from_the_secret(dev_graph: Graph) -> None:
    task = next(r for r in dev_graph.of_type("aws:ecs/taskDefinition:TaskDefinition") if dev_graph.by_urn(r.parent).type == "pghome:service:Service")
    container = json.loads(task.inputs["containerDefinitions"])[0]
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert secrets["PGUSER"].endswith(":username::") and secrets["PGPASSWORD"].endswith(":password::")
    assert secrets["PGUSER"].removesuffix(":username::") == secrets["PGPASSWORD"].removesuffix(":password::")
    assert "PGUSER" not in {e["name"] for e in container["environment"]}

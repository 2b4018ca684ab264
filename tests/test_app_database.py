"""The app database on the mocked graph: secrets always, pulumi_postgresql resources when enabled,
no credential among any input, grants chained, and the SQL rendering describing the same model."""

from __future__ import annotations

import json
import re

import pytest

from bootstrap.plan.mockgraph import Graph, run_stack
from components.pgmodel import DbModel, GrantSpec, build_model, validate
from components.pgsql import render_sql
from config.load import load_settings
from config.stack_file import stack_config
from tests.helpers import assert_config_error

SENTINEL = "pgpassword-sentinel-7f3a9c"  # what PGPASSWORD holds while the program runs
PG = "postgresql:index/"
CHAIN_TYPES = {f"{PG}grantRole:GrantRole", f"{PG}grant:Grant", f"{PG}defaultPrivileges:DefaultPrivileges", f"{PG}extension:Extension"}


@pytest.fixture(scope="module", params=["dev", "prod"])
def enabled(request) -> Graph:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", SENTINEL)
        return run_stack(request.param, {"appDbEnabled": "true", "appDbIamAuthRoles": ["app", "migrator"] if request.param == "prod" else []})


def model_of(graph: Graph) -> DbModel:
    s = load_settings(graph.config, stack=graph.stack, check_credentials=False)
    return s.app_database.model()


def pg_resources(graph: Graph) -> list:
    return [r for r in graph.resources if r.type.startswith("postgresql:")]


# --- always: the login secrets ------------------------------------------------------------------


def test_login_secrets_exist_even_when_disabled(graph: Graph):
    assert graph.config["pghome:appDbEnabled"] == "false"
    assert pg_resources(graph) == [] and not graph.of_type("pulumi:providers:postgresql")
    db_key = graph.one("aws:kms/key:Key", name=f"{graph.one('pghome:database:Database').name}-key")
    prefix = graph.one("aws:rds/instance:Instance").inputs["identifier"].removesuffix("-db")
    for role in ("app", "migrator"):
        secret = next(r for r in graph.of_type("aws:secretsmanager/secret:Secret") if r.inputs["name"] == f"{prefix}/db/{role}")
        assert secret.inputs["kmsKeyId"] == db_key.state["arn"]
        (version,) = [v for v in graph.of_type("aws:secretsmanager/secretVersion:SecretVersion") if v.inputs["secretId"] == secret.id]
        assert version.ignore_changes == ["secretString"]
        value = json.loads(version.inputs["secretString"])
        assert value["password"] == "" and value["username"].endswith(f"_{role}")
        assert value["host"] == graph.outputs["dbAddress"] and value["dbname"] == graph.outputs["appDbName"]
    assert graph.outputs["appDbLoginSecretArns"]["app"].endswith(f"secret:{prefix}/db/app-AbCdEf")


def test_the_service_reads_the_app_secret(graph: Graph):
    task = graph.one("aws:ecs/taskDefinition:TaskDefinition", f"shop-{graph.stack}-service-task")
    (container,) = json.loads(task.inputs["containerDefinitions"])
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert secrets["PGPASSWORD"] == graph.outputs["appDbLoginSecretArns"]["app"] + ":password::"
    env = {e["name"]: e["value"] for e in container["environment"]}
    # the user alternates between the app login and its clone: read from the same secret
    assert secrets["PGUSER"] == graph.outputs["appDbLoginSecretArns"]["app"] + ":username::" and "PGUSER" not in env
    assert env["PGDATABASE"] == graph.outputs["appDbName"]


# --- enabled: the provider and the resources ----------------------------------------------------


def test_provider_connects_as_master_without_any_credential_in_its_inputs(enabled: Graph):
    (provider,) = enabled.of_type("pulumi:providers:postgresql")
    inputs = provider.inputs
    assert inputs["host"] == enabled.outputs["dbAddress"] and int(inputs["port"]) == enabled.outputs["dbPort"]
    assert inputs["username"] == model_of(enabled).master and inputs["database"] == "postgres"
    assert json.loads(inputs["superuser"]) is False if isinstance(inputs["superuser"], str) else inputs["superuser"] is False
    assert inputs["expectedVersion"] == enabled.config["pghome:dbEngineVersion"]
    assert inputs["sslmode"] == enabled.config.get("pghome:appDbSslMode", "verify-full")  # every stack's default (issue 28)
    assert not [k for k in inputs if re.search(r"password|token|secret", k, re.I)]
    # the PGPASSWORD the program ran with appears in no input of any resource
    for r in enabled.resources:
        assert SENTINEL not in json.dumps(r.inputs, default=str), r.name
    assert SENTINEL not in json.dumps(enabled.outputs, default=str)


def test_prod_provider_verifies_the_server_certificate(prod_graph: Graph):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", SENTINEL)
        g = run_stack("prod", {"appDbEnabled": "true"})
    (provider,) = g.of_type("pulumi:providers:postgresql")
    assert provider.inputs["sslmode"] == "verify-full" and provider.inputs["sslrootcert"].endswith("rds-global-bundle.pem")


def test_tunnel_override_changes_only_the_provider_endpoint():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", SENTINEL)
        g = run_stack("dev", {"appDbEnabled": "true", "appDbHostOverride": "127.0.0.1", "appDbPortOverride": "15432"})
    (provider,) = g.of_type("pulumi:providers:postgresql")
    assert (provider.inputs["host"], int(provider.inputs["port"])) == ("127.0.0.1", 15432)
    secret = next(v for v in g.of_type("aws:secretsmanager/secretVersion:SecretVersion") if "appdb-app" in v.name)
    assert json.loads(secret.inputs["secretString"])["host"] == g.outputs["dbAddress"]  # the app still uses the real endpoint


def test_roles_match_the_model_and_carry_no_password(enabled: Graph):
    model = model_of(enabled)
    roles = {r.inputs["name"]: r for r in enabled.of_type(f"{PG}role:Role")}
    assert set(roles) == {r.name for r in model.roles}
    for spec in model.roles:
        r = roles[spec.name]
        assert r.inputs["login"] is spec.login
        assert r.inputs.get("connectionLimit", -1) == spec.connection_limit
        assert r.inputs.get("searchPaths", []) == list(spec.search_path)
        assert r.inputs.get("assumeRole") == spec.assume_role
        assert r.inputs.get("statementTimeout") == spec.statement_timeout_ms
        assert "password" not in r.inputs and "encryptedPassword" not in r.inputs and not r.secret_paths
        assert set(r.ignore_changes) >= {"password", "roles"}  # the rotation and GrantRole own those
        assert r.inputs["skipReassignOwned"] is True
    owner = roles[model.owner]
    assert owner.inputs["login"] is False
    app = roles[f"{model.owner[:-6]}_app"]
    assert app.inputs["idleInTransactionSessionTimeout"] == int(enabled.config.get("pghome:appDbIdleInTransactionTimeoutMs", 60000))


def test_database_schema_and_memberships(enabled: Graph):
    model = model_of(enabled)
    db = enabled.one(f"{PG}database:Database")
    assert db.protect is (enabled.stack == "prod")  # `destroy` never drops prod's data
    assert (db.inputs["name"], db.inputs["owner"]) == (model.database, model.owner)
    schemas = {r.inputs["name"]: r for r in enabled.of_type(f"{PG}schema:Schema")}
    assert set(schemas) == {model.schema, model.extension_schema}  # extensions live apart (pgcrypto in both stacks)
    for name, schema in schemas.items():
        assert (schema.inputs["owner"], schema.inputs["database"]) == (model.owner, model.database), name
    memberships = {(g.inputs["role"], g.inputs["grantRole"]) for g in enabled.of_type(f"{PG}grantRole:GrantRole")}
    assert (model.master, model.owner) in memberships  # the RDS master is not a superuser
    expected_iam = {(r, "rds_iam") for r in model.iam_login_roles}
    # rds_password is granted, guarded, by the deploy before this up, never by the provider (issue 23 item 4)
    assert memberships == set(model.memberships) | expected_iam
    assert all(role != model.owner for role, granted in memberships if granted == "rds_iam")
    if enabled.stack == "prod":  # IAM auth is on in this fixture for prod
        assert expected_iam


def test_every_postgresql_resource_uses_the_provider_and_is_a_child(enabled: Graph):
    (provider,) = enabled.of_type("pulumi:providers:postgresql")
    component = enabled.one("pghome:appdb:AppDatabase")
    for r in pg_resources(enabled):
        assert r.provider.startswith(provider.urn + "::"), r.name
        assert r.parent == component.urn
        assert r.inputs.get("name") or r.type in CHAIN_TYPES - {f"{PG}extension:Extension"}  # explicit names, no autonaming


def test_grants_run_one_after_another(enabled: Graph):
    """Every grant-like resource is ordered against every other (directly or through the database
    and schema): parallel grants fail on PostgreSQL with 'tuple concurrently updated'."""
    deps = {r.urn: set(r.dependencies) for r in enabled.resources}

    def ancestors(urn: str) -> set[str]:
        seen: set[str] = set()
        todo = list(deps.get(urn, ()))
        while todo:
            u = todo.pop()
            if u not in seen:
                seen.add(u)
                todo.extend(deps.get(u, ()))
        return seen

    chain = [r for r in enabled.resources if r.type in CHAIN_TYPES]
    assert len(chain) >= 20
    before = {r.urn: ancestors(r.urn) for r in chain}
    for i, a in enumerate(chain):
        for b in chain[i + 1 :]:
            assert a.urn in before[b.urn] or b.urn in before[a.urn], f"{a.name} and {b.name} may run in parallel"


# --- one model, two renderings ------------------------------------------------------------------


def _normalize_graph(graph: Graph) -> set[tuple]:
    out: set[tuple] = set()
    for r in graph.of_type(f"{PG}grantRole:GrantRole"):
        out.add(("member", r.inputs["role"], r.inputs["grantRole"]))
    for r in graph.of_type(f"{PG}grant:Grant"):
        if r.retain_on_delete:
            continue  # the retired bulk grants (issue 24): inert, not part of the model
        obj = r.inputs["database"] if r.inputs["objectType"] == "database" else r.inputs["schema"]
        out.add(("grant", r.inputs["role"], r.inputs["objectType"], obj, tuple(sorted(r.inputs.get("privileges", [])))))
    for r in graph.of_type(f"{PG}defaultPrivileges:DefaultPrivileges"):
        out.add(("default", r.inputs["owner"], r.inputs.get("schema") or "*", r.inputs["objectType"], r.inputs["role"], tuple(sorted(r.inputs.get("privileges", [])))))
    for r in graph.of_type(f"{PG}extension:Extension"):
        out.add(("extension", r.inputs["name"], r.inputs["schema"]))
    for r in graph.of_type(f"{PG}role:Role"):
        out.add(("role", r.inputs["name"], r.inputs["login"], r.inputs.get("connectionLimit", -1), r.inputs.get("inherit", True)))
    return out


def _normalize_sql(text: str) -> set[tuple]:
    out: set[tuple] = set()
    unq = lambda s: "public" if s == "PUBLIC" else s.strip('"')  # noqa: E731
    for m in re.finditer(r'^\s+GRANT "(\w+)" TO "(\w+)";$', text, re.M):  # memberships and rds_iam (DO blocks)
        if m.group(1) != "rds_password":  # granted by the deploy before the up, not a resource (issue 23 item 4)
            out.add(("member", m.group(2), m.group(1)))
    for m in re.finditer(r'^    REVOKE ALL ON DATABASE "(\w+)" FROM (\S+);\n(    GRANT (.+?) ON .*;\n)?  END IF;', text, re.M):  # postgres, template1
        out.add(("grant", unq(m.group(2)), "database", m.group(1), tuple(sorted(p.strip() for p in m.group(4).split(","))) if m.group(4) else ()))
    for m in re.finditer(r"^REVOKE ALL ON (DATABASE|SCHEMA|ALL (TABLES|SEQUENCES|FUNCTIONS) IN SCHEMA) \"(\w+)\" FROM (\S+);\n(GRANT (.+?) ON .*;\n)?COMMIT;", text, re.M):
        kind = m.group(1).split()[0] if not m.group(2) else m.group(2)[:-1].lower()
        kind = {"DATABASE": "database", "SCHEMA": "schema"}.get(kind, kind)
        privs = tuple(sorted(p.strip() for p in m.group(6).split(","))) if m.group(6) else ()
        out.add(("grant", unq(m.group(4)), kind, m.group(3), privs))
    for m in re.finditer(
        r"^ALTER DEFAULT PRIVILEGES FOR ROLE \"(\w+)\"(?: IN SCHEMA \"(\w+)\")? REVOKE ALL ON (\w+) FROM (\S+);\n(?:ALTER DEFAULT PRIVILEGES .* GRANT (.+?) ON \w+ TO \S+;\n)?COMMIT;",
        text,
        re.M,
    ):
        privs = tuple(sorted(p.strip() for p in m.group(5).split(","))) if m.group(5) else ()
        out.add(("default", m.group(1), m.group(2) or "*", m.group(3)[:-1].lower(), unq(m.group(4)), privs))
    for m in re.finditer(r'^CREATE EXTENSION "([\w-]+)" SCHEMA "(\w+)";', text, re.M):
        out.add(("extension", m.group(1), m.group(2)))
    for m in re.finditer(r'^ALTER ROLE "(\w+)" (LOGIN|NOLOGIN) .*?(NOINHERIT|INHERIT) CONNECTION LIMIT (-?\d+);', text, re.M):
        out.add(("role", m.group(1), m.group(2) == "LOGIN", int(m.group(4)), m.group(3) == "INHERIT"))
    return out


def test_sql_rendering_and_graph_describe_the_same_model(enabled: Graph):
    model = model_of(enabled)
    from_graph = _normalize_graph(enabled)
    from_sql = _normalize_sql(render_sql(model))
    assert from_graph == from_sql
    # and it is the whole model, not two empty sets agreeing
    assert len([t for t in from_sql if t[0] == "grant"]) == len(model.grants)
    assert len([t for t in from_sql if t[0] == "default"]) == len(model.default_privileges)
    assert len([t for t in from_sql if t[0] == "role"]) == 6  # five roles + the app login's clone (alternating rotation)


def test_grants_memberships_default_privileges_and_extensions_are_replaced_delete_first(enabled: Graph):
    """Each names its server-side object by its inputs, so a replacement is the same object: created
    first, the new one would be revoked (or dropped) by the old one's Delete right after."""
    chained = [r for r in enabled.resources if r.type in CHAIN_TYPES and not r.retain_on_delete]
    assert {r.type for r in chained} == CHAIN_TYPES and len(chained) >= 20
    assert [r.name for r in chained if not r.delete_before_replace] == []


def test_the_retired_bulk_grants_are_inert_and_never_revoked(enabled: Graph):
    # Stacks deployed before issue 24 hold Grant resources on ALL tables/sequences/functions of the
    # schema; deleting one makes the provider revoke the role's privileges on every such object.
    retired = [r for r in enabled.of_type(f"{PG}grant:Grant") if r.inputs["objectType"] in ("table", "sequence", "function")]
    assert len(retired) == 6
    for r in retired:
        assert r.retain_on_delete, r.name
        assert {"privileges", "objects", "schema", "role", "database", "objectType"} <= set(r.ignore_changes), r.name
    model = model_of(enabled)
    assert not [g for g in model.grants if g.object_type in ("table", "sequence", "function")]


def test_bootstrap_sql_prints_the_rendering_without_credentials(capsys):
    from bootstrap.cli.main import main

    assert main(["sql", "--stack", "dev"]) == 0
    out = capsys.readouterr().out
    settings = load_settings(stack_config("dev"), stack="dev", check_credentials=False)
    assert out == render_sql(settings.app_database.model())
    statements = [line for line in out.splitlines() if not line.startswith("--")]
    assert statements and not [line for line in statements if "PASSWORD" in line.upper().replace("RDS_PASSWORD", "")]
    assert "GRANT ALL" not in out


# --- bad model config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        ({"appDbRolePrefix": "pg_shop"}, ["pghome:appDbRolePrefix", "reserved"]),
        ({"appDbRolePrefix": "rds"}, ["pghome:appDbRolePrefix", "reserved"]),
        ({"appDbRolePrefix": "Shop"}, ["pghome:appDbRolePrefix", "lowercase identifier"]),
        ({"appDbRolePrefix": "shop-app"}, ["pghome:appDbRolePrefix", "lowercase identifier"]),
        ({"dbMasterUsername": "shop_app"}, ["pghome:appDbRolePrefix", "is the RDS master user"]),
        ({"appDbSchema": "public"}, ["pghome:appDbSchema", "other than public"]),
        ({"appDbSchema": "pg_app"}, ["pghome:appDbSchema"]),
        ({"appDbName": "postgres"}, ["pghome:appDbName", "not postgres"]),
        ({"appDbName": "my-db"}, ["pghome:appDbName", "lowercase PostgreSQL identifier"]),
        ({"appDbExtensions": '["postgis"]'}, ["pghome:appDbExtensions", "one of"]),
        ({"appDbExtensions": '["pgcrypto", "pgcrypto"]'}, ["pghome:appDbExtensions", "twice"]),
        ({"appDbSslMode": "prefer"}, ["pghome:appDbSslMode", "require, verify-full"]),
        ({"appDbSslMode": "verify-full", "appDbSslRootCert": ""}, ["pghome:appDbSslRootCert", "CA bundle"]),
        ({"appDbConnectionLimit": "0"}, ["pghome:appDbConnectionLimit", "from 1 to 1000"]),
    ],
)
def test_bad_model_config_is_one_clear_error(overrides, fragments):
    assert_config_error("dev", overrides, *fragments)


def test_enabled_without_a_credential_says_how_to_provide_one(monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    err = assert_config_error("dev", {"appDbEnabled": "true"}, "pghome:appDbEnabled", "PGPASSWORD", "python -m bootstrap deploy")
    assert len(err.problems) == 1


def test_validate_rejects_unknown_privileges_and_clashes():
    model = build_model(
        database="d", schema="s", role_prefix="x", master="m", extensions=(), iam_auth_roles=(),
        connection_limit=5, statement_timeout_ms=1, idle_in_transaction_timeout_ms=1,
    )
    assert validate(model) == []
    bad = DbModel(**{**model.__dict__, "grants": model.grants + (GrantSpec("x_app", "table", ("ALL",), schema="s"),)})
    assert any("unknown privilege(s) ['ALL']" in p for p in validate(bad))
    clash = DbModel(**{**model.__dict__, "roles": model.roles + (model.roles[0],)})
    assert any("clash" in p for p in validate(clash))

"""Issue 28 item 10: `audit` looks where a live password actually sits and tries the clone login.

Places: inside a task definition's `containerDefinitions` JSON, a Lambda's environment (e.g.
DATABASE_URL), a connection URI in a plain stack output, the stack config (`pulumi config
--show-secrets`) and the config of past updates (`pulumi stack history --show-secrets`). Users:
the master, the login roles and `<prefix>_app_clone` (the rotation alternates the app login with it).
The last test runs the audit against the real PostgreSQL server with a password only the clone has.
"""

from __future__ import annotations

import json
import secrets
from types import SimpleNamespace

from psycopg import sql

from bootstrap.rotation.audit import audit_state, config_and_history, find_config_credentials, find_credentials, login_users
from config.load import load_settings
from config.stack_file import stack_config
from dbcore import pgconn
from tests.pgserver import PgServer

PW = "Live-Password-" + "x" * 20


def _state(*resources: dict) -> dict:
    return {"version": 3, "deployment": {"resources": list(resources)}}


def _res(urn: str, type_: str, inputs: dict | None = None, outputs: dict | None = None) -> dict:
    return {"urn": urn, "type": type_, "inputs": inputs or {}, "outputs": outputs or {}}


def test_password_inside_container_definitions_json() -> None:
    defs = json.dumps([{"name": "app", "image": "x", "environment": [{"name": "DB_PASSWORD", "value": PW}, {"name": "PORT", "value": "8000"}]}])
    creds = find_credentials(_state(_res("urn:td", "aws:ecs/taskDefinition:TaskDefinition", {"containerDefinitions": defs})))
    assert [c.value for c in creds] == [PW] and "DB_PASSWORD" in creds[0].where


def test_database_url_in_a_lambda_environment_names_its_user() -> None:
    url = f"postgresql://shop_app:{PW.replace('-', '%2D')}@db.internal:5432/shop?sslmode=verify-full"
    creds = find_credentials(_state(_res("urn:fn", "aws:lambda/function:Function", {"environment": {"variables": {"DATABASE_URL": url}}})))
    assert [(c.value, c.usernames) for c in creds] == [(PW, ("shop_app",))]


def test_uri_in_a_plain_stack_output() -> None:
    stack = _res("urn:stack", "pulumi:pulumi:Stack", outputs={"dsn": f"postgres://shop_master:{PW}@db:5432/postgres", "url": "https://shop.example.com"})
    creds = find_credentials(_state(stack))
    assert [(c.value, c.usernames) for c in creds] == [(PW, ("shop_master",))]


def test_stack_config_and_history() -> None:
    config = {"pghome:dbMasterPassword": {"value": PW, "secret": True}, "pghome:azCount": {"value": "2", "secret": False},
              "pghome:appDbUrl": {"value": f"postgres://shop_app:{PW}2@db/shop", "secret": False}}
    assert {c.value for c in find_config_credentials(config, "config")} == {PW, PW + "2"}
    history = [{"version": 7, "config": {"pghome:legacyPassword": {"value": PW + "3", "secret": False}}}]
    seen: list[tuple[str, str]] = []
    lines: list[str] = []

    def login(u: str, p: str) -> bool:
        seen.append((u, p))
        return False

    live, unverifiable = audit_state(_state(_res("urn:x", "aws:ec2/vpc:Vpc")), ("u",), login,
                                     out=lines.append, config=config, history=history)
    assert {p for _, p in seen} == {PW, PW + "2", PW + "3"} and live == unverifiable == 0
    assert any("history[7].config#pghome:legacyPassword" in ln for ln in lines) and all(PW not in ln for ln in lines)


def test_config_and_history_are_read_with_secrets_shown() -> None:
    calls: list[dict] = []

    class FakeStack:  # the Automation API's Stack: get_all_config() and history(show_secrets=...)
        def get_all_config(self):
            return {"pghome:x": SimpleNamespace(value="v", secret=True)}

        def history(self, **kw):
            calls.append(kw)
            return [SimpleNamespace(version=3, config={"pghome:y": SimpleNamespace(value="w", secret=False)})]

    config, history = config_and_history(FakeStack())
    assert config == {"pghome:x": {"value": "v", "secret": True}}
    assert history == [{"version": 3, "config": {"pghome:y": {"value": "w", "secret": False}}}] and calls == [{"show_secrets": True}]


def test_login_users_include_the_app_clone() -> None:
    settings = load_settings(stack_config("dev"), stack="dev", check_credentials=False)
    users = login_users(settings)
    assert "shop_app_clone" in users and "shop_app" in users and settings.database.master_username in users


def test_audit_finds_a_live_clone_password_on_the_real_server(pg: PgServer) -> None:
    master, master_pw = "aud28_master", secrets.token_urlsafe(24)
    pg.make_rds_master(master, master_pw)
    settings = load_settings(stack_config("dev", {"appDbRolePrefix": "aud28", "appDbName": "aud28_db", "dbMasterUsername": master}),
                             stack="dev", check_credentials=False)
    clone, clone_pw = "aud28_app_clone", secrets.token_urlsafe(24)
    with pg.connect_as(master, master_pw) as conn:  # the master creates the login role, as RDS's would
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(clone), sql.Literal(clone_pw)))
    defs = json.dumps([{"name": "app", "environment": [{"name": "PGPASSWORD", "value": clone_pw}]}])
    state = _state(_res("urn:td", "aws:ecs/taskDefinition:TaskDefinition", {"containerDefinitions": defs}))
    ep = pgconn.Endpoint(host="localhost", port=pg.port, sslrootcert=str(pg.ca_file), connect_timeout=5)

    def try_login(user: str, password: str) -> bool:
        try:
            pgconn.connect(ep, user, password).close()
            return True
        except Exception:
            return False

    lines: list[str] = []
    live, _ = audit_state(state, login_users(settings), try_login, out=lines.append)
    assert live == 1 and any("LIVE" in ln and "authenticates as aud28_app_clone" in ln for ln in lines), lines
    assert all(clone_pw not in ln for ln in lines)

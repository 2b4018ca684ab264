"""The database's parameter group and the bootstrap's connection helper against a real PostgreSQL.

The parameters are read from the recorded graph (what `pulumi up` would send to RDS), applied to
the local server with ALTER SYSTEM where PostgreSQL itself knows them, and then observed: TLS is
required and verifiable, passwords are stored as SCRAM verifiers, connections are logged, and the
session defaults reach every new session.
"""

from __future__ import annotations

import secrets
import string
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bootstrap.plan.mockgraph import Graph
from dbcore.pgconn import ConnectionSettingsError, Endpoint, build_conninfo, connect, redacted
from tests.pgserver import PgServer, _write_tls_files
from tests.resource_types import PARAMS

PASSWORD = "random:index/randomPassword:RandomPassword"
TRUE_WORDS = {"1", "on", "true", "yes"}


def graph_parameters(graph: Graph) -> dict[str, dict[str, str]]:
    [group] = [r for r in graph.of_type(PARAMS) if r.name.endswith("-database-params")]
    return {p["name"]: p for p in group.get("parameters")}


def rds_like_password(graph: Graph) -> str:
    """A password drawn from exactly the alphabet the RandomPassword may use (all specials in)."""
    [pw] = [r for r in graph.of_type(PASSWORD) if r.name.endswith("-database-master-password")]
    specials = pw.get("overrideSpecial")
    alphabet = string.ascii_letters + string.digits + specials
    return specials + "".join(secrets.choice(alphabet) for _ in range(int(pw.get("length")) - len(specials)))


def one_row(conn: psycopg.Connection, query: str, params: tuple = ()) -> tuple:
    row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None, query
    return row


def normalise(vartype: str, value: str) -> str:
    if vartype == "bool":
        return "on" if value.lower() in TRUE_WORDS else "off"
    return value


# Dynamic settings the test server enables itself, which the parameter group must set on RDS.
SERVER_DEFAULTS_THE_GROUP_MUST_SET = ("log_connections", "log_disconnections")


@pytest.fixture(scope="module")
def applied(pg: PgServer, dev_graph: Graph) -> Iterator[dict[str, dict[str, str]]]:
    """The graph's parameters that PostgreSQL knows, applied with ALTER SYSTEM + reload; reset after."""
    params = graph_parameters(dev_graph)
    known: dict[str, dict[str, str]] = {}
    with pg.connect_super() as conn:
        # The test server's own postgresql.conf turns these on (tests/pgserver.py); switch them off
        # first, so what is in force below is the parameter group's doing and a group without them
        # fails the logging test instead of passing on the server's defaults.
        for name in SERVER_DEFAULTS_THE_GROUP_MUST_SET:
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = 'off'").format(sql.Identifier(name)))
        for name, p in params.items():
            row = conn.execute("SELECT context, vartype FROM pg_settings WHERE lower(name) = lower(%s)", (name,)).fetchone()
            if row is None:
                continue
            # ALTER SYSTEM validates the value with the server's own parser: a typo fails here.
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(p["value"])))
            known[name] = {**p, "context": row[0], "vartype": row[1]}
    pg.reload()
    try:
        yield known
    finally:
        with pg.connect_super() as conn:
            for name in {*known, *SERVER_DEFAULTS_THE_GROUP_MUST_SET}:
                conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
        pg.reload()


@pytest.fixture(scope="module")
def master(pg: PgServer, applied: dict, dev_graph: Graph) -> tuple[str, str]:
    """An RDS-like master created after the parameters are in force, with an RDS-charset password."""
    user, password = "tls_master", rds_like_password(dev_graph)
    pg.make_rds_master(user, password)
    return user, password


def endpoint(pg: PgServer, **kw) -> Endpoint:
    base = {"host": "localhost", "port": pg.port, "sslmode": "verify-full", "sslrootcert": str(pg.ca_file), "connect_timeout": 5}
    return Endpoint(**{**base, **kw})


# --------------------------------------------------------------------------------------------
# The parameter group, for real
# --------------------------------------------------------------------------------------------


def test_only_rds_specific_parameters_are_unknown_to_postgresql(dev_graph: Graph, applied: dict):
    unknown = set(graph_parameters(dev_graph)) - set(applied)
    assert unknown == {"rds.force_ssl", "rds.restrict_password_commands", "rds.allowed_extensions"}
    assert len(applied) >= 9


def test_the_group_itself_sets_what_the_test_server_also_sets(applied: dict):
    """The test server's postgresql.conf sets log_connections, log_disconnections and
    shared_preload_libraries, so observing them in force proves nothing about the group: the
    group must carry each, with the value RDS needs. (shared_preload_libraries is static: the shared
    server is not restarted, so its value is checked here and by ALTER SYSTEM's parser above.)
    Mutations tried: removing the log_disconnections parameter from components/database.py, and
    "pg_stat_statements" -> "" in shared_preload_libraries (both failed here; the first also fails
    test_connections_and_disconnections_are_logged now that the server's own setting is off)."""
    assert normalise("bool", applied["log_connections"]["value"]) == "on"
    assert normalise("bool", applied["log_disconnections"]["value"]) == "on"
    assert "pg_stat_statements" in [v.strip() for v in applied["shared_preload_libraries"]["value"].split(",")]


def test_apply_methods_match_postgresql_contexts(applied: dict):
    """RDS rejects "immediate" for static parameters: pending-reboot exactly where PostgreSQL
    reads the parameter only at start (context postmaster)."""
    for name, p in applied.items():
        expected = "pending-reboot" if p["context"] == "postmaster" else "immediate"
        assert p["applyMethod"] == expected, (name, p["context"])
    assert any(p["context"] == "postmaster" for p in applied.values())


def test_dynamic_parameters_take_effect_after_reload(pg: PgServer, applied: dict):
    with pg.connect_super() as conn:
        for name, p in applied.items():
            if p["context"] == "postmaster":
                continue
            setting, _source = one_row(conn, "SELECT setting, source FROM pg_settings WHERE lower(name) = lower(%s)", (name,))
            assert setting == normalise(p["vartype"], p["value"]), name
            applied_ok = one_row(
                conn, "SELECT applied, error FROM pg_file_settings WHERE lower(name) = lower(%s) AND sourcefile LIKE '%%postgresql.auto.conf'", (name,)
            )
            assert applied_ok == (True, None), name


def test_static_parameters_are_valid_and_in_force(pg: PgServer, applied: dict):
    with pg.connect_super() as conn:
        for name, p in applied.items():
            if p["context"] != "postmaster":
                continue
            # Accepted by the server's parser (ALTER SYSTEM above) and, here, already in force.
            setting, pending = one_row(conn, "SELECT setting, pending_restart FROM pg_settings WHERE lower(name) = lower(%s)", (name,))
            assert p["value"] in [v.strip() for v in setting.split(",")], name
            assert pending is False
        if "shared_preload_libraries" in applied:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            assert one_row(conn, "SELECT count(*) >= 0 FROM pg_stat_statements")[0] is True


def test_session_defaults_reach_a_new_session(pg: PgServer, master: tuple[str, str], applied: dict):
    user, password = master
    with connect(endpoint(pg), user, password) as conn:
        assert one_row(conn, "SHOW timezone")[0] == applied["timezone"]["value"]
        assert one_row(conn, "SHOW default_transaction_isolation")[0] == applied["default_transaction_isolation"]["value"]
        assert one_row(conn, "SHOW server_encoding")[0] == "UTF8"
        assert one_row(conn, "SELECT reset_val FROM pg_settings WHERE name = 'client_encoding'")[0] == applied["client_encoding"]["value"]
        assert one_row(conn, "SELECT now()::text")[0].endswith("+00")
        # and each is a value a session may also set for itself (user context)
        for name in ("timezone", "default_transaction_isolation", "client_encoding"):
            assert one_row(conn, "SELECT set_config(%s, %s, true)", (name, applied[name]["value"]))[0] is not None


def test_safety_nets_hold_for_every_role_and_temp_files_have_a_ceiling(pg: PgServer, master: tuple[str, str], applied: dict):
    """The parameter group's nets reach a role with no settings of its own; temp_file_limit is
    superuser-only, so not even the master (nor a login role) can lift it."""
    user, password = master
    with connect(endpoint(pg), user, password) as conn:
        assert one_row(conn, "SELECT setting FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'")[0] == applied["idle_in_transaction_session_timeout"]["value"]
        assert one_row(conn, "SELECT setting FROM pg_settings WHERE name = 'temp_file_limit'")[0] == applied["temp_file_limit"]["value"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET temp_file_limit = -1")


def test_passwords_are_stored_as_scram_verifiers(pg: PgServer, master: tuple[str, str], applied: dict):
    assert applied["password_encryption"]["value"] == "scram-sha-256"
    user, password = master
    # a role created by the (non-superuser) master, as the app-database bootstrap will
    with connect(endpoint(pg), user, password) as conn:
        conn.execute(sql.SQL("CREATE ROLE tls_app LOGIN PASSWORD {}").format(sql.Literal("app-" + password)))
    with pg.connect_super() as conn:
        rows: dict[str, str] = dict(conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN ('tls_master', 'tls_app')").fetchall())
    assert set(rows) == {"tls_master", "tls_app"}
    for verifier in rows.values():
        assert verifier.startswith("SCRAM-SHA-256$4096:")
        assert password not in verifier


def test_connections_and_disconnections_are_logged(pg: PgServer, master: tuple[str, str], applied: dict):
    user, password = master
    start = pg.log_file.stat().st_size  # (the harness's own CREATE ROLE above is logged in full)
    with connect(endpoint(pg), user, password) as conn:
        pid = conn.info.backend_pid
    deadline = time.monotonic() + 5
    while True:
        with open(pg.log_file, errors="replace") as f:
            f.seek(start)
            ours = [line for line in f if f"[{pid}]" in line]
        if any("disconnection: session time" in line for line in ours) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert any(f"connection authorized: user={user}" in line and "SSL enabled" in line for line in ours), ours
    assert any("disconnection: session time" in line and f"user={user}" in line for line in ours), ours
    assert not any(password in line for line in ours)


# --------------------------------------------------------------------------------------------
# TLS, through the connection helper the bootstrap uses
# --------------------------------------------------------------------------------------------


def test_verify_full_connects_over_tls(pg: PgServer, master: tuple[str, str], applied: dict):
    user, password = master
    with connect(endpoint(pg), user, password) as conn:
        assert conn.info.pgconn.ssl_in_use
        ssl, version = one_row(conn, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert ssl is True and version in ("TLSv1.2", "TLSv1.3")
        assert one_row(conn, "SELECT current_setting('application_name')")[0] == "pghome-bootstrap"


def test_require_connects_over_tls(pg: PgServer, master: tuple[str, str]):
    user, password = master
    with connect(endpoint(pg, host="127.0.0.1", sslmode="require", sslrootcert=None), user, password) as conn:
        assert conn.info.pgconn.ssl_in_use


def test_verify_full_rejects_a_server_from_another_ca(pg: PgServer, master: tuple[str, str]):
    user, password = master
    with tempfile.TemporaryDirectory() as other:
        _write_tls_files(Path(other))
        with pytest.raises(psycopg.OperationalError) as exc:
            connect(endpoint(pg, sslrootcert=str(Path(other) / "ca.crt")), user, password)
    # OpenSSL words it "certificate verify failed" or "provider signature failure" (same CA name)
    assert "SSL error" in str(exc.value) or "certificate verify failed" in str(exc.value)
    assert password not in str(exc.value)


def test_plaintext_is_refused_by_the_server(pg: PgServer, master: tuple[str, str]):
    user, password = master
    with pytest.raises(psycopg.OperationalError, match="no encryption|reject"):
        psycopg.connect(pg.dsn(user, password, sslmode="disable"))


def test_wrong_password_error_never_shows_the_password(pg: PgServer, master: tuple[str, str]):
    user, password = master
    wrong = password[::-1] + "x"
    with pytest.raises(psycopg.OperationalError) as exc:
        connect(endpoint(pg), user, wrong)
    text = str(exc.value)
    assert "password authentication failed" in text
    assert wrong not in text and "********" in text
    assert f"host=localhost port={pg.port}" in text


# --------------------------------------------------------------------------------------------
# The helper's own rules (no server needed, but the same module)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", ""])
def test_helper_refuses_plaintext_capable_modes(mode: str):
    with pytest.raises(ConnectionSettingsError, match="not allowed"):
        build_conninfo(Endpoint(host="db", port=5432, sslmode=mode), "u", "p")


def test_helper_requires_an_existing_ca_for_verify_modes(tmp_path: Path):
    with pytest.raises(ConnectionSettingsError, match="needs sslrootcert"):
        build_conninfo(Endpoint(host="db", port=5432, sslmode="verify-full"), "u", "p")
    with pytest.raises(ConnectionSettingsError, match="does not exist"):
        build_conninfo(Endpoint(host="db", port=5432, sslmode="verify-ca", sslrootcert=str(tmp_path / "none.pem")), "u", "p")
    with pytest.raises(ConnectionSettingsError, match="connect_timeout"):
        build_conninfo(Endpoint(host="db", port=5432, sslmode="require", connect_timeout=0), "u", "p")


def test_conninfo_round_trips_special_passwords_and_redacts_them(dev_graph: Graph, tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    password = rds_like_password(dev_graph)
    info = build_conninfo(Endpoint(host="db.example", port=6543, dbname="postgres", sslrootcert=str(ca)), "shop_master", password)
    parsed = psycopg.conninfo.conninfo_to_dict(info)
    assert parsed["password"] == password
    assert (parsed["sslmode"], parsed["sslrootcert"], parsed["connect_timeout"]) == ("verify-full", str(ca), "10")
    assert (parsed["host"], parsed["port"], parsed["user"]) == ("db.example", "6543", "shop_master")
    shown = redacted(info)
    assert password not in shown and "password=********" in shown

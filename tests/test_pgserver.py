"""The test server itself behaves as documented (the other PostgreSQL tests stand on it)."""

import psycopg
import pytest


def test_tls_is_required_and_verified(pg):
    pg.make_rds_master("pgserver_probe", "probe-password-123")
    with psycopg.connect(pg.dsn("pgserver_probe", "probe-password-123")) as conn:
        assert conn.info.pgconn.ssl_in_use
        assert conn.execute("SHOW password_encryption").fetchone()[0] == "scram-sha-256"
        assert conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone() == (False, True, True)
    with pytest.raises(psycopg.OperationalError, match="no encryption|reject"):
        psycopg.connect(pg.dsn("pgserver_probe", "probe-password-123", sslmode="disable"))


def test_server_runs_the_selected_major(pg):
    from tests.pgserver import server_major

    with pg.connect_super() as conn:
        version_num = int(conn.execute("SHOW server_version_num").fetchone()[0])
    assert version_num // 10000 == pg.major == server_major()


def test_postgres_marker_is_applied(request):
    # this test does not use pg: unmarked; the one above is marked by conftest
    assert request.node.get_closest_marker("postgres") is None
    session_items = {i.name: i for i in request.session.items}
    if "test_server_runs_the_selected_major" in session_items:
        assert session_items["test_server_runs_the_selected_major"].get_closest_marker("postgres") is not None

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

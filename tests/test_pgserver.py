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


class _Item:
    """The parts of a pytest.Item the marking hook reads and writes."""

    def __init__(self, nodeid: str, fixturenames: list[str]):
        self.nodeid, self.fixturenames, self.markers = nodeid, fixturenames, list[str]()

    def add_marker(self, mark) -> None:
        self.markers.append(mark.name)


def test_postgres_marker_is_applied(request):
    """The hook in tests/conftest.py marks exactly the tests that use `pg` (directly or through
    another fixture, which pytest folds into fixturenames) and those that use the pulumi double.
    Run on stand-in items, so the check does not depend on which tests this session collected (it
    used to assert only `if` the test above happened to be selected). Mutation tried: `"pg" in
    fixtures` -> `"pg_" in fixtures` in tests/conftest.py (this failed)."""
    from tests.conftest import pytest_collection_modifyitems

    items = [_Item("tests/x.py::uses_pg", ["pg"]), _Item("tests/x.py::via_fixture", ["applied", "pg"]),
             _Item("tests/x.py::plain", ["tmp_path"]), _Item("tests/x.py::e2e", ["pulumi_double", "tmp_path"])]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert {i.nodeid.split("::")[1]: i.markers for i in items} == {
        "uses_pg": ["postgres"], "via_fixture": ["postgres"], "plain": [], "e2e": ["e2e"]}
    # and on the real item: this test does not use pg, so it is not marked
    assert request.node.get_closest_marker("postgres") is None

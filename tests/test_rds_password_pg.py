"""Issue 23 item 4 on the real local PostgreSQL (tests/pgserver.py): the master joins rds_password
only when it is not a member yet, so a master that holds it through rds_superuser without ADMIN
OPTION (possible on RDS) never meets the GRANT that 16+ would refuse."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from dbcore.pgadmin import AdminOptionError, ensure_rds_password, server_version_num
from tests.pgserver import RDS_SUPERUSER, PgServer

MASTER = "item4_master"
PASSWORD = "item4-Master-password-1"


@pytest.fixture
def rds_password(pg: PgServer) -> Iterator[None]:
    """An rds_password role on the server (RDS has one; a community server does not), removed after."""
    pg.make_rds_master(MASTER, PASSWORD)
    with pg.connect_super() as conn:
        conn.execute("CREATE ROLE rds_password NOLOGIN")
    try:
        yield
    finally:
        with pg.connect_super() as conn:
            conn.execute("DROP ROLE IF EXISTS rds_password")
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(MASTER)))


def _is_member(pg: PgServer) -> bool:
    with pg.connect_super() as conn:
        row = conn.execute("SELECT pg_has_role(%s, 'rds_password', 'MEMBER')", (MASTER,)).fetchone()
    return bool(row and row[0])


def test_inherited_membership_without_admin_is_left_alone(pg: PgServer, rds_password: None) -> None:
    with pg.connect_super() as conn:  # as RDS may set it up: rds_superuser holds rds_password, no ADMIN for the master
        conn.execute(sql.SQL("GRANT rds_password TO {}").format(sql.Identifier(RDS_SUPERUSER)))
    with pg.connect_as(MASTER, PASSWORD) as conn:
        ensure_rds_password(conn)  # no error, nothing to do
        direct = conn.execute("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                              "WHERE r.rolname = 'rds_password' AND m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)").fetchone()
        assert direct and direct[0] == 0
        if server_version_num(conn) >= 160000:  # what the guard avoids: the provider's unconditional GRANT
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("GRANT rds_password TO {}").format(sql.Identifier(MASTER)))
    assert _is_member(pg)


def test_a_master_that_may_not_grant_it_gets_one_sentence(pg: PgServer, rds_password: None) -> None:
    with pg.connect_as(MASTER, PASSWORD) as conn:
        if server_version_num(conn) < 160000:
            pytest.skip("15 lets CREATEROLE grant any non-superuser role; the refusal exists from 16")  # the 15 case is the next test
        with pytest.raises(AdminOptionError) as failed:
            ensure_rds_password(conn)
    message = str(failed.value)
    assert f"GRANT rds_password TO {MASTER}" in message and "\n" not in message
    assert not _is_member(pg)


def test_a_master_that_may_grant_it_joins_once(pg: PgServer, rds_password: None) -> None:
    with pg.connect_as(MASTER, PASSWORD) as conn:
        if server_version_num(conn) >= 160000:
            pytest.skip("on 16+ a role that may grant rds_password already is a member (ADMIN OPTION comes with a membership)")
        assert not _is_member(pg)
        ensure_rds_password(conn)  # 15: CREATEROLE may grant any non-superuser role
        ensure_rds_password(conn)  # idempotent: a member now, nothing more to do
    assert _is_member(pg)

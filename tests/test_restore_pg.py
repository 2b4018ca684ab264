"""`restore` end to end: RDS in moto, the access tunnel (ECS Stubber + loopback forwarder, as
tests/tunnel_world.py), and two real PostgreSQL servers standing in for production and the
restored instance, each with a certificate naming its RDS endpoint (verify-full holds through the
tunnel). The restored server is built the way a restore leaves one: the model applied, then a
pg_dump of production's app database restored into it, and the master's password of the restore
point until ModifyDBInstance (made real on the server here) sets the secret's current one."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from psycopg import sql

from bootstrap.restore.rds import Restorer
from bootstrap.restore.run import Options, Run, Seams
from components.pgsql import steps
from tests import restore_world as w
from tests.pgserver import RDS_SUPERUSER, SUPERUSER, PgServer
from tests.tunnel_world import LoopbackForwarder, ecs_client, stub_happy_path, target

CHECKS = {"restoreCheckTables": '["orders", "app.customers"]'}
MIGRATION = "20261201120000"


def apply_model(pg: PgServer, model: Any, password: str) -> None:
    """The model's SQL rendering, run as the master (what deploy's phase 3 leaves)."""
    with contextlib.ExitStack() as stack:
        conns: dict[str, psycopg.Connection] = {}
        for step in steps(model):
            if step.database not in conns:
                conns[step.database] = stack.enter_context(psycopg.connect(dsn(pg, model.master, password, step.database), autocommit=True))
            if step.unless and conns[step.database].execute(step.unless).fetchone():
                continue
            conns[step.database].execute(step.sql)


def dsn(pg: PgServer, user: str, password: str | None, dbname: str) -> str:
    """verify-full against the certificate's RDS name, dialled on loopback."""
    params = {"host": pg.cert_names[0], "hostaddr": "127.0.0.1", "port": str(pg.port), "user": user, "dbname": dbname,
              "sslmode": "verify-full", "sslrootcert": str(pg.ca_file)}
    return psycopg.conninfo.make_conninfo(**params, **({"password": password} if password else {}))


def as_super(pg: PgServer, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(dsn(pg, SUPERUSER, pg.superuser_password, dbname), autocommit=True)


def make_master(pg: PgServer, password: str) -> None:
    """The RDS-like master of tests/pgserver.py (make_rds_master), over this module's verify-full dsn."""
    with as_super(pg) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(RDS_SUPERUSER)))
        conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(RDS_SUPERUSER)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {} IN ROLE {}").format(
            sql.Identifier(w.MASTER), sql.Literal(password), sql.Identifier(RDS_SUPERUSER)))


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PgServer, PgServer, Path]]:
    prod = PgServer.start(cert_names=(w.rds_address(w.SOURCE),))
    restored = PgServer.start(cert_names=(w.rds_address(w.DRILL_TARGET), w.rds_address(w.RESTORE_TARGET)))
    try:
        model = w.settings(**CHECKS).app_database.model()
        for pg, password in ((prod, w.MASTER_PASSWORD), (restored, "the-restore-points-password-1")):
            make_master(pg, password)
            apply_model(pg, model, password)
        with psycopg.connect(dsn(prod, w.MASTER, w.MASTER_PASSWORD, model.database), autocommit=True) as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(model.owner)))
            conn.execute("CREATE TABLE app.schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)")  # golang-migrate's shape
            conn.execute("INSERT INTO app.schema_migrations VALUES (%s, false)", (int(MIGRATION),))
            conn.execute("CREATE TABLE app.customers (id bigserial PRIMARY KEY, name text NOT NULL)")
            conn.execute("CREATE TABLE app.orders (id bigserial PRIMARY KEY, customer bigint REFERENCES app.customers, total numeric NOT NULL)")
            conn.execute("INSERT INTO app.customers (name) SELECT 'c' || i FROM generate_series(1, 7) i")
            conn.execute("INSERT INTO app.orders (customer, total) SELECT 1 + i % 7, i FROM generate_series(1, 50) i")
        dump = tmp_path_factory.mktemp("dump") / "shop.dump"
        env = {**os.environ, "PGPASSWORD": prod.superuser_password}
        subprocess.run([str(prod.bindir / "pg_dump"), "-Fc", "-f", str(dump), "-d", dsn(prod, SUPERUSER, None, model.database)],
                       check=True, capture_output=True, env=env)
        env["PGPASSWORD"] = restored.superuser_password
        subprocess.run([str(restored.bindir / "pg_restore"), "--clean", "--if-exists", "--exit-on-error", "-d", dsn(restored, SUPERUSER, None, model.database), str(dump)],
                       check=True, capture_output=True, env=env)
        bundle = tmp_path_factory.mktemp("ca") / "rds-bundle.pem"  # one file, several CAs, like RDS's global bundle
        bundle.write_bytes(prod.ca_file.read_bytes() + restored.ca_file.read_bytes())
        yield prod, restored, bundle
    finally:
        prod.stop()
        restored.stop()


class AppliesPassword:
    """moto's RDS, except that ModifyDBInstance(MasterUserPassword) reaches the restored server as RDS would."""

    def __init__(self, inner: Any, server: PgServer):
        self.inner, self.server = inner, server
        self.modified: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def modify_db_instance(self, **kw: Any) -> Any:
        self.modified.append(kw)
        with as_super(self.server) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(w.MASTER), sql.Literal(kw["MasterUserPassword"])))
        return self.inner.modify_db_instance(**kw)


@pytest.fixture
def world(servers: Any) -> Iterator[w.World]:
    with mock_aws():
        yield w.build()
    with as_super(servers[1]) as conn:  # the next test starts from the restore point's password again
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD 'the-restore-points-password-1'").format(sql.Identifier(w.MASTER)))


def restore(world: w.World, servers: Any, opts: Options, *, tunnels: int = 2, ecs: Any = None, **overrides: str) -> tuple[int, list[str], Any]:
    prod, restored, bundle = servers
    lines: list[str] = []
    forwarder = LoopbackForwarder({w.rds_address(w.SOURCE): ("127.0.0.1", prod.port),
                                   w.rds_address(w.DRILL_TARGET): ("127.0.0.1", restored.port), w.rds_address(w.RESTORE_TARGET): ("127.0.0.1", restored.port)})
    rds = AppliesPassword(world.rds, restored)
    backups, _ = w.backups_stub(world)
    ecs = ecs or ecs_client()
    stubber = None
    if tunnels:
        stubber = Stubber(ecs)
        for _ in range(tunnels):
            stub_happy_path(stubber, target())
        stubber.activate()
    seams = Seams(rds=rds, secrets=world.secrets, ecs=ecs, sessions=forwarder, probe=lambda h, p: False, backups=backups,
                  tunnel_kw={"sleep": lambda s: None, "interval_s": 0})
    opts = Options(**{**opts.__dict__, "ca_file": str(bundle), "tunnel": "auto"})
    run = Run(w.settings(**{**CHECKS, **overrides}), world.outputs, opts, seams, out=lines.append, now=lambda: w.NOW,
              restorer=Restorer(rds, backups, out=lines.append, interval_s=0, sleep=lambda s: None))
    code = run.run()
    print("\n".join(lines))
    if stubber is not None:
        stubber.assert_no_pending_responses()  # every access task started was stopped
    return code, lines, (forwarder, rds)


def test_a_drill_restores_verifies_through_the_tunnel_reports_and_deletes(world, servers):
    code, lines, (forwarder, rds) = restore(world, servers, Options(stack="dev", latest=True, drill=True))
    text = "\n".join(lines)
    assert code == 0, text
    for expected in (
        "  ok    RDS DB subnet group: shop-dev-db-subnets", f"  ok    RDS security group: ['{world.db_sg}']", "  ok    RDS CA certificate: rds-ca-rsa2048-g1",
        "  ok    RDS IAM database auth: True", "  ok    RDS enhanced monitoring interval: 60",
        "  ok    database shop: owned by shop_owner", "  ok    6 roles: present, LOGIN as the model says", "  ok    schema app: owned by shop_owner",
        "  ok    extensions pgcrypto: installed", f"  ok    migration version: {MIGRATION}, as production",
        "  ok    rows in orders: 50, production 50 (+0)", "  ok    rows in app.customers: 7, production 7 (+0)",
        "restore point: 2026-12-04 15:26:00 UTC (data age 4m00s)", "drill: passed",
    ):
        assert expected in lines, f"{expected!r} not in:\n{text}"
    assert any(line.startswith("  ok    restored database reachable: as shop_master over verified TLS") for line in lines)
    assert any(line.startswith("measured recovery time (restore call to verified database): ") for line in lines)
    assert [r.remote_host for r in forwarder.requests] == [w.rds_address(w.DRILL_TARGET), w.rds_address(w.SOURCE)]
    assert all(s.closed for s in forwarder.sessions)
    assert rds.modified[0]["MonitoringInterval"] == 60 and rds.modified[0]["MasterUserPassword"] == w.MASTER_PASSWORD
    assert world.instance(w.DRILL_TARGET) is None and world.instance(w.SOURCE) is not None
    assert "To make it the stack's database" not in text


def test_a_drill_fails_when_the_restored_data_is_not_productions_and_still_deletes(world, servers):
    _, restored, _ = servers
    with as_super(restored, "shop") as conn:
        conn.execute("UPDATE app.schema_migrations SET version = 20261101000000")
        conn.execute("ALTER TABLE app.orders RENAME TO orders_lost")
    try:
        code, lines, _ = restore(world, servers, Options(stack="dev", latest=True, drill=True))
    finally:
        with as_super(restored, "shop") as conn:
            conn.execute("UPDATE app.schema_migrations SET version = %s", (int(MIGRATION),))
            conn.execute("ALTER TABLE app.orders_lost RENAME TO orders")
    assert code == 1
    assert f"  FAIL  migration version: 20261101000000, production {MIGRATION}" in lines
    assert any(line.startswith('  FAIL  rows in orders: relation "app.orders" does not exist') for line in lines)
    assert lines[-1] == "drill: FAILED (2 problem(s))" and world.instance(w.DRILL_TARGET) is None


def test_a_drill_fails_when_a_model_object_is_missing(world, servers):
    _, restored, _ = servers
    with as_super(restored) as conn:
        conn.execute("ALTER ROLE shop_app NOLOGIN")
    try:
        code, lines, _ = restore(world, servers, Options(stack="dev", latest=True, drill=True))
    finally:
        with as_super(restored) as conn:
            conn.execute("ALTER ROLE shop_app LOGIN")
    assert code == 1 and "  FAIL  6 roles: LOGIN differs on shop_app" in lines


def test_a_restore_without_drill_keeps_the_instance_and_prints_the_switch_over(world, servers):
    code, lines, _ = restore(world, servers, Options(stack="dev", to_time="2026-12-03T12:00:00Z"))
    text = "\n".join(lines)
    assert code == 0, text
    assert "restore point: 2026-12-03 12:00:00 UTC (data age 1d03h30m)" in lines
    assert world.instance(w.RESTORE_TARGET)["DBInstanceStatus"] == "available"
    source = world.instance(w.SOURCE)
    assert source["DBInstanceStatus"] == "available" and source["MonitoringInterval"] == 60  # production untouched
    aside = "shop-dev-db-pre-restore-202612041530"
    for step in (
        "  1. stop writes:      aws ecs update-service --cluster shop-dev --service shop-dev-app --desired-count 0",
        f"  2. move prod aside:  aws rds modify-db-instance --db-instance-identifier shop-dev-db --new-db-instance-identifier {aside} --apply-immediately",
        f"  3. take its name:    aws rds modify-db-instance --db-instance-identifier {w.RESTORE_TARGET} --new-db-instance-identifier shop-dev-db --apply-immediately",
    ):
        assert step in text


def test_production_out_of_reach_is_said_and_not_compared(world, servers):
    ecs = ecs_client()
    stubber = Stubber(ecs)
    stub_happy_path(stubber, target())
    stubber.add_client_error("run_task", "AccessDeniedException", "no", 400)
    stubber.activate()
    code, lines, _ = restore(world, servers, Options(stack="dev", latest=True, drill=True), tunnels=0, ecs=ecs)
    assert code == 0
    assert any(line.startswith("production not reachable (ECS RunTask") for line in lines)
    assert "  ok    rows in orders: 50 (production not compared)" in lines
    assert f"  ok    migration version: {MIGRATION} (app.schema_migrations; production not compared)" in lines


# --- the command line: argparse glue over the same run ----------------------------------------------


def test_the_cli_runs_a_drill_from_an_outputs_file_and_refuses_in_one_line(world, servers, tmp_path, monkeypatch, capsys):
    import json

    from bootstrap.cli import restore as restore_cli
    from bootstrap.cli.main import main

    prod, restored, bundle = servers
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(world.outputs))
    ecs = ecs_client()
    stubber = Stubber(ecs)
    for _ in range(2):
        stub_happy_path(stubber, target())
    stubber.activate()
    forwarder = LoopbackForwarder({w.rds_address(w.SOURCE): ("127.0.0.1", prod.port), w.rds_address(w.DRILL_TARGET): ("127.0.0.1", restored.port)})
    monkeypatch.setattr(restore_cli, "utcnow", lambda: w.NOW)  # names the instance as the certificate does
    backups, _ = w.backups_stub(world, calls=2)
    monkeypatch.setattr(restore_cli, "make_seams", lambda region, profile: Seams(
        rds=AppliesPassword(world.rds, restored), secrets=world.secrets, ecs=ecs, sessions=forwarder, probe=lambda h, p: False, backups=backups,
        tunnel_kw={"sleep": lambda s: None, "interval_s": 0}))
    base = ["restore", "--stack", "dev", "--outputs-file", str(outputs), "--ca-file", str(bundle)]

    assert main([*base, "--to-time", "2026-01-01T00:00:00Z", "--drill"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --to-time 2026-01-01 00:00:00 UTC is outside the restorable window of shop-dev-db") and err.count("\n") == 1

    code = main([*base, "--latest", "--drill", "--tunnel", "always"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "drill: passed" in out and [i["DBInstanceIdentifier"] for i in world.rds.describe_db_instances()["DBInstances"]] == [w.SOURCE]
    stubber.assert_no_pending_responses()

    assert main([*base, "--latest", "--timeout", "5"]) == 2
    assert capsys.readouterr().err == "error: --timeout 5 is invalid: use 300-14400 seconds\n"
    assert main(["restore", "--stack", "dev", "--latest", "--ca-file", str(tmp_path / "none.pem")]) == 2
    assert capsys.readouterr().err == (f"error: CA bundle {tmp_path / 'none.pem'} does not exist: run `python -m bootstrap ca-bundle fetch --stack dev` "
                                       "or pass --ca-file\n")


def test_a_drill_from_a_snapshot_restores_it_and_passes(world, servers):
    world.rds.create_db_snapshot(DBInstanceIdentifier=w.SOURCE, DBSnapshotIdentifier="shop-dev-db-weekly")
    code, lines, (forwarder, rds) = restore(world, servers, Options(stack="dev", snapshot="shop-dev-db-weekly", drill=True))
    assert code == 0, "\n".join(lines)
    assert any(line.startswith("restore started: shop-dev-db-drill-202612041530 from snapshot shop-dev-db-weekly (taken ") for line in lines)
    assert "  ok    rows in orders: 50, production 50 (+0)" in lines and world.instance(w.DRILL_TARGET) is None

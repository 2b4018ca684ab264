"""`python -m bootstrap deploy|rotate` when the database is not directly reachable: the DB phases
run through the tunnel. The real Automation API against the `pulumi` double, moto for Secrets
Manager and RDS, a Stubber for ECS (RunTask/DescribeTasks/StopTask) and the loopback forwarder for
the SSM session, both at the one seam `bootstrap.cli.deploy.make_tunnel_seams`; behind it a real
PostgreSQL whose certificate names only the RDS endpoint name the program exports (dbAddress)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.stub import Stubber

from bootstrap.access.tunnel import AccessTarget, free_port
from bootstrap.cli.deploy import TunnelSeams
from config.load import settings_for
from config.stack_file import read_stack_file
from dbcore import pgconn
from tests import tunnel_world as tw
from tests.deploy_world import DeployWorld, deploy_world, edit_stack_file, stack_outputs
from tests.helpers import assert_one_sentence_error
from tests.pgserver import PgServer
from tests.pulumi_double.fixture import Double


@dataclass
class FakeSeams:
    """The seam: a stubbed ECS client and the loopback forwarder; the probe says "unreachable".
    The stubs are added when the deploy asks for the seam (after phase 1), from the outputs it
    recorded, so RunTask is checked against the access path the program really exports."""

    d: Double
    db_port: int
    ecs: Any = field(default_factory=tw.ecs_client)
    made: list[str] = field(default_factory=list)
    probed: list[tuple[str, int]] = field(default_factory=list)
    forwarder: tw.LoopbackForwarder | None = None
    stubber: Stubber | None = None

    def __post_init__(self) -> None:
        self.stubber = Stubber(self.ecs)
        self.stubber.activate()

    def __call__(self, region: str) -> TunnelSeams:
        self.made.append(region)
        assert self.stubber is not None
        outputs = stack_outputs(self.d)
        target = AccessTarget.from_outputs(outputs, "dev")
        tw.stub_happy_path(self.stubber, target)
        self.forwarder = self.forwarder or tw.LoopbackForwarder(resolve={target.db_host: ("127.0.0.1", self.db_port)})

        def probe(host: str, port: int) -> bool:
            self.probed.append((host, port))
            return False

        return TunnelSeams(self.ecs, self.forwarder, probe)


@pytest.fixture
def app_and_db(pulumi_double: Double) -> Iterator[tuple[str, PgServer]]:
    """A fixed app name (so the RDS name is known up front) and a server whose certificate names it."""
    app = f"n{uuid.uuid4().hex[:6]}"
    edit_stack_file(pulumi_double.project / "Pulumi.dev.yaml", appName=app)
    settings = settings_for(read_stack_file("dev", pulumi_double.project), "dev")
    address = f"{settings.db_identifier}.abcdefghijkl.{settings.region}.rds.amazonaws.com"  # bootstrap/plan/mockanswers.py's RDS endpoint
    server = PgServer.start(cert_names=(address, "localhost"))  # localhost: the test world sets up roles directly
    try:
        yield app, server
    finally:
        server.stop()


def _spy_connections(monkeypatch: pytest.MonkeyPatch) -> list[pgconn.Endpoint]:
    seen: list[pgconn.Endpoint] = []
    real = pgconn.connect

    def spy(endpoint: pgconn.Endpoint, *a: Any, **kw: Any) -> Any:
        seen.append(endpoint)
        return real(endpoint, *a, **kw)

    monkeypatch.setattr("dbcore.pgconn.connect", spy)
    return seen


def _world(app_and_db: tuple[str, PgServer], d: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[Any, FakeSeams]:
    app, server = app_and_db
    seams = FakeSeams(d, server.port)
    monkeypatch.setattr("bootstrap.cli.deploy.make_tunnel_seams", seams)
    return deploy_world(server, d, monkeypatch, capsys, app_name=app), seams


def test_first_deploy_runs_the_db_phases_through_the_tunnel(app_and_db: tuple[str, PgServer], pulumi_double: Double,
                                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d, (_, server) = pulumi_double, app_and_db
    connections = _spy_connections(monkeypatch)
    world_cm, seams = _world(app_and_db, d, monkeypatch, capsys)
    with world_cm as w:
        w_: DeployWorld = w
        rc, out, err = w_.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 0, err + out
        address = str(stack_outputs(d)["dbAddress"])
        # the probe was asked about the address we would dial (the stack's host override), then a tunnel opened after phase 1
        assert seams.probed == [("localhost", server.port)] and len(seams.made) == 1
        assert out.index("phase 1/5 done") < out.index("is not reachable from here: opening a tunnel") < out.index("tunnel: open after")
        assert out.index("tunnel: open after") < out.index("[phase 2/5] rotate master") < out.index("[phase 5/5] audit") < out.index(f"access task {tw.TASK_ID} stopped")
        # every connection we made went through the tunnel, verify-full against the RDS name
        assert connections and all((e.host, e.hostaddr, e.sslmode) == (address, "127.0.0.1", "verify-full") for e in connections)
        assert seams.forwarder is not None and len(seams.forwarder.sessions) == 1
        session = seams.forwarder.sessions[0]
        assert len(session.connections) >= len(connections) > 3 and session.closed
        request = seams.forwarder.requests[0]
        assert (request.remote_host, request.target) == (address, f"ecs:{stack_outputs(d)['dbAccessCluster']}_{tw.TASK_ID}_{tw.RUNTIME_ID}")
        # the task was stopped at the end (StopTask was the last stubbed call)
        assert seams.stubber is not None
        seams.stubber.assert_no_pending_responses()
        assert f"access task {tw.TASK_ID} stopped" in out
        # only the app-db `up` (phase 3) got the SOCKS5 proxy; the engine's loopback stays direct
        ups = w_.up_calls()
        assert len(ups) == 2 and "ALL_PROXY" not in ups[0]["env"]
        proxy = ups[1]["env"]
        assert proxy["ALL_PROXY"].startswith("socks5://127.0.0.1:") and proxy["all_proxy"] == proxy["ALL_PROXY"]
        assert {"127.0.0.1", "localhost", "::1"} <= set(proxy["NO_PROXY"].split(","))
        # and the result is the same as a direct deploy: rotated, audited
        for role in ("app", "migrator"):
            assert w_.world.can_login_with_any(role)
        assert "audit: 0 live, 0 unverifiable" in out


def test_a_failure_mid_deploy_still_stops_the_task(app_and_db: tuple[str, PgServer], pulumi_double: Double,
                                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    world_cm, seams = _world(app_and_db, d, monkeypatch, capsys)
    with world_cm as w:
        monkeypatch.setenv("PULUMI_DOUBLE_FAIL_ON", "postgresql:index/role:Role")
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert_one_sentence_error(rc, err, "error: phase 3/5 (app database, roles and grants) failed:")
        assert "Done so far: infrastructure deployed" in err
        assert seams.stubber is not None and seams.forwarder is not None
        seams.stubber.assert_no_pending_responses()  # StopTask was called
        assert f"access task {tw.TASK_ID} stopped" in out and seams.forwarder.sessions[0].closed


def test_rotate_tunnel_never_against_an_unreachable_db_is_one_sentence_and_starts_no_task(
        app_and_db: tuple[str, PgServer], pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    world_cm, seams = _world(app_and_db, d, monkeypatch, capsys)
    with world_cm as w:
        dead = free_port()  # nothing listens there
        rc, out, err = w.run("rotate", "--stack", "dev", "--local", "--role", "app", "--tunnel", "never", "--host", "127.0.0.1", "--port", str(dead))
        assert_one_sentence_error(rc, err, f"error: database at 127.0.0.1:{dead} is unreachable over TLS")
        assert f"database 127.0.0.1:{dead}: connecting directly" in out
        assert seams.made == [] and seams.forwarder is None  # no seam asked for, so no task started
        assert w.world.secret("app", "AWSPENDING") is None  # nothing was changed


def test_rotate_tunnel_always_goes_through_the_tunnel(app_and_db: tuple[str, PgServer], pulumi_double: Double,
                                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = pulumi_double
    world_cm, seams = _world(app_and_db, d, monkeypatch, capsys)
    with world_cm as w:
        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 0, err + out
        before = w.world.secret("app")
        rc, out, err = w.run("rotate", "--stack", "dev", "--local", "--role", "app", "--tunnel", "always")
        assert rc == 0, err + out
        assert seams.probed == [("localhost", app_and_db[1].port)]  # only the deploy's auto mode probed
        assert len(seams.made) == 2 and seams.stubber is not None
        seams.stubber.assert_no_pending_responses()
        assert before is not None and w.world.secret("app")["password"] != before["password"]  # type: ignore[index]
        assert "rotation complete" in out and f"access task {tw.TASK_ID} stopped" in out


def test_master_without_admin_option_stops_before_anything_changes(app_and_db: tuple[str, PgServer], pulumi_double: Double,
                                                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """PostgreSQL 16+: login roles carried over by a major upgrade give the master no ADMIN OPTION.
    `rotate` of a login role and the deploy's app-db `up` stop first, in one sentence with the repair."""
    d, (_, server) = pulumi_double, app_and_db
    if server.major < 16:
        pytest.skip("ADMIN OPTION is required to change a role from PostgreSQL 16 on; this run's server is older")
    from psycopg import sql

    world_cm, seams = _world(app_and_db, d, monkeypatch, capsys)
    with world_cm as w:
        app_role = f"{w.world.settings.app_database.role_prefix}_app"
        with server.connect_super() as conn:  # as pg_upgrade leaves it: created by someone else, no ADMIN for the master
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(app_role)))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(app_role)))
        repair = f"GRANT \"{app_role}\" TO \"{w.world.master}\" WITH ADMIN OPTION"

        rc, out, err = w.run("rotate", "--stack", "dev", "--local", "--role", "all", "--tunnel", "never")  # no stack yet: direct
        assert_one_sentence_error(rc, err, f"error: the master {w.world.master} lacks ADMIN OPTION on {app_role}")
        assert repair in err
        assert w.world.secret("app", "AWSPENDING") is None and w.world.admin.calls == 0  # not even the master was rotated

        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert_one_sentence_error(rc, err, "error: phase 3/5 (checking the master's ADMIN OPTION) failed: the master")
        assert repair in err
        assert "Done so far: infrastructure deployed without the app database; master password rotated" in err
        assert len(w.up_calls()) == 1  # the app-db `up` never ran
        assert seams.stubber is not None
        seams.stubber.assert_no_pending_responses()

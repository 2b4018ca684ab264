"""The tunnel end to end: ECS (Stubber) -> exec agent -> session seam (loopback forwarder) -> a real
PostgreSQL whose certificate names db.pghome.test, never 127.0.0.1. verify-full must hold for
psycopg (host + hostaddr) and over the SOCKS5 path; the task must be stopped on every exit."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botocore.stub import Stubber

from bootstrap.access.ssm_session import AwsCliSessionStarter
from bootstrap.access.tunnel import AccessTarget, SessionRequest, TunnelError, connect_hint, open_tunnel
from dbcore.pgconn import Endpoint, connect
from tests import tunnel_world as w
from tests.helpers import FakeClock
from tests.pgserver import SUPERUSER, PgServer, encrypted

SSL_REQUEST = struct.pack("!II", 8, 80877103)  # PostgreSQL's SSLRequest message


@pytest.fixture(scope="module")
def named_pg() -> Iterator[PgServer]:
    server = PgServer.start(cert_names=(w.DB_NAME,))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def world(named_pg: PgServer) -> Iterator[tuple[Any, Stubber, w.LoopbackForwarder, FakeClock, list[str]]]:
    ecs = w.ecs_client()
    stubber = Stubber(ecs)
    forwarder = w.LoopbackForwarder(resolve={w.DB_NAME: ("127.0.0.1", named_pg.port)})
    clock = FakeClock()
    lines: list[str] = []
    with stubber:
        yield ecs, stubber, forwarder, clock, lines


def _open(world: Any, t: AccessTarget, **kw: Any) -> Any:
    ecs, _, forwarder, clock, lines = world
    return open_tunnel(t, ecs=ecs, sessions=forwarder, out=lines.append, clock=clock, sleep=clock.sleep, interval_s=3.0, **kw)


def _super(named_pg: PgServer, tunnel: Any, host: str = w.DB_NAME) -> psycopg.Connection:
    return psycopg.connect(
        host=host, hostaddr="127.0.0.1", port=tunnel.local_port, user=SUPERUSER, password=named_pg.superuser_password,
        dbname="postgres", sslmode="verify-full", sslrootcert=str(named_pg.ca_file), connect_timeout=5,
    )


# --- psycopg: verify-full through the tunnel ---------------------------------------------------


def test_verify_full_through_the_tunnel_and_task_stopped(world: Any, named_pg: PgServer) -> None:
    _, stubber, forwarder, clock, lines = world
    t = w.target(named_pg.port)
    w.stub_happy_path(stubber, t)
    with _open(world, t) as tunnel:
        with _super(named_pg, tunnel) as conn:
            row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row is not None and row[0] is True and row[1] in ("TLSv1.2", "TLSv1.3")
        # the project's own connection builder, with the tunnel's endpoint override
        endpoint = tunnel.endpoint(Endpoint(host="ignored", port=1, sslrootcert=str(named_pg.ca_file)))
        assert (endpoint.host, endpoint.hostaddr, endpoint.port, endpoint.sslmode) == (w.DB_NAME, "127.0.0.1", tunnel.local_port, "verify-full")
        with connect(endpoint, SUPERUSER, named_pg.superuser_password) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert len(forwarder.sessions[0].connections) == 2  # both really went through the tunnel
        assert f"host={w.DB_NAME} hostaddr=127.0.0.1 port={tunnel.local_port}" in connect_hint(tunnel)
    stubber.assert_no_pending_responses()  # StopTask was called
    assert forwarder.sessions[0].closed
    req = forwarder.requests[0]
    assert req.target == f"ecs:{w.CLUSTER}_{w.TASK_ID}_{w.RUNTIME_ID}"
    assert (req.remote_host, req.remote_port) == (w.DB_NAME, named_pg.port)
    # progress lines with elapsed time while waiting, then where the tunnel is
    assert any("waiting for the access task: task PROVISIONING, exec agent PENDING (0s)" in ln for ln in lines)
    assert any("exec agent RUNNING (6s)" in ln for ln in lines)
    assert any(ln.startswith("tunnel: open after 6s: 127.0.0.1:") for ln in lines)
    assert lines[-1] == f"  access task {w.TASK_ID} stopped"


def test_wrong_name_is_refused_through_the_tunnel(world: Any, named_pg: PgServer) -> None:
    _, stubber, *_ = world
    t = w.target(named_pg.port)
    w.stub_happy_path(stubber, t)
    with _open(world, t) as tunnel:
        for wrong in ("localhost", "other.pghome.test"):
            with pytest.raises(psycopg.OperationalError, match="certificate|does not match"):
                _super(named_pg, tunnel, host=wrong).close()
        # and what the old manual recipe did: dial 127.0.0.1 with verify-full
        with pytest.raises(psycopg.OperationalError, match="certificate|does not match"):
            psycopg.connect(host="127.0.0.1", port=tunnel.local_port, user=SUPERUSER, password=named_pg.superuser_password,
                            sslmode="verify-full", sslrootcert=str(named_pg.ca_file), connect_timeout=5).close()
    stubber.assert_no_pending_responses()


# --- the SOCKS5 path (the postgresql provider) --------------------------------------------------


def test_socks5_path_keeps_verify_full(world: Any, named_pg: PgServer) -> None:
    _, stubber, *_ = world
    t = w.target(named_pg.port)
    w.stub_happy_path(stubber, t)
    with _open(world, t) as tunnel:
        env = tunnel.proxy_env({"NO_PROXY": "internal.example"})
        assert env["ALL_PROXY"] == env["all_proxy"] == f"socks5://127.0.0.1:{tunnel.socks_port}"
        assert env["NO_PROXY"] == env["no_proxy"] == "internal.example,127.0.0.1,localhost,::1"  # plugins' loopback gRPC stays direct
        # 1. raw: CONNECT by name, SSLRequest, then a TLS handshake verifying the RDS name
        sock, code = w.socks_connect(tunnel.socks_port, w.DB_NAME, named_pg.port)
        assert code == 0
        sock.sendall(SSL_REQUEST)
        assert sock.recv(1) == b"S"
        ctx = ssl.create_default_context(cafile=str(named_pg.ca_file))
        with ctx.wrap_socket(sock, server_hostname=w.DB_NAME) as tls:
            sans = dict(tls.getpeercert() or {}).get("subjectAltName", ())
            assert ("DNS", w.DB_NAME) in sans
        # 2. the same with a wrong name: the handshake is refused
        sock, code = w.socks_connect(tunnel.socks_port, w.DB_NAME, named_pg.port)
        sock.sendall(SSL_REQUEST)
        assert sock.recv(1) == b"S"
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(sock, server_hostname="other.pghome.test")
        sock.close()
        # 3. the whole PostgreSQL protocol over the SOCKS path, verify-full on the RDS name
        with w.port_through_socks(tunnel.socks_port, w.DB_NAME, named_pg.port) as port:
            with psycopg.connect(host=w.DB_NAME, hostaddr="127.0.0.1", port=port, user=SUPERUSER, password=named_pg.superuser_password,
                                 dbname="postgres", sslmode="verify-full", sslrootcert=str(named_pg.ca_file), connect_timeout=5) as conn:
                assert encrypted(conn)
    stubber.assert_no_pending_responses()


def test_socks5_refuses_everything_but_the_database(world: Any, named_pg: PgServer) -> None:
    _, stubber, *_ = world
    t = w.target(named_pg.port)
    w.stub_happy_path(stubber, t)
    with _open(world, t) as tunnel:
        for host, port, atyp in (("example.com", named_pg.port, 3), (w.DB_NAME, named_pg.port + 1, 3), ("127.0.0.1", tunnel.local_port, 1),
                                 ("169.254.169.254", 80, 1)):
            sock, code = w.socks_connect(tunnel.socks_port, host, port, atyp=atyp)
            sock.close()
            assert code == 0x02, f"{host}:{port} was not refused"
        # the name is matched case-insensitively and with a trailing dot, as DNS does
        sock, code = w.socks_connect(tunnel.socks_port, w.DB_NAME.upper() + ".", named_pg.port)
        sock.close()
        assert code == 0
    stubber.assert_no_pending_responses()


def test_socks5_refuses_other_commands_and_auth_methods() -> None:
    from bootstrap.access.socks5 import Socks5Server

    with Socks5Server({("db.example", 5432): ("127.0.0.1", 9)}) as server:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"\x05\x01\x02")  # only username/password offered
        assert s.recv(2) == b"\x05\xff"
        s.close()
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x02\x00\x03\x0adb.example" + struct.pack("!H", 5432))  # BIND
        assert s.recv(10)[1] == 0x07
        s.close()


# --- the task is always stopped -------------------------------------------------------------------


def test_task_stopped_after_an_error_in_the_block(world: Any, named_pg: PgServer) -> None:
    _, stubber, forwarder, *_ = world
    w.stub_happy_path(stubber, w.target(named_pg.port))
    with pytest.raises(RuntimeError, match="migration failed"):
        with _open(world, w.target(named_pg.port)):
            raise RuntimeError("migration failed")
    stubber.assert_no_pending_responses()
    assert forwarder.sessions[0].closed


def test_task_stopped_after_keyboard_interrupt(world: Any, named_pg: PgServer) -> None:
    _, stubber, forwarder, *_ = world
    w.stub_happy_path(stubber, w.target(named_pg.port))
    with pytest.raises(KeyboardInterrupt):
        with _open(world, w.target(named_pg.port)):
            raise KeyboardInterrupt
    stubber.assert_no_pending_responses()
    assert forwarder.sessions[0].closed


def test_task_stopped_when_interrupted_while_waiting(world: Any, named_pg: PgServer) -> None:
    ecs, stubber, forwarder, clock, lines = world
    t = w.target(named_pg.port)
    stubber.add_response("run_task", {"tasks": [w.task("PROVISIONING")], "failures": []}, w.run_task_params(t))
    stubber.add_response("describe_tasks", {"tasks": [w.task("PROVISIONING")], "failures": []})
    w.stub_stop(stubber, t)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with open_tunnel(t, ecs=ecs, sessions=forwarder, out=lines.append, clock=clock, sleep=interrupted):
            pass
    stubber.assert_no_pending_responses()
    assert forwarder.requests == []


def test_task_stopped_when_the_session_fails(world: Any, named_pg: PgServer) -> None:
    _, stubber, forwarder, *_ = world
    forwarder.fail_with = TunnelError("the SSM port-forwarding session did not start (TargetNotConnected)")
    w.stub_happy_path(stubber, w.target(named_pg.port))
    with pytest.raises(TunnelError, match="TargetNotConnected"):
        with _open(world, w.target(named_pg.port)):
            pytest.fail("the block must not run")
    stubber.assert_no_pending_responses()


def test_task_that_stops_early_is_reported_and_stopped(world: Any, named_pg: PgServer) -> None:
    _, stubber, forwarder, *_ = world
    t = w.target(named_pg.port)
    stubber.add_response("run_task", {"tasks": [w.task("PROVISIONING")], "failures": []}, w.run_task_params(t))
    stubber.add_response("describe_tasks", {"tasks": [w.task("STOPPED", "STOPPED", stopped_reason="CannotPullContainerError: pull image manifest has been retried")], "failures": []})
    w.stub_stop(stubber, t)
    with pytest.raises(TunnelError, match="CannotPullContainerError.*NAT"):
        with _open(world, t):
            pass
    stubber.assert_no_pending_responses()
    assert forwarder.requests == []


def test_agent_timeout_stops_the_task(world: Any, named_pg: PgServer) -> None:
    _, stubber, _, _, lines = world
    t = w.target(named_pg.port)
    stubber.add_response("run_task", {"tasks": [w.task("PROVISIONING")], "failures": []}, w.run_task_params(t))
    for _ in range(11):  # polls at 0, 3, ... 30 s
        stubber.add_response("describe_tasks", {"tasks": [w.task("RUNNING", "PENDING", runtime=True)], "failures": []})
    w.stub_stop(stubber, t)
    with pytest.raises(TunnelError, match="not RUNNING after 30s"):
        with _open(world, t, timeout_s=30):
            pass
    stubber.assert_no_pending_responses()
    assert [ln for ln in lines if "waiting for" in ln] == [
        f"  waiting for the access task: task RUNNING, exec agent PENDING ({s}s)" for s in (0, 15, 30)
    ]


def test_run_task_failures_are_one_sentence_and_nothing_to_stop(world: Any, named_pg: PgServer) -> None:
    _, stubber, *_ = world
    t = w.target(named_pg.port)
    stubber.add_response("run_task", {"tasks": [], "failures": [{"arn": t.task_definition_arn, "reason": "RESOURCE:ENI", "detail": "no free ENI"}]}, w.run_task_params(t))
    with pytest.raises(TunnelError, match=r"could not start the access task in cluster shop-dev-db-access \(RESOURCE:ENI: no free ENI\)"):
        with _open(world, t):
            pass
    stubber.assert_no_pending_responses()


def test_run_task_access_denied(world: Any, named_pg: PgServer) -> None:
    _, stubber, *_ = world
    stubber.add_client_error("run_task", service_error_code="AccessDeniedException", service_message="not authorized to perform: ecs:RunTask")
    with pytest.raises(TunnelError, match="AccessDeniedException: not authorized"):
        with _open(world, w.target(named_pg.port)):
            pass


def test_stop_failure_warns_without_masking(world: Any, named_pg: PgServer) -> None:
    _, stubber, _, _, lines = world
    t = w.target(named_pg.port)
    w.stub_happy_path(stubber, t, stop=False)
    stubber.add_client_error("stop_task", service_error_code="ExpiredTokenException", service_message="token expired")
    with pytest.raises(RuntimeError, match="original"):
        with _open(world, t):
            raise RuntimeError("original")
    assert any("aws ecs stop-task --cluster shop-dev-db-access --task " + w.TASK_ARN in ln for ln in lines)


def test_preflight_runs_before_any_task(world: Any, named_pg: PgServer) -> None:
    _, stubber, forwarder, *_ = world
    forwarder.preflight_error = TunnelError("the AWS CLI is not installed")
    with pytest.raises(TunnelError, match="AWS CLI"):
        with _open(world, w.target(named_pg.port)):
            pass
    stubber.assert_no_pending_responses()  # and no call was made: the Stubber would have failed it


def test_access_target_from_outputs() -> None:
    outputs = {"dbAccessCluster": w.CLUSTER, "dbAccessTaskDefinitionArn": w.TASKDEF_ARN, "dbAccessSubnetIds": list(w.SUBNETS),
               "dbAccessSecurityGroupId": w.SG, "dbAccessContainerName": "access", "dbAddress": w.DB_NAME, "dbPort": 5432}
    assert AccessTarget.from_outputs(outputs) == w.target(5432)
    with pytest.raises(TunnelError, match="stack dev has no access path.*dbAccessCluster.*dbAccess: true"):
        AccessTarget.from_outputs({"dbAddress": w.DB_NAME, "dbPort": 5432}, "dev")


# --- the real session seam: the AWS CLI (a test double of the executable) --------------------------


def _fake_exe(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_cli_missing_and_plugin_missing_are_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TunnelError) as exc:
        AwsCliSessionStarter().preflight()
    assert str(exc.value).startswith("the AWS CLI is not installed (no `aws` on PATH); install AWS CLI v2 (https://")
    _fake_exe(tmp_path, "aws", "exit 0\n")
    with pytest.raises(TunnelError) as exc:
        AwsCliSessionStarter().preflight()
    assert "Session Manager plugin" in str(exc.value) and "session-manager-working-with-install-plugin" in str(exc.value)
    _fake_exe(tmp_path, "session-manager-plugin", "exit 0\n")
    AwsCliSessionStarter().preflight()


def test_cli_session_command_and_lifecycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "argv"
    _fake_exe(tmp_path, "aws", f'printf "%s\\n" "$@" > {log}\necho "Starting session with SessionId: ci-0abc"\n'
              'echo "Port 15432 opened for sessionId ci-0abc."\necho "Waiting for connections..."\nexec sleep 60\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    request = SessionRequest(target=f"ecs:{w.CLUSTER}_{w.TASK_ID}_{w.RUNTIME_ID}", remote_host=w.DB_NAME, remote_port=5432, local_port=15432, region="eu-west-1")
    session = AwsCliSessionStarter(ready_timeout_s=10).start(request)
    try:
        assert log.read_text().splitlines() == [
            "ssm", "start-session", "--target", request.target, "--document-name", "AWS-StartPortForwardingSessionToRemoteHost",
            "--parameters", '{"host": ["db.pghome.test"], "portNumber": ["5432"], "localPortNumber": ["15432"]}', "--region", "eu-west-1",
        ]
        assert session.proc.poll() is None  # type: ignore[attr-defined]
    finally:
        session.close()
    assert session.proc.poll() is not None  # type: ignore[attr-defined]


def test_cli_session_that_fails_reports_its_last_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_exe(tmp_path, "aws", 'echo "An error occurred (TargetNotConnected) when calling the StartSession operation: ecs:x is not connected." >&2\nexit 254\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    request = SessionRequest(target="ecs:c_t_r", remote_host=w.DB_NAME, remote_port=5432, local_port=15432)
    sleeps: list[float] = []
    with pytest.raises(TunnelError, match=r"did not start \(An error occurred \(TargetNotConnected\)"):
        AwsCliSessionStarter(ready_timeout_s=10, attempts=3, sleep=sleeps.append).start(request)
    assert sleeps == [5.0, 5.0]  # retried: SSM can lag ECS by a few seconds


def test_cli_session_retries_target_not_connected_then_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = tmp_path / "count"
    _fake_exe(tmp_path, "aws", f'echo x >> {count}\nif [ "$(wc -l < {count})" -lt 2 ]; then echo "An error occurred (TargetNotConnected)" >&2; exit 254; fi\n'
              'echo "Waiting for connections..."\nexec sleep 60\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    request = SessionRequest(target="ecs:c_t_r", remote_host=w.DB_NAME, remote_port=5432, local_port=15432)
    session = AwsCliSessionStarter(ready_timeout_s=10, sleep=lambda s: None).start(request)
    session.close()
    assert count.read_text().count("x") == 2


def test_cli_session_other_errors_are_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_exe(tmp_path, "aws", 'echo "An error occurred (AccessDeniedException) when calling the StartSession operation" >&2\nexit 254\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    sleeps: list[float] = []
    with pytest.raises(TunnelError, match="AccessDeniedException.*ssm:StartSession rights"):
        AwsCliSessionStarter(ready_timeout_s=10, sleep=sleeps.append).start(SessionRequest("ecs:c_t_r", w.DB_NAME, 5432, 15432))
    assert sleeps == []


# --- the CLI (python -m bootstrap tunnel) and the route deploy/rotate/audit use ----------------------


def test_cli_rejects_bad_arguments_in_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.main import main

    assert main(["tunnel", "--stack", "dev", "--local-port", "80"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --local-port 80 is invalid: use 1024-65535 (an unprivileged port), or leave it out for a free one"


def test_cli_without_the_aws_cli_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.main import main

    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["tunnel", "--stack", "dev"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the AWS CLI is not installed") and "getting-started-install" in err and "\n" not in err


def test_hold_tunnel_until_ctrl_c(world: Any, named_pg: PgServer) -> None:
    from bootstrap.cli.tunnel import hold_tunnel

    ecs, stubber, forwarder, clock, lines = world
    t = w.target(named_pg.port)
    w.stub_happy_path(stubber, t)
    seen: list[int] = []

    def user_works_then_presses_ctrl_c() -> None:
        port = int(next(ln for ln in lines if "hostaddr=127.0.0.1 port=" in ln).split("port=")[1].split()[0])
        with psycopg.connect(host=w.DB_NAME, hostaddr="127.0.0.1", port=port, user=SUPERUSER, password=named_pg.superuser_password, dbname="postgres",
                             sslmode="verify-full", sslrootcert=str(named_pg.ca_file), connect_timeout=5) as conn:
            seen.append(conn.execute("SELECT 1").fetchone()[0])  # type: ignore[index]
        raise KeyboardInterrupt

    code = hold_tunnel(t, ecs=ecs, sessions=forwarder, out=lines.append, clock=clock, sleep=clock.sleep, hold=user_works_then_presses_ctrl_c, user="shop_master")
    assert code == 0 and seen == [1]
    stubber.assert_no_pending_responses()
    assert any("export ALL_PROXY=socks5://127.0.0.1:" in ln for ln in lines)
    assert any(f"psql \"host={w.DB_NAME} hostaddr=127.0.0.1" in ln and "user=shop_master sslmode=verify-full" in ln for ln in lines)
    assert lines[-2:] == [f"  access task {w.TASK_ID} stopped", "tunnel closed"]


def test_hold_tunnel_stops_the_task_on_sigterm(world: Any, named_pg: PgServer) -> None:
    import signal
    import time

    from bootstrap.cli.tunnel import hold_tunnel

    ecs, stubber, forwarder, clock, lines = world
    w.stub_happy_path(stubber, w.target(named_pg.port))

    def ci_cancels() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        pytest.fail("SIGTERM did not interrupt the hold")

    before = signal.getsignal(signal.SIGTERM)
    assert hold_tunnel(w.target(named_pg.port), ecs=ecs, sessions=forwarder, out=lines.append, clock=clock, sleep=clock.sleep, hold=ci_cancels) == 0
    stubber.assert_no_pending_responses()
    assert signal.getsignal(signal.SIGTERM) == before


def test_hold_tunnel_failure_is_one_sentence(world: Any, named_pg: PgServer, capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.tunnel import hold_tunnel

    ecs, stubber, forwarder, clock, lines = world
    t = w.target(named_pg.port)
    stubber.add_response("run_task", {"tasks": [], "failures": [{"arn": t.task_definition_arn, "reason": "MISSING"}]}, w.run_task_params(t))
    assert hold_tunnel(t, ecs=ecs, sessions=forwarder, out=lines.append, clock=clock, sleep=clock.sleep, hold=lambda: None) == 1
    assert capsys.readouterr().err.strip() == "error: ECS could not start the access task in cluster shop-dev-db-access (MISSING)"


def _outputs(db_port: int) -> dict[str, Any]:
    return {"dbAccessCluster": w.CLUSTER, "dbAccessTaskDefinitionArn": w.TASKDEF_ARN, "dbAccessSubnetIds": list(w.SUBNETS),
            "dbAccessSecurityGroupId": w.SG, "dbAccessContainerName": "access", "dbAddress": w.DB_NAME, "dbPort": db_port}


def test_db_route_direct_when_reachable_or_told_so(world: Any, named_pg: PgServer) -> None:
    from bootstrap.access.tunnel import db_route
    from bootstrap.rotation.local import Endpoint as RotationEndpoint

    ecs, stubber, forwarder, clock, lines = world
    base = RotationEndpoint(sslrootcert="ca.pem")
    for mode, probe in (("never", lambda h, p: False), ("auto", lambda h, p: True)):
        with db_route(_outputs(named_pg.port), stack="dev", mode=mode, ecs=ecs, sessions=forwarder, probe=probe, out=lines.append) as route:
            assert route.tunnel is None and route.endpoint(base) is base and route.pulumi_env() == {}
    assert forwarder.requests == []  # no task was started (the Stubber has no responses queued)
    with pytest.raises(TunnelError, match="--tunnel 'sometimes' is not a mode: use one of auto, always, never"):
        with db_route(_outputs(named_pg.port), stack="dev", mode="sometimes", sessions=forwarder):
            pass


def test_db_route_tunnels_rotation_and_pulumi_when_unreachable(world: Any, named_pg: PgServer) -> None:
    from bootstrap.access.tunnel import db_route
    from bootstrap.rotation.local import Endpoint as RotationEndpoint

    ecs, stubber, forwarder, clock, lines = world
    w.stub_happy_path(stubber, w.target(named_pg.port))
    with db_route(_outputs(named_pg.port), stack="dev", mode="auto", ecs=ecs, sessions=forwarder, probe=lambda h, p: False,
                  out=lines.append, clock=clock, sleep=clock.sleep) as route:
        assert route.tunnel is not None
        ep = route.endpoint(RotationEndpoint(sslrootcert=str(named_pg.ca_file)))
        assert (ep.host, ep.hostaddr, ep.port, ep.sslmode) == (w.DB_NAME, "127.0.0.1", route.tunnel.local_port, "verify-full")
        # the rotation's own connection path, through the tunnel, verify-full on the RDS name
        from bootstrap.rotation.local import Rotator

        rot = Rotator.__new__(Rotator)
        rot.endpoint = ep
        with rot._connect({"username": SUPERUSER, "host": "ignored"}, named_pg.superuser_password) as conn:
            assert encrypted(conn)
        assert route.pulumi_env()["ALL_PROXY"] == f"socks5://127.0.0.1:{route.tunnel.socks_port}"
    assert any("is not reachable from here: opening a tunnel" in ln for ln in lines)
    stubber.assert_no_pending_responses()


def test_rotation_through_a_tunnel_held_elsewhere_with_pghostaddr(world: Any, named_pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the tunnel CLI prints for another shell: PGHOSTADDR + --port keep verify-full on the
    host name the master secret holds (the RDS endpoint)."""
    from bootstrap.rotation.local import Endpoint as RotationEndpoint
    from bootstrap.rotation.local import Rotator

    _, stubber, *_ = world
    w.stub_happy_path(stubber, w.target(named_pg.port))
    with _open(world, w.target(named_pg.port)) as tunnel:
        monkeypatch.setenv("PGHOSTADDR", "127.0.0.1")
        rot = Rotator.__new__(Rotator)
        rot.endpoint = RotationEndpoint(port=tunnel.local_port, sslrootcert=str(named_pg.ca_file))
        secret = {"host": w.DB_NAME, "port": 5432, "username": SUPERUSER, "dbname": "postgres"}
        with rot._connect(secret, named_pg.superuser_password) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError, match="certificate|does not match"):
            rot._connect({**secret, "host": "elsewhere.pghome.test"}, named_pg.superuser_password).close()
    stubber.assert_no_pending_responses()


def test_cli_outputs_file_errors_are_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bootstrap.cli.main import main

    _fake_exe(tmp_path, "aws", "exit 0\n")
    _fake_exe(tmp_path, "session-manager-plugin", "exit 0\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["tunnel", "--stack", "dev", "--outputs-file", str(bad)]) == 1
    assert capsys.readouterr().err.strip() == f"error: --outputs-file {bad} is not readable JSON (JSONDecodeError); write it with `pulumi stack output --json`"
    off = tmp_path / "off.json"
    off.write_text('{"dbAddress": "shop-dev-db.x.eu-west-1.rds.amazonaws.com", "dbPort": 5432}')
    assert main(["tunnel", "--stack", "dev", "--outputs-file", str(off)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: stack dev has no access path to the database") and "dbAccess: true" in err and "\n" not in err


def test_cli_reads_outputs_through_the_configured_backend_and_never_creates(tmp_path: Path, pulumi_double: Any, monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """No --outputs-file: the stack is selected on the configured backend (PULUMI_BACKEND_URL here),
    never created; a missing stack is one sentence."""
    from bootstrap.cli.main import main

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_exe(bin_dir, "aws", "exit 0\n")
    _fake_exe(bin_dir, "session-manager-plugin", "exit 0\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    backend = pulumi_double.file_backend("team-state")
    (tmp_path / "team-state").mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", backend)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "x")
    assert main(["tunnel", "--stack", "dev", "-C", str(pulumi_double.project)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: stack 'dev' does not exist in the backend {backend} (from PULUMI_BACKEND_URL); check --stack and the backend, "
                   "or create it with `python -m bootstrap deploy --stack dev`")
    cmds = pulumi_double.commands()
    assert any(c[:2] == ["stack", "select"] for c in cmds) and not any(c[:2] == ["stack", "init"] for c in cmds)
    assert all(c["env"].get("PULUMI_BACKEND_URL") == backend for c in pulumi_double.calls())

"""Test doubles for the tunnel's two seams: ECS (botocore Stubber on a real client; moto 5.x
crashes on RunTask with awsvpc networking) and the SSM session (a loopback TCP forwarder standing in
for the session-manager plugin: it listens on 127.0.0.1:<local port> and forwards to the
database, resolving the RDS name the way the agent inside the VPC would)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.stub import Stubber

from bootstrap.access.socks5 import relay
from bootstrap.access.tunnel import AccessTarget, SessionRequest

REGION = "eu-west-1"
ACCOUNT = "123456789012"
CLUSTER = "shop-dev-db-access"
DB_NAME = "db.pghome.test"  # what the server certificate names, like an RDS endpoint
TASK_ID = "4f2b7c1e9a8d4e0f8b6a5c3d2e1f0a9b"
TASK_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{TASK_ID}"
TASKDEF_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/shop-dev-db-access:3"
RUNTIME_ID = f"{TASK_ID}-2531612879"
SUBNETS = ("subnet-0aaa1111bbbb2222c", "subnet-0ddd3333eeee4444f")
SG = "sg-0123456789abcdef0"


def target(db_port: int = 5432) -> AccessTarget:
    return AccessTarget(cluster=CLUSTER, task_definition_arn=TASKDEF_ARN, subnet_ids=SUBNETS, security_group_id=SG, db_host=DB_NAME, db_port=db_port)


def ecs_client() -> Any:
    return boto3.client("ecs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def _container(status: str, agent: str, runtime: bool) -> dict[str, Any]:
    c: dict[str, Any] = {
        "containerArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/{CLUSTER}/{TASK_ID}/0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f",
        "taskArn": TASK_ARN,
        "name": "access",
        "image": "public.ecr.aws/docker/library/alpine:3.20.3",
        "lastStatus": status,
        "managedAgents": [{"name": "ExecuteCommandAgent", "lastStatus": agent}],
    }
    if runtime:
        c["runtimeId"] = RUNTIME_ID
        c["managedAgents"][0]["lastStartedAt"] = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    return c


def task(status: str, agent: str = "PENDING", *, runtime: bool = False, stopped_reason: str = "") -> dict[str, Any]:
    """A Task as DescribeTasks/RunTask return it (ECS API reference, Task and Container shapes)."""
    t: dict[str, Any] = {
        "taskArn": TASK_ARN,
        "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}",
        "taskDefinitionArn": TASKDEF_ARN,
        "lastStatus": status,
        "desiredStatus": "STOPPED" if stopped_reason else "RUNNING",
        "launchType": "FARGATE",
        "platformVersion": "1.4.0",
        "enableExecuteCommand": True,
        "startedBy": "pghome-tunnel",
        "containers": [_container("RUNNING" if status == "RUNNING" else "PENDING", agent, runtime)],
    }
    if stopped_reason:
        t["stoppedReason"] = stopped_reason
        t["stopCode"] = "TaskFailedToStart"
    return t


def run_task_params(t: AccessTarget) -> dict[str, Any]:
    return {
        "cluster": t.cluster,
        "taskDefinition": t.task_definition_arn,
        "count": 1,
        "launchType": "FARGATE",
        "platformVersion": "LATEST",
        "enableExecuteCommand": True,
        "startedBy": "pghome-tunnel",
        "propagateTags": "TASK_DEFINITION",
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": list(t.subnet_ids), "securityGroups": [t.security_group_id], "assignPublicIp": "DISABLED"}},
    }


def stub_happy_path(stubber: Stubber, t: AccessTarget, *, stop: bool = True) -> None:
    """RunTask, then three polls (provisioning, running with agent pending, agent running), then StopTask."""
    stubber.add_response("run_task", {"tasks": [task("PROVISIONING")], "failures": []}, run_task_params(t))
    describe = {"cluster": t.cluster, "tasks": [TASK_ARN]}
    stubber.add_response("describe_tasks", {"tasks": [task("PROVISIONING")], "failures": []}, describe)
    stubber.add_response("describe_tasks", {"tasks": [task("RUNNING", "PENDING", runtime=True)], "failures": []}, describe)
    stubber.add_response("describe_tasks", {"tasks": [task("RUNNING", "RUNNING", runtime=True)], "failures": []}, describe)
    if stop:
        stub_stop(stubber, t)


def stub_stop(stubber: Stubber, t: AccessTarget) -> None:
    stubber.add_response("stop_task", {"task": task("RUNNING")}, {"cluster": t.cluster, "task": TASK_ARN, "reason": "pghome tunnel closed"})




@dataclass
class LoopbackSession:
    sock: socket.socket
    connections: list[int] = field(default_factory=list)
    closed: bool = False

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class LoopbackForwarder:
    """The session seam: forwards 127.0.0.1:<local_port> to the database like the SSM agent would."""

    resolve: dict[str, tuple[str, int]]  # RDS name -> where the test's PostgreSQL listens
    requests: list[SessionRequest] = field(default_factory=list)
    sessions: list[LoopbackSession] = field(default_factory=list)
    fail_with: Exception | None = None
    preflight_error: Exception | None = None

    def preflight(self) -> None:
        if self.preflight_error:
            raise self.preflight_error

    def start(self, request: SessionRequest) -> LoopbackSession:
        self.requests.append(request)
        if self.fail_with:
            raise self.fail_with
        upstream = self.resolve[request.remote_host]
        listener = socket.create_server(("127.0.0.1", request.local_port))
        session = LoopbackSession(listener)

        def connect() -> socket.socket:
            session.connections.append(1)
            return socket.create_connection(upstream)

        relay_in_background(listener, connect)
        self.sessions.append(session)
        return session


def relay_in_background(listener: socket.socket, connect: Callable[[], socket.socket | None]) -> None:
    """Until `listener` closes, relay each accepted connection to a socket `connect` opens (None: drop the client)."""

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = connect()
            if upstream is None:
                client.close()
                continue
            threading.Thread(target=relay, args=(client, upstream), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()


# --- a minimal SOCKS5 client (what the postgresql provider's Go dialer does) ---------------------


def socks_connect(proxy_port: int, host: str | bytes, port: int, atyp: int = 3) -> tuple[socket.socket, int]:
    """CONNECT through the proxy; returns the socket and the reply code (0 = succeeded)."""
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    if atyp == 3:
        name = host.encode() if isinstance(host, str) else host
        addr = bytes([3, len(name)]) + name
    else:
        addr = b"\x01" + socket.inet_aton(str(host))
    s.sendall(b"\x05\x01\x00" + addr + struct.pack("!H", port))
    reply = _recv(s, 10)
    assert reply[0] == 5
    return s, reply[1]


def _recv(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


@contextlib.contextmanager
def port_through_socks(proxy_port: int, host: str, port: int) -> Iterator[int]:
    """A local port whose connections are carried through the SOCKS proxy to host:port
    (lets psycopg, which has no SOCKS support, speak the whole protocol over the SOCKS path)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def connect() -> socket.socket | None:
        upstream, code = socks_connect(proxy_port, host, port)
        if code != 0:
            upstream.close()
            return None
        upstream.settimeout(None)
        return upstream

    relay_in_background(listener, connect)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()

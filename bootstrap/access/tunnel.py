"""An on-demand tunnel to the private database: ECS task + SSM port forwarding, TLS still verified.

The stack owns an idle access path (components/db_access.py): a task definition that only sleeps,
with ECS Exec on, admitted by the database's security group. Opening the tunnel:

  1. RunTask (Fargate, private subnets, no public IP, enableExecuteCommand);
  2. wait until the task's ExecuteCommandAgent is RUNNING (DescribeTasks, progress with elapsed time);
  3. start an SSM port-forwarding session to the RDS endpoint through the task
     (`aws ssm start-session --document-name AWS-StartPortForwardingSessionToRemoteHost
     --target ecs:<cluster>_<task id>_<container runtime id>`), local port on 127.0.0.1;
  4. a loopback SOCKS5 endpoint (bootstrap/access/socks5.py) mapping exactly <RDS name>:<port> onto the
     local port, for clients that dial the host name themselves (the postgresql provider);
  5. on leaving the `with` block, whatever happened (error, KeyboardInterrupt): close the session,
     the SOCKS endpoint, and StopTask.

TLS is not downgraded: psycopg connects with host=<RDS name> hostaddr=127.0.0.1 port=<local>, so
`verify-full` checks the certificate against the RDS name; the provider keeps host=<RDS name> and
reaches it through ALL_PROXY=socks5://127.0.0.1:<socks port>.

Seams (Protocols): the ECS client (boto3, or a Stubber in tests) and the session starter (the AWS
CLI with the session-manager plugin, or a loopback forwarder in tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bootstrap.access.socks5 import Socks5Server
from config.ca_bundle import DEFAULT_PATH

EXEC_AGENT = "ExecuteCommandAgent"
LOOPBACK = "127.0.0.1"
STARTED_BY = "pghome-tunnel"
# Stack outputs the tunnel reads (exported by __main__.py when dbAccess is on).
OUTPUT_KEYS = {
    "cluster": "dbAccessCluster",
    "task_definition_arn": "dbAccessTaskDefinitionArn",
    "subnet_ids": "dbAccessSubnetIds",
    "security_group_id": "dbAccessSecurityGroupId",
    "container": "dbAccessContainerName",
    "db_host": "dbAddress",
    "db_port": "dbPort",
}
SESSION_DOCUMENT_OUTPUT = "dbAccessSessionDocument"  # optional: older stacks use AWS's own document


class TunnelError(RuntimeError):
    """One sentence for the user (what failed, what to do); exit status 1."""


# --------------------------------------------------------------------------------------------
# What to start, read from the stack outputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessTarget:
    cluster: str
    task_definition_arn: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    db_host: str
    db_port: int
    container: str = "access"
    document: str = ""  # the stack's port-forwarding document (dbAccessSessionDocument); "" on stacks older than it

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any], stack: str = "") -> AccessTarget:
        """From `pulumi stack output` values (plain or Automation API OutputValues)."""
        values = {k: getattr(v, "value", v) for k, v in outputs.items()}
        missing = [key for key in OUTPUT_KEYS.values() if values.get(key) in (None, "", [])]
        if missing:
            raise TunnelError(
                f"stack {stack or '?'} has no access path to the database (outputs {', '.join(missing)} are missing): "
                "set `dbAccess: true` (the default) and deploy, or reach the database from inside the VPC"
            )
        subnets = values[OUTPUT_KEYS["subnet_ids"]]
        return cls(
            cluster=str(values[OUTPUT_KEYS["cluster"]]),
            task_definition_arn=str(values[OUTPUT_KEYS["task_definition_arn"]]),
            subnet_ids=tuple(str(s) for s in (subnets if isinstance(subnets, list) else [subnets])),
            security_group_id=str(values[OUTPUT_KEYS["security_group_id"]]),
            db_host=str(values[OUTPUT_KEYS["db_host"]]),
            db_port=int(values[OUTPUT_KEYS["db_port"]]),
            container=str(values[OUTPUT_KEYS["container"]]),
            document=str(values.get(SESSION_DOCUMENT_OUTPUT) or ""),
        )


# --------------------------------------------------------------------------------------------
# Seams
# --------------------------------------------------------------------------------------------


class EcsClient(Protocol):
    """The three ECS calls the tunnel makes (a boto3 ECS client satisfies it)."""

    def run_task(self, **kw: Any) -> Mapping[str, Any]: ...
    def describe_tasks(self, **kw: Any) -> Mapping[str, Any]: ...
    def stop_task(self, **kw: Any) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class SessionRequest:
    target: str  # ecs:<cluster>_<task id>_<runtime id>
    remote_host: str
    remote_port: int
    local_port: int
    region: str | None = None
    document: str = ""  # the stack's document (host and port fixed in it); "" = AWS-StartPortForwardingSessionToRemoteHost


class Session(Protocol):
    def close(self) -> None: ...


class SessionStarter(Protocol):
    def preflight(self) -> None:
        """Raise TunnelError if the session cannot be started at all (before any task runs)."""

    def start(self, request: SessionRequest) -> Session:
        """Start forwarding 127.0.0.1:<local_port> to remote_host:remote_port; return once it accepts."""


# --------------------------------------------------------------------------------------------
# The tunnel
# --------------------------------------------------------------------------------------------

E = TypeVar("E")


@dataclass(frozen=True)
class Tunnel:
    """An open tunnel: where to connect, and how each kind of client keeps TLS verified."""

    db_host: str
    db_port: int
    local_port: int
    socks_port: int
    task_arn: str

    def libpq_params(self) -> dict[str, str]:
        """host stays the RDS name (verify-full checks it), the bytes go to the tunnel."""
        return {"host": self.db_host, "hostaddr": LOOPBACK, "port": str(self.local_port)}

    def endpoint(self, base: E) -> E:
        """`base` (dbcore.pgconn.Endpoint or bootstrap.rotation.local.Endpoint) routed through the tunnel."""
        return dataclasses.replace(base, host=self.db_host, hostaddr=LOOPBACK, port=self.local_port)  # type: ignore[type-var]

    def proxy_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """For the `pulumi` process: the postgresql provider dials the RDS name through SOCKS5.
        Loopback stays direct (the engine talks to its plugins over 127.0.0.1 gRPC)."""
        url = f"socks5://{LOOPBACK}:{self.socks_port}"
        existing = (environ or {}).get("NO_PROXY") or (environ or {}).get("no_proxy") or ""
        no_proxy = ",".join(dict.fromkeys([*filter(None, existing.split(",")), "127.0.0.1", "localhost", "::1"]))
        return {"ALL_PROXY": url, "all_proxy": url, "NO_PROXY": no_proxy, "no_proxy": no_proxy}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _task_id(task_arn: str) -> str:
    return task_arn.rsplit("/", 1)[-1]


class TaskRunner:
    """Start the access task, wait for its exec agent, stop it."""

    def __init__(self, ecs: EcsClient, target: AccessTarget, *, out: Callable[[str], None] = print,
                 timeout_s: float = 300.0, interval_s: float = 3.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.ecs, self.target, self.out = ecs, target, out
        self.timeout_s, self.interval_s, self.clock, self.sleep = timeout_s, interval_s, clock, sleep

    def start(self) -> str:
        t = self.target
        try:
            resp = self.ecs.run_task(
                cluster=t.cluster,
                taskDefinition=t.task_definition_arn,
                count=1,
                launchType="FARGATE",
                platformVersion="LATEST",
                enableExecuteCommand=True,
                startedBy=STARTED_BY,
                propagateTags="TASK_DEFINITION",
                networkConfiguration={"awsvpcConfiguration": {"subnets": list(t.subnet_ids), "securityGroups": [t.security_group_id], "assignPublicIp": "DISABLED"}},
            )
        except Exception as exc:  # botocore ClientError, credentials, region
            raise TunnelError(f"ECS RunTask of {t.task_definition_arn} failed ({_aws_error(exc)}); check your AWS credentials and ecs:RunTask/iam:PassRole rights") from None
        tasks = resp.get("tasks") or []
        if not tasks:
            failures = "; ".join(f"{f.get('reason')}{': ' + f['detail'] if f.get('detail') else ''}" for f in resp.get("failures") or []) or "no task returned"
            raise TunnelError(f"ECS could not start the access task in cluster {t.cluster} ({failures})")
        return str(tasks[0]["taskArn"])

    def wait_for_agent(self, task_arn: str) -> str:
        """Block until the exec agent runs; return the container's runtime id."""
        t = self.target
        started = self.clock()
        last_shown, shown_at = "", started
        while True:
            resp = self.ecs.describe_tasks(cluster=t.cluster, tasks=[task_arn])
            tasks = resp.get("tasks") or []
            if not tasks:
                raise TunnelError(f"the access task {_task_id(task_arn)} vanished from cluster {t.cluster}")
            task = tasks[0]
            status = str(task.get("lastStatus", "?"))
            if status in ("DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"):
                reason = task.get("stoppedReason") or next((c.get("reason") for c in task.get("containers") or [] if c.get("reason")), "") or "no reason given"
                raise TunnelError(f"the access task stopped before the tunnel opened ({status}: {reason}); check that it can pull its image (NAT) and reach SSM on 443")
            container = next((c for c in task.get("containers") or [] if c.get("name") == t.container), None)
            agent = next((a for a in (container or {}).get("managedAgents") or [] if a.get("name") == EXEC_AGENT), None)
            agent_status = str((agent or {}).get("lastStatus", "-"))
            elapsed = self.clock() - started
            if agent_status == "RUNNING" and container and container.get("runtimeId"):
                self.out(f"  access task {_task_id(task_arn)}: RUNNING, exec agent RUNNING ({elapsed:.0f}s)")
                return str(container["runtimeId"])
            if agent_status == "STOPPED":
                raise TunnelError(f"the ECS Exec agent of task {_task_id(task_arn)} stopped ({(agent or {}).get('reason') or 'no reason given'}); "
                                  "the task needs 443 to the ssmmessages endpoint (NAT or VPC endpoint) and writable /var/lib/amazon, /var/log/amazon")
            shown = f"{status}/{agent_status}"
            if shown != last_shown or self.clock() - shown_at >= 15:  # on every change, else every 15 s
                self.out(f"  waiting for the access task: task {status}, exec agent {agent_status} ({elapsed:.0f}s)")
                last_shown, shown_at = shown, self.clock()
            if elapsed >= self.timeout_s:
                raise TunnelError(f"the access task's exec agent was not RUNNING after {self.timeout_s:.0f}s (task {status}, agent {agent_status})")
            self.sleep(self.interval_s)

    def stop(self, task_arn: str) -> None:
        try:
            self.ecs.stop_task(cluster=self.target.cluster, task=task_arn, reason="pghome tunnel closed")
            self.out(f"  access task {_task_id(task_arn)} stopped")
        except Exception as exc:  # never mask the original error; tell the user how to clean up
            self.out(f"warning: could not stop the access task ({_aws_error(exc)}); stop it with "
                     f"`aws ecs stop-task --cluster {self.target.cluster} --task {task_arn}`")


def _aws_error(exc: BaseException) -> str:
    err = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
    if err:
        return f"{err.get('Code')}: {err.get('Message')}"
    return f"{type(exc).__name__}: {exc}"[:300]


@contextlib.contextmanager
def open_tunnel(
    target: AccessTarget,
    *,
    ecs: EcsClient,
    sessions: SessionStarter,
    local_port: int = 0,
    region: str | None = None,
    out: Callable[[str], None] = print,
    timeout_s: float = 300.0,
    interval_s: float = 3.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Tunnel]:
    """Open the tunnel for the duration of the `with` block; the task is stopped on every exit."""
    sessions.preflight()  # before anything is started: a missing CLI costs nothing
    port = local_port or free_port()
    runner = TaskRunner(ecs, target, out=out, timeout_s=timeout_s, interval_s=interval_s, clock=clock, sleep=sleep)
    started = clock()
    out(f"tunnel: starting the access task in cluster {target.cluster}")
    task_arn = runner.start()
    session: Session | None = None
    socks: Socks5Server | None = None
    try:
        runtime_id = runner.wait_for_agent(task_arn)
        request = SessionRequest(
            target=f"ecs:{target.cluster}_{_task_id(task_arn)}_{runtime_id}",
            remote_host=target.db_host,
            remote_port=target.db_port,
            local_port=port,
            region=region,
            document=target.document,
        )
        out(f"  opening the SSM port-forwarding session to {target.db_host}:{target.db_port}")
        session = sessions.start(request)
        socks = Socks5Server({(target.db_host, target.db_port): (LOOPBACK, port)})
        socks.start()
        out(f"tunnel: open after {clock() - started:.0f}s: {LOOPBACK}:{port} -> {target.db_host}:{target.db_port}")
        yield Tunnel(db_host=target.db_host, db_port=target.db_port, local_port=port, socks_port=socks.port, task_arn=task_arn)
    finally:
        if socks is not None:
            socks.close()
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()
        runner.stop(task_arn)


# --------------------------------------------------------------------------------------------
# For deploy / rotate / audit: the route to the database, direct or through a tunnel
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DbRoute:
    """How the tools reach the database for one run. `tunnel` None: directly (inside the VPC)."""

    tunnel: Tunnel | None = None

    def endpoint(self, base: E) -> E:
        """A pgconn/rotation Endpoint routed through the tunnel (unchanged when direct)."""
        return base if self.tunnel is None else self.tunnel.endpoint(base)

    def pulumi_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Extra env for the `pulumi` process (the postgresql provider); empty when direct."""
        return {} if self.tunnel is None else self.tunnel.proxy_env(environ)


def reachable(host: str, port: int, timeout_s: float = 3.0) -> bool:
    """Can this machine open a TCP connection to the database (a runner inside the VPC)?"""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


TUNNEL_MODES = ("auto", "always", "never")


@contextlib.contextmanager
def db_route(
    outputs: Mapping[str, Any],
    *,
    stack: str,
    sessions: SessionStarter,
    mode: str = "auto",
    ecs: EcsClient | None = None,
    region: str | None = None,
    probe: Callable[[str, int], bool] = reachable,
    out: Callable[[str], None] = print,
    **tunnel_kw: Any,
) -> Iterator[DbRoute]:
    """The route for the phases that touch the database: `never` = direct; `always` = tunnel;
    `auto` = direct when the endpoint answers, else a tunnel. The tunnel closes (task stopped)
    when the block ends, however it ends."""
    if mode not in TUNNEL_MODES:
        raise TunnelError(f"--tunnel {mode!r} is not a mode: use one of {', '.join(TUNNEL_MODES)}")
    host = str(getattr(outputs.get("dbAddress"), "value", outputs.get("dbAddress")) or "")
    port = int(getattr(outputs.get("dbPort"), "value", outputs.get("dbPort")) or 5432)
    if mode == "never" or (mode == "auto" and host and probe(host, port)):
        out(f"database {host or '?'}:{port}: connecting directly")
        yield DbRoute()
        return
    if mode == "auto":
        out(f"database {host}:{port} is not reachable from here: opening a tunnel")
    target = AccessTarget.from_outputs(outputs, stack)
    if ecs is None:
        import boto3

        ecs = boto3.session.Session(region_name=region).client("ecs")
    with open_tunnel(target, ecs=ecs, sessions=sessions, region=region, out=out, **tunnel_kw) as tunnel:
        yield DbRoute(tunnel)


def connect_hint(tunnel: Tunnel, user: str = "<user>", dbname: str = "postgres", ca_file: str = DEFAULT_PATH) -> str:
    """What to paste into a shell to use the tunnel with psql (verify-full kept)."""
    return (
        f"psql \"host={tunnel.db_host} hostaddr={LOOPBACK} port={tunnel.local_port} dbname={dbname} user={user} "
        f"sslmode=verify-full sslrootcert={ca_file}\""
    )

"""The real session step of the tunnel: SSM port forwarding through the AWS CLI and the
session-manager plugin (`aws ssm start-session --document-name AWS-StartPortForwardingSessionToRemoteHost`).

This is the one seam tests replace (with a loopback forwarder, tests/tunnel_world.py); what it does
on a real machine is documented in docs/app-database.md ("What to watch on the first real run").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable

from bootstrap.access.tunnel import Session, SessionRequest, TunnelError

PORT_FORWARD_DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
AWS_CLI_INSTALL = "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
PLUGIN_INSTALL = "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html"


class AwsCliSession:
    """A running `aws ssm start-session` process."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.proc = proc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class AwsCliSessionStarter:
    """Port forwarding through the AWS CLI and the session-manager plugin (the real seam)."""

    READY_MARK = "Waiting for connections"

    # SSM may not know the agent for a few seconds after ECS reports it RUNNING.
    RETRYABLE = ("TargetNotConnected",)

    def __init__(self, *, aws: str = "aws", plugin: str = "session-manager-plugin", ready_timeout_s: float = 60.0, profile: str | None = None,
                 attempts: int = 4, retry_delay_s: float = 5.0, sleep: Callable[[float], None] = time.sleep):
        self.aws, self.plugin, self.ready_timeout_s, self.profile = aws, plugin, ready_timeout_s, profile
        self.attempts, self.retry_delay_s, self.sleep = attempts, retry_delay_s, sleep

    def preflight(self) -> None:
        if shutil.which(self.aws) is None:
            raise TunnelError(f"the AWS CLI is not installed (no `{self.aws}` on PATH); install AWS CLI v2 ({AWS_CLI_INSTALL}) and re-run")
        if shutil.which(self.plugin) is None:
            raise TunnelError(
                f"the Session Manager plugin for the AWS CLI is not installed (no `{self.plugin}` on PATH); install it ({PLUGIN_INSTALL}) and re-run"
            )

    def command(self, request: SessionRequest) -> list[str]:
        # The stack's own document fixes host and port (components/db_access_operator.py): only the local port is ours to choose.
        if request.document:
            document, params = request.document, {"localPortNumber": [str(request.local_port)]}
        else:
            document = PORT_FORWARD_DOCUMENT
            params = {"host": [request.remote_host], "portNumber": [str(request.remote_port)], "localPortNumber": [str(request.local_port)]}
        cmd = [self.aws, "ssm", "start-session", "--target", request.target, "--document-name", document, "--parameters", json.dumps(params)]
        if request.region:
            cmd += ["--region", request.region]
        if self.profile:
            cmd += ["--profile", self.profile]
        return cmd

    def start(self, request: SessionRequest) -> Session:
        for attempt in range(1, self.attempts + 1):
            session, last = self._start_once(request)
            if session is not None:
                return session
            if attempt == self.attempts or not any(mark in last for mark in self.RETRYABLE):
                raise TunnelError(
                    f"the SSM port-forwarding session did not start ({last[:300]}); check ssm:StartSession rights on the task and the document {request.document or PORT_FORWARD_DOCUMENT}"
                )
            self.sleep(self.retry_delay_s)
        raise AssertionError("unreachable")

    def _start_once(self, request: SessionRequest) -> tuple[Session | None, str]:
        proc = subprocess.Popen(self.command(request), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()
        lines: list[str] = []

        def pump() -> None:  # keep draining the pipe so the plugin never blocks on a full buffer
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip())
                if self.READY_MARK in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, name="ssm-session-output", daemon=True).start()
        ready.wait(self.ready_timeout_s)
        session = AwsCliSession(proc)
        if proc.poll() is not None or not any(self.READY_MARK in ln for ln in lines):
            session.close()
            return None, next((ln for ln in reversed(lines) if ln.strip()), "no output")
        return session, ""

"""How the double hands engine events to its caller: the `--event-log` transports of the real CLI,
and the engine's diagnostic markup.

Mirrors pkg/backend/display/display.go (`startEventLogger`, `logJSONEvent`) in pulumi/pulumi:
- `--event-log tcp://HOST:PORT` (CLIs after 3.205.0, what the SDK asks for since then): a gRPC
  client stream `pulumirpc.Events/StreamEvents`, one `EventRequest{event: <JSON line>}` per event,
  closed (`CloseAndRecv`) after the cancel event;
- `--event-log <path>` (3.205.0 and older): the same JSON lines appended to a file.
Each line is Go's `json.Encoder` output with HTML escaping off: compact JSON and a newline.

Which transport a version of the CLI speaks is in backend.VERSIONS; a file-transport CLI handed a
`tcp://` address treats it as a file it cannot open and, like the real one, logs nothing.
"""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from typing import Any

# Diagnostic markup (sdk/go/common/diag/sink.go `Stringify`, sdk/go/common/diag/colors/colors.go):
# the prefix is the severity's colour + "<severity>: " + reset, the message is wrapped in resets.
RESET = "<{%reset%}>"
SEVERITY_COLOR = {"error": "<{%fg 1%}>", "warning": "<{%fg 3%}>", "debug": "<{%fg 7%}>"}


def diagnostic(message: str, severity: str = "error", urn: str = "") -> dict[str, Any]:
    """A diagnosticEvent body as the engine emits it when no --color is given (color "raw")."""
    body: dict[str, Any] = {}
    if urn:
        body["urn"] = urn
    if severity in SEVERITY_COLOR:
        body["prefix"] = f"{SEVERITY_COLOR[severity]}{severity}: {RESET}"
    body.update({"message": f"{RESET}{message}{RESET}\n", "color": "raw", "severity": severity})
    return body


def encode(event: dict[str, Any]) -> str:
    """One event as Go's json.Encoder writes it with SetEscapeHTML(false)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n"


class _FileLog:
    def __init__(self, path: str):
        self.path = path
        # The CLI opens with O_TRUNC: a stale log never leaks into this run.
        open(path, "w", encoding="utf-8").close()

    def send(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)

    def close(self) -> None:
        pass


class _GrpcLog:
    """The client side of the SDK's Events service (pulumi/runtime/proto/events_pb2_grpc.py)."""

    def __init__(self, address: str):
        import grpc
        from pulumi.runtime.proto import events_pb2, events_pb2_grpc

        self._request = events_pb2.EventRequest
        self._rpc_error = grpc.RpcError
        self.channel = grpc.insecure_channel(address)
        self.queue: queue.Queue[Any] = queue.Queue()
        stub = events_pb2_grpc.EventsStub(self.channel)
        self.call = stub.StreamEvents.future(iter(self.queue.get, None))

    def send(self, line: str) -> None:
        self.queue.put(self._request(event=line))

    def close(self) -> None:
        self.queue.put(None)
        try:
            self.call.result(timeout=30)
        except self._rpc_error:
            pass  # the CLI only logs a failed close (logging.V(7))
        self.channel.close()


class Events:
    """The event log of one engine operation. `transport` is "grpc" or "file" (backend.VERSIONS)."""

    def __init__(self, target: str | None, transport: str = "grpc"):
        self.seq = 0
        self.log: _FileLog | _GrpcLog | None = None
        if not target:
            return
        if target.startswith("tcp://"):
            if transport == "grpc":
                self.log = _GrpcLog(target[len("tcp://"):])
            return  # an old CLI cannot open "tcp://..." as a file and drops the events
        self.log = _FileLog(target)

    def emit(self, **event: Any) -> None:
        if self.log is None:
            return
        self.seq += 1
        self.log.send(encode({"sequence": self.seq, "timestamp": int(time.time()), **event}))

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


def replay(events: Events, path: Path) -> bool:
    """Send a recorded stream (JSON lines without sequence/timestamp) as this run's events; whether
    its summary says the operation failed."""
    result = "succeeded"
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            event = json.loads(line)
            events.emit(**event)
            result = event.get("summaryEvent", {}).get("result", result)
    return result == "failed"

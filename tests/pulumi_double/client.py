"""Driving the double as the SDK does, without the SDK: run the executable, and receive its engine
events raw on the SDK's own gRPC Events service (pulumi/runtime/proto/events_pb2_grpc.py), as an
`--event-log tcp://...` address. For tests that need the process (signals) or the exact wire text."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from pulumi.runtime.proto import events_pb2_grpc

from tests.pulumi_double.fixture import Double

PASS = "conformance passphrase"


def env(d: Double, **extra: str) -> dict[str, str]:
    return {"PULUMI_BACKEND_URL": d.file_backend(), "PULUMI_CONFIG_PASSPHRASE": PASS, **extra}


def pulumi(d: Double, *argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`pulumi --non-interactive <argv>` in the project, as the SDK runs it."""
    return subprocess.run(["pulumi", "--non-interactive", *argv], cwd=d.project, env={**os.environ, **env(d, **extra)}, capture_output=True, text=True)


class Collector(events_pb2_grpc.EventsServicer):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def StreamEvents(self, request_iterator: Iterator[Any], context: Any) -> Any:  # noqa: N802 (the service's method name)
        from google.protobuf import empty_pb2

        for request in request_iterator:
            self.lines.append(request.event)
        return empty_pb2.Empty()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    def kinds(self) -> list[str]:
        return [next(k for k in e if k not in ("sequence", "timestamp")) for e in self.events()]


@pytest.fixture
def event_collector() -> Iterator[tuple[Collector, str]]:
    """A gRPC Events server: (what it received, its tcp:// address for --event-log)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    sink = Collector()
    events_pb2_grpc.add_EventsServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield sink, f"tcp://127.0.0.1:{port}"
    finally:
        server.stop(grace=1)

"""`logs --stack S [app|migrate|rotation|access|db] [--follow] [--since 10m] [--filter P]`.

CloudWatch Logs FilterLogEvents over the source's group (and stream prefix), printed oldest first
so the newest line is last, each with its time and the task (or stream) it came from. `--follow`
polls every few seconds from the last event seen, skipping events already printed (the API may
return an event again when several share a timestamp).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from config import naming


class LogsError(ValueError):
    """A bad argument or a missing log group: one sentence, exit 2."""


@dataclass(frozen=True)
class Source:
    group: Callable[[str], str]
    stream_prefix: str = ""
    what: str = ""


SOURCES: dict[str, Source] = {
    "app": Source(naming.app_log_group, "app/", "the app's containers"),
    "migrate": Source(naming.app_log_group, "migrate/", "the release migrations"),
    "rotation": Source(lambda p: f"/aws/lambda/{p}-db-rotation", "", "the rotation function"),
    "access": Source(lambda p: f"/ecs/{p}/db-access/task", "", "the database access task (tunnels)"),
    "db": Source(lambda p: naming.db_log_group(p, "postgresql"), "", "PostgreSQL's own log"),
}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text or "")
    if not m or int(m.group(1)) == 0:
        raise LogsError(f"--since {text!r} is not a duration; use a number and a unit: 30s, 10m, 2h or 7d")
    return int(m.group(1)) * UNITS[m.group(2)]


def origin(stream: str) -> str:
    """The task id of an awslogs stream (`<prefix>/<container>/<task id>`), else the stream's last part."""
    return stream.rsplit("/", 1)[-1][:32]


def line(event: dict[str, Any]) -> str:
    at = datetime.fromtimestamp(event["timestamp"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{at} {origin(str(event.get('logStreamName', ''))):<32} {str(event.get('message', '')).rstrip()}"


def tail(logs: Any, prefix: str, source: str, *, since_seconds: int, pattern: str = "", follow: bool = False, out: Callable[[str], None] = print,
         clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep, polls: int | None = None, poll_seconds: float = 3) -> int:
    src = SOURCES[source]
    group = src.group(prefix)
    start_ms = int((clock() - since_seconds) * 1000)
    seen: set[str] = set()
    rounds = 0
    while True:
        kw: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
        if src.stream_prefix:
            kw["logStreamNamePrefix"] = src.stream_prefix
        if pattern:
            kw["filterPattern"] = pattern
        events: list[dict[str, Any]] = []
        try:
            for page in logs.get_paginator("filter_log_events").paginate(**kw):
                events += page.get("events") or []
        except logs.exceptions.ResourceNotFoundException:
            raise LogsError(f"log group {group} ({src.what}) does not exist; has the stack been deployed{' with it enabled' if source in ('access', 'rotation') else ''}?") from None
        except logs.exceptions.InvalidParameterException as exc:
            raise LogsError(f"--filter {pattern!r} was refused by CloudWatch Logs: {exc.response['Error'].get('Message', '')}") from None
        fresh = sorted((e for e in events if e.get("eventId") not in seen and str(e.get("logStreamName", "")).startswith(src.stream_prefix)), key=lambda e: (e["timestamp"], e.get("eventId", "")))
        for e in fresh:
            seen.add(str(e.get("eventId")))
            out(line(e))
            start_ms = max(start_ms, int(e["timestamp"]))
        if not follow and not fresh and rounds == 0:
            out(f"(no {source} events in {group} in the last {since_seconds}s{' matching ' + repr(pattern) if pattern else ''})")
        rounds += 1
        if not follow or (polls is not None and rounds >= polls):
            return 0
        sleep(poll_seconds)

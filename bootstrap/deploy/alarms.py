"""The stack's alarms that are firing now, for `status` and for a release that wants to know.

Every alarm of a stack is named '<prefix>-...' (stack output `alarmNamePrefix`,
components/monitoring.py), so one DescribeAlarms call filtered by that prefix and the ALARM
state finds them; no alarm name list is kept in sync here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class FiringAlarm:
    name: str
    reason: str
    since: datetime | None
    description: str

    @property
    def runbook(self) -> str:
        """The docs section the alarm's description points at ('' for an alarm not made by this program)."""
        _, sep, rest = self.description.partition("What to do: ")
        return rest.strip() if sep else ""


def firing_alarms(cloudwatch: Any, name_prefix: str) -> list[FiringAlarm]:
    """Alarms whose name starts with `name_prefix` and whose state is ALARM, oldest first.

    `cloudwatch` is a boto3 CloudWatch client. The prefix must end with '-' (as the stack output
    does) so stack 'dev' never lists stack 'dev2''s alarms.
    """
    if not name_prefix.endswith("-"):
        raise ValueError(f"alarm name prefix {name_prefix!r} must end with '-' (the stack output alarmNamePrefix does)")
    found: list[FiringAlarm] = []
    pages = cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=name_prefix, StateValue="ALARM", AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )
    for page in pages:
        for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
            # AWS applies both filters; the state is checked again because a double may apply only
            # one (moto 5.2.5 ignores StateValue when AlarmNamePrefix is given).
            if alarm.get("StateValue") != "ALARM":
                continue
            found.append(
                FiringAlarm(
                    name=alarm["AlarmName"],
                    reason=alarm.get("StateReason", ""),
                    since=alarm.get("StateUpdatedTimestamp"),
                    description=alarm.get("AlarmDescription", ""),
                )
            )
    return sorted(found, key=lambda a: (a.since is None, a.since or datetime.min, a.name))

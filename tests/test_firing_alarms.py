"""`firing_alarms`: the stack's alarms in ALARM, found by the name prefix every alarm carries (moto)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from bootstrap.deploy.alarms import firing_alarms


def _alarm(cw, name: str, description: str = "") -> None:
    cw.put_metric_alarm(AlarmName=name, AlarmDescription=description, Namespace="AWS/RDS", MetricName="CPUUtilization", Statistic="Average",
                        Period=300, EvaluationPeriods=3, Threshold=80, ComparisonOperator="GreaterThanThreshold",
                        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": "shop-prod-db"}])


@mock_aws
def test_lists_only_this_stacks_alarms_in_alarm() -> None:
    cw = boto3.client("cloudwatch", region_name="eu-west-1")
    _alarm(cw, "shop-prod-db-cpu", "RDS CPU is high (threshold 80 %). What to do: docs/monitoring.md#db-cpu")
    _alarm(cw, "shop-prod-ecs-cpu")
    _alarm(cw, "shop-prod2-db-cpu")  # another stack whose prefix starts the same
    for name in ("shop-prod-db-cpu", "shop-prod2-db-cpu"):
        cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: 3 datapoints were greater than the threshold (80.0).")
    (firing,) = firing_alarms(cw, "shop-prod-")
    assert firing.name == "shop-prod-db-cpu" and firing.reason.startswith("Threshold Crossed")
    assert firing.runbook == "docs/monitoring.md#db-cpu"


def test_a_prefix_without_its_dash_is_refused() -> None:
    with pytest.raises(ValueError, match="must end with '-'"):
        firing_alarms(object(), "shop-prod")

"""Alarms that reach a person: the alarm topic, the alarms, the events, the dashboard.

Three pieces, created in this order by `__main__.py`:
- `AlarmTopic`: an SNS topic encrypted with its own CMK, whose key policy and topic policy admit
  CloudWatch alarms, EventBridge rules and RDS events of this stack only, and the email / HTTPS
  subscribers of the stack settings. A stack without subscriber still alarms, to nobody: the
  preview warns and the offline plan says so.
- `DeploymentAlarms`: the target 5xx-rate and unhealthy-host alarms, created by the Service
  between its load balancer and its ECS service, so the service's deployment `alarms` block can
  name them (a rollout that trips one is rolled back).
- `Monitoring`: every other alarm of the table (components/alarms.py), the RDS event
  subscription, the EventBridge rules for failed ECS deployments and failed rotations, and the
  dashboard.

Every alarm has the topic as alarm and OK action, so the person paged also hears the all-clear.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import alarms as table
from components.awsinfo import aws_facts
from components.kms import ServiceGrant, create_key
from config import naming
from config.monitoring import MonitoringSettings
from config.settings import DatabaseSettings

# The services that publish to the topic: CloudWatch alarms, EventBridge rules, RDS event subscriptions.
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com", "events.rds.amazonaws.com")


def topic_name(prefix: str) -> str:
    return f"{prefix}-alarms"


def topic_policy(topic_arn: str, *, partition: str, region: str, account_id: str, prefix: str) -> dict[str, Any]:
    """Who may publish: each service only from this stack's alarms, rules and DB instance; TLS only."""
    sources = {
        "cloudwatch.amazonaws.com": f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:{prefix}-*",
        "events.amazonaws.com": f"arn:{partition}:events:{region}:{account_id}:rule/{prefix}-*",
        "events.rds.amazonaws.com": f"arn:{partition}:rds:{region}:{account_id}:db:{naming.db_identifier(prefix)}",
    }
    statements: list[dict[str, Any]] = [
        {
            "Sid": f"Publish{i}",
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": source}, "StringEquals": {"aws:SourceAccount": account_id}},
        }
        for i, (service, source) in enumerate(sources.items())
    ]
    statements.append({
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": ["sns:Publish", "sns:Subscribe"], "Resource": topic_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    })
    return {"Version": "2012-10-17", "Statement": statements}


def key_grants(topic_arn: str) -> list[ServiceGrant]:
    """SNS encrypts each message under the key with the topic's ARN as encryption context: a
    publisher may use the key only for this topic."""
    only_this_topic = aws.iam.GetPolicyDocumentStatementConditionArgs(
        test="StringEquals", variable="kms:EncryptionContext:aws:sns:topicArn", values=[topic_arn]
    )
    return [ServiceGrant(principal=p, actions=["kms:Decrypt", "kms:GenerateDataKey*"], conditions=[only_this_topic]) for p in PUBLISHERS]


def create_alarm(resource_name: str, spec: table.AlarmSpec, prefix: str, topic_arn: pulumi.Input[str], parent: pulumi.Resource) -> aws.cloudwatch.MetricAlarm:
    """One CloudWatch alarm from a row of the table, notifying the topic on ALARM and on OK."""
    common: dict[str, Any] = dict(
        name=table.alarm_name(prefix, spec.key),
        alarm_description=f"{spec.summary} (threshold {spec.shown}). What to do: docs/monitoring.md#{spec.key}",
        comparison_operator=spec.comparison,
        threshold=spec.threshold,
        evaluation_periods=spec.evaluation_periods,
        datapoints_to_alarm=spec.datapoints,
        treat_missing_data=spec.missing,
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
    )
    if spec.metric is not None:
        m = spec.metric
        percentile = m.stat.startswith("p")
        common.update(
            namespace=m.namespace, metric_name=m.name, dimensions=dict(m.dimensions), period=spec.period,
            statistic=None if percentile else m.stat, extended_statistic=m.stat if percentile else None,
            # A p99 over a handful of requests is one slow request: with too few samples, keep the state.
            evaluate_low_sample_count_percentiles="ignore" if percentile else None,
        )
    else:
        queries = [aws.cloudwatch.MetricAlarmMetricQueryArgs(id="e1", expression=spec.expression, label=spec.key, return_data=True)]
        queries += [
            aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=mid, return_data=False,
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(namespace=m.namespace, metric_name=m.name, dimensions=dict(m.dimensions), period=spec.period, stat=m.stat),
            )
            for mid, m in spec.inputs.items()
        ]
        common.update(metric_queries=queries)
    return aws.cloudwatch.MetricAlarm(resource_name, **common, opts=pulumi.ResourceOptions(parent=parent))


@dataclass
class AlarmTopicArgs:
    settings: MonitoringSettings
    """Validated monitoring config: the stack prefix and the email / HTTPS subscribers."""


class AlarmTopic(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    subscribers: tuple[str, ...]

    def __init__(self, name: str, args: AlarmTopicArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:monitoring:AlarmTopic", name, None, opts)
        s = args.settings
        facts = aws_facts(self)
        child = pulumi.ResourceOptions(parent=self)
        # The ARN is known from the name, so the key policy can name the topic before it exists.
        arn = f"arn:{facts.partition}:sns:{facts.region}:{facts.account_id}:{topic_name(s.prefix)}"
        key, _ = create_key(f"{name}-key", alias=f"{s.prefix}-alarms", description=f"{s.prefix}: alarm notifications (SNS)", services=key_grants(arn), parent=self)
        topic = aws.sns.Topic(f"{name}-topic", name=topic_name(s.prefix), display_name=f"{s.prefix} alarms", kms_master_key_id=key.arn, opts=child)
        policy = topic_policy(arn, partition=facts.partition, region=facts.region, account_id=facts.account_id, prefix=s.prefix)
        aws.sns.TopicPolicy(f"{name}-policy", arn=topic.arn, policy=json.dumps(policy), opts=child)
        for i, email in enumerate(s.emails):
            aws.sns.TopicSubscription(f"{name}-email-{i}", topic=topic.arn, protocol="email", endpoint=email, opts=child)
        for i, url in enumerate(s.https_endpoints):
            aws.sns.TopicSubscription(f"{name}-https-{i}", topic=topic.arn, protocol="https", endpoint=url, endpoint_auto_confirms=False, opts=child)
        if not s.subscribers:
            pulumi.log.warn(f"{s.prefix}: the alarm topic has no subscriber, alarms reach nobody; set alarmEmails or alarmHttpsEndpoints", resource=self)
        self.topic_arn = topic.arn
        self.key_arn = key.arn
        self.subscribers = s.subscribers
        self.register_outputs({"topic_arn": self.topic_arn, "key_arn": self.key_arn})


@dataclass
class DeploymentAlarms:
    """What the Service needs to create its deployment alarms (before its ECS service)."""

    settings: MonitoringSettings
    topic_arn: pulumi.Input[str]

    @property
    def rollback(self) -> bool:
        return self.settings.rollback_on_alarm

    def create(self, name: str, alb_arn_suffix: pulumi.Input[str], target_group_arn_suffixes: Sequence[pulumi.Input[str]],
               parent: pulumi.Resource) -> list[aws.cloudwatch.MetricAlarm]:
        specs = [a for a in table.load_balancer_alarms(self.settings, alb_arn_suffix, target_group_arn_suffixes) if a.rollback]
        return [create_alarm(f"{name}-{spec.key}", spec, self.settings.prefix, self.topic_arn, parent) for spec in specs]


@dataclass
class WatchedService:
    """The service's facts the alarms need (Service outputs)."""

    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    service_arn: pulumi.Input[str]
    alb_arn_suffix: pulumi.Input[str]
    target_group_arn_suffixes: Sequence[pulumi.Input[str]]
    """The target groups the app's traffic reaches: one, or blue/green's two."""
    web_acl_name: str | None
    """The WAF web ACL's name, None without WAF (wafEnabled false)."""


@dataclass
class MonitoringArgs:
    settings: MonitoringSettings
    database: DatabaseSettings
    """The database section: instance identifier, class (memory, max_connections) and allocated storage."""
    topic_arn: pulumi.Input[str]
    service: WatchedService
    rotation_function_name: pulumi.Input[str]
    rotated_secret_arns: Sequence[pulumi.Input[str]]
    """The secrets the rotation function rotates: the rotation-failed rule matches only these."""


class Monitoring(pulumi.ComponentResource):
    alarm_names: list[str]
    dashboard_name: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:monitoring:Monitoring", name, None, opts)
        self._name, self._args = name, args
        facts = aws_facts(self)
        specs = self.alarm_table(facts.region)
        # The deployment alarms already exist (children of the Service): drawn here, not created twice.
        for spec in specs:
            if not spec.rollback:
                create_alarm(f"{name}-{spec.key}", spec, args.settings.prefix, args.topic_arn, self)
        self._rds_events()
        self._rules()
        dashboard = self._dashboard(specs, facts.region)

        self.alarm_names = [table.alarm_name(args.settings.prefix, s.key) for s in specs]
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs({"alarm_names": self.alarm_names, "dashboard_name": self.dashboard_name})

    def alarm_table(self, region: str) -> list[table.AlarmSpec]:
        """Every alarm of this stack, rollback ones included, in tier order."""
        a, s, svc = self._args, self._args.settings, self._args.service
        specs = [
            *table.load_balancer_alarms(s, svc.alb_arn_suffix, svc.target_group_arn_suffixes),
            *table.service_alarms(s, svc.cluster_name, svc.service_name),
            *table.database_alarms(s, a.database),
            *table.rotation_alarms(s, a.rotation_function_name),
        ]
        if svc.web_acl_name is not None:
            specs += table.waf_alarms(s, svc.web_acl_name, region)
        return specs

    def _rds_events(self) -> None:
        a = self._args
        aws.rds.EventSubscription(
            f"{self._name}-rds-events",
            name=f"{a.settings.prefix}-db-events",
            sns_topic=a.topic_arn,
            source_type="db-instance",
            source_ids=[a.database.identifier],
            event_categories=list(table.RDS_EVENT_CATEGORIES),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _rules(self) -> None:
        a, prefix = self._args, self._args.settings.prefix
        rules: Sequence[tuple[str, str, Any, dict[str, str], str]] = [
            ("ecs-deployment-failed", "A deployment of the app failed and was rolled back",
             pulumi.Output.json_dumps(table.ecs_deployment_failed_pattern(a.service.service_arn)),
             {"service": "$.resources[0]", "reason": "$.detail.reason", "deployment": "$.detail.deploymentId"},
             f'"{prefix}: ECS deployment <deployment> of <service> FAILED: <reason>. What to do: docs/monitoring.md#ecs-deployment-failed"'),
            ("rotation-failed", "A Secrets Manager rotation failed",
             pulumi.Output.json_dumps(table.rotation_failed_pattern(a.rotated_secret_arns)),
             {"event": "$.detail.eventName", "secret": "$.detail.additionalEventData.SecretId"},
             f'"{prefix}: Secrets Manager <event> for <secret>. What to do: docs/monitoring.md#rotation-failed"'),
        ]
        for key, description, pattern, paths, template in rules:
            rule = aws.cloudwatch.EventRule(
                f"{self._name}-{key}", name=table.alarm_name(prefix, key), description=f"{prefix}: {description}", event_pattern=pattern,
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.cloudwatch.EventTarget(
                f"{self._name}-{key}-target", rule=rule.name, arn=a.topic_arn,
                input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(input_paths=paths, input_template=template),
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _dashboard(self, specs: list[table.AlarmSpec], region: str) -> aws.cloudwatch.Dashboard:
        prefix = self._args.settings.prefix
        body = table.dashboard_body(specs, region, f"{prefix}: alarms by tier (docs/monitoring.md)")
        return aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard", dashboard_name=prefix, dashboard_body=pulumi.Output.json_dumps(body), opts=pulumi.ResourceOptions(parent=self)
        )

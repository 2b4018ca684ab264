"""The app on ECS Fargate behind an ALB: cluster, logs, IAM, task definition, service, autoscaling.

What it adds over a plain ApplicationLoadBalancedFargateService:
- tasks run in private subnets without public IPs; their SG admits only the ALB, on the
  container port, and lets them out only to HTTPS (AWS APIs) and the database port in the VPC;
- the container is hardened: non-root user, read-only root filesystem (a scratch volume at /tmp),
  every Linux capability dropped, an init process, no privilege;
- the DB password reaches the container only through `secrets` (Secrets Manager, read by the
  execution role at start), never as a plain environment variable; TLS to the DB is verify-full;
- both roles are least privilege (components/service_iam.py), each statement scoped to an ARN;
  the two AWS exceptions (ecr:GetAuthorizationToken and the ssmmessages channels) are the only
  `"*"` resources;
- deployments roll back on their own (circuit breaker) and autoscaling owns the task count
  (`desiredCount` is ignored after creation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import service_iam
from components import sg as rules
from components.app_database import DbConnection
from components.awsinfo import aws_facts
from components.bluegreen import deployment_configuration
from components.container import CONTAINER_NAME, DEFAULT_CA_BUNDLE, NO_IMAGE_DIGEST, container_definition, writable_volumes
from components.kms import encrypted_log_group, logs_key
from components.loadbalancer import LoadBalancer, LoadBalancerArgs
from components.monitoring import DeploymentAlarms
from components.waf import Waf, WafArgs
from config import naming
from config.settings import ServiceSettings


@dataclass
class ServiceArgs:
    """Inputs of the service. Values produced by other components are `pulumi.Input`s so Outputs
    slot in; `settings` and the few plain flags decide which resources exist, so they are plain."""

    settings: ServiceSettings
    """Validated service config: names, image, sizes, scaling, health check, ALB and listener choices."""
    vpc_id: pulumi.Input[str]
    vpc_cidr: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[Sequence[str]]
    """The ALB's subnets."""
    private_subnet_ids: pulumi.Input[Sequence[str]]
    """The tasks' subnets (no public IPs)."""
    repository_url: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    database: DbConnection
    """The app's database login (AppDatabase.connection("app")): endpoint, user, secret, key, IAM grant."""
    ca_bundle_path: str = DEFAULT_CA_BUNDLE
    """Path of the RDS CA bundle inside the image (PGSSLROOTCERT)."""
    deployment_alarms: DeploymentAlarms | None = None
    """The alarms a rollout watches (components/monitoring.py): created here, after the load
    balancer they measure and before the ECS service whose `alarms` block names them."""
    wait_for_steady_state: bool = False
    """Make `pulumi up` wait for the deployment to settle. Off by default: the very first deploy
    runs before any image is pushed, so it could never settle."""


class Service(pulumi.ComponentResource):
    security_group_id: pulumi.Output[str]
    alb_security_group_id: pulumi.Output[str]
    alb_dns_name: pulumi.Output[str]
    url: pulumi.Output[str]
    https_enabled: bool
    listener_summary: str
    cluster_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    service_arn: pulumi.Output[str]
    alb_arn_suffix: pulumi.Output[str]
    target_group_arn_suffixes: list[pulumi.Output[str]]
    """The target groups that take the app's traffic: one, or blue/green's two (alarms read them all)."""
    web_acl_name: str | None
    task_role_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    log_group_arn: pulumi.Output[str]
    task_definition_arn: pulumi.Output[str]
    image: pulumi.Output[str]

    def __init__(self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:service:Service", name, None, opts)
        self._name = name
        self._args = args
        s = args.settings
        self._region = aws_facts(self).region

        self._exec_key: aws.kms.Key | None = None
        self._exec_logs: aws.cloudwatch.LogGroup | None = None
        if s.enable_execute_command:
            self._exec_key, self._exec_logs = self._exec_session_logging()
        cluster, capacity = self._cluster()
        log_group = self._log_group()
        execution_role, execution_policy = service_iam.execution_role(
            name, s.prefix, service_iam.execution_statements(args.repository_arn, log_group.arn, args.database, self._region), self
        )
        task_role = service_iam.task_role(name, s.prefix, self._task_statements(), self)
        self.image = self._image()
        task_definition = self._task_definition(log_group, execution_role, task_role)
        lb = LoadBalancer(
            f"{name}-lb",
            LoadBalancerArgs(settings=s, vpc_id=args.vpc_id, vpc_cidr=args.vpc_cidr, public_subnet_ids=args.public_subnet_ids),
            opts=pulumi.ResourceOptions(parent=self),
        )
        sg = self._security_group(lb)
        rollout = args.deployment_alarms
        alarms = rollout.create(f"{name}-alarm", lb.arn_suffix, lb.target_group_arn_suffixes, self) if rollout is not None else []
        if s.waf_enabled:
            Waf(f"{name}-waf", WafArgs(settings=s, load_balancer_arn=lb.arn), opts=pulumi.ResourceOptions(parent=self))
        service = aws.ecs.Service(
            f"{name}-service",
            name=naming.ecs_service(args.settings.prefix),
            cluster=cluster.arn,
            task_definition=task_definition.arn,
            # No image yet (first deploy): the service exists with no task until the first release.
            desired_count=s.desired_count if s.has_image else 0,
            capacity_provider_strategies=[aws.ecs.ServiceCapacityProviderStrategyArgs(capacity_provider=p, weight=w, base=b) for p, w, b in self._weights()],
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(subnets=args.private_subnet_ids, security_groups=[sg.id], assign_public_ip=False),
            load_balancers=[
                lb.blue_green.load_balancer(lb.target_group_arn, CONTAINER_NAME, s.container_port)
                if lb.blue_green
                else aws.ecs.ServiceLoadBalancerArgs(target_group_arn=lb.target_group_arn, container_name=CONTAINER_NAME, container_port=s.container_port)
            ],
            # rolling (the default) or ECS's own blue/green with a bake time (components/bluegreen.py)
            deployment_configuration=deployment_configuration(s),
            health_check_grace_period_seconds=s.health_check_grace_seconds,
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
            # The circuit breaker catches tasks that never start; the alarms catch tasks that start and fail requests.
            alarms=aws.ecs.ServiceAlarmsArgs(alarm_names=[a.name for a in alarms], enable=rollout.rollback, rollback=rollout.rollback)
            if rollout is not None and alarms else None,
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            availability_zone_rebalancing="ENABLED",
            enable_execute_command=s.enable_execute_command,
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            wait_for_steady_state=args.wait_for_steady_state,
            tags={"Name": f"{args.settings.prefix}-app"},
            opts=pulumi.ResourceOptions(
                parent=self,
                # Autoscaling owns the count after the first deploy; Pulumi must not reset it.
                ignore_changes=["desired_count"],
                # The target group must be attached to a listener, the capacity providers to the
                # cluster, and the execution role able to pull and read the secret, before tasks start.
                depends_on=[*lb.listeners, capacity, execution_policy, *alarms],
            ),
        )
        self._autoscaling(cluster, service, lb)

        self.security_group_id = sg.id
        self.alb_security_group_id = lb.security_group_id
        self.alb_dns_name = lb.dns_name
        self.url = lb.url
        self.https_enabled = lb.https_enabled
        self.listener_summary = lb.summary
        self.cluster_name = cluster.name
        self.service_name = service.name
        self.service_arn = service.arn
        self.alb_arn_suffix = lb.arn_suffix
        self.target_group_arn_suffixes = lb.target_group_arn_suffixes
        self.web_acl_name = naming.waf_acl(s.prefix) if s.waf_enabled else None
        self.task_role_arn = task_role.arn
        self.execution_role_arn = execution_role.arn
        self.log_group_name = log_group.name
        self.log_group_arn = log_group.arn
        self.task_definition_arn = task_definition.arn
        self.register_outputs(
            {
                "security_group_id": self.security_group_id,
                "alb_dns_name": self.alb_dns_name,
                "url": self.url,
                "cluster_name": self.cluster_name,
                "service_name": self.service_name,
                "task_role_arn": self.task_role_arn,
                "execution_role_arn": self.execution_role_arn,
                "log_group_name": self.log_group_name,
            }
        )

    # --- cluster and capacity ------------------------------------------------------------------

    def _weights(self) -> list[tuple[str, int, int]]:
        """(provider, weight, base): FARGATE (on-demand) carries the base task when it has weight; spot only adds on top."""
        s = self._args.settings
        out = []
        if s.fargate_weight > 0:
            out.append(("FARGATE", s.fargate_weight, 1))
        if s.fargate_spot_weight > 0:
            out.append(("FARGATE_SPOT", s.fargate_spot_weight, 0))
        return out

    def _cluster(self) -> tuple[aws.ecs.Cluster, aws.ecs.ClusterCapacityProviders]:
        args, name = self._args, self._name
        child = pulumi.ResourceOptions(parent=self)
        cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=naming.cluster(args.settings.prefix),
            settings=[{"name": "containerInsights", "value": args.settings.container_insights}],
            configuration=self._exec_configuration(),
            tags={"Name": args.settings.prefix},
            opts=child,
        )
        capacity = aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            cluster_name=cluster.name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategies=[
                aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(capacity_provider=p, weight=w, base=b) for p, w, b in self._weights()
            ],
            opts=child,
        )
        return cluster, capacity

    def _exec_session_logging(self) -> tuple[aws.kms.Key, aws.cloudwatch.LogGroup]:
        """ECS Exec: a CMK for the session data channel and its own KMS-encrypted session log group."""
        prefix, name = self._args.settings.prefix, self._name
        key = logs_key(
            f"{name}-exec-key",
            alias=f"{prefix}-ecs-exec",
            description=f"{prefix}: ECS Exec sessions and their logs",
            log_groups=[naming.exec_log_group(prefix)],
            parent=self,
            keep=self._args.settings.keep_on_destroy,
        )
        group = encrypted_log_group(
            f"{name}-exec-logs", name=naming.exec_log_group(prefix), retention_days=self._args.settings.log_retention_days, key_arn=key.arn, parent=self,
            keep=self._args.settings.keep_on_destroy,
        )
        return key, group

    def _exec_configuration(self) -> Any:
        """The cluster's execute-command configuration (a plain dict, as pulumi_aws accepts it), or None."""
        if self._exec_key is None or self._exec_logs is None:
            return None
        return {
            "execute_command_configuration": {
                "kms_key_id": self._exec_key.arn,
                "logging": "OVERRIDE",
                "log_configuration": {"cloud_watch_encryption_enabled": True, "cloud_watch_log_group_name": self._exec_logs.name},
            }
        }

    def _task_statements(self) -> list[service_iam.Statement]:
        exec_key_arn = self._exec_key.arn if self._exec_key is not None else None
        exec_logs_arn = self._exec_logs.arn if self._exec_logs is not None else None
        return service_iam.task_statements(self._args.database, exec_key_arn, exec_logs_arn)

    def _image(self) -> pulumi.Output[str]:
        s = self._args.settings
        if s.container_image:
            return pulumi.Output.from_input(s.container_image)
        if s.image_tag:
            return pulumi.Output.concat(self._args.repository_url, ":", s.image_tag)
        return pulumi.Output.concat(self._args.repository_url, "@", NO_IMAGE_DIGEST)

    def _log_group(self) -> aws.cloudwatch.LogGroup:
        args, name = self._args, self._name
        key = logs_key(
            f"{name}-logs-key",
            alias=f"{args.settings.prefix}-app-logs",
            description=f"{args.settings.prefix}: application logs",
            log_groups=[naming.app_log_group(args.settings.prefix)],
            parent=self,
            keep=args.settings.keep_on_destroy,
        )
        return encrypted_log_group(
            f"{name}-logs", name=naming.app_log_group(args.settings.prefix), retention_days=args.settings.log_retention_days, key_arn=key.arn, parent=self,
            keep=args.settings.keep_on_destroy,
        )

    # --- task definition -------------------------------------------------------------------------

    def _task_definition(self, log_group: aws.cloudwatch.LogGroup, execution_role: aws.iam.Role, task_role: aws.iam.Role) -> aws.ecs.TaskDefinition:
        args, name = self._args, self._name
        s = args.settings
        return aws.ecs.TaskDefinition(
            f"{name}-task",
            family=naming.task_family(args.settings.prefix),
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(s.task_cpu),
            memory=str(s.task_memory),
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            runtime_platform={"operating_system_family": "LINUX"},
            # Task-local scratch space: the only writable paths, the root filesystem is read-only.
            volumes=[{"name": v} for v in writable_volumes(s)],
            container_definitions=pulumi.Output.json_dumps(
                [container_definition(s, args.database, self.image, log_group.name, self._region, args.ca_bundle_path)]
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    # --- network ---------------------------------------------------------------------------------

    def _security_group(self, lb: LoadBalancer) -> aws.ec2.SecurityGroup:
        args, name = self._args, self._name
        port = args.settings.container_port
        sg = rules.security_group(
            f"{name}-sg", f"{args.settings.prefix}-service", "App tasks: container port from the ALB only; out to HTTPS and the DB port in the VPC", args.vpc_id, self
        )
        rules.ingress(f"{name}-in-alb", sg.id, port, "Container port from the load balancer", self, source_security_group_id=lb.security_group_id)
        rules.egress(f"{name}-out-https", sg.id, 443, "HTTPS to AWS APIs (ECR, logs, Secrets Manager) via NAT or VPC endpoints", self, cidr_ipv4="0.0.0.0/0")
        rules.egress(f"{name}-out-db", sg.id, args.database.port, "PostgreSQL inside the VPC", self, cidr_ipv4=args.vpc_cidr)
        return sg

    # --- autoscaling -----------------------------------------------------------------------------

    def _autoscaling(self, cluster: aws.ecs.Cluster, service: aws.ecs.Service, lb: LoadBalancer) -> None:
        args, name = self._args, self._name
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", cluster.name, "/", service.name),
            # Without an image, autoscaling must not start tasks either (it would scale out to min).
            min_capacity=s.min_capacity if s.has_image else 0,
            max_capacity=s.max_capacity if s.has_image else 0,
            opts=child,
        )
        metric_spec = aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs
        metrics: list[tuple[str, int, aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs]] = [
            ("cpu", s.cpu_target_percent, metric_spec(predefined_metric_type="ECSServiceAverageCPUUtilization")),
            ("memory", s.memory_target_percent, metric_spec(predefined_metric_type="ECSServiceAverageMemoryUtilization")),
        ]
        if s.requests_per_target > 0:
            # The label names the ALB and target group whose request count is divided by the task count.
            label = pulumi.Output.concat(lb.arn_suffix, "/", lb.target_group_arn_suffix)
            metrics.append(("requests", s.requests_per_target, metric_spec(predefined_metric_type="ALBRequestCountPerTarget", resource_label=label)))
        for key, value, spec in metrics:
            aws.appautoscaling.Policy(
                f"{name}-scale-{key}",
                name=f"{args.settings.prefix}-{key}",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    target_value=value,
                    predefined_metric_specification=spec,
                    scale_in_cooldown=300,  # shrink slowly
                    scale_out_cooldown=60,  # grow fast
                ),
                opts=child,
            )

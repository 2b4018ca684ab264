"""ECS native blue/green for the service (`deploymentStrategy: blue_green`), on the ALB it already has.

pulumi-aws 7.51.1 exposes ECS's own blue/green deployments (checked in the installed SDK:
`aws.ecs.ServiceDeploymentConfigurationArgs(strategy="BLUE_GREEN", bake_time_in_minutes=...)` and
`aws.ecs.ServiceLoadBalancerAdvancedConfigurationArgs(alternate_target_group_arn, production_listener_rule,
test_listener_rule, role_arn)`), so no CodeDeploy is involved:

- a second ("green") target group with the same health check as the first ("blue");
- a production rule on the service's listener and a test rule on a test listener
  (`testListenerPort`, admitted only from `testListenerCidrs`: nobody by default, never 0.0.0.0/0), each a weighted forward over both groups
  whose weights ECS moves during a deployment (so Pulumi ignores changes to their actions);
- a role ECS assumes to move those weights (the AWS managed policy made for exactly that).

ECS starts the new revision behind green, sends the test listener's traffic to it, moves production
at once when it is healthy, keeps blue for `bakeTimeMinutes` (rollback is then a weight change),
and rolls back on the circuit breaker or the service's deployment alarms.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import sg as rules
from config.settings import ServiceSettings

ECS_LB_POLICY = "arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"


def weighted_forward(serving: pulumi.Input[str], standby: pulumi.Input[str]) -> list[aws.lb.ListenerRuleActionArgs]:
    """A forward of all traffic to `serving`, none to `standby`: the shape ECS rewrites."""
    return [aws.lb.ListenerRuleActionArgs(type="forward", forward=aws.lb.ListenerRuleActionForwardArgs(target_groups=[
        aws.lb.ListenerRuleActionForwardTargetGroupArgs(arn=serving, weight=100),
        aws.lb.ListenerRuleActionForwardTargetGroupArgs(arn=standby, weight=0),
    ]))]


@dataclass
class BlueGreenArgs:
    settings: ServiceSettings
    vpc_id: pulumi.Input[str]
    alb_arn: pulumi.Input[str]
    alb_security_group_id: pulumi.Input[str]
    listener: aws.lb.Listener
    """The production listener (HTTPS, or HTTP without a certificate)."""
    blue_target_group_arn: pulumi.Input[str]
    health_check: aws.lb.TargetGroupHealthCheckArgs
    certificate_arn: pulumi.Input[str] | None = None


class BlueGreen(pulumi.ComponentResource):
    green_target_group_arn: pulumi.Output[str]
    green_target_group_arn_suffix: pulumi.Output[str]
    production_rule_arn: pulumi.Output[str]
    test_rule_arn: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    test_listener: aws.lb.Listener

    def __init__(self, name: str, args: BlueGreenArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:service:BlueGreen", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        green = aws.lb.TargetGroup(f"{name}-green", vpc_id=args.vpc_id, target_type="ip", protocol="HTTP", port=s.container_port,
                                   deregistration_delay=30, health_check=args.health_check, tags={"Name": f"{s.prefix}-green"}, opts=child)
        https = args.certificate_arn is not None
        test = aws.lb.Listener(
            f"{name}-test", load_balancer_arn=args.alb_arn, port=s.test_listener_port, protocol="HTTPS" if https else "HTTP",
            ssl_policy="ELBSecurityPolicy-TLS13-1-2-Res-2021-06" if https else None, certificate_arn=args.certificate_arn,
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="fixed-response", fixed_response=aws.lb.ListenerDefaultActionFixedResponseArgs(
                content_type="text/plain", message_body="no deployment under test", status_code="404"))],
            opts=child,
        )
        # ECS moves the weights of these two rules during a deployment: Pulumi must not move them back.
        moved = pulumi.ResourceOptions(parent=self, ignore_changes=["actions"])
        conditions = [aws.lb.ListenerRuleConditionArgs(path_pattern=aws.lb.ListenerRuleConditionPathPatternArgs(values=["/*"]))]
        production = aws.lb.ListenerRule(f"{name}-production", listener_arn=args.listener.arn, priority=1, conditions=conditions,
                                         actions=weighted_forward(args.blue_target_group_arn, green.arn), opts=moved)
        test_rule = aws.lb.ListenerRule(f"{name}-test-rule", listener_arn=test.arn, priority=1, conditions=conditions,
                                        actions=weighted_forward(args.blue_target_group_arn, green.arn), opts=moved)
        for i, cidr in enumerate(s.test_listener_cidrs):
            v6 = ipaddress.ip_network(cidr).version == 6
            rules.ingress(f"{name}-in-test-{i}", args.alb_security_group_id, s.test_listener_port, f"Blue/green test listener from {cidr}", self,
                          cidr_ipv6=cidr if v6 else None, cidr_ipv4=None if v6 else cidr)
        role = aws.iam.Role(
            f"{name}-role", name_prefix=f"{s.prefix[:24]}-bg-", description="ECS blue/green: move the listener rules' weights between the target groups",
            assume_role_policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ecs.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            opts=child,
        )
        attachment = aws.iam.RolePolicyAttachment(f"{name}-role-policy", role=role.name, policy_arn=ECS_LB_POLICY, opts=child)
        self.green_target_group_arn = green.arn
        self.green_target_group_arn_suffix = green.arn_suffix
        self.production_rule_arn = production.arn
        self.test_rule_arn = test_rule.arn
        self.role_arn = pulumi.Output.all(role.arn, attachment.id).apply(lambda v: v[0])  # usable once the policy is attached
        self.test_listener = test
        self.register_outputs({"green_target_group_arn": self.green_target_group_arn, "test_rule_arn": self.test_rule_arn})

    def load_balancer(self, blue_target_group_arn: pulumi.Input[str], container_name: str, container_port: int) -> aws.ecs.ServiceLoadBalancerArgs:
        return aws.ecs.ServiceLoadBalancerArgs(
            target_group_arn=blue_target_group_arn, container_name=container_name, container_port=container_port,
            advanced_configuration=aws.ecs.ServiceLoadBalancerAdvancedConfigurationArgs(
                alternate_target_group_arn=self.green_target_group_arn, production_listener_rule=self.production_rule_arn,
                test_listener_rule=self.test_rule_arn, role_arn=self.role_arn),
        )


def deployment_configuration(s: ServiceSettings) -> aws.ecs.ServiceDeploymentConfigurationArgs | None:
    """ECS's deployment strategy: None (the rolling default) or BLUE_GREEN with the bake time."""
    if s.deployment_strategy != "blue_green":
        return None
    return aws.ecs.ServiceDeploymentConfigurationArgs(strategy="BLUE_GREEN", bake_time_in_minutes=str(s.bake_time_minutes))

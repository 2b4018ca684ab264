"""The internet-facing Application Load Balancer in front of the service, and everything it needs.

- its own security group: only the listener ports (443, and 80 for the redirect or HTTP-only),
  only from `albIngressCidrs`; egress only to the container port inside the VPC;
- an access-log bucket (private, owner-enforced, versioned, TLS-only, expiring);
- a target group of task IPs with the app's health check;
- listeners: HTTPS (TLS 1.3/1.2 policy) plus an HTTP -> HTTPS 301 redirect when a certificate is
  configured or requested (ACM + Route 53 DNS validation); HTTP only otherwise (dev), said plainly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import sg as rules
from components.awsinfo import aws_facts
from components.bluegreen import BlueGreen, BlueGreenArgs
from config import naming
from config.settings import ServiceSettings

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
# Regions launched before August 2022 deliver ALB access logs as the regional Elastic Load
# Balancing account; newer regions only accept the log-delivery service principal.
ELB_ACCOUNT_REGIONS = frozenset(
    "us-east-1 us-east-2 us-west-1 us-west-2 af-south-1 ap-east-1 ap-south-1 ap-northeast-1 ap-northeast-2 "
    "ap-northeast-3 ap-southeast-1 ap-southeast-2 ap-southeast-3 ca-central-1 eu-central-1 eu-west-1 eu-west-2 "
    "eu-west-3 eu-south-1 eu-north-1 me-south-1 sa-east-1 us-gov-west-1 us-gov-east-1 cn-north-1 cn-northwest-1".split()
)
LOG_DELIVERY_PRINCIPAL = "logdelivery.elasticloadbalancing.amazonaws.com"
ACCESS_LOG_PREFIX = "alb"
# Seconds a draining target keeps its in-flight requests before the target group drops it.
DEREGISTRATION_DELAY_SECONDS = 30


def health_check(s: ServiceSettings) -> aws.lb.TargetGroupHealthCheckArgs:
    """The target groups' health check of the app (blue/green's second group uses the same)."""
    return aws.lb.TargetGroupHealthCheckArgs(enabled=True, path=s.health_check_path, protocol="HTTP", port="traffic-port", matcher="200-399",
                                             interval=15, timeout=5, healthy_threshold=2, unhealthy_threshold=3)


def lb_name(prefix: str, suffix: str) -> str:
    """ALB and target group names: at most 32 chars, letters/digits/hyphens, no trailing hyphen."""
    return f"{prefix[: 31 - len(suffix)]}-{suffix}".replace("--", "-").strip("-")


@dataclass
class LoadBalancerArgs:
    """The service's settings section (prefix, container port, health check path, the ALB's ingress,
    redirect, deletion protection, certificate or domain + zone, access-log retention) and the
    network the ALB lives in."""

    settings: ServiceSettings
    vpc_id: pulumi.Input[str]
    vpc_cidr: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[Sequence[str]]


class LoadBalancer(pulumi.ComponentResource):
    security_group_id: pulumi.Output[str]
    arn: pulumi.Output[str]
    arn_suffix: pulumi.Output[str]
    dns_name: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]
    target_group_arn_suffix: pulumi.Output[str]
    """The first ("blue") target group's; the autoscaling request-count label names it."""
    target_group_arn_suffixes: list[pulumi.Output[str]]
    """Every target group the app's traffic reaches: the first, and blue/green's green one."""
    access_log_bucket: pulumi.Output[str]
    https_enabled: bool
    url: pulumi.Output[str]
    listeners: list[aws.lb.Listener]
    summary: str

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pghome:service:LoadBalancer", name, None, opts)
        self._name = name
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        facts = aws_facts(self)
        self._region, self._account, self._partition = facts.region, facts.account_id, facts.partition
        self.https_enabled = args.settings.https

        sg = self._security_group()
        bucket, bucket_ready = self._access_log_bucket()
        alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            name=naming.alb(args.settings.prefix),
            load_balancer_type="application",
            internal=False,
            subnets=args.public_subnet_ids,
            security_groups=[sg.id],
            drop_invalid_header_fields=True,
            desync_mitigation_mode="defensive",
            enable_deletion_protection=args.settings.alb_deletion_protection,
            enable_http2=True,
            idle_timeout=60,
            access_logs={"bucket": bucket.bucket, "prefix": ACCESS_LOG_PREFIX, "enabled": True},
            tags={"Name": naming.alb(args.settings.prefix)},
            # The ALB checks it may write to the bucket when access logs are turned on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=bucket_ready),
        )
        # No fixed name: port, protocol and target type force a replacement, created before the old
        # group is deleted; Pulumi's autonaming keeps the two apart (name_prefix allows only 6 chars).
        tg = aws.lb.TargetGroup(
            f"{name}-tg",
            vpc_id=args.vpc_id,
            target_type="ip",
            protocol="HTTP",
            port=args.settings.container_port,
            deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
            health_check=health_check(args.settings),
            tags={"Name": lb_name(args.settings.prefix, "app")},
            opts=child,
        )
        self._certificate: pulumi.Input[str] | None = None
        self.listeners = self._listeners(alb, tg)
        self.url = self._dns(alb)
        self.blue_green: BlueGreen | None = None
        if args.settings.deployment_strategy == "blue_green":
            self.blue_green = BlueGreen(f"{name}-bg", BlueGreenArgs(
                settings=args.settings, vpc_id=args.vpc_id, alb_arn=alb.arn, alb_security_group_id=sg.id, listener=self.listeners[0],
                blue_target_group_arn=tg.arn, health_check=health_check(args.settings), certificate_arn=self._certificate), opts=child)
            self.listeners.append(self.blue_green.test_listener)
            self.summary += f"; blue/green test listener on {args.settings.test_listener_port}"

        self.security_group_id = sg.id
        self.arn = alb.arn
        self.arn_suffix = alb.arn_suffix
        self.dns_name = alb.dns_name
        self.target_group_arn = tg.arn
        self.target_group_arn_suffix = tg.arn_suffix
        self.target_group_arn_suffixes = [tg.arn_suffix, *([self.blue_green.green_target_group_arn_suffix] if self.blue_green else [])]
        self.access_log_bucket = bucket.bucket
        self.register_outputs({"security_group_id": self.security_group_id, "dns_name": self.dns_name, "url": self.url, "https_enabled": self.https_enabled})

    # ---------------------------------------------------------------------------------------

    def _security_group(self) -> aws.ec2.SecurityGroup:
        args, name = self._args, self._name
        child = pulumi.ResourceOptions(parent=self)
        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            name_prefix=naming.sg_prefix(f"{args.settings.prefix}-alb"),
            description="Load balancer: listener ports from the allowed CIDRs; out only to the tasks",
            vpc_id=args.vpc_id,
            tags={"Name": f"{args.settings.prefix}-alb"},
            opts=child,
        )
        ports = [443] if self.https_enabled else []
        if not self.https_enabled or args.settings.alb_http_redirect:
            ports.append(80)
        for port in ports:
            for i, cidr in enumerate(args.settings.alb_ingress_cidrs):
                v6 = ipaddress.ip_network(cidr).version == 6
                rules.ingress(
                    f"{name}-in-{port}-{i}",
                    sg.id,
                    port,
                    f"{'HTTPS' if port == 443 else 'HTTP'} from {cidr}",
                    self,
                    cidr_ipv6=cidr if v6 else None,
                    cidr_ipv4=None if v6 else cidr,
                )
        rules.egress(f"{name}-out-tasks", sg.id, args.settings.container_port, "To the tasks' container port inside the VPC", self, cidr_ipv4=args.vpc_cidr)
        return sg

    def _access_log_bucket(self) -> tuple[aws.s3.Bucket, list[pulumi.Resource]]:
        """ALB access logs support only SSE-S3 (AES256) buckets, not SSE-KMS: the log delivery
        cannot use a customer key. Everything else is locked down."""
        args, name = self._args, self._name
        child = pulumi.ResourceOptions(parent=self)
        bucket_name = naming.access_log_bucket(args.settings.prefix, self._account, self._region)
        bucket = aws.s3.Bucket(f"{name}-logs", bucket=bucket_name, force_destroy=not args.settings.alb_deletion_protection, tags={"Name": bucket_name}, opts=child)
        pab = aws.s3.BucketPublicAccessBlock(
            f"{name}-logs-pab",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        owner = aws.s3.BucketOwnershipControls(f"{name}-logs-owner", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-logs-sse",
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketVersioning(f"{name}-logs-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-logs-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {"prefix": f"{ACCESS_LOG_PREFIX}/"},
                    "expiration": {"days": args.settings.access_log_retention_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 7},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                }
            ],
            opts=child,
        )
        invoke = pulumi.InvokeOptions(parent=self)
        if self._region in ELB_ACCOUNT_REGIONS:
            elb_account = aws.elb.get_service_account(opts=invoke)
            writer = aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="AWS", identifiers=[elb_account.arn])
        else:
            writer = aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="Service", identifiers=[LOG_DELIVERY_PRINCIPAL])
        policy = aws.iam.get_policy_document_output(
            statements=[
                aws.iam.GetPolicyDocumentStatementArgs(
                    sid="DenyInsecureTransport",
                    effect="Deny",
                    principals=[aws.iam.GetPolicyDocumentStatementPrincipalArgs(type="*", identifiers=["*"])],
                    actions=["s3:*"],
                    resources=[bucket.arn, bucket.arn.apply(lambda a: f"{a}/*")],  # type: ignore[list-item]  # Outputs resolve in _output invokes
                    conditions=[aws.iam.GetPolicyDocumentStatementConditionArgs(test="Bool", variable="aws:SecureTransport", values=["false"])],
                ),
                aws.iam.GetPolicyDocumentStatementArgs(
                    sid="AlbAccessLogDelivery",
                    principals=[writer],
                    actions=["s3:PutObject"],
                    resources=[bucket.arn.apply(lambda a: f"{a}/{ACCESS_LOG_PREFIX}/AWSLogs/{self._account}/*")],  # type: ignore[list-item]
                ),
            ],
            opts=invoke,
        )
        bucket_policy = aws.s3.BucketPolicy(
            f"{name}-logs-policy",
            bucket=bucket.id,
            policy=policy.json,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pab, owner]),
        )
        return bucket, [bucket_policy]

    def _remember_certificate(self) -> pulumi.Input[str]:
        self._certificate = self._certificate_arn()
        return self._certificate

    def _certificate_arn(self) -> pulumi.Input[str]:
        args, name = self._args, self._name
        if args.settings.certificate_arn:
            return args.settings.certificate_arn
        child = pulumi.ResourceOptions(parent=self)
        cert = aws.acm.Certificate(
            f"{name}-cert",
            domain_name=args.settings.domain_name,
            validation_method="DNS",
            key_algorithm="EC_prime256v1",
            tags={"Name": args.settings.domain_name},
            opts=child,
        )
        option = cert.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-cert-validation",
            zone_id=args.settings.hosted_zone_id,
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=60,
            allow_overwrite=True,
            opts=child,
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-cert-validated",
            certificate_arn=cert.arn,
            validation_record_fqdns=[record.fqdn],
            opts=child,
        )
        return validation.certificate_arn

    def _listeners(self, alb: aws.lb.LoadBalancer, tg: aws.lb.TargetGroup) -> list[aws.lb.Listener]:
        args, name = self._args, self._name
        child = pulumi.ResourceOptions(parent=self)
        forward = [aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=tg.arn)]
        if not self.https_enabled:
            self.summary = "HTTP ONLY: no certificate configured, traffic to the load balancer is NOT encrypted (port 80 forwards to the app)"
            pulumi.log.warn(f"{args.settings.prefix}: {self.summary}. Set certificateArn, or domainName and hostedZoneId, to serve HTTPS.", resource=self)
            return [aws.lb.Listener(f"{name}-http", load_balancer_arn=alb.arn, port=80, protocol="HTTP", default_actions=forward, opts=child)]
        listeners = [
            aws.lb.Listener(
                f"{name}-https",
                load_balancer_arn=alb.arn,
                port=443,
                protocol="HTTPS",
                ssl_policy=TLS_POLICY,
                certificate_arn=self._remember_certificate(),
                default_actions=forward,
                opts=child,
            )
        ]
        self.summary = f"HTTPS on 443 ({TLS_POLICY})"
        if args.settings.alb_http_redirect:
            self.summary += "; port 80 only answers 301 -> HTTPS"
            listeners.append(
                aws.lb.Listener(
                    f"{name}-http-redirect",
                    load_balancer_arn=alb.arn,
                    port=80,
                    protocol="HTTP",
                    default_actions=[
                        aws.lb.ListenerDefaultActionArgs(
                            type="redirect", redirect=aws.lb.ListenerDefaultActionRedirectArgs(port="443", protocol="HTTPS", status_code="HTTP_301")
                        )
                    ],
                    opts=child,
                )
            )
        return listeners

    def _dns(self, alb: aws.lb.LoadBalancer) -> pulumi.Output[str]:
        args, name = self._args, self._name
        scheme = "https" if self.https_enabled else "http"
        if args.settings.domain_name and args.settings.hosted_zone_id:
            aws.route53.Record(
                f"{name}-alias",
                zone_id=args.settings.hosted_zone_id,
                name=args.settings.domain_name,
                type="A",
                aliases=[{"name": alb.dns_name, "zone_id": alb.zone_id, "evaluate_target_health": True}],
                opts=pulumi.ResourceOptions(parent=self),
            )
            return pulumi.Output.from_input(f"{scheme}://{args.settings.domain_name}")
        return alb.dns_name.apply(lambda dns: f"{scheme}://{dns}")

"""`python -m bootstrap release --stack S --image-tag T`: put one pushed image into service.

CI's most common job. In order, each step refusing before anything changes:

  1. the tag is acceptable for the stack (prod refuses `latest` and other moving names);
  2. the tag exists in this stack's ECR repository;
  3. its scan finished with no finding at or above `--fail-on-severity` (CRITICAL by default);
  4. `imageTag` is set in the stack config and the stack is updated (`pulumi up`, through the
     `StackUpdate` seam: the Automation API code lives in bootstrap/deploy/deployer.py); the state records
     the tag (the `imageTag` output), so later deploys keep it even if the file is not committed;
  5. the ECS deployment is followed until it reaches steady state, with progress; when the
     deployment circuit breaker rolls it back, the stopped tasks' reasons are printed and the
     command exits 1.

AWS is reached through plain boto3 clients handed in (ECR, ECS), so tests use moto for ECR and
botocore's Stubber for the ECS calls moto cannot serve faithfully.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bootstrap.deploy.keep_image import keep_released_image
from config.load import Settings
from dbcore.waiting import wait_until

IMAGE_TAG_KEY = "imageTag"
SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
# Names that move from build to build: never what prod should pin.
MOVING_TAGS = frozenset(
    "latest stable main master trunk develop dev prod production staging release edge nightly current head snapshot test beta alpha canary".split()
)
SCAN_DONE = ("COMPLETE", "ACTIVE")  # ACTIVE: enhanced scanning (Inspector) keeps scanning continuously
SCAN_BROKEN = ("FAILED", "UNSUPPORTED_IMAGE", "FINDINGS_UNAVAILABLE", "SCAN_ELIGIBILITY_EXPIRED")


class ReleaseError(RuntimeError):
    """One sentence for the user; exit status 1, no traceback."""


class StackUpdate(Protocol):
    """Set the given project config values on the stack, run `pulumi up`, return the stack outputs."""

    def __call__(self, config: Mapping[str, str]) -> Mapping[str, Any]: ...


# --------------------------------------------------------------------------------------------
# Pure rules
# --------------------------------------------------------------------------------------------


def tag_problem(tag: str, production: bool) -> str | None:
    """Why `tag` may not be released on this stack, or None."""
    if not re.fullmatch(r"[\w][\w.-]{0,127}", tag):
        return f"--image-tag {tag!r} is not an image tag (letters, digits, _, . and -, up to 128 chars)"
    if not production:
        return None
    if tag.lower() in MOVING_TAGS or not re.search(r"\d", tag):
        return (f"--image-tag {tag!r} looks like a moving name; prod releases name one build: a version (1.4.2, v42), "
                "a commit sha or a build number")
    return None


def blocking_counts(severity_counts: Mapping[str, int], fail_on: str) -> dict[str, int]:
    """The severity counts at or above `fail_on` (UNDEFINED/UNTRIAGED never block)."""
    floor = SEVERITIES.index(fail_on)
    return {sev: n for sev, n in severity_counts.items() if sev in SEVERITIES and SEVERITIES.index(sev) >= floor and n > 0}


def check_request(settings: Settings, opts: ReleaseOptions) -> None:
    """Bad input (exit 2), before any AWS call or CLI run."""
    from config.stack_file import InputError

    if opts.fail_on_severity not in SEVERITIES:
        raise InputError(f"--fail-on-severity {opts.fail_on_severity!r} is not a severity; use one of {', '.join(SEVERITIES)}")
    if settings.service.container_image:
        raise InputError(f"stack {settings.stack} runs containerImage {settings.service.container_image!r}; release deploys this "
                         "stack's ECR repository, so clear containerImage first")
    problem = tag_problem(opts.tag, settings.is_prod)
    if problem:
        raise InputError(problem)


@dataclass(frozen=True)
class DeploymentView:
    """What one poll of the ECS service says about the deployment being followed."""

    id: str
    rollout_state: str  # IN_PROGRESS | COMPLETED | FAILED
    reason: str
    desired: int
    running: int
    pending: int
    failed_tasks: int
    task_definition: str
    other_deployments: int


def primary_deployment(service: Mapping[str, Any]) -> DeploymentView:
    deployments = list(service.get("deployments") or [])
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    if primary is None:
        raise ReleaseError(f"service {service.get('serviceName')} has no PRIMARY deployment")
    return _view(primary, len(deployments) - 1)


def _view(d: Mapping[str, Any], others: int) -> DeploymentView:
    return DeploymentView(
        id=str(d.get("id", "")),
        rollout_state=str(d.get("rolloutState", "")),
        reason=str(d.get("rolloutStateReason", "")),
        desired=int(d.get("desiredCount", 0)),
        running=int(d.get("runningCount", 0)),
        pending=int(d.get("pendingCount", 0)),
        failed_tasks=int(d.get("failedTasks", 0)),
        task_definition=str(d.get("taskDefinition", "")),
        other_deployments=others,
    )


# --------------------------------------------------------------------------------------------
# The release
# --------------------------------------------------------------------------------------------


@dataclass
class ReleaseOptions:
    tag: str
    fail_on_severity: str = "CRITICAL"
    scan_timeout_seconds: float = 600
    deploy_timeout_seconds: float = 1800
    poll_seconds: float = 10


class Releaser:
    def __init__(
        self,
        settings: Settings,
        ecr: Any,
        ecs: Any,
        update: StackUpdate,
        *,
        out: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        gate: Any = None,
    ):
        # gate (bootstrap/deploy/releasing.py): the migration before the update, the exact-image check at steady state
        self.gate = gate
        self.digest = ""
        self.outputs: Mapping[str, Any] = {}
        self.settled_on = ""
        self.settings = settings
        self.ecr = ecr
        self.ecs = ecs
        self.update = update
        self.out = out
        self.clock = clock
        self.sleep = sleep
        self._start = clock()

    # names: the program's physical names (components/service.py, components/registry.py)
    @property
    def repository(self) -> str:
        return self.settings.prefix

    def _say(self, text: str) -> None:
        self.out(f"[{self.clock() - self._start:6.0f}s] {text}")

    def release(self, opts: ReleaseOptions) -> int:
        s = self.settings
        check_request(s, opts)
        digest = self.check_image(opts)
        self.digest = digest
        if self.gate is not None:
            self.gate.before_update(opts.tag, digest)
        keep_released_image(self.ecr, self.repository, opts.tag, say=self._say, error=ReleaseError)
        self._say(f"pulumi up with {IMAGE_TAG_KEY}={opts.tag} ({digest[:19]})")
        outputs = self.outputs = self.update({IMAGE_TAG_KEY: opts.tag})
        cluster = _plain(outputs.get("clusterName")) or s.prefix
        service = _plain(outputs.get("serviceName")) or f"{s.prefix}-app"
        return self.wait_for_deployment(cluster, service, opts)

    # --- image checks ----------------------------------------------------------------------------

    def check_image(self, opts: ReleaseOptions) -> str:
        """The image's digest, once it exists and its scan is clean enough."""
        repo, tag = self.repository, opts.tag
        try:
            found = self.ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])["imageDetails"]
        except self.ecr.exceptions.ImageNotFoundException:
            raise ReleaseError(f"image {repo}:{tag} does not exist; push it first (docker push <repositoryUrl>:{tag})") from None
        except self.ecr.exceptions.RepositoryNotFoundException:
            raise ReleaseError(f"ECR repository {repo} does not exist; run `python -m bootstrap deploy --stack {self.settings.stack}` first") from None
        digest = str(found[0]["imageDigest"])
        self._say(f"{repo}:{tag} is {digest}")
        status = ""

        def scanned() -> dict[str, Any] | None:
            nonlocal status
            try:
                scan = self.ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageDigest": digest})
            except self.ecr.exceptions.ScanNotFoundException:
                raise ReleaseError(f"image {repo}:{tag} has no scan; the repository scans on push, or start one with "
                                   f"`aws ecr start-image-scan --repository-name {repo} --image-id imageTag={tag}`") from None
            status = str(scan.get("imageScanStatus", {}).get("status", ""))
            if status in SCAN_BROKEN:
                why = scan.get("imageScanStatus", {}).get("description", "")
                raise ReleaseError(f"the scan of {repo}:{tag} ended {status} ({why}); an unscanned image is not released")
            return dict(scan) if status in SCAN_DONE else None

        scan = wait_until(scanned, timeout_s=opts.scan_timeout_seconds, interval_s=opts.poll_seconds, clock=self.clock, sleep=self.sleep,
                          waiting=lambda elapsed: self._say(f"scan {status}, waiting"), timed_out=lambda elapsed: ReleaseError(
                              f"the scan of {repo}:{tag} is still {status} after {opts.scan_timeout_seconds:.0f}s; re-run when it completes"))
        counts = dict(scan.get("imageScanFindings", {}).get("findingSeverityCounts") or {})
        blocking = blocking_counts(counts, opts.fail_on_severity)
        if blocking:
            listed = ", ".join(f"{n} {sev}" for sev, n in sorted(blocking.items(), key=lambda kv: -SEVERITIES.index(kv[0])))
            raise ReleaseError(f"image {repo}:{tag} has {listed} finding(s) at or above {opts.fail_on_severity}; fix them or "
                               "raise --fail-on-severity")
        shown = ", ".join(f"{n} {sev}" for sev, n in sorted(counts.items())) or "no findings"
        self._say(f"scan {status}: {shown} (blocking at {opts.fail_on_severity} and above: none)")
        return digest

    # --- deployment ----------------------------------------------------------------------------

    def _describe(self, cluster: str, service: str) -> Mapping[str, Any]:
        found = self.ecs.describe_services(cluster=cluster, services=[service])
        services = found.get("services") or []
        if not services:
            failure = (found.get("failures") or [{}])[0]
            raise ReleaseError(f"ECS service {service} in cluster {cluster} not found ({failure.get('reason', 'no such service')})")
        return dict(services[0])

    def wait_for_deployment(self, cluster: str, service: str, opts: ReleaseOptions) -> int:
        svc = self._describe(cluster, service)
        followed = primary_deployment(svc)
        if followed.desired == 0 and int(svc.get("desiredCount", 0)) == 0:
            # The first release of a stack created without an image: start the first tasks.
            count = max(self.settings.service.desired_count, self.settings.service.min_capacity, 1)
            self._say(f"service {service} has no tasks yet (first release): desired count -> {count}")
            self.ecs.update_service(cluster=cluster, service=service, desiredCount=count)
        self._say(f"following deployment {followed.id} of {cluster}/{service}")
        last = ""

        def settled() -> int | None:
            nonlocal last
            svc = self._describe(cluster, service)
            mine = next((d for d in svc.get("deployments") or [] if d.get("id") == followed.id), None)
            if mine is None:
                raise ReleaseError(f"deployment {followed.id} disappeared from {service}; a newer deployment replaced it")
            view = _view(mine, len(svc.get("deployments") or []) - 1)
            line = (f"deployment {view.id}: {view.rollout_state or mine.get('status')}, running {view.running}/{view.desired}, "
                    f"pending {view.pending}, failed tasks {view.failed_tasks}, other deployments {view.other_deployments}")
            if line != last:
                self._say(line)
                last = line
            if view.rollout_state == "FAILED":
                self._report_rollback(cluster, service, view)
                return 1
            if view.rollout_state == "COMPLETED" and view.other_deployments == 0 and view.running >= view.desired:
                self.settled_on = view.task_definition
                if self.gate is not None:
                    self.gate.verify_steady(cluster, service, view.task_definition, self.digest)
                self._say(f"steady state: {view.running} task(s) of {view.task_definition.rsplit('/', 1)[-1]}")
                return 0
            return None

        return wait_until(settled, timeout_s=opts.deploy_timeout_seconds, interval_s=opts.poll_seconds, clock=self.clock, sleep=self.sleep,
                          timed_out=lambda elapsed: ReleaseError(f"deployment {followed.id} did not reach steady state in "
                                                                 f"{opts.deploy_timeout_seconds:.0f}s (last: {last}); look at the service events in the ECS console"))

    def _report_rollback(self, cluster: str, service: str, view: DeploymentView) -> None:
        by = "an alarm" if "alarm" in view.reason.lower() else "the deployment circuit breaker"
        self.out(f"FAILED: {by} rolled {service} back: {view.reason or 'no reason given'}")
        arns = self.ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="STOPPED").get("taskArns") or []
        tasks = self.ecs.describe_tasks(cluster=cluster, tasks=arns[:100]).get("tasks") or [] if arns else []
        mine = [t for t in tasks if t.get("startedBy") == view.id or t.get("taskDefinitionArn") == view.task_definition]
        if not mine:
            self.out("  no stopped task of this deployment is still listed (ECS keeps them about an hour)")
        for t in mine:
            self.out(f"  task {str(t.get('taskArn', '')).rsplit('/', 1)[-1]}: {t.get('stopCode', '')} {t.get('stoppedReason', '')}".rstrip())
            for c in t.get("containers") or []:
                bits = [f"exit {c['exitCode']}" if "exitCode" in c else "", str(c.get("reason", "")), f"health {c['healthStatus']}" if c.get("healthStatus") else ""]
                self.out(f"    container {c.get('name')}: {'; '.join(b for b in bits if b) or 'no reason recorded'}")


def _plain(value: Any) -> str:
    """A stack output's value (Automation API OutputValue or a plain value)."""
    value = getattr(value, "value", value)
    return str(value) if value else ""

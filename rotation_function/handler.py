"""AWS Lambda entry point: the Secrets Manager rotation function of one stack.

Secrets Manager invokes `lambda_handler` four times per rotation with
`{"SecretId": <arn>, "ClientRequestToken": <version id>, "Step": createSecret|setSecret|testSecret|finishSecret}`
and retries a failed step with the same token. Before any step the event is checked as AWS's
rotation templates do: the secret must have rotation enabled, and the token must be a version of
it staged AWSPENDING (or already AWSCURRENT: the rotation is complete, nothing to do).

Environment (set by components/rotation_function.py):
  PGHOME_MASTER_SECRET_ARN       the master secret (also the credentials used to set login passwords)
  PGHOME_DB_INSTANCE_ID          the RDS instance whose master password this function may change
  PGHOME_LOGIN_SECRET_ARNS       comma-separated login secrets rotated with a single user
  PGHOME_ALTERNATING_SECRET_ARNS comma-separated login secrets rotated with alternating users
  PGSSLROOTCERT                  the RDS CA bundle inside the package (verify-full)
  PGHOME_ECS_CLUSTER, PGHOME_ECS_SERVICE
                                 the app's service, forced to a new deployment after each rotation
                                 of an alternating secret (absent: no redeploy)

A failure is logged as one sentence that names the step and the secret, never a value, and
raised so Secrets Manager retries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from dbcore.rds_admin import RdsAdmin
from dbcore.secret import RotationError, aws_error_code
from rotation_function.steps import STEPS, FunctionConfig, StepRunner

log = logging.getLogger("pghome.rotation")
log.setLevel(logging.INFO)


class RotationStepError(Exception):
    """The one-sentence failure the function returns to Secrets Manager (and its log)."""


def _arns(value: str | None) -> frozenset[str]:
    return frozenset(a.strip() for a in (value or "").split(",") if a.strip())


def config_from_env(env: Mapping[str, str]) -> FunctionConfig:
    missing = [k for k in ("PGHOME_MASTER_SECRET_ARN", "PGHOME_DB_INSTANCE_ID") if not env.get(k)]
    if missing:
        raise RotationError(f"the function's environment lacks {', '.join(missing)}; redeploy the stack")
    return FunctionConfig(
        master_secret_arn=env["PGHOME_MASTER_SECRET_ARN"],
        db_instance_id=env["PGHOME_DB_INSTANCE_ID"],
        login_secret_arns=_arns(env.get("PGHOME_LOGIN_SECRET_ARNS")),
        alternating_secret_arns=_arns(env.get("PGHOME_ALTERNATING_SECRET_ARNS")),
        sslmode=env.get("PGSSLMODE", "verify-full"),
        sslrootcert=env.get("PGSSLROOTCERT") or None,
        ecs_cluster=env.get("PGHOME_ECS_CLUSTER", ""),
        ecs_service=env.get("PGHOME_ECS_SERVICE", ""),
    )


def check_event(event: Mapping[str, Any]) -> tuple[str, str, str]:
    step, arn, token = event.get("Step"), event.get("SecretId"), event.get("ClientRequestToken")
    if step not in STEPS:
        raise RotationError(f"unknown step {step!r}; Secrets Manager sends one of {', '.join(STEPS)}")
    if not arn or not token:
        raise RotationError("the event lacks SecretId or ClientRequestToken")
    return str(step), str(arn), str(token)


def handle(event: Mapping[str, Any], runner: StepRunner) -> str:
    """Validate the event against the secret's versions, then run the step. Returns what was done."""
    step, arn, token = check_event(event)
    desc = runner.sm.describe_secret(SecretId=arn)
    if not desc.get("RotationEnabled"):
        raise RotationError(f"secret {arn} does not have rotation enabled")
    stages: dict[str, list[str]] = desc.get("VersionIdsToStages") or {}
    if token not in stages:
        raise RotationError(f"version {token} is not a version of secret {arn}")
    if "AWSCURRENT" in stages[token]:
        if step == "finishSecret" and "AWSPENDING" in stages[token]:
            runner.finish(arn, token)  # promoted, but the AWSPENDING label was left behind
            return "finished"
        runner.out(f"{step}: version {token} is already AWSCURRENT, nothing to do")
        return "already current"
    if "AWSPENDING" not in stages[token]:
        raise RotationError(f"version {token} of secret {arn} is not staged AWSPENDING")
    runner.run(step, arn, token)
    return "done"


def _one_sentence(step: str, arn: str, exc: BaseException) -> str:
    if isinstance(exc, RotationError):
        return f"{step} failed for {arn}: {exc}"
    code = aws_error_code(exc)
    # Other exceptions' texts are not shown: they could quote a value; the type (and AWS error code) is enough to act on.
    return f"{step} failed for {arn}: unexpected {type(exc).__name__}{f' ({code})' if code else ''}"


def run_event(event: Mapping[str, Any], runner: StepRunner) -> str:
    """`handle` with the failure contract: one log line, one short exception, no traceback chain."""
    step, arn = str(event.get("Step")), str(event.get("SecretId"))
    try:
        return handle(event, runner)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
        message = _one_sentence(step, arn, exc)
    log.error(message)
    raise RotationStepError(message)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, str]:  # pragma: no cover - the runtime's entry
    import boto3

    logging.basicConfig(level=logging.INFO)
    try:
        config = config_from_env(os.environ)
    except RotationError as exc:
        log.error(str(exc))
        raise RotationStepError(str(exc)) from None
    # Leave a minute of the function's time for the retry bookkeeping; Secrets Manager retries setSecret.
    remaining = context.get_remaining_time_in_millis() / 1000 if context else 600.0
    admin = RdsAdmin(boto3.client("rds"), timeout_s=max(remaining - 60, 30), interval_s=10)
    runner = StepRunner(config, boto3.client("secretsmanager"), admin, ecs=boto3.client("ecs"))
    return {"result": run_event(event, runner)}

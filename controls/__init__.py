"""AWS Foundational Security Best Practices (FSBP), checked on a stack's resources.

One rule library, three users: the offline plan (`python -m bootstrap plan`), the tests, and the
`pulumi-policy` pack in `policy/` (which feeds the engine's resources to the same rules). Every rule
reads the *recorded inputs* of resources (camelCase names, as the engine sees them), never a
component's Python attributes, so what is checked is what would be sent to AWS. This package
imports nothing else of the project: callers adapt their resources to `Res`/`Inventory`.

Layout: `inventory` (the neutral resource view), `readers` (policy documents, SG rules, ...),
`catalogue` (classes, statuses, the `@control` registry), one rules module per AWS service, and
`report` (evaluation, waivers, rendering).

Classes of control:
  must-hold  never waivable (public DB, encryption, 0.0.0.0/0 on a DB/admin port, ...).
  waivable   a dev stack may waive it with `securityWaivers: [ID=reason]`; prod cannot waive.
  advisory   reported, never blocks: the program cannot make it pass by itself (see `note`).

A control whose resource types are absent is "n/a" (0 resources checked), never a pass. During a
real `pulumi preview` some inputs are unknown; a resource whose checked input is unknown is
"undecided" for that control (the policy pack reports it as "can't run during preview").
"""

from __future__ import annotations

# The rule modules register their controls on import: this order is the catalogue's order.
# isort: off
from controls import rds, ecs, ecr, elb, ec2, iam, secrets_logs_s3, exec_access, waf, monitoring, data_safety  # noqa: F401
# isort: on
from controls.catalogue import (
    ADVISED,
    ADVISORY,
    APP_DATABASE,
    CONTROLS,
    DATABASE,
    DB_ACCESS,
    FAIL,
    MUST_HOLD,
    NETWORK,
    NOT_APPLICABLE,
    PASS,
    REGISTRY,
    SERVICE,
    WAIVABLE,
    WAIVED,
    Control,
    by_id,
    control,
)
from controls.inventory import UNKNOWN, Inventory, Res, UndecidedError, Unknown
from controls.readers import is_private_cidr
from controls.report import ControlResult, Finding, Report, check_resource, evaluate, evaluate_control, waiver_problems

__all__ = [
    "ADVISED", "ADVISORY", "APP_DATABASE", "CONTROLS", "DB_ACCESS", "DATABASE", "FAIL", "MUST_HOLD", "NETWORK", "NOT_APPLICABLE", "PASS",
    "REGISTRY", "SERVICE", "UNKNOWN", "WAIVABLE", "WAIVED", "Control", "ControlResult", "Finding", "Inventory", "Report", "Res",
    "UndecidedError", "Unknown", "by_id", "check_resource", "control", "evaluate", "evaluate_control", "is_private_cidr", "waiver_problems",
]

"""pghome-fsbp: the project's AWS FSBP controls as Pulumi policies, run on the engine's resources.

There is one implementation of every rule: the `controls` package. This module only adapts what
the policy engine hands a validation (proxied props, unknown-value sentinels, PolicyResource
links) into the checker's neutral `Res`/`Inventory` view and reports the checker's findings.

* A control that looks at one resource only becomes a `ResourceValidationPolicy`; one that follows
  references (route tables, parameter groups, listeners, ...) a `StackValidationPolicy`.
* must-hold controls are MANDATORY; waivable and advisory ones ADVISORY. For prod, make the
  waivable ones mandatory too: `--policy-pack-config policy/prod-enforcement.json`.
* During preview an input that is not known yet makes a resource policy report "can't run during
  preview" (the SDK's UnknownValueError) instead of a guess.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyComplianceFramework,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)
from pulumi_policy.secret import Secret

import controls
from controls import Control, Inventory, Res, UndecidedError

UNKNOWN_VALUES = frozenset(
    {UNKNOWN_BOOLEAN_VALUE, UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, UNKNOWN_ARRAY_VALUE, UNKNOWN_ASSET_VALUE, UNKNOWN_ARCHIVE_VALUE, UNKNOWN_OBJECT_VALUE}
)
ENFORCEMENT = {
    controls.MUST_HOLD: EnforcementLevel.MANDATORY,
    controls.WAIVABLE: EnforcementLevel.ADVISORY,
    controls.ADVISORY: EnforcementLevel.ADVISORY,
}
SEVERITY = {controls.MUST_HOLD: Severity.HIGH, controls.WAIVABLE: Severity.MEDIUM, controls.ADVISORY: Severity.LOW}


def policy_name(ctl: Control) -> str:
    """'RDS.2' -> 'rds-2' (policy names are ids in `--policy-pack-config` files)."""
    return ctl.id.lower().replace(".", "-")


def plain(value: Any) -> Any:
    """Engine props (proxies that raise on unknowns) -> plain data with `controls.UNKNOWN` markers."""
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, Mapping):
        raw = value["__target"] if type(value).__name__ == "_DictProxy" else value
        return {k: plain(raw[k]) for k in raw}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        raw = value["__target"] if type(value).__name__ == "_ListProxy" else value  # type: ignore[call-overload]
        return [plain(v) for v in raw]
    if isinstance(value, str) and value in UNKNOWN_VALUES:
        return controls.UNKNOWN
    return value


def res_from_args(args: ResourceValidationArgs) -> Res:
    return Res(urn=args.urn, type=args.resource_type, name=args.name, inputs=plain(args.props), parent=getattr(args.opts, "parent", None) or "")


def res_from_policy_resource(r: PolicyResource) -> Res:
    deps = {k: tuple(d.urn for d in v) for k, v in (r.property_dependencies or {}).items()}
    parent = r.parent.urn if r.parent is not None else ""
    props = plain(r.props)
    # Stack policies see outputs: the bridged provider's `id` and `arn` let references by value resolve.
    id_, arn = props.get("id"), props.get("arn")
    # The policy SDK shows `protect` but not `retainOnDelete` (PolicyResourceOptions): None = undecided.
    return Res(urn=r.urn, type=r.resource_type, name=r.name, inputs=props, parent=parent, deps=deps,
               id=id_ if isinstance(id_, str) else "", arn=arn if isinstance(arn, str) else "",
               protect=bool(getattr(r.opts, "protect", False)), retain_on_delete=None)


def _unknown(exc: UndecidedError) -> UnknownValueError:
    return UnknownValueError(UNKNOWN_STRING_VALUE, exc.path.split("."))


def resource_validation(ctl: Control) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in ctl.types:
            return
        r = res_from_args(args)
        inv = Inventory([r])
        try:
            if ctl.applies is not None and not ctl.applies(r, inv):
                return
            findings = controls.check_resource(ctl, r, inv)
        except UndecidedError as exc:
            raise _unknown(exc) from None
        for f in findings:
            report_violation(f"{ctl.id}: {f.message}", None)

    return validate


def stack_validation(ctl: Control) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        inv = Inventory(res_from_policy_resource(r) for r in args.resources)
        # Waivers are a stack-config matter the pack cannot see; advisory enforcement stands in.
        result = controls.evaluate_control(ctl, inv, waivers={})
        for f in result.findings:
            report_violation(f"{ctl.id}: {f.resource}: {f.message}", f.urn)

    return validate


def policy_for(ctl: Control) -> Policy:
    common: dict[str, Any] = {
        "name": policy_name(ctl),
        "description": f"{ctl.id} {ctl.title}" + (f" ({ctl.note})" if ctl.note else ""),
        "enforcement_level": ENFORCEMENT[ctl.level],
        "display_name": f"{ctl.id} {ctl.title}",
        "severity": SEVERITY[ctl.level],
        "framework": PolicyComplianceFramework(name="AWS Foundational Security Best Practices", reference=ctl.id),
        "tags": [ctl.level],
    }
    if ctl.needs_context:
        return StackValidationPolicy(validate=stack_validation(ctl), **common)
    return ResourceValidationPolicy(validate=resource_validation(ctl), **common)


def policies() -> list[Policy]:
    return [policy_for(c) for c in controls.CONTROLS]


def prod_enforcement() -> dict[str, str]:
    """The `--policy-pack-config` for prod: every waivable control becomes mandatory (prod waives nothing)."""
    return {policy_name(c): EnforcementLevel.MANDATORY.value for c in controls.CONTROLS if c.level == controls.WAIVABLE}


if __name__ == "__main__":  # regenerate policy/prod-enforcement.json
    print(json.dumps(prod_enforcement(), indent=2))

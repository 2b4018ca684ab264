"""Policy packs in the double: `--policy-pack DIR` and `--policy-pack-config FILE` run as the real CLI
runs them, on the graph the double's engine produced under mocks.

What the real pieces do, and where this mirrors them (pulumi/pulumi, pulumi-policy's python SDK):
- loading: the CLI starts DIR's program, whose `PolicyPack(...)` serves the analyzer. Here DIR/__main__.py
  runs with `pulumi_policy.PolicyPack` replaced by a recorder, so the pack's own entry point decides
  its name, enforcement level and policies. The version is PulumiPolicy.yaml's (the SDK says so:
  pulumi_policy/policy.py `PolicyPack.__init__`).
- config: pkg/resource/analyzer/config.go `parsePolicyPackConfig` (a level string or an object with
  `enforcementLevel`; "all" first, then per policy: `applyConfig`) and its error texts.
- enforcement: pulumi_policy/policy.py `_get_enforcement_level` (config, else the policy's, else the
  pack's); `disabled` policies do not run; a violation's message is the policy's description, a
  newline, then the reported message (`_create_report_violation`).
- what a violation does: pkg/resource/deploy/analyze_snapshot.go `analyzeResource` (mandatory:
  the resource is invalid on an update, an error on a preview) and step_generator.go
  `AnalyzeResources` (stack policies, after the steps; mandatory is an error).
- the event: pkg/engine/events.go `policyViolationEvent` + pkg/backend/display/events.go, fields of
  sdk/go/common/apitype/events.go `PolicyEvent` (recorded in
  pkg/engine/lifecycletest/testdata/output/TestSimpleAnalyzeResourceFailure/eventstream.json).
- the summaries (CLIs from 3.196.0, pulumi/pulumi#20443): for each resource and pack, a
  policyRemediateSummaryEvent before its violations and a policyAnalyzeSummaryEvent after them
  (step_generator.go, analyze_snapshot.go), as the resource registers, before its first step
  (TestSimpleAnalyzer's recorded stream); for each pack, a policyAnalyzeStackSummaryEvent after
  its stack violations. Passed and failed as pkg/resource/analyzer/summary.go `newPolicySummary`
  counts them: the pack's policies of that type (as GetAnalyzerInfo reports them: the policy's
  own level, else the pack's; --policy-pack-config is not seen there), minus disabled ones, minus
  not applicable, minus failed. pulumi_policy's Remediate reports nothing for a policy not at
  `remediate`, and Analyze reports a policy without `validate` as not applicable.
"""

from __future__ import annotations

import copy
import json
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from bootstrap.plan.mockgraph import Graph, Resource
from tests.pulumi_double.backend import CliError

LEVELS = ("advisory", "mandatory", "remediate", "disabled")  # apitype.EnforcementLevel.IsValid


# --------------------------------------------------------------------------------------------
# What the engine hands a validation (also used by tests/test_policy_pack.py)
# --------------------------------------------------------------------------------------------


def _opts(r: Resource) -> PolicyResourceOptions:
    return PolicyResourceOptions(r.protect, r.ignore_changes, r.delete_before_replace, [], PolicyCustomTimeouts(0, 0, 0), r.additional_secret_outputs, r.parent)


def resource_args(r: Resource, props: dict[str, Any] | None = None) -> ResourceValidationArgs:
    """What the engine hands a resource policy: the inputs behind the SDK's unknown-checking proxy."""
    return ResourceValidationArgs(r.type, unknown_checking_proxy(copy.deepcopy(props if props is not None else r.inputs)), r.urn, r.name, _opts(r), None)


def stack_args(g: Graph) -> StackValidationArgs:
    """What the engine hands a stack policy: every resource with its outputs and property dependencies."""
    by_urn: dict[str, PolicyResource] = {}
    for r in g.resources:
        outputs = {**copy.deepcopy(r.inputs), "id": r.id, **({"arn": r.state["arn"]} if r.state.get("arn") else {})}
        by_urn[r.urn] = PolicyResource(r.type, unknown_checking_proxy(outputs), r.urn, r.name, _opts(r), None, None, [], {})
    for r in g.resources:
        pr = by_urn[r.urn]
        pr.parent = by_urn.get(r.parent)
        pr.property_dependencies = {k: [by_urn[u] for u in v if u in by_urn] for k, v in r.property_dependencies.items()}
        pr.dependencies = [by_urn[u] for u in r.dependencies if u in by_urn]
    return StackValidationArgs(list(by_urn.values()))


# --------------------------------------------------------------------------------------------
# Loading a pack and its config
# --------------------------------------------------------------------------------------------


@dataclass
class Pack:
    name: str
    version: str
    policies: list[Any]
    enforcement_level: str = "advisory"
    config: dict[str, str] = field(default_factory=dict)  # policy name -> enforcement level from --policy-pack-config

    def level(self, policy: Any) -> str:
        if policy.name in self.config:
            return self.config[policy.name]
        return policy.enforcement_level.value if policy.enforcement_level is not None else self.enforcement_level


def load(directory: Path) -> Pack:
    """Run the pack's own entry point with PolicyPack recorded instead of served."""
    import pulumi_policy

    main = directory / "__main__.py"
    meta_file = directory / "PulumiPolicy.yaml"
    if not meta_file.is_file() or not main.is_file():
        # pkg/workspace: a policy pack directory without PulumiPolicy.yaml is not a pack
        raise CliError(f"could not load policy pack at {directory}: no PulumiPolicy.yaml and __main__.py found")
    made: list[Pack] = []

    def record(name: str, policies: list[Any], enforcement_level: EnforcementLevel | None = None, **_: Any) -> None:
        made.append(Pack(name, str((yaml.safe_load(meta_file.read_text()) or {}).get("version") or "0.0.1"), list(policies),
                         (enforcement_level or EnforcementLevel.ADVISORY).value))

    real, saved_path = pulumi_policy.PolicyPack, list(sys.path)
    pulumi_policy.PolicyPack = record  # type: ignore[assignment,misc]
    try:
        runpy.run_path(str(main), run_name="__main__")
    finally:
        pulumi_policy.PolicyPack = real  # type: ignore[misc]
        sys.path[:] = saved_path
    if len(made) != 1:
        raise CliError(f"policy pack at {directory} constructed {len(made)} PolicyPack objects; a pack makes exactly one")
    return made[0]


def _level(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise CliError(f'parsing enforcement level for "{key}": {value} is not a valid enforcement level; must be a string')
    if value not in LEVELS:
        raise CliError(f'parsing enforcement level for "{key}": "{value}" is not a valid enforcement level')
    return value


def configure(pack: Pack, config_file: Path) -> None:
    """Apply a --policy-pack-config file: "all" first, then each named policy (config.go applyConfig)."""
    try:
        text = config_file.read_text()
    except OSError as exc:
        raise CliError(f"open {config_file}: {exc.strerror.lower() if exc.strerror else exc}") from None
    if not text.strip():
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"invalid character in policy pack config {config_file}: {exc.msg}") from None
    levels: dict[str, str] = {}
    for key, value in doc.items():
        if key == "environments":
            continue
        if isinstance(value, str):
            levels[key] = _level(value, key)
        elif isinstance(value, dict):
            if "enforcementLevel" in value:
                levels[key] = _level(value["enforcementLevel"], key)
        else:
            raise CliError(f'parsing "{key}": {value} is not a valid value; must be a string or object')
    names = {p.name for p in pack.policies}
    if "all" in levels:
        pack.config.update({n: levels["all"] for n in names})
    pack.config.update({k: v for k, v in levels.items() if k != "all"})


def load_all(dirs: list[str], configs: list[str]) -> list[Pack]:
    packs = [load(Path(d).resolve()) for d in dirs]
    if configs and len(configs) != len(dirs):
        # pkg/cmd/pulumi/operations/preview.go: the flags pair up by position
        raise CliError("the number of --policy-pack-config flags must match the number of --policy-pack flags")
    for pack, cfg in zip(packs, configs):
        configure(pack, Path(cfg))
    return packs


# --------------------------------------------------------------------------------------------
# Running the packs
# --------------------------------------------------------------------------------------------


@dataclass
class Violation:
    urn: str
    policy: str
    pack: Pack
    level: str  # "advisory" or "mandatory" (remediate is reported as mandatory)
    message: str
    severity: str
    stack_level: bool  # a stack policy's: reported after the steps
    resource: str = ""  # type: name, for the CLI's Policies section
    analyzed: str = ""  # the URN whose analysis reported it (the stack's, for a stack policy)

    def event(self) -> dict[str, Any]:
        """policyEvent as the CLI sends it (version tag = version: display/events.go)."""
        body: dict[str, Any] = {}
        if self.urn:
            body["resourceUrn"] = self.urn
        body.update({"message": f"<{{%reset%}}>{self.message}<{{%reset%}}>\n", "color": "raw", "policyName": self.policy,
                     "policyPackName": self.pack.name, "policyPackVersion": self.pack.version, "policyPackVersionTag": self.pack.version,
                     "enforcementLevel": self.level})
        if self.severity:
            body["severity"] = self.severity
        return body


@dataclass
class Analysis:
    """What the packs found: violations, the policies that were not applicable (pack name, analyzed
    URN, policy name), and what was analyzed, for the summaries."""

    packs: list[Pack]
    resources: list[str]
    stack_urn: str
    violations: list[Violation] = field(default_factory=list)
    not_applicable: set[tuple[str, str, str]] = field(default_factory=set)


def run(packs: list[Pack], graph: Graph, stack_urn: str) -> Analysis:
    """Every pack's resource policies on each resource, then its stack policies on the whole graph."""
    found = Analysis(packs, [r.urn for r in graph.resources], stack_urn)
    names = {r.urn: f"{r.type}: {r.name}" for r in graph.resources}

    def reporter(pack: Pack, policy: Any, level: str, urn: str, stack_level: bool) -> Callable[[str, str | None], None]:
        def report(message: str, at: str | None = None) -> None:
            # a resource policy's violation is the analyzed resource's, whatever URN it names
            # (analyze_snapshot.go: OnPolicyViolation(r.URN, d)); a stack policy's, the URN it names
            where = (at or urn) if stack_level else urn
            text = f"{policy.description}\n{message}" if message else policy.description
            sev = getattr(policy.severity, "value", "") if policy.severity is not None else ""
            found.violations.append(Violation(where, policy.name, pack, "mandatory" if level == "remediate" else level, text, sev, stack_level,
                                              names.get(where, ""), urn))

        return report

    def validate(pack: Pack, policy: Any, args: Any, report: Callable[[str, str | None], None], analyzed: str) -> None:
        if isinstance(policy, ResourceValidationPolicy) and not policy.has_validation():  # remediation only: not applicable
            found.not_applicable.add((pack.name, analyzed, policy.name))
            return
        try:
            policy.validate(args, report)
        except _NotApplicableError:
            found.not_applicable.add((pack.name, analyzed, policy.name))

    for pack in packs:
        for policy in pack.policies:
            level = pack.level(policy)
            if level == "disabled":
                continue
            if isinstance(policy, ResourceValidationPolicy):
                for r in graph.resources:
                    try:
                        validate(pack, policy, resource_args(r), reporter(pack, policy, level, r.urn, False), r.urn)
                    except UnknownValueError as exc:  # the SDK's advisory "can't run policy ... during preview"
                        found.violations.append(Violation("", policy.name, pack, "advisory", f"can't run policy '{policy.name}' from policy pack "
                                                          f"'{pack.name}@v{pack.version}' during preview: {exc.message}", "", False, "", r.urn))
            elif isinstance(policy, StackValidationPolicy):
                validate(pack, policy, stack_args(graph), reporter(pack, policy, level, stack_urn, True), stack_urn)
    return found


def _summary(pack: Pack, urn: str, kind: type, failed: set[str], skipped: set[str]) -> dict[str, Any]:
    """pkg/resource/analyzer/summary.go newPolicySummary, in apitype's field order and omitempty."""
    of_kind: list[Any] = [p for p in pack.policies if isinstance(p, kind)]
    passed = sorted(p.name for p in of_kind if _info_level(pack, p) != "disabled" and p.name not in failed and p.name not in skipped)
    body: dict[str, Any] = {"resourceUrn": urn} if kind is ResourceValidationPolicy else {}
    body.update({"policyPackName": pack.name, "policyPackVersion": pack.version, "policyPackVersionTag": pack.version})
    if passed:
        body["passed"] = passed
    if failed:
        body["failed"] = sorted(failed)
    return body


def _info_level(pack: Pack, policy: Any) -> str:
    """The level GetAnalyzerInfo reports (pulumi_policy/policy.py): the policy's own, else the pack's."""
    return policy.enforcement_level.value if policy.enforcement_level is not None else pack.enforcement_level


def emit(analysis: Analysis, events: Any, *, stack_level: bool) -> None:
    """Stack level: per pack, the violations, then the stack summary. Resource level: every
    resource's analysis (emit_resource), for an update that makes no step at all."""
    if not stack_level:
        for urn in analysis.resources:
            emit_resource(analysis, events, urn)
        return
    for pack in analysis.packs:
        mine = [v for v in analysis.violations if v.stack_level and v.pack is pack]
        for v in mine:
            events.emit(policyEvent=v.event())
        skipped = {name for p, u, name in analysis.not_applicable if p == pack.name and u == analysis.stack_urn}
        events.emit(policyAnalyzeStackSummaryEvent=_summary(pack, analysis.stack_urn, StackValidationPolicy, {v.policy for v in mine}, skipped))


def emit_resource(analysis: Analysis, events: Any, urn: str) -> None:
    """One resource's analysis, per pack: the remediate summary, the violations, the analyze summary."""
    if urn not in analysis.resources:
        return  # not the program's (the stack, a resource being deleted): nothing analyzed
    for pack in analysis.packs:
        # Remediate (pulumi_policy/policy.py) runs only the policies at `remediate`, and reports those
        # without a remediation as not applicable; the double applies no remediation, so none fails.
        no_remedy = {p.name for p in pack.policies if pack.level(p) == "remediate" and not p.has_remediation()}
        events.emit(policyRemediateSummaryEvent=_summary(pack, urn, ResourceValidationPolicy, set(), no_remedy))
        mine = [v for v in analysis.violations if not v.stack_level and v.pack is pack and v.analyzed == urn]
        for v in mine:
            events.emit(policyEvent=v.event())
        skipped = {name for p, u, name in analysis.not_applicable if p == pack.name and u == urn}
        events.emit(policyAnalyzeSummaryEvent=_summary(pack, urn, ResourceValidationPolicy, {v.policy for v in mine}, skipped))


def invalid_resource(violations: list[Violation]) -> bool:
    """A resource policy's mandatory violation: on an update that resource is never created."""
    return any(v.level == "mandatory" and not v.stack_level for v in violations)


def policies_section(violations: list[Violation], packs: list[Pack]) -> str:
    """The CLI's `Policies:` block (pkg/backend/display/progress.go; the layout of
    TestSimpleAnalyzeResourceFailure/progress.stdout.txt without the colour markup)."""
    lines = ["Policies:"]
    for pack in packs:
        mine = [v for v in violations if v.pack is pack]
        mark = "❌" if any(v.level == "mandatory" for v in mine) else "⚠️" if mine else "✅"
        lines.append(f"    {mark} {pack.name}@v{pack.version}")
        for v in mine:
            sev = f" [severity: {v.severity}]" if v.severity else ""
            where = f"  ({v.resource})" if v.resource else ""
            lines.append(f"        - [{v.level}]{sev}  {v.policy}{where}")
            lines.extend(f"          {ln}" for ln in v.message.splitlines())
    return "\n".join(lines)

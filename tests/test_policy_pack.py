"""The pghome-fsbp policy pack (policy/) runs the checker's own rules: its validate functions,
called the way the policy engine calls them, flag exactly what `bootstrap.controls` flags."""

from __future__ import annotations

import ast
import copy
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
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
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

import controls
from bootstrap.plan.mockgraph import Graph, Resource
from controls import ADVISORY, MUST_HOLD, WAIVABLE
from policy import pghome_fsbp
from tests.control_graphs import mutated, secure_stack, set_input
from tests.test_controls import NEGATIVE

POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"


def _opts(r: Resource) -> PolicyResourceOptions:
    return PolicyResourceOptions(r.protect, r.ignore_changes, r.delete_before_replace, [], PolicyCustomTimeouts(0, 0, 0), r.additional_secret_outputs, r.parent)


def resource_args(r: Resource, props: dict | None = None) -> ResourceValidationArgs:
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


def run_pack(g: Graph) -> dict[str, list[tuple[str, str]]]:
    """policy name -> [(resource name, message)] for every violation the pack reports."""
    names = {r.urn: r.name for r in g.resources}
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    args = stack_args(g)
    def reporter(policy: str, resource: str | None) -> Callable[[str, str | None], None]:
        def report(message: str, urn: str | None = None) -> None:
            found[policy].append((resource or names.get(urn or "", "<stack>"), message))

        return report

    for policy in pghome_fsbp.policies():
        if isinstance(policy, ResourceValidationPolicy):
            for r in g.resources:
                policy.validate(resource_args(r), reporter(policy.name, r.name))
        else:
            assert isinstance(policy, StackValidationPolicy)
            policy.validate(args, reporter(policy.name, None))
    return dict(found)


def flagged_by_checker(g: Graph) -> dict[str, set[str]]:
    report = controls.evaluate(g.inventory(), waivers={})
    return {pghome_fsbp.policy_name(r.control): {f.resource for f in r.findings} for r in report.results if r.findings}


def test_one_policy_per_control_with_the_right_enforcement() -> None:
    policies = pghome_fsbp.policies()
    assert len(policies) == len(controls.CONTROLS)
    assert len({p.name for p in policies}) == len(policies)
    for policy, ctl in zip(policies, controls.CONTROLS):
        assert policy.name == pghome_fsbp.policy_name(ctl)
        expected = EnforcementLevel.MANDATORY if ctl.level == MUST_HOLD else EnforcementLevel.ADVISORY
        assert policy.enforcement_level == expected, ctl.id
        assert isinstance(policy, StackValidationPolicy if ctl.needs_context else ResourceValidationPolicy), ctl.id
        assert policy.framework is not None and policy.framework.reference == ctl.id


def test_prod_enforcement_file_makes_every_waivable_control_mandatory() -> None:
    shipped = json.loads((POLICY_DIR / "prod-enforcement.json").read_text())
    assert shipped == pghome_fsbp.prod_enforcement()
    assert set(shipped) == {pghome_fsbp.policy_name(c) for c in controls.CONTROLS if c.level == WAIVABLE}
    assert set(shipped.values()) == {"mandatory"}
    assert not {pghome_fsbp.policy_name(c) for c in controls.CONTROLS if c.level == ADVISORY} & set(shipped)


def test_pack_files() -> None:
    meta = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"]["name"] == "python" and meta["version"]
    main = (POLICY_DIR / "__main__.py").read_text()
    tree = ast.parse(main)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PolicyPack"]
    assert len(calls) == 1
    kwargs = {k.arg: k.value for k in calls[0].keywords}
    assert ast.literal_eval(kwargs["name"]) == "pghome-fsbp"
    assert "pghome_fsbp.policies()" in ast.unparse(kwargs["policies"])
    assert "pulumi-policy" in (POLICY_DIR / "requirements.txt").read_text()


def test_pack_flags_nothing_on_the_secure_stack_but_the_advisories() -> None:
    found = run_pack(secure_stack())
    assert set(found) == {"rds-23"}, found


@pytest.mark.parametrize(("control_id", "offender", "change"), NEGATIVE, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(NEGATIVE)])
def test_pack_flags_exactly_what_the_checker_flags(control_id: str, offender: str, change: Callable[[Graph], None]) -> None:
    g = mutated(secure_stack(), change)
    found = run_pack(g)
    expected = flagged_by_checker(g)
    assert {p: {n for n, _ in v} for p, v in found.items()} == expected
    name = pghome_fsbp.policy_name(controls.by_id(control_id))
    assert offender in {n for n, _ in found[name]}
    assert all(msg.startswith(control_id + ":") for _, msg in found[name])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pack_on_the_real_stacks_has_no_mandatory_violation(stack: str, dev_graph: Graph, prod_graph: Graph) -> None:
    g = dev_graph if stack == "dev" else prod_graph
    found = run_pack(g)
    mandatory = {pghome_fsbp.policy_name(c) for c in controls.CONTROLS if c.level == MUST_HOLD}
    assert not set(found) & mandatory, found
    assert {p: {n for n, _ in v} for p, v in found.items()} == flagged_by_checker(g)


def test_unknown_input_during_preview_is_reported_as_unknown_not_as_a_verdict() -> None:
    g = secure_stack()
    db = next(r for r in g.resources if r.name == "db")
    rds2 = next(p for p in pghome_fsbp.policies() if p.name == "rds-2")
    assert isinstance(rds2, ResourceValidationPolicy)
    violations: list[str] = []

    def record(message: str, urn: str | None = None) -> None:
        violations.append(message)

    with pytest.raises(UnknownValueError):
        rds2.validate(resource_args(db, {**db.inputs, "publiclyAccessible": UNKNOWN_BOOLEAN_VALUE}), record)
    # Unknown elsewhere (an id) does not stop the check, and a public DB is still caught.
    rds2.validate(resource_args(db, {**db.inputs, "kmsKeyId": UNKNOWN_STRING_VALUE, "publiclyAccessible": True}), record)
    assert violations == ["RDS.2: publiclyAccessible is true"]


def test_stack_policy_follows_dependencies_when_ids_are_unknown() -> None:
    """At preview ids are unknown; RDS.46 must still find a public subnet through dependencies."""
    g = mutated(secure_stack(), lambda g: set_input(g, "db-subnets", "subnetIds", ["subnet-isolated", "subnet-public"]))
    subnet_group = next(r for r in g.resources if r.name == "db-subnets")
    public = next(r for r in g.resources if r.name == "public-a")
    isolated = next(r for r in g.resources if r.name == "isolated-a")
    subnet_group.inputs["subnetIds"] = [UNKNOWN_STRING_VALUE, UNKNOWN_STRING_VALUE]
    subnet_group.property_dependencies["subnetIds"] = [isolated.urn, public.urn]
    found = run_pack(g)
    assert any("public-a" in msg for _, msg in found.get("rds-46", [])), found

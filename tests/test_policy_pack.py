"""The pghome-fsbp policy pack (policy/) runs the checker's own rules: its validate functions,
called the way the policy engine calls them, flag exactly what `bootstrap.controls` flags."""

from __future__ import annotations

import ast
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE, UnknownValueError

import controls
from bootstrap.plan.mockgraph import Graph
from controls import ADVISORY, MUST_HOLD, WAIVABLE
from policy import pghome_fsbp
from tests.control_graphs import mutated, secure_stack, set_input
from tests.pulumi_double.policy import resource_args, stack_args
from tests.test_controls import NEGATIVE

POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"


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


def test_the_double_loads_the_pack_through_its_own_entry_point() -> None:
    from tests.pulumi_double import policy as double_policy

    pack = double_policy.load(POLICY_DIR)
    meta = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert (pack.name, pack.version, pack.enforcement_level) == ("pghome-fsbp", meta["version"], "advisory")
    assert [p.name for p in pack.policies] == [p.name for p in pghome_fsbp.policies()]
    waivable = {pghome_fsbp.policy_name(c) for c in controls.CONTROLS if c.level == WAIVABLE}
    assert all(pack.level(p) == "advisory" for p in pack.policies if p.name in waivable)
    double_policy.configure(pack, POLICY_DIR / "prod-enforcement.json")
    assert all(pack.level(p) == "mandatory" for p in pack.policies if p.name in waivable)


@pytest.mark.parametrize(("doc", "level", "error"), [
    ({"all": "disabled", "rds-2": {"enforcementLevel": "mandatory"}}, {"rds-2": "mandatory", "rds-23": "disabled"}, None),
    ({"rds-23": {"enforcementLevel": "mandatory", "limit": 3}}, {"rds-23": "mandatory", "rds-2": "mandatory"}, None),
    ({"rds-2": "warn"}, None, 'parsing enforcement level for "rds-2": "warn" is not a valid enforcement level'),
    ({"rds-2": 3}, None, 'parsing "rds-2": 3 is not a valid value; must be a string or object'),
])
def test_the_double_reads_policy_pack_config_like_the_engine(tmp_path: Path, doc: dict, level: dict | None, error: str | None) -> None:
    """pkg/resource/analyzer/config.go parsePolicyPackConfig / applyConfig and their error texts."""
    from tests.pulumi_double import policy as double_policy
    from tests.pulumi_double.backend import CliError

    pack = double_policy.load(POLICY_DIR)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(doc))
    if error:
        with pytest.raises(CliError, match=error):
            double_policy.configure(pack, cfg)
        return
    double_policy.configure(pack, cfg)
    assert level is not None
    assert {p.name: pack.level(p) for p in pack.policies if p.name in level} == level

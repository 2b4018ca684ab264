"""`python -m bootstrap plan` ends with the security controls summary and exits 3 on a failure."""

from __future__ import annotations

import json

import pytest

import controls
from bootstrap.cli.main import EXIT_CONTROLS_FAILED, main
from bootstrap.plan.mockgraph import Graph
from tests.control_graphs import mutated, secure_stack, set_input


def _summary(out: str) -> str:
    """The controls summary line (the cost estimate follows it at the end of the plan)."""
    return next(line for line in out.splitlines() if line.startswith("Security controls for stack "))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_ends_with_the_controls_summary(stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    # prod's shipped stack file has a placeholder certificate: controls pass, the prerequisites are listed
    assert main(["plan", "--stack", stack]) == 0
    out = capsys.readouterr().out.rstrip().splitlines()
    # The controls summary closes the plan proper; the cost estimate (docs/cost.md) follows it.
    summary = next(n for n, line in enumerate(out) if line.startswith(f"Security controls for stack {stack}: "))
    assert " 0 failed " in out[summary] and "(0 must-hold failed)" in out[summary]
    assert out[summary + 2].startswith(f"Estimated monthly cost of stack {stack} ")


def test_plan_controls_flag_prints_every_control(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "prod", "--controls"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("CONTROL  "):]
    for ctl in controls.CONTROLS:
        assert f"\n{ctl.id} " in table, ctl.id
    assert "EC2.15" in table and "PASS" in table and "n/a" in table


def test_plan_json_carries_the_controls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "dev", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["controls"]["controls"]) == len(controls.CONTROLS)
    ec2_15 = next(c for c in doc["controls"]["controls"] if c["id"] == "EC2.15")
    assert ec2_15["status"] == "PASS" and ec2_15["checked"] == 6 and ec2_15["class"] == "must-hold"


def test_plan_exits_3_on_a_failed_must_hold_control(dev_graph: Graph, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def open_default_sg(g: Graph) -> None:
        sg = next(r for r in g.resources if r.type == "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
        sg.inputs["ingress"] = [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]

    broken = mutated(dev_graph, open_default_sg)
    monkeypatch.setattr("bootstrap.plan.mockgraph.run_stack", lambda stack, overrides=None, **kw: broken)
    assert main(["plan", "--stack", "dev"]) == EXIT_CONTROLS_FAILED == 3
    out = capsys.readouterr().out
    assert "EC2.2" in out and "FAIL" in out and "default security group shop-dev-network-default-sg has 1 ingress rule(s)" in out
    assert "(1 must-hold failed)" in _summary(out)


def _secure_with(config_graph: Graph) -> Graph:
    g = mutated(secure_stack(), lambda g: set_input(g, "db", "multiAz", False))
    g.stack, g.config = config_graph.stack, config_graph.config
    return g


def test_dev_waiver_shows_in_the_plan_and_passes(dev_graph: Graph, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("bootstrap.plan.mockgraph.run_stack", lambda stack, overrides=None, **kw: _secure_with(dev_graph))
    assert main(["plan", "--stack", "dev"]) == 0
    out = capsys.readouterr().out
    assert "RDS.5" in out and "WAIVED" in out and "waived: dev runs a single-AZ database" in out
    assert "1 waived" in _summary(out)


def test_prod_cannot_waive_so_the_same_graph_fails(prod_graph: Graph, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("bootstrap.plan.mockgraph.run_stack", lambda stack, overrides=None, **kw: _secure_with(prod_graph))
    assert main(["plan", "--stack", "prod"]) == 3
    out = capsys.readouterr().out
    assert "RDS.5" in out and "FAIL" in out and "multiAz is not true" in out
    assert "(0 must-hold failed)" in _summary(out)

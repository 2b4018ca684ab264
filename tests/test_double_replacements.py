"""How the `pulumi` double replaces a resource: the engine's steps, in the engine's order.

pkg/resource/deploy/step_generator.go in pulumi/pulumi: create-first (the default) is
create-replacement and replace where the resource registers, and delete-replaced with the deletes
after every other step; delete-first (the program's deleteBeforeReplace, else the provider's
default: pulumi-postgresql sets it for Grant) is delete-replaced, replace, create-replacement.
Only the logical `replace` is counted in the summary (pkg/engine/update.go) and carries `logical`
in its step metadata (step.go: a create or delete made for a replacement is not Logical()).
"""

from __future__ import annotations

from typing import Any

import pytest

from bootstrap.plan.mockgraph import run_stack
from tests.pulumi_double import engine

STACK = {"urn": "urn:pulumi:dev::p::pulumi:pulumi:Stack::p-dev", "type": "pulumi:pulumi:Stack", "custom": False, "inputs": {}, "outputs": {}}
DB_URN = "urn:pulumi:dev::p::aws:rds/instance:Instance::db"
SG_URN = "urn:pulumi:dev::p::aws:ec2/securityGroup:SecurityGroup::sg"
OLD_URN = "urn:pulumi:dev::p::aws:ec2/securityGroup:SecurityGroup::gone"


def res(urn: str, **inputs: Any) -> dict[str, Any]:
    return {"urn": urn, "type": urn.split("::")[2], "custom": True, "id": urn.rsplit("::", 1)[-1], "inputs": inputs, "outputs": inputs}


class Recorded:
    """The double's Events, kept in memory: (kind, op, has `logical`) per event."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []

    def emit(self, **event: Any) -> None:
        kind, body = next(iter(event.items()))
        md = body.get("metadata", {})
        self.seen.append((kind, md.get("op", ""), "logical" in md))


OLD = [STACK, res(DB_URN, identifier="shop-db"), res(SG_URN, description="db"), res(OLD_URN, description="old")]
NEW = [STACK, res(DB_URN, identifier="shop-db-2"), res(SG_URN, description="db")]


Run = tuple[list[tuple[str, bool]], list[dict[str, Any]], dict[str, int], bool, list[str]]


def run(delete_first: frozenset[str], monkeypatch: pytest.MonkeyPatch, fail_on: str = "") -> Run:
    """Pre-events as (op, logical), the state after, the summary counts, failed, the failed ops."""
    monkeypatch.setenv("PULUMI_DOUBLE_FAIL_ON", fail_on)
    steps = engine.plan_steps(OLD, NEW, None, delete_first)  # type: ignore[arg-type]  # nothing secret to unwrap
    events = Recorded()
    state, counts, failed = engine.apply(steps, OLD, events, preview=False, diag=lambda urn, text: None)  # type: ignore[arg-type]
    pre = [(op, logical) for kind, op, logical in events.seen if kind == "resourcePreEvent"]
    return pre, state, counts, failed, [op for kind, op, _ in events.seen if kind == "resOpFailedEvent"]


def test_create_first_creates_where_it_registers_and_deletes_the_old_one_with_the_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    pre, state, counts, failed, _ = run(frozenset(), monkeypatch)
    assert pre == [("same", True), ("create-replacement", False), ("replace", True), ("same", True), ("delete", True), ("delete-replaced", False)]
    assert not failed and counts == {"same": 2, "replace": 1, "delete": 1}
    assert [(r["urn"], r["inputs"].get("identifier")) for r in state] == [(STACK["urn"], None), (DB_URN, "shop-db-2"), (SG_URN, None)]


def test_delete_first_deletes_the_old_one_before_creating_the_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    pre, state, counts, failed, _ = run(frozenset({DB_URN}), monkeypatch)
    assert pre == [("same", True), ("delete-replaced", False), ("replace", True), ("create-replacement", False), ("same", True), ("delete", True)]
    assert not failed and counts == {"same": 2, "replace": 1, "delete": 1}
    assert [r["inputs"].get("identifier") for r in state if r["urn"] == DB_URN] == ["shop-db-2"]


@pytest.mark.parametrize(("first", "failing_step", "kept"), [
    (frozenset(), "create-replacement", "shop-db"),  # the new one failed: the old one is untouched
    (frozenset({DB_URN}), "delete-replaced", "shop-db"),  # the old one could not be deleted: still there
])
def test_a_failed_replacement_fails_at_its_first_provider_call(first: frozenset[str], failing_step: str, kept: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, state, counts, failed, failed_ops = run(first, monkeypatch, fail_on="::db")
    assert failed and failed_ops == [failing_step] and "replace" not in counts
    assert [r["inputs"]["identifier"] for r in state if r["urn"] == DB_URN] == [kept]


def test_delete_first_comes_from_the_program_or_the_provider_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "connects-nowhere")  # the app database needs a credential to be declared
    graph = run_stack("dev", {"appDbEnabled": "true"})
    first = engine.delete_first(graph)
    by_type = {t: {r.urn for r in graph.resources if r.type == t} for t in ("postgresql:index/grant:Grant", "postgresql:index/grantRole:GrantRole")}
    assert by_type["postgresql:index/grant:Grant"] <= first  # pulumi-postgresql's default, retired grants included
    assert by_type["postgresql:index/grantRole:GrantRole"] and by_type["postgresql:index/grantRole:GrantRole"] <= first  # the program's option
    assert not [r.urn for r in graph.resources if r.type == "aws:rds/instance:Instance" and r.urn in first]

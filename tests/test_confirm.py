"""The preview-then-ask gate (bootstrap/deploy/confirm.py) on its own: which engine events become
planned changes, which are called out as data loss, and which answers count as yes.

Events are parsed by the Automation API's own EngineEvent.from_json from the JSON the CLI writes
to its event log (field names as in pulumi/sdk/go/common/apitype/events.go), so the gate reads what
it would read from a real `pulumi preview`. Written for issue 30 after mutation testing showed the
answer handling and the event parsing were reached only through --yes or a missing terminal.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from pulumi.automation.events import EngineEvent

from bootstrap.deploy.confirm import ChangePlan, confirm
from bootstrap.deploy.workspace import DeployError

DB = "aws:rds/instance:Instance"
SG = "aws:ec2/securityGroup:SecurityGroup"


def pre(op: str, type_: str, name: str, protect: bool | None = None) -> EngineEvent:
    urn = f"urn:pulumi:dev::pghome::{type_}::{name}"
    md: dict[str, Any] = {"op": op, "urn": urn, "type": type_, "provider": ""}
    if protect is not None:
        md["old"] = {"type": type_, "urn": urn, "protect": protect}
    return EngineEvent.from_json({"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": md}})


def summary(counts: dict[str, int]) -> EngineEvent:
    return EngineEvent.from_json({"sequence": 9, "timestamp": 0, "summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": counts, "PolicyPacks": {}}})


def plan_of(*events: EngineEvent) -> ChangePlan:
    plan = ChangePlan()
    for e in events:
        plan.on_event(e)
    return plan


def test_only_changing_steps_are_planned_with_their_op_type_name_and_protection() -> None:
    plan = plan_of(pre("same", SG, "web-sg"), pre("read", SG, "looked-up"), pre("refresh", SG, "r"),
                   pre("update", SG, "web-sg2"), pre("replace", DB, "db", protect=True), pre("delete", SG, "old-sg", protect=False),
                   summary({"update": 1, "replace": 1, "delete": 1, "same": 1}))
    assert [(c.op, c.type, c.name, c.protected) for c in plan.changes] == [
        ("update", SG, "web-sg2", False), ("replace", DB, "db", True), ("delete", SG, "old-sg", False)]
    assert plan.counts == {"update": 1, "replace": 1, "delete": 1, "same": 1}
    assert not plan.empty and plan_of(pre("same", SG, "x"), summary({"same": 1})).empty


def test_render_lists_changes_and_calls_out_data_loss() -> None:
    plan = plan_of(pre("create", SG, "new-sg"), pre("replace", DB, "db"), pre("delete-replaced", DB, "db"),
                   pre("delete", SG, "guarded-sg", protect=True), pre("update", DB, "db2", protect=True),
                   summary({"create": 1, "replace": 1, "delete": 1}))
    assert plan.render().splitlines() == [
        f"  create   {SG} new-sg",
        f"  replace  {DB} db",
        f"  delete   {SG} guarded-sg",
        f"  update   {DB} db2",
        "  summary: 1 created, 1 replaced, 1 deleted",
        f"  WARNING: replace of stateful resource db ({DB}): its data is lost",
        f"  WARNING: delete of protected resource guarded-sg ({SG}): its data is lost",
    ]


def test_a_replacement_sent_as_three_steps_is_one_line_and_one_warning_that_says_which_goes_first() -> None:
    """The engine's steps for a replacement (pkg/resource/deploy/step_generator.go): create-first
    is create-replacement, replace, then delete-replaced after every other step; delete-first
    (deleteBeforeReplace) is delete-replaced, replace, create-replacement."""
    member = "postgresql:index/grantRole:GrantRole"
    plan = plan_of(pre("create-replacement", DB, "db"), pre("replace", DB, "db"), pre("create", SG, "new-sg"),
                   pre("delete-replaced", member, "member"), pre("replace", member, "member"), pre("create-replacement", member, "member"),
                   pre("delete-replaced", DB, "db"), summary({"create": 1, "replace": 2}))
    assert plan.render().splitlines() == [
        f"  replace  {DB} db",
        f"  create   {SG} new-sg",
        f"  replace  {member} member (deleted before its replacement is created)",
        "  summary: 1 created, 2 replaced",
        f"  WARNING: replace of stateful resource db ({DB}): its data is lost",
    ]


def test_a_deleted_grant_or_membership_is_called_out_as_a_revoke_unless_it_is_only_forgotten() -> None:
    grant, member, default = "postgresql:index/grant:Grant", "postgresql:index/grantRole:GrantRole", "postgresql:index/defaultPrivileges:DefaultPrivileges"
    kept = EngineEvent.from_json({"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": {
        "op": "delete", "urn": f"urn:pulumi:dev::pghome::{grant}::kept", "type": grant, "provider": "",
        "old": {"type": grant, "urn": f"urn:pulumi:dev::pghome::{grant}::kept", "retainOnDelete": True}}}})
    plan = plan_of(pre("delete", grant, "shop-dev-appdb-grant-rw"), pre("delete", member, "shop-dev-appdb-member-app-of-rw"), kept,
                   pre("update", default, "shop-dev-appdb-default"), pre("replace", member, "replaced"), summary({"delete": 3}))
    assert [c.name for c in plan.changes if c.revokes] == ["shop-dev-appdb-grant-rw", "shop-dev-appdb-member-app-of-rw"]
    warning = plan.render().splitlines()[-1]
    assert warning == ("  WARNING: 2 grant(s) or membership(s) deleted, which the provider does by REVOKE: shop-dev-appdb-grant-rw, "
                       "shop-dev-appdb-member-app-of-rw; sessions relying on them lose that access (docs/data-loss.md, Access a change revokes)")
    assert not any(c.dangerous for c in plan.changes)  # access comes back with a grant: not the data-loss guard's business
    assert "REVOKE" not in plan_of(kept, pre("delete", SG, "old-sg"), summary({"delete": 2})).render()


def never(_prompt: str) -> str:
    raise AssertionError("asked although nothing needed an answer")


def test_nothing_to_change_or_yes_given_does_not_ask() -> None:
    lines: list[str] = []
    confirm(plan_of(summary({"same": 3})), "deploy", assume_yes=False, out=lines.append, ask=never, isatty=lambda: True)
    confirm(plan_of(pre("delete", DB, "db")), "destroy", assume_yes=True, out=lines.append, ask=never, isatty=lambda: False)
    assert lines[0] == "deploy: planned changes" and lines[1] == "  summary: 3 unchanged" and lines[2] == "destroy: planned changes"


@pytest.mark.parametrize("answer", ["y", "yes", " Y ", "YES\n", "Yes"])
def test_yes_answers_proceed(answer: str) -> None:
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return answer

    confirm(plan_of(pre("create", SG, "s")), "deploy to stack dev", assume_yes=False, out=lambda s: None, ask=ask, isatty=lambda: True)
    assert prompts == ["Do you want to deploy to stack dev? [y/N] "]


@pytest.mark.parametrize("answer", ["", "n", "no", "yess", "ye", "sure"])
def test_anything_else_cancels(answer: str) -> None:
    with pytest.raises(DeployError) as exc:
        confirm(plan_of(pre("create", SG, "s")), "destroy stack dev", assume_yes=False, out=lambda s: None, ask=lambda p: answer, isatty=lambda: True)
    assert str(exc.value) == "destroy stack dev cancelled; nothing was changed"


def test_without_a_terminal_it_refuses_and_without_seams_it_uses_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_of(pre("create", SG, "s"))
    with pytest.raises(DeployError) as exc:
        confirm(plan, "deploy", assume_yes=False, out=lambda s: None, ask=never, isatty=lambda: False)
    assert str(exc.value) == ("refusing to deploy without confirmation: no terminal to ask on; "
                              "re-run with --yes after reviewing the changes above")

    class Tty(io.StringIO):
        def __init__(self, text: str, tty: bool):
            super().__init__(text)
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr("sys.stdin", Tty("", tty=False))
    with pytest.raises(DeployError, match="no terminal to ask on"):
        confirm(plan, "deploy", assume_yes=False, out=lambda s: None)
    monkeypatch.setattr("sys.stdin", Tty("yes\n", tty=True))
    monkeypatch.setattr("builtins.input", lambda p: "yes")
    confirm(plan, "deploy", assume_yes=False, out=lambda s: None)  # the default ask is input(), the default check sys.stdin


def replace(type_: str, name: str, old: dict[str, Any], new: dict[str, Any], keys: list[str], op: str = "replace") -> EngineEvent:
    urn = f"urn:pulumi:dev::pghome::{type_}::{name}"
    state = {"type": type_, "urn": urn}
    md = {"op": op, "urn": urn, "type": type_, "provider": "", "keys": keys,
          "old": {**state, "inputs": old, "outputs": old}, "new": {**state, "inputs": new, "outputs": {}}}
    return EngineEvent.from_json({"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": md}})


@pytest.mark.parametrize("type_, old, new, collides", [
    (DB, {"identifier": "shop-dev-db", "username": "a"}, {"identifier": "shop-dev-db", "username": "b"}, True),
    (DB, {"identifier": "shop-dev-db"}, {"identifier": "shop-dev-db-2"}, False),  # a new name: create, then delete, works
    ("aws:secretsmanager/secret:Secret", {"name": "shop/db"}, {"name": "shop/db"}, True),
    ("aws:kms/key:Key", {"description": "k"}, {"description": "k"}, False),  # no physical name
    (SG, {"namePrefix": "web-"}, {"namePrefix": "web-"}, False),  # a fresh suffix on create
])
def test_a_replacement_collides_only_when_it_keeps_a_fixed_name(type_: str, old: dict[str, Any], new: dict[str, Any], collides: bool) -> None:
    [change] = plan_of(replace(type_, "r", old, new, ["username"])).changes
    assert change.collides is collides and change.keys == ("username",)
    assert ("would be replaced under the same name" in plan_of(replace(type_, "r", old, new, [])).render()) is collides
    assert not plan_of(replace(type_, "r", old, old, [], op="update")).changes[0].collides


def outputs_event(op: str, type_: str, name: str) -> EngineEvent:
    urn = f"urn:pulumi:dev::pghome::{type_}::{name}"
    return EngineEvent.from_json({"sequence": 2, "timestamp": 0, "resOutputsEvent": {"metadata": {"op": op, "urn": urn, "type": type_, "provider": ""}}})


def test_a_refresh_outcome_is_the_op_of_the_outputs_event_of_a_refreshing_resource() -> None:
    """pkg/engine: a refresh's pre-event says only `refresh`; its outcome is the resOutputsEvent's op.
    Only resources whose refresh began count, each once; `same` is no change."""
    plan = plan_of(pre("refresh", DB, "gone"), pre("refresh", SG, "kept"), outputs_event("delete", DB, "gone"),
                   outputs_event("same", SG, "kept"), outputs_event("delete", SG, "never-refreshing"), outputs_event("delete", DB, "gone"))
    assert [(c.op, c.type, c.name, c.refresh) for c in plan.changes] == [("delete", DB, "gone", True)]
    assert plan.refreshing == set()
    assert "  WARNING: gone (aws:rds/instance:Instance) no longer exists in AWS: refresh drops it from the state" in plan.render().splitlines()
    assert "its data is lost" not in plan.render()  # a refresh's delete loses nothing
    updated = plan_of(pre("refresh", SG, "drifted"), outputs_event("update", SG, "drifted"))
    assert [(c.op, c.refresh) for c in updated.changes] == [("update", True)] and "WARNING" not in updated.render()


def policy(level: str, message: str = "no <{%bold%}>public<{%reset%}>\n  access") -> EngineEvent:
    return EngineEvent.from_json({"sequence": 3, "timestamp": 0, "policyEvent": {
        "resourceUrn": f"urn:pulumi:dev::pghome::{DB}::db", "message": message, "color": "never", "policyName": "rds-2",
        "policyPackName": "pghome-fsbp", "policyPackVersion": "1", "policyPackVersionTag": "1", "enforcementLevel": level}})


def test_only_mandatory_policy_violations_are_kept_with_pack_policy_resource_and_message() -> None:
    plan = plan_of(policy("advisory"), policy("mandatory"), policy("disabled"))
    assert plan.violations == ["pghome-fsbp/rds-2 (db): no public access"]


@pytest.mark.parametrize("old_outputs, old_inputs", [
    ({"identifier": "shop-dev-db"}, {}),  # the state's outputs hold the name (the usual case)
    ({}, {"identifier": "shop-dev-db"}),  # only the inputs do (a resource whose outputs were not recorded)
    ({"identifier": "shop-dev-db"}, {"identifier": "shop-dev-db"}),
])
def test_the_kept_name_is_read_from_the_old_outputs_else_its_inputs(old_outputs: dict[str, Any], old_inputs: dict[str, Any]) -> None:
    urn = f"urn:pulumi:dev::pghome::{DB}::db"
    md = {"op": "replace", "urn": urn, "type": DB, "provider": "", "keys": ["username"],
          "old": {"type": DB, "urn": urn, "inputs": old_inputs, "outputs": old_outputs},
          "new": {"type": DB, "urn": urn, "inputs": {"identifier": "shop-dev-db"}, "outputs": {}}}
    [change] = plan_of(EngineEvent.from_json({"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": md}})).changes
    assert change.same_name == "shop-dev-db" and change.collides
    assert ("  WARNING: db (aws:rds/instance:Instance) would be replaced under the same name shop-dev-db, which AWS refuses while the old one "
            "exists: up refuses this change") in plan_of(EngineEvent.from_json({"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": md}})).render()


def test_ctrl_d_is_a_no() -> None:
    def eof(prompt: str) -> str:
        raise EOFError

    with pytest.raises(DeployError) as err:
        confirm(plan_of(pre("update", SG, "web-sg")), "up stack dev", assume_yes=False, out=lambda s: None, ask=eof, isatty=lambda: True)
    assert str(err.value) == "up stack dev cancelled; nothing was changed"

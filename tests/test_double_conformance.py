"""Conformance of the `pulumi` double with the real CLI, through the real SDK (pulumi.automation):

- every engine event kind our code consumes (pre, outputs, failed, diagnostic, summary, policy,
  cancel), in the engine's recorded format (tests/pulumi_double/recorded.py names the recorded
  stream each fixture mirrors), delivered over both event transports to bootstrap's consumers
  (confirm.ChangePlan, progress.Progress);
- the double's own events have the recorded shapes (fields, `omitempty` gaps, `color: raw` markup).
Behaviours of the CLI the double must share (locks, asset hashes, stack names, KMS, Ctrl-C, stack
file edits) are in tests/test_double_behaviour.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pulumi import automation as auto
from pulumi_policy import ResourceValidationPolicy

from bootstrap.deploy.confirm import ChangePlan
from bootstrap.progress import Progress
from policy import pghome_fsbp
from tests.pulumi_double import recorded
from tests.pulumi_double.backend import VERSIONS
from tests.pulumi_double.client import Collector, env, pulumi
from tests.pulumi_double.fixture import Double

KINDS = {"cancel_event": "cancelEvent", "stdout_event": "stdoutEvent", "diagnostic_event": "diagnosticEvent", "prelude_event": "preludeEvent",
         "summary_event": "summaryEvent", "resource_pre_event": "resourcePreEvent", "res_outputs_event": "resOutputsEvent",
         "res_op_failed_event": "resOpFailedEvent", "policy_event": "policyEvent"}


def kind(event: Any) -> str:
    """The recorded kind of an SDK event; kinds the SDK does not model arrive as `other`."""
    return next((camel for attr, camel in KINDS.items() if getattr(event, attr) is not None), "other")


def replayed(d: Double, name: str, command: str) -> tuple[list[Any], auto.CommandError | None]:
    """Run `command` (preview/up) with the double replaying a recorded stream; the SDK's events."""
    stack = auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars=env(d, PULUMI_DOUBLE_REPLAY=str(recorded.write(name, d.tmp)))))
    events: list[Any] = []
    try:
        getattr(stack, command)(on_event=events.append)
    except auto.CommandError as exc:
        return events, exc
    return events, None


@pytest.mark.cli_versions
def test_a_preview_with_a_replacement_reaches_the_change_plan(pulumi_double: Double) -> None:
    events, error = replayed(pulumi_double, "preview-with-replacement", "preview")
    assert error is None
    assert [kind(e) for e in events] == [next(iter(e)) for e in recorded.PREVIEW_WITH_REPLACEMENT]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))  # nothing lost, in order
    plan = ChangePlan()
    for e in events:
        plan.on_event(e)
    assert [(c.op, c.name) for c in plan.changes] == [("create", "shop-dev-app-logs"), ("update", "shop-dev-database-sg"),
                                                     ("create-replacement", "shop-dev-database-instance"), ("replace", "shop-dev-database-instance"),
                                                     ("delete-replaced", "shop-dev-database-instance")]
    assert plan.counts == {"create": 1, "update": 1, "replace": 1, "same": 61}
    assert "WARNING: replace of stateful resource shop-dev-database-instance (aws:rds/instance:Instance)" in plan.render()
    pre = next(e.resource_pre_event for e in events if e.resource_pre_event and e.resource_pre_event.metadata.op == auto.OpType.REPLACE)
    assert pre.planning and pre.metadata.keys == ["identifier"] and pre.metadata.old.id == "shop-dev-db"


@pytest.mark.cli_versions
def test_a_failed_up_reaches_progress_with_its_warning_error_and_summary(pulumi_double: Double, pulumi_cli_version: str) -> None:
    events, error = replayed(pulumi_double, "up-with-failure", "up")
    # a bail: 1 since exit_codes.go (3.245.0), 255 before
    assert error is not None and f"code: {1 if VERSIONS[pulumi_cli_version].exit_codes else 255}" in str(error)
    assert [kind(e) for e in events] == [next(iter(e)) for e in recorded.UP_WITH_FAILURE]
    lines: list[str] = []
    progress = Progress(lines.append)
    for e in events:
        progress.on_event(e)
    assert any("create" in line and "shop-dev-vpc" in line for line in lines)
    assert any("FAILED" in line and "shop-dev-database-instance" in line for line in lines)
    assert progress.summary == {"create": 1}
    diag = [e.diagnostic_event for e in events if e.diagnostic_event]
    assert [(x.severity, x.color, x.urn) for x in diag] == [("warning", "raw", recorded.RDS), ("error", "raw", recorded.RDS)]
    assert diag[1].prefix == "<{%fg 1%}>error: <{%reset%}>" and diag[1].message.startswith("<{%reset%}>creating RDS DB Instance")
    assert len(progress.errors) == 1 and "InvalidParameterCombination" in progress.errors[0]
    summary = next(e.summary_event for e in events if e.summary_event)
    assert summary.maybe_corrupt is False and summary.resource_changes == {"create": 1}  # the SDK keeps no isPreview/result


@pytest.mark.cli_versions
def test_a_policy_violation_arrives_as_a_policy_event_and_fails_the_preview(pulumi_double: Double) -> None:
    events, error = replayed(pulumi_double, "policy-violation", "preview")
    assert error is not None
    # policyLoadEvent and the policy summaries: kinds this SDK does not model, read past
    assert [kind(e) for e in events] == ["other", "preludeEvent", "other", "policyEvent", "other", "resourcePreEvent", "summaryEvent", "cancelEvent"]
    policy = next(e.policy_event for e in events if e.policy_event)
    assert (policy.policy_name, policy.policy_pack_name, policy.enforcement_level, policy.resource_urn, policy.color) == (
        "rds-instance-not-public", "pghome-fsbp", "mandatory", recorded.RDS, "raw")
    plan, progress = ChangePlan(), Progress(lambda line: None)
    for e in events:
        plan.on_event(e)
        progress.on_event(e)
    assert [c.op for c in plan.changes] == ["create"] and plan.counts == {}
    assert next(e.summary_event for e in events if e.summary_event).policy_packs == {"pghome-fsbp": ""}


@pytest.mark.cli_versions
def test_a_canceled_up_ends_with_the_engine_error_and_the_cancel_event(pulumi_double: Double) -> None:
    events, error = replayed(pulumi_double, "canceled-up", "up")
    assert error is not None
    assert [kind(e) for e in events] == [next(iter(e)) for e in recorded.CANCELED_UP]
    assert events[-1].cancel_event is not None
    stdout = next(e.stdout_event for e in events if e.stdout_event)
    assert stdout.color == "always" and stdout.message.startswith("^C received; cancelling.")
    progress = Progress(lambda line: None)
    for e in events:
        progress.on_event(e)
    assert progress.summary == {"update": 1} and len(progress.errors) == 1 and "update canceled" in progress.errors[0]


# The double's own events, collected raw over gRPC as the SDK's Events service receives them ------


def shapes(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    """kind -> the union of field names seen (and for steps, of their metadata's)."""
    out: dict[str, set[str]] = {}
    for e in events:
        k = next(key for key in e if key not in ("sequence", "timestamp"))
        body = e[k]
        fields = set(body) | ({f"metadata.{m}" for m in body["metadata"]} if "metadata" in body else set())
        out.setdefault(k, set()).update(fields)
    return out


def test_the_doubles_own_events_have_the_recorded_shapes(pulumi_double: Double, event_collector: tuple[Collector, str]) -> None:
    d = pulumi_double
    sink, address = event_collector
    assert pulumi(d, "stack", "init", "dev").returncode == 0
    up = pulumi(d, "up", "--yes", "--stack", "dev", "--event-log", address, PULUMI_DOUBLE_FAIL_ON="aws:rds/instance:Instance")
    assert up.returncode == 1
    events = sink.events()
    assert sink.lines and all(line.endswith("\n") and "\n" not in line[:-1] for line in sink.lines)  # one json.Encoder line each
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1)) and next(iter(events[-1].keys() - {"sequence", "timestamp"})) == "cancelEvent"
    ours, theirs = shapes(events), shapes(recorded.UP_WITH_FAILURE)
    for k in ("preludeEvent", "resourcePreEvent", "resOutputsEvent", "resOpFailedEvent", "summaryEvent", "cancelEvent"):
        assert ours[k] - {"metadata.keys", "metadata.diffs"} == theirs[k] - {"metadata.keys", "metadata.diffs"}, k
    assert ours["diagnosticEvent"] == theirs["diagnosticEvent"]
    diag = next(e["diagnosticEvent"] for e in events if "diagnosticEvent" in e)
    assert diag["color"] == "raw" and diag["prefix"] == "<{%fg 1%}>error: <{%reset%}>"
    assert diag["message"].startswith("<{%reset%}>") and diag["message"].endswith("<{%reset%}>\n")
    assert not any("planning" in e.get("resourcePreEvent", {}) for e in events)  # omitempty: only previews carry it
    summary = next(e["summaryEvent"] for e in events if "summaryEvent" in e)
    assert (summary["isPreview"], summary["result"]) == (False, "failed")


def test_the_doubles_policy_events_have_the_recorded_shape(pulumi_double: Double, event_collector: tuple[Collector, str]) -> None:
    """The double runs policy/ itself on a preview: its policyEvent, policyLoadEvent and summary carry
    the fields of TestSimpleAnalyzeResourceFailure's recorded stream (recorded.POLICY_VIOLATION)."""
    d = pulumi_double
    sink, address = event_collector
    assert pulumi(d, "stack", "init", "dev").returncode == 0
    preview = pulumi(d, "preview", "--stack", "dev", "--policy-pack", str(d.project / "policy"), "--event-log", address)
    assert preview.returncode == 0, preview.stderr
    events = sink.events()
    ours, theirs = shapes(events), shapes(recorded.POLICY_VIOLATION)
    assert ours["policyEvent"] == theirs["policyEvent"] and ours["policyLoadEvent"] == theirs["policyLoadEvent"] == set()
    kinds = [next(iter(e.keys() - {"sequence", "timestamp"})) for e in events]
    assert kinds.index("policyLoadEvent") < kinds.index("preludeEvent")
    advisory = [e["policyEvent"] for e in events if "policyEvent" in e]
    # dev's waived controls and the advisory one: all advisory (the pack cannot see waivers)
    assert {p["enforcementLevel"] for p in advisory} == {"advisory"} and {("rds-23", "low"), ("rds-5", "medium")} <= {(p["policyName"], p["severity"]) for p in advisory}
    for p in advisory:  # the policy's description, a newline, the reported message (pulumi_policy _create_report_violation)
        code = p["policyName"].upper().replace("-", ".", 1)
        assert p["color"] == "raw" and p["message"].startswith(f"<{{%reset%}}>{code} ") and f"\n{code}: " in p["message"] and p["message"].endswith("<{%reset%}>\n"), p
    # The summaries (CLIs from 3.196.0): the recorded fields, passed/failed as omitempty lists
    lists = {"passed", "failed"}
    for kind in ("policyRemediateSummaryEvent", "policyAnalyzeSummaryEvent"):
        assert theirs[kind] - lists <= ours[kind] <= theirs[kind] | lists, kind
    assert ours["policyAnalyzeStackSummaryEvent"] <= {"policyPackName", "policyPackVersion", "policyPackVersionTag"} | lists
    resource_policies = {p.name for p in pghome_fsbp.policies() if isinstance(p, ResourceValidationPolicy)}
    analyzed = [e["policyAnalyzeSummaryEvent"] for e in events if "policyAnalyzeSummaryEvent" in e]
    registered = {e["resourcePreEvent"]["metadata"]["urn"] for e in events if "resourcePreEvent" in e}
    assert len(analyzed) == len({u for u in registered if "::pulumi:pulumi:Stack::" not in u}) > 100
    for s in analyzed:  # each resource: what failed is what it was told, and every other resource policy passed
        told = {p["policyName"] for p in advisory if p.get("resourceUrn") == s["resourceUrn"]} & resource_policies
        assert set(s.get("failed", [])) == told and set(s.get("passed", [])) == resource_policies - told, s["resourceUrn"]
    steps_end = max(i for i, k in enumerate(kinds) if k == "resourcePreEvent")  # stack policies report after the steps
    for urn in {s["resourceUrn"] for s in analyzed}:  # remediate summary, violations, analyze summary, in that order
        mine = [k for k, e in zip(kinds[:steps_end], events) if (e.get(k) or {}).get("resourceUrn") == urn and k.startswith("policy")]
        assert mine[0] == "policyRemediateSummaryEvent" and mine[-1] == "policyAnalyzeSummaryEvent" and set(mine[1:-1]) <= {"policyEvent"}, mine
    assert kinds.index("policyAnalyzeStackSummaryEvent") > steps_end
    # each resource is analyzed as it registers, just before its first step (TestSimpleAnalyzer's stream)
    at = {e[k]["resourceUrn"]: i for i, (k, e) in enumerate(zip(kinds, events)) if k == "policyAnalyzeSummaryEvent"}
    first_step: dict[str, int] = {}
    for i, (k, e) in enumerate(zip(kinds, events)):
        if k == "resourcePreEvent":
            first_step.setdefault(e[k]["metadata"]["urn"], i)
    assert all(at[u] < first_step[u] for u in at) and min(first_step.values()) < max(at.values())
    summary = next(e["summaryEvent"] for e in events if "summaryEvent" in e)
    assert summary["PolicyPacks"] == {"pghome-fsbp": "0.1.0"} and summary["result"] == "succeeded"
    assert "✅ pghome-fsbp@v0.1.0" not in preview.stdout and "⚠️ pghome-fsbp@v0.1.0" in preview.stdout

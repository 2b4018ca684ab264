"""Engine event streams in the real CLI's format, for the conformance tests (tests/test_double_conformance.py).

Each stream mirrors one of the engine's recorded event streams in pulumi/pulumi
(pkg/engine/lifecycletest/testdata/output/<test>/eventstream.json, named above each stream): the
same kinds, fields, ordering, `omitempty` gaps and diagnostic markup, with the resources of our own
stack in place of the engine tests' `pkgA:m:typA`. `sequence`/`timestamp` are stamped by the double
when it replays a stream (PULUMI_DOUBLE_REPLAY; double.py), as the recorded files zero them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STACK = "urn:pulumi:dev::pghome::pulumi:pulumi:Stack::pghome-dev"
PROVIDER = "urn:pulumi:dev::pghome::pulumi:providers:aws::default_7_51_1::04da6b54-80e4-46f7-96ec-b56ff0331ba9"
RDS = "urn:pulumi:dev::pghome::pghome:index:Database$aws:rds/instance:Instance::shop-dev-database-instance"
SG = "urn:pulumi:dev::pghome::pghome:index:Database$aws:ec2/securityGroup:SecurityGroup::shop-dev-database-sg"
LOGS = "urn:pulumi:dev::pghome::pghome:index:Service$aws:cloudwatch/logGroup:LogGroup::shop-dev-app-logs"
VPC = "urn:pulumi:dev::pghome::pghome:index:Network$aws:ec2/vpc:Vpc::shop-dev-vpc"
ERR = "<{%fg 1%}>error: <{%reset%}>"
WARN = "<{%fg 3%}>warning: <{%reset%}>"


def _state(urn: str, id_: str, inputs: dict[str, Any], outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": urn.split("::")[2].rsplit("$", 1)[-1], "urn": urn, "custom": True, "id": id_, "parent": STACK,
            "inputs": inputs, "outputs": outputs or {}, "provider": PROVIDER}


def _meta(op: str, urn: str, old: dict[str, Any] | None, new: dict[str, Any] | None, keys: list[str] | None = None,
          logical: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"op": op, "urn": urn, "type": urn.split("::")[2].rsplit("$", 1)[-1], "old": old, "new": new}
    if keys:
        meta.update({"keys": keys, "diffs": keys})
    meta["detailedDiff"] = {k: {"diffKind": "update-replace" if op in ("replace", "create-replacement") else "update", "inputDiff": True}
                            for k in keys} if keys else None
    if logical:
        meta["logical"] = True
    meta["provider"] = PROVIDER
    return meta


_rds_old = _state(RDS, "shop-dev-db", {"identifier": "shop-dev-db", "instanceClass": "db.t4g.micro"})
_rds_new = _state(RDS, "", {"identifier": "shop-dev-db-2", "instanceClass": "db.t4g.micro"})
_sg_old = _state(SG, "sg-0a1b", {"description": "database", "revokeRulesOnDelete": False})
_sg_new = _state(SG, "sg-0a1b", {"description": "database", "revokeRulesOnDelete": True})
_logs = _state(LOGS, "", {"retentionInDays": 30})

# Mirrors TestAliasURNs/urn-force-new-0-0-preview (a replacement in a preview: delete-replaced,
# replace, create-replacement, each with planning) and TestBadResourceType/-0-0 (a logical create).
PREVIEW_WITH_REPLACEMENT: list[dict[str, Any]] = [
    {"preludeEvent": {"config": {"pghome:appName": "shop", "aws:region": "eu-west-1"}}},
    {"resourcePreEvent": {"metadata": _meta("create", LOGS, None, _logs), "planning": True}},
    {"resOutputsEvent": {"metadata": _meta("create", LOGS, None, _logs), "planning": True}},
    {"resourcePreEvent": {"metadata": _meta("update", SG, _sg_old, _sg_new, ["revokeRulesOnDelete"]), "planning": True}},
    {"resOutputsEvent": {"metadata": _meta("update", SG, _sg_old, _sg_new, ["revokeRulesOnDelete"]), "planning": True}},
    {"resourcePreEvent": {"metadata": _meta("create-replacement", RDS, _rds_old, _rds_new, ["identifier"], logical=False), "planning": True}},
    {"resOutputsEvent": {"metadata": _meta("create-replacement", RDS, _rds_old, _rds_new, ["identifier"], logical=False), "planning": True}},
    {"resourcePreEvent": {"metadata": _meta("replace", RDS, _rds_old, _rds_new, ["identifier"]), "planning": True}},
    {"resOutputsEvent": {"metadata": _meta("replace", RDS, _rds_old, _rds_new, ["identifier"]), "planning": True}},
    {"resourcePreEvent": {"metadata": _meta("delete-replaced", RDS, _rds_old, None, logical=False), "planning": True}},
    {"resOutputsEvent": {"metadata": _meta("delete-replaced", RDS, _rds_old, None, logical=False), "planning": True}},
    {"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {"create": 1, "update": 1, "replace": 1, "same": 61},
                      "PolicyPacks": {}, "isPreview": True, "result": "succeeded"}},
    {"cancelEvent": {}},
]

_vpc = _state(VPC, "", {"cidrBlock": "10.20.0.0/16"})
# Mirrors TestErrorHooks_IndependentPerResource_Create/0 (a warning diagnostic bound to a resource)
# and TestBadResourceType/-0-0 (an error diagnostic, then a failed summary); resOpFailedEvent as
# sdk/go/common/apitype/events.go ResOpFailedEvent (metadata, status, steps).
UP_WITH_FAILURE: list[dict[str, Any]] = [
    {"preludeEvent": {"config": {"pghome:appName": "shop"}}},
    {"resourcePreEvent": {"metadata": _meta("create", VPC, None, _vpc)}},
    {"resOutputsEvent": {"metadata": _meta("create", VPC, None, {**_vpc, "id": "vpc-0f00"})}},
    {"resourcePreEvent": {"metadata": _meta("create", RDS, None, _rds_new)}},
    {"diagnosticEvent": {"urn": RDS, "prefix": WARN, "message": "<{%reset%}>retrying create due to on-error hook request (1/3)<{%reset%}>\n",
                         "color": "raw", "severity": "warning"}},
    {"resOpFailedEvent": {"metadata": _meta("create", RDS, None, _rds_new), "status": 0, "steps": 0}},
    {"diagnosticEvent": {"urn": RDS, "prefix": ERR,
                         "message": "<{%reset%}>creating RDS DB Instance (shop-dev-db-2): operation error RDS: CreateDBInstance, "
                                    "https response error StatusCode: 400, InvalidParameterCombination: RDS does not support creating "
                                    "a DB instance with the following combination<{%reset%}>\n", "color": "raw", "severity": "error"}},
    {"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 4, "resourceChanges": {"create": 1}, "PolicyPacks": {},
                      "isPreview": False, "result": "failed"}},
    {"cancelEvent": {}},
]

# Mirrors TestSimpleAnalyzeResourceFailure (a mandatory policy violation fails the preview). The
# resource is analyzed before its step is made (step_generator.go); on a preview a mandatory
# violation does not make it invalid (analyze_snapshot.go: `if !dryRun`), so its step follows.
POLICY_VIOLATION: list[dict[str, Any]] = [
    {"policyLoadEvent": {}},
    {"preludeEvent": {"config": {}}},
    {"policyRemediateSummaryEvent": {"resourceUrn": RDS, "policyPackName": "pghome-fsbp", "policyPackVersion": "", "policyPackVersionTag": "",
                                     "passed": ["rds-instance-not-public"]}},
    {"policyEvent": {"resourceUrn": RDS, "message": "<{%reset%}>RDS instances must not be publicly accessible<{%reset%}>\n", "color": "raw",
                     "policyName": "rds-instance-not-public", "policyPackName": "pghome-fsbp", "policyPackVersion": "",
                     "policyPackVersionTag": "", "enforcementLevel": "mandatory", "severity": "high"}},
    {"policyAnalyzeSummaryEvent": {"resourceUrn": RDS, "policyPackName": "pghome-fsbp", "policyPackVersion": "", "policyPackVersionTag": "",
                                   "failed": ["rds-instance-not-public"]}},
    {"resourcePreEvent": {"metadata": _meta("create", RDS, None, _rds_new), "planning": True}},
    {"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {}, "PolicyPacks": {"pghome-fsbp": ""},
                      "isPreview": True, "result": "failed"}},
    {"cancelEvent": {}},
]

# Mirrors TestCanceledRefresh (the engine's `update canceled` error after the step in flight ended)
# with the stdout event of pkg/backend/cancellation_scope.go for the first ^C.
CANCELED_UP: list[dict[str, Any]] = [
    {"preludeEvent": {"config": {}}},
    {"resourcePreEvent": {"metadata": _meta("update", SG, _sg_old, _sg_new, ["revokeRulesOnDelete"])}},
    {"stdoutEvent": {"message": "^C received; cancelling. If you would like to terminate immediately, press ^C again.\n<{%fg 9%}>Note that "
                                "terminating immediately may lead to orphaned resources and other inconsistencies.\n<{%reset%}>",
                     "color": "always"}},
    {"resOutputsEvent": {"metadata": _meta("update", SG, _sg_old, _sg_new, ["revokeRulesOnDelete"])}},
    {"diagnosticEvent": {"prefix": ERR, "message": "<{%reset%}>update canceled<{%reset%}>\n", "color": "raw", "severity": "error"}},
    {"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {"update": 1}, "PolicyPacks": {},
                      "isPreview": False, "result": "failed"}},
    {"cancelEvent": {}},
]

STREAMS = {"preview-with-replacement": PREVIEW_WITH_REPLACEMENT, "up-with-failure": UP_WITH_FAILURE,
           "policy-violation": POLICY_VIOLATION, "canceled-up": CANCELED_UP}


def write(name: str, directory: Path) -> Path:
    """The stream as the JSON-lines file PULUMI_DOUBLE_REPLAY reads."""
    path = directory / f"{name}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in STREAMS[name]))
    return path

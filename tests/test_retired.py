"""Retired resources are forgotten, never deleted (bootstrap/deploy/retired.py).

The old `…-appdb-password-admin` GrantRole is the case: deleting it runs the provider's Delete,
`REVOKE rds_password FROM <master>`. Under the `pulumi` double, a provider Delete of that URN is made
to fail (PULUMI_DOUBLE_FAIL_ON), so a test sees whether the provider was called at all: a raw `pulumi
up` calls it; `python -m bootstrap up` (deploy, release) marks it retainOnDelete first and the engine drops it
from the state without the provider (pkg/resource/deploy/step.go, DeleteStep.Apply)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from bootstrap.deploy import data_loss
from bootstrap.deploy.confirm import ChangePlan
from bootstrap.deploy.retired import RETIRED, Retired, announce, mark_retained, match
from tests.deploy_world import deploy_world, first_release, run
from tests.pgserver import PgServer
from tests.pulumi_double.fixture import Double
from tests.pulumi_double.integrity import import_errors, multierror, verify_integrity
from tests.test_recreate_double import aws  # noqa: F401 (fixture: moto ECR for release)

PASS = "retired passphrase"
GRANT = "postgresql:index/grantRole:GrantRole"
STACK_URN = "urn:pulumi:dev::pghome::pulumi:pulumi:Stack::pghome-dev"
OLD_URN = f"urn:pulumi:dev::pghome::{GRANT}::shop-dev-appdb-password-admin"
REVOKED = "REVOKE rds_password FROM shop_admin: the provider's Delete ran"


def _grant(urn: str = OLD_URN, **extra: Any) -> dict[str, Any]:
    return {"urn": urn, "custom": True, "type": GRANT, "id": "shop_admin-rds_password", "parent": STACK_URN,
            "inputs": {"role": "shop_admin", "grantRole": "rds_password"}, "outputs": {"role": "shop_admin", "grantRole": "rds_password"},
            "dependencies": [], **extra}


# --------------------------------------------------------------------------------------------
# The table and the state edit, as plain data
# --------------------------------------------------------------------------------------------


def test_match_finds_the_retired_grant_by_type_and_name_only() -> None:
    assert match(GRANT, OLD_URN) == RETIRED[0] and match(GRANT, "shop-prod-appdb-password-admin") == RETIRED[0]
    assert match(GRANT, f"urn:pulumi:dev::pghome::{GRANT}::shop-dev-appdb-iam-app") is None
    assert match("postgresql:index/grant:Grant", OLD_URN) is None
    row = Retired("aws:s3/bucket:Bucket", "-old-bucket", "empty it", "test")
    assert match("aws:s3/bucket:Bucket", "shop-dev-old-bucket", (row,)) == row


def test_mark_retained_marks_only_the_named_urns_on_a_copy() -> None:
    keep = _grant(f"urn:pulumi:dev::pghome::{GRANT}::shop-dev-appdb-iam-app")
    doc: dict[str, Any] = {"version": 3, "deployment": {"resources": [_grant(), keep]}}
    marked = mark_retained(doc, {OLD_URN})
    assert [r.get("retainOnDelete") for r in marked["deployment"]["resources"]] == [True, None]
    assert "retainOnDelete" not in doc["deployment"]["resources"][0]  # the export itself is untouched


def _delete(type_: str, *, retained: bool, protected: bool = False) -> Any:
    old = SimpleNamespace(protect=protected, retain_on_delete=retained, inputs={}, outputs={})
    md = SimpleNamespace(op="delete", type=type_, urn=f"urn:pulumi:dev::pghome::{type_}::x", old=old, new=None, keys=None)
    return SimpleNamespace(resource_pre_event=SimpleNamespace(metadata=md), res_outputs_event=None, summary_event=None,
                           diagnostic_event=None, policy_event=None)


def test_the_plan_treats_a_retired_resources_delete_as_a_forget() -> None:
    """Before any state is marked, the preview's plan knows the delete of a retired resource will be a
    forget (the command marks it after the yes): rendered so, and named once by `announce`."""
    plan = ChangePlan()
    event = _delete(GRANT, retained=False)
    event.resource_pre_event.metadata.urn = OLD_URN
    plan.on_event(event)
    plan.on_event(_delete("postgresql:index/grantRole:GrantRole", retained=False))  # another GrantRole: a real delete
    assert [(c.name, c.retiring, c.forgets) for c in plan.changes] == [("shop-dev-appdb-password-admin", True, True), ("x", False, False)]
    assert f"delete   {GRANT} shop-dev-appdb-password-admin (retained: forgotten, not deleted)" in plan.render()
    lines: list[str] = []
    announce(plan, "up stack dev", lines.append, updates=True)
    assert len(lines) == 1 and lines[0].startswith("state: shop-dev-appdb-password-admin (postgresql:index/grantRole:GrantRole) is retired")


def test_a_retained_delete_is_no_loss_but_a_protected_one_still_is() -> None:
    """The engine calls no provider for a retained delete, so the data-loss guard lets it pass; a
    protected resource's delete fails in the engine whatever retainOnDelete says, so it stays flagged."""
    plan = ChangePlan()
    plan.on_event(_delete("aws:cloudwatch/logGroup:LogGroup", retained=True))
    plan.on_event(_delete("aws:kms/key:Key", retained=True, protected=True))
    assert [c.type for c in data_loss.losses(plan)] == ["aws:kms/key:Key"]
    assert "delete   aws:cloudwatch/logGroup:LogGroup x (retained: forgotten, not deleted)" in plan.render()


# --------------------------------------------------------------------------------------------
# The double's `stack import` checks (pkg/cmd/pulumi/stack/io.go, pkg/resource/deploy/snapshot.go)
# --------------------------------------------------------------------------------------------


def test_integrity_names_the_first_dangling_or_late_reference() -> None:
    stack = {"urn": STACK_URN, "type": "pulumi:pulumi:Stack"}
    later = _grant(dependencies=[OLD_URN.replace("password-admin", "iam-app")])
    assert verify_integrity([stack, _grant()]) is None
    assert verify_integrity([stack, later]) == (
        f"resource {OLD_URN}'s dependency {OLD_URN.replace('password-admin', 'iam-app')} refers to missing resource")
    assert verify_integrity([stack, later, _grant(OLD_URN.replace("password-admin", "iam-app"))]) == (
        f"resource {OLD_URN}'s dependency {OLD_URN.replace('password-admin', 'iam-app')} comes after it")
    assert verify_integrity([_grant(), stack]) == f"child resource {OLD_URN}'s parent {STACK_URN} comes after it"
    assert verify_integrity([stack, _grant(provider="urn:pulumi:dev::pghome::pulumi:providers:postgresql::pg::id")]) == (
        f"resource {OLD_URN} refers to unknown provider urn:pulumi:dev::pghome::pulumi:providers:postgresql::pg::id")
    errors = import_errors([stack, _grant(urn=OLD_URN.replace(":dev::", ":prod::"))], "dev")
    assert errors[0].startswith("resource 'urn:pulumi:prod::") and errors[0].endswith("is from a different stack (prod != dev)")
    assert multierror(errors).startswith("2 errors occurred:\n\t* resource 'urn:pulumi:prod::")
    assert multierror(errors).endswith("\n\t* importing this file could be dangerous; rerun with --force to proceed anyway\n\n")


# --------------------------------------------------------------------------------------------
# End to end: the real Automation API, the double, `python -m bootstrap`
# --------------------------------------------------------------------------------------------


@pytest.fixture
def old_stack(pulumi_double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[Double, Any]:
    """A dev stack as an old release left it: the GrantRole in the state, a later resource depending
    on it (the old program chained its grants), and any provider Delete of it failing loudly."""
    d = pulumi_double
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASS)
    monkeypatch.setenv("PULUMI_BACKEND_URL", d.file_backend())
    stack = auto.create_stack("dev", work_dir=str(d.project), opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_CONFIG_PASSPHRASE": PASS}))
    assert run(d, capsys, "up", "--stack", "dev", "--yes")[0] == 0
    exported = stack.export_stack()
    assert exported.deployment is not None
    resources = exported.deployment["resources"]
    resources.insert(1, _grant())
    resources[-1].setdefault("dependencies", []).append(OLD_URN)
    stack.import_stack(exported)
    monkeypatch.setenv("PULUMI_DOUBLE_FAIL_ON", "password-admin")
    monkeypatch.setenv("PULUMI_DOUBLE_FAIL_MESSAGE", REVOKED)
    return d, stack


def _old(d: Double) -> list[dict[str, Any]]:
    return [r for r in d.resources() if r["urn"] == OLD_URN]


def test_a_raw_up_calls_the_providers_delete_of_the_retired_grant(old_stack: tuple[Double, Any]) -> None:
    """Why the mechanism exists: without it the engine deletes through the provider (the REVOKE)."""
    d, stack = old_stack
    with pytest.raises(auto.CommandError) as failed:
        stack.up()
    assert REVOKED in str(failed.value)
    assert _old(d) and not _old(d)[0].get("retainOnDelete")


def test_preview_only_says_so_and_up_forgets_it_without_the_provider(old_stack: tuple[Double, Any], capsys: pytest.CaptureFixture[str]) -> None:
    d, _ = old_stack
    before = d.resources()
    rc, out, err = run(d, capsys, "preview", "--stack", "dev")
    assert rc == 0, err
    assert ("note: shop-dev-appdb-password-admin (postgresql:index/grantRole:GrantRole) is retired (issue 23: rds_password is granted by "
            "the deploy, guarded (docs/first-deploy.md)); deleting it would REVOKE rds_password from the master") in out
    assert "the commands that update (up, deploy, release, destroy) mark it retainOnDelete first, so they only forget it" in out
    assert d.resources() == before  # a preview never changes the state

    rc, out, err = run(d, capsys, "up", "--stack", "dev")  # no --yes, no terminal: refused before any mark
    assert rc == 1 and "without confirmation" in err and d.resources() == before

    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0, err
    assert "state: shop-dev-appdb-password-admin (postgresql:index/grantRole:GrantRole) is retired" in out
    assert "after the yes, up stack dev marks it retainOnDelete, so the update only forgets it (the provider is not called)" in out
    assert f"delete   {GRANT} shop-dev-appdb-password-admin (retained: forgotten, not deleted)" in out
    assert REVOKED not in out + err  # the provider was never asked to delete it
    assert _old(d) == []
    assert not any(OLD_URN in (r.get("dependencies") or []) for r in d.resources())  # the engine rewrote the chain
    assert verify_integrity(d.resources()) is None

    n = len(d.calls())
    rc, out, err = run(d, capsys, "up", "--stack", "dev", "--yes")
    assert rc == 0 and "retired" not in out  # nothing left to retire...
    assert not any(c[:2] == ["stack", "export"] for c in d.commands()[n:])  # ...and no state read for it


def test_import_refuses_a_dangling_dependency_and_reencrypts_shown_secrets(old_stack: tuple[Double, Any]) -> None:
    d, stack = old_stack
    exported = stack.export_stack()
    revealed = [r for r in exported.deployment["resources"] if "plaintext" in str(r.get("outputs"))]
    assert revealed  # export --show-secrets shows plaintext
    dangling = [r for r in exported.deployment["resources"] if r["urn"] != OLD_URN]  # dropped, its dependent kept
    before = d.resources()
    with pytest.raises(auto.CommandError) as refused:
        stack.import_stack(auto.Deployment(version=3, deployment={**exported.deployment, "resources": dangling}))
    text = str(refused.value)
    assert f"state file contains errors: resource {dangling[-1]['urn']}'s dependency {OLD_URN} refers to missing resource" in text
    assert "importing this file could be dangerous; rerun with --force to proceed anyway" in text
    assert d.resources() == before
    stack.import_stack(exported)
    at_rest = next(r for r in d.resources() if r["urn"] == revealed[0]["urn"])
    assert "plaintext" not in str(at_rest["outputs"]) and "ciphertext" in str(at_rest["outputs"])


def test_a_later_deploy_forgets_the_retired_grant_in_phase_3(pg: PgServer, pulumi_double: Double, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`deploy` on a stack an old release left: the GrantRole sits in the app database's chain (the
    old program made the Database depend on it), under the postgresql provider; phase 3 marks it
    before its preview and the up forgets it; the master keeps rds_password (no provider Delete)."""
    d = pulumi_double
    with deploy_world(pg, d, monkeypatch, capsys) as w:
        assert w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")[0] == 0
        opts = auto.LocalWorkspaceOptions(env_vars={"PULUMI_CONFIG_PASSPHRASE": "e2e passphrase",
                                                    "PULUMI_BACKEND_URL": f"file://{d.project / '.pulumi-state'}"})
        stack = auto.select_stack("dev", work_dir=str(d.project), opts=opts)
        exported = stack.export_stack()
        assert exported.deployment is not None
        resources = exported.deployment["resources"]
        provider = next(r for r in resources if r["type"] == "pulumi:providers:postgresql")
        database = next(i for i, r in enumerate(resources) if r["type"] == "postgresql:index/database:Database")
        urn = f"urn:pulumi:dev::pghome::{resources[database]['urn'].split('::')[2].rsplit('$', 1)[0]}${GRANT}::shop-dev-appdb-password-admin"
        resources.insert(database, _grant(urn, parent=resources[database]["parent"], provider=f"{provider['urn']}::{provider['id']}"))
        resources[database + 1].setdefault("dependencies", []).append(urn)
        stack.import_stack(exported)
        monkeypatch.setenv("PULUMI_DOUBLE_FAIL_ON", "password-admin")
        monkeypatch.setenv("PULUMI_DOUBLE_FAIL_MESSAGE", REVOKED)

        rc, out, err = w.run("deploy", "--stack", "dev", "--yes", "--local-rotation")
        assert rc == 0, err + out
        assert "state: shop-dev-appdb-password-admin (postgresql:index/grantRole:GrantRole) is retired" in out
        assert "after the yes, deploy phase 3/5 marks it retainOnDelete" in out and REVOKED not in out + err
        assert f"delete   {GRANT} shop-dev-appdb-password-admin (retained: forgotten, not deleted)" in out
        state = (d.project / ".pulumi-state/.pulumi/stacks/pghome/dev.json")
        after = yaml.safe_load(state.read_text())["checkpoint"]["latest"]["resources"]
        assert not any(r["urn"] == urn or urn in (r.get("dependencies") or []) for r in after)


def test_a_release_forgets_the_retired_grant_too(old_stack: tuple[Double, Any], aws: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`release` runs its own `up` (bootstrap/cli/release.py): it marks the retired grant after the yes too."""
    d, _ = old_stack
    out = first_release(d, aws, monkeypatch, capsys, "1.4.2")
    assert "after the yes, release 1.4.2 to stack dev marks it retainOnDelete" in out
    assert f"delete   {GRANT} shop-dev-appdb-password-admin (retained: forgotten, not deleted)" in out
    assert REVOKED not in out and _old(d) == []


def test_destroy_forgets_the_retired_grant_as_well(old_stack: tuple[Double, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """The plan calls the delete a forget for every updating command, so destroy marks it too."""
    d, _ = old_stack
    rc, out, err = run(d, capsys, "destroy", "--stack", "dev", "--yes", "--allow-data-loss")
    assert rc == 0, err
    assert "after the yes, destroy stack dev marks it retainOnDelete" in out and REVOKED not in out + err
    assert d.resources() == []

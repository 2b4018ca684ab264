"""Deploy phases 2 and 4 through the stack's rotation function (Deployer's `remote_rotation` seam),
with the fake workspace of tests/test_deploy.py: used only when the stack exports rotationFunctionArn,
never for IAM-auth logins; the in-process path otherwise (and with --local-rotation)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.test_deploy import FakeStack, FakeWorld

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:shop-dev-db-rotation"


@pytest.fixture
def with_function(monkeypatch: pytest.MonkeyPatch) -> None:
    real = FakeStack.outputs

    def outputs(self: Any) -> dict[str, Any]:
        out = dict(real(self))
        if out:
            out["rotationFunctionArn"] = SimpleNamespace(value=ARN, secret=False)
        return out

    monkeypatch.setattr(FakeStack, "outputs", outputs)


def _recorder(calls: list[tuple[Any, ...]]) -> Any:
    def remote(outputs: dict[str, Any], roles: tuple[str, ...], start: bool = True) -> None:
        calls.append((outputs["rotationFunctionArn"], roles, start))

    return remote


def test_phases_2_and_4_go_through_the_function_when_the_stack_has_one(with_function: None) -> None:
    w, out, calls = FakeWorld(), list[str](), list[tuple[Any, ...]]()
    w.needs_first = {"master", "app", "migrator"}  # no immediate rotation has finished yet
    assert w.deployer(out, remote_rotation=_recorder(calls)).deploy() == 0
    assert calls == [(ARN, ("master",), True), (ARN, ("app", "migrator"), True)]
    assert not [x for x in w.log if x.startswith("rotate")]  # nothing rotated in-process
    assert w.log.index("up appDb=false") < w.log.index("up appDb=true +PGPASSWORD")
    assert any(line.startswith("[phase 2/5] master: rotate through the stack's rotation function") for line in out)


def test_a_first_deploy_whose_immediate_master_rotation_finished_does_not_rotate_it_again(with_function: None) -> None:
    """Phase 1's SecretRotation already rotated the master inside the VPC (AWSPREVIOUS/AWSCURRENT,
    no AWSPENDING: needs_first_rotation is false): phase 2 only joins what might be in progress."""
    w, out, calls = FakeWorld(), list[str](), list[tuple[Any, ...]]()
    w.deployer(out, remote_rotation=_recorder(calls)).deploy()
    assert calls[0] == (ARN, ("master",), False)
    assert not [x for x in w.log if x.startswith("rotate")]


def test_a_first_deploy_joins_the_login_rotations_phase_3_started_and_starts_only_the_unrotated(with_function: None) -> None:
    """Phase 3's new SecretRotations rotate immediately: a login whose first rotation finished is
    joined (start=False, no second rotation and redeploy), one still without a password is started."""
    w, calls = FakeWorld(), list[tuple[Any, ...]]()
    w.needs_first = {"migrator"}
    assert w.deployer([], remote_rotation=_recorder(calls)).deploy() == 0
    assert calls[1:] == [(ARN, ("migrator",), True), (ARN, ("app",), False)]


def test_later_deploys_rotate_the_master_through_the_function_only_with_rotate(with_function: None) -> None:
    w, calls = FakeWorld(deployed=True), list[tuple[Any, ...]]()
    w.deployer([], remote_rotation=_recorder(calls)).deploy()
    assert calls == [(ARN, ("master",), False)]  # an interrupted rotation would still be joined
    w, calls = FakeWorld(deployed=True), []
    w.deployer([], remote_rotation=_recorder(calls)).deploy(rotate=True)
    assert calls == [(ARN, ("master",), True), (ARN, ("app", "migrator"), True)]


def test_a_failed_remote_master_rotation_names_the_phase_and_how_to_go_on(with_function: None) -> None:
    from bootstrap.deploy.deployer import DeployError
    from dbcore.secret import RotationError

    def failing(outputs: dict[str, Any], roles: tuple[str, ...], start: bool = True) -> None:
        raise RotationError("the rotation function failed at setSecret for arn:m: RDS refused the password")

    w = FakeWorld()
    with pytest.raises(DeployError) as err:
        w.deployer([], remote_rotation=failing).deploy()
    text = str(err.value)
    assert text.startswith("phase 2/5 (rotating master through the rotation function) failed: the rotation function failed at setSecret")
    assert "Done so far: infrastructure deployed without the app database" in text and "go on from phase 2/5" in text
    assert not [x for x in w.log if x.startswith("up appDb=true")]


def test_iam_logins_are_not_rotated_remotely_or_locally(with_function: None) -> None:
    w, calls = FakeWorld(), list[tuple[str, ...]]()
    w.deployer([], remote_rotation=lambda outputs, roles, start=True: calls.append(roles), password_logins=("migrator",)).deploy()
    assert calls == [("master",), ("migrator",)]
    w = FakeWorld()
    w.deployer([], password_logins=("migrator",)).deploy()
    assert [x for x in w.log if x.startswith("rotate")] == ["rotate master", "rotate migrator"]


def test_without_the_function_phase_4_stays_in_process() -> None:
    w, calls = FakeWorld(), list[Any]()
    w.deployer([], remote_rotation=lambda outputs, roles, start=True: calls.append(roles)).deploy()
    assert calls == [] and [x for x in w.log if x.startswith("rotate")] == ["rotate master", "rotate app", "rotate migrator"]


def test_a_failed_remote_login_rotation_names_phase_4_and_what_was_done(with_function: None) -> None:
    from bootstrap.deploy.deployer import DeployError
    from dbcore.secret import RotationError

    def failing_logins(outputs: dict[str, Any], roles: tuple[str, ...], start: bool = True) -> None:
        if roles != ("master",):
            raise RotationError("the rotation function failed at testSecret for arn:app: the database rejected the AWSPENDING login.")

    w = FakeWorld()
    with pytest.raises(DeployError) as err:
        w.deployer([], remote_rotation=failing_logins).deploy()
    text = str(err.value)
    assert text.startswith("phase 4/5 (rotating the login roles through the rotation function) failed: the rotation function failed at testSecret")
    assert "master rotation finished through the rotation function; app database deployed" in text and "go on from phase 4/5" in text
    assert "audit" not in w.log

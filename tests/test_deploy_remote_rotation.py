"""Deploy phase 4 through the stack's rotation function (Deployer's `remote_rotation` seam), with
the fake workspace of tests/test_deploy.py: used only when the stack exports rotationFunctionArn,
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


def test_phase_4_goes_through_the_function_when_the_stack_has_one(with_function: None) -> None:
    w, out, calls = FakeWorld(), list[str](), list[tuple[Any, ...]]()
    assert w.deployer(out, remote_rotation=lambda outputs, roles: calls.append((outputs["rotationFunctionArn"], roles))).deploy() == 0
    assert calls == [(ARN, ("app", "migrator"))]
    assert [x for x in w.log if x.startswith("rotate")] == ["rotate master"]  # phase 2 stays in-process
    assert any("through the stack's rotation function" in line for line in out)


def test_iam_logins_are_not_rotated_remotely_or_locally(with_function: None) -> None:
    w, calls = FakeWorld(), list[tuple[str, ...]]()
    w.deployer([], remote_rotation=lambda outputs, roles: calls.append(roles), password_logins=("migrator",)).deploy()
    assert calls == [("migrator",)]
    w = FakeWorld()
    w.deployer([], password_logins=("migrator",)).deploy()
    assert [x for x in w.log if x.startswith("rotate")] == ["rotate master", "rotate migrator"]


def test_without_the_function_phase_4_stays_in_process() -> None:
    w, calls = FakeWorld(), list[Any]()
    w.deployer([], remote_rotation=lambda outputs, roles: calls.append(roles)).deploy()
    assert calls == [] and [x for x in w.log if x.startswith("rotate")] == ["rotate master", "rotate app", "rotate migrator"]

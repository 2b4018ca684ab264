"""The Deployer's collaborators, as protocols: the seams tests replace (tests/test_deploy.py's fakes,
the pulumi double) and the real ones implement (bootstrap/deploy/workspace.py's Workspace, the
rotators of bootstrap/rotation/, bootstrap/access/tunnel.py's DbRoute)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from bootstrap.deploy.workspace import StackLike


class WorkspaceLike(Protocol):
    stack: str

    def exists(self) -> bool: ...
    def open(self, extra_env: Mapping[str, str] | None = None) -> StackLike: ...
    def create(self) -> StackLike: ...


class RotatorLike(Protocol):
    def rotate(self, role: str) -> None: ...
    def current_password(self, role: str) -> str: ...
    def needs_first_rotation(self, role: str) -> bool: ...
    def last_rotated_days(self, role: str) -> float | None: ...
    def check_admin(self) -> None: ...


class RemoteRotation(Protocol):
    """Rotation through the stack's rotation function (deploy_cli: RemoteRotator.rotate): a rotation
    in progress is joined; when none is, RotateSecret only if `start`."""

    def __call__(self, outputs: dict[str, Any], roles: tuple[str, ...], start: bool = True) -> Any: ...


class RouteLike(Protocol):
    """How the DB phases reach the database (bootstrap.access.tunnel.DbRoute): extra env for `pulumi`."""

    def pulumi_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]: ...


class _Direct:
    def pulumi_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        return {}


@contextlib.contextmanager
def direct_route(outputs: Mapping[str, Any]) -> Iterator[RouteLike]:
    yield _Direct()

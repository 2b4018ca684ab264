"""The alternating ("multi-user") rotation of the app login, in one place for both paths that rotate
it: the rotation function (rotation_function/steps.py) and the in-process rotation of
`python -m bootstrap rotate --local` / `deploy --local-rotation` (bootstrap/rotation/local.py).

The app's tasks read the secret (username and password together) only when they start. So a
rotation never changes the password of the user AWSCURRENT names: it gives the *other* user of the
pair `<prefix>_app` / `<prefix>_app_clone` (components/pgmodel.py creates both) a new password,
then moves AWSCURRENT to it and forces a new deployment of the service. Tasks still running on the
previous user keep working until the next-but-one rotation, which dbcore/rollout.py holds back
while the service's last deployment has not completed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from components.pgmodel import CLONE_SUFFIX
from dbcore.secret import RotationError

# The login rotated this way (the role key of its secret; __main__.py hands the function its ARN).
ALTERNATING_ROLE = "app"


def other_user(username: str) -> str:
    """The alternate of a pair: `x` <-> `x_clone`."""
    return username[: -len(CLONE_SUFFIX)] if username.endswith(CLONE_SUFFIX) else username + CLONE_SUFFIX


def pending_user(current: Mapping[str, Any], base: str | None = None) -> str:
    """The user the new version names: the other one of the pair than AWSCURRENT's. With `base`
    (the pair's first user, from the stack's settings), a secret naming neither user is refused
    rather than guessed at: its tasks would hold a login this rotation knows nothing about."""
    user = str(current.get("username") or base or "")
    if not user:
        raise RotationError("the app secret's AWSCURRENT names no user; deploy the app database first")
    if base is not None and user not in (base, base + CLONE_SUFFIX):
        raise RotationError(f"the app secret's AWSCURRENT names user {user}, not {base} or {base + CLONE_SUFFIX}; "
                            "restore its username (or redeploy the app database) before rotating")
    return other_user(user)


def refuse_active_user(pending: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """setSecret never changes the password of the user AWSCURRENT names while it has one: every
    running task holds that login."""
    user = pending.get("username")
    if user == current.get("username") and current.get("password"):
        raise RotationError(f"AWSPENDING names the active user {user}; the alternating rotation only changes the inactive one")


def rollout_since(sm: Any, secret_id: str, current: Mapping[str, Any]) -> tuple[bool, dt.datetime | None]:
    """(check the rollout?, since when): the service's last deployment must have completed, and
    have started after AWSCURRENT was created (GetSecretValue's CreatedDate), else tasks may hold
    the user this rotation changes. Not while AWSCURRENT has no password (the value the app
    database is created with): no task holds a working login, so there is nothing to cut off, and
    a first rotation never waits on a service that cannot start without it."""
    if not current.get("password"):
        return False, None
    created = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT").get("CreatedDate")
    return True, created if isinstance(created, dt.datetime) else None

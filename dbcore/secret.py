"""The rotation protocol's shared vocabulary: its one-sentence error, AWS error codes, a DB secret's
JSON value, a new password under the one policy, and what an authentication failure looks like."""

from __future__ import annotations

import json
from typing import Any

from dbcore import password_policy


class RotationError(RuntimeError):
    """A failure explained in one sentence (the CLI prints it and exits 1, no traceback)."""


def aws_error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (AccessDenied, ...), else None."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None


def new_password(length: int = password_policy.LENGTH) -> str:
    """A new password under the project's one policy (dbcore/password_policy.py)."""
    return password_policy.generate(length)


def secret_json(sm: Any, secret_id: str, **version: str) -> dict[str, Any]:
    """A DB secret's value (the engine/host/port/username/password JSON object), of a version or
    stage when given; one sentence when it is not that shape."""
    raw = sm.get_secret_value(SecretId=secret_id, **version).get("SecretString") or ""
    try:
        value = json.loads(raw)
    except ValueError:
        raise RotationError(f"secret {secret_id} does not hold JSON; expected the engine/host/port/username/password format") from None
    if not isinstance(value, dict):
        raise RotationError(f"secret {secret_id} does not hold a JSON object")
    return value


def is_auth_failure(exc: Exception) -> bool:
    text = str(exc).lower()
    return "password authentication failed" in text or "no password supplied" in text or "authentication failed" in text

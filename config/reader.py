"""Typed access to raw config values that collects every problem instead of stopping at the first."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from config.schema import ProjectSchema

T = TypeVar("T")

_MISSING = object()


class Reader:
    def __init__(self, raw: Mapping[str, Any], schema: ProjectSchema):
        self.schema = schema
        self.problems: list[str] = []
        self.failed: set[str] = set()
        self.read: set[str] = set()
        self.values: dict[str, Any] = {}
        prefix = schema.project + ":"
        for full_key, value in raw.items():
            if full_key.startswith(prefix):
                self.values[full_key[len(prefix) :]] = value
        self.other = {k: v for k, v in raw.items() if not k.startswith(prefix)}

    def qualified(self, key: str) -> str:
        return f"{self.schema.project}:{key}"

    def fail(self, key: str, value: Any, allowed: str) -> None:
        # One error per key: a follow-on rule about a value already rejected adds only noise.
        if key in self.failed:
            return
        self.failed.add(key)
        self.problems.append(f"{self.qualified(key)} = {show(value)} is invalid: {allowed}")

    def _raw(self, key: str) -> Any:
        spec = self.schema.keys.get(key)
        if spec is None:  # a programming error, not a user error
            raise KeyError(f"config key {key!r} is read but not declared in Pulumi.yaml")
        self.read.add(key)
        if key in self.values:
            return self.values[key]
        return spec.default if spec.has_default else _MISSING

    def string(self, key: str, *, pattern: str | None = None, allowed: str = "") -> str:
        value = self._raw(key)
        if value is _MISSING:
            self.problems.append(f"{self.qualified(key)} is required: {allowed or 'set it in the stack file'}")
            return ""
        if not isinstance(value, str):
            value = str(value)
        if pattern is not None and not re.fullmatch(pattern, value):
            self.fail(key, value, allowed or f"must match {pattern}")
        return value

    def integer(self, key: str, lo: int | None = None, hi: int | None = None) -> int:
        value = self._raw(key)
        bounds = _bounds_text(lo, hi)
        try:
            if isinstance(value, bool) or value is _MISSING:
                raise ValueError
            number = int(value) if not isinstance(value, str) else int(value.strip(), 10)
        except (TypeError, ValueError):
            self.fail(key, value, f"must be an integer{bounds}")
            return lo if lo is not None else 0
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            self.fail(key, value, f"must be an integer{bounds}")
        return number

    def boolean(self, key: str) -> bool:
        value = self._raw(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.fail(key, value, "must be true or false")
        return False

    def optional_boolean(self, key: str, default: bool) -> bool:
        """A boolean key declared without a default in Pulumi.yaml: `default` when unset."""
        if key not in self.values:
            self._raw(key)
            return default
        return self.boolean(key)

    def optional_integer(self, key: str, default: int, lo: int | None = None, hi: int | None = None) -> int:
        """An integer key declared without a default in Pulumi.yaml: `default` (per environment) when unset."""
        if key not in self.values:
            self._raw(key)
            return default
        return self.integer(key, lo, hi)

    def choice(self, key: str, enum_type: type[T]) -> T:
        allowed = [m.value for m in enum_type]  # type: ignore[attr-defined]
        value = self.string(key, allowed=f"one of {', '.join(allowed)}")
        try:
            return enum_type(value)  # type: ignore[call-arg]
        except ValueError:
            if value:
                self.fail(key, value, f"must be one of {', '.join(allowed)}")
            return enum_type(allowed[0])  # type: ignore[call-arg]

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._raw(key)
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else []
            except json.JSONDecodeError:
                self.fail(key, value, "must be a list of strings (YAML list, or a JSON array)")
                return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, value, "must be a list of strings")
            return ()
        return tuple(value)

    def check(self, ok: bool, key: str, value: Any, allowed: str) -> None:
        if not ok:
            self.fail(key, value, allowed)


def show(value: Any) -> str:
    if value is _MISSING:
        return "<unset>"
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def _bounds_text(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


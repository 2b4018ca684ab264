"""Stack outputs as the Automation API returns them (an OutputValue per key, with `.value` and
`.secret`), turned into what the deploy commands print and compare. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def masked_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("[secret]" if getattr(ov, "secret", False) else getattr(ov, "value", ov)) for k, ov in outputs.items()}


def output_value(outputs: Mapping[str, Any], key: str) -> Any:
    ov = outputs.get(key)
    return getattr(ov, "value", ov)


def plain_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Stack outputs as plain values (the Automation API wraps each in an OutputValue)."""
    return {k: output_value(outputs, k) for k in outputs}


def as_bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"

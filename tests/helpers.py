"""Shared assertions for graph tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from bootstrap.mockgraph import Resource, run_stack
from components.config import ConfigError


def assert_config_error(stack: str, overrides: Mapping[str, Any], *fragments: str) -> ConfigError:
    """Running `stack` with `overrides` fails with a ConfigError whose message contains every
    fragment, and not a single resource was registered."""
    recorded: list[Resource] = []
    with pytest.raises(ConfigError) as excinfo:
        run_stack(stack, overrides, recorded=recorded)
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in error: {message}"
    assert recorded == [], f"{len(recorded)} resources registered before the config error: {[r.name for r in recorded]}"
    return excinfo.value

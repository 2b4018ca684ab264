"""Shared helpers: config-error assertions for graph tests, an isolated app database model for PostgreSQL tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from bootstrap.plan.mockgraph import Resource, run_stack
from components.pgmodel import DbModel
from config.load import ConfigError, load_settings
from config.stack_file import stack_config


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


def isolated_model(prefix: str, **overrides: str) -> DbModel:
    """The dev stack's app database model under its own names (roles `<prefix>_*`, database
    `<prefix>_db`, master `<prefix>_master`), so test modules can share one server without colliding."""
    names = {"appDbRolePrefix": prefix, "appDbName": f"{prefix}_db", "dbMasterUsername": f"{prefix}_master"}
    settings = load_settings(stack_config("dev", {**names, **overrides}), stack="dev", check_credentials=False)
    return settings.app_database.model()


class FakeClock:
    """A monotonic clock for waits under test: `clock()` reads it, `clock.sleep(s)` advances it at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

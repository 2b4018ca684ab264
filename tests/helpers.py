"""Shared helpers: config-error assertions for graph tests, an isolated app database model for PostgreSQL tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import psycopg
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


Row = TypeVar("Row")
T = TypeVar("T")


def present(value: T | None) -> T:
    """`value`, which the test relies on being set (a field the SDK or an API types as Optional)."""
    assert value is not None
    return value


def one_row(cursor: psycopg.Cursor[Row]) -> Row:
    """The row of a query that always returns one (`fetchone()` narrowed: None is a failed test)."""
    row = cursor.fetchone()
    assert row is not None, "the query returned no row"
    return row


def isolated_model(prefix: str, **overrides: str) -> DbModel:
    """The dev stack's app database model under its own names (roles `<prefix>_*`, database
    `<prefix>_db`, master `<prefix>_master`), so test modules can share one server without colliding."""
    names = {"appDbRolePrefix": prefix, "appDbName": f"{prefix}_db", "dbMasterUsername": f"{prefix}_master"}
    settings = load_settings(stack_config("dev", {**names, **overrides}), stack="dev", check_credentials=False)
    return settings.app_database.model()


class FakeClock:
    """The one fake clock of the tests: calling it reads a monotonic time, `sleep(s)` advances it at
    once, `wall()` is the wall-clock time that far after `wall0`, and `clock()` hands all three to
    the rotation's waits as their `Clock` seam."""

    def __init__(self, wall0: float = 1_700_000_000.0) -> None:
        self.now = 0.0
        self.wall0 = wall0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def wall(self) -> float:
        return self.wall0 + self.now

    def clock(self) -> Any:
        from bootstrap.rotation.remote import Clock

        return Clock(self, self.sleep, self.wall)


def assert_one_sentence_error(rc: int, err: str, starts_with: str) -> None:
    """The CLI's failure contract (GUIDE: one clear sentence, non-zero exit, never a traceback): exit 1,
    exactly one line on stderr, beginning with `starts_with`. One place instead of a copy per test."""
    assert rc == 1, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(starts_with), err


REPO_ROOT = Path(__file__).resolve().parent.parent


def run_bootstrap(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m bootstrap <args>` as a real subprocess, as a newcomer runs it: no AWS credentials,
    no Pulumi CLI, the stand-in rotation archive (tests/conftest.py)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PGHOME_ROTATION_ARCHIVE": os.environ["PGHOME_ROTATION_ARCHIVE"]}
    return subprocess.run([sys.executable, "-m", "bootstrap", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)

"""Issue 23 item 1: two rotations at once are serialised by the database's advisory lock, not by
Lambda reserved concurrency. On the real local PostgreSQL (tests/pgserver.py), with moto for
Secrets Manager and RDS (tests/rotation_lambda_world.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dbcore.rotation_lock import LOCK_KEY, rotation_lock
from dbcore.secret import RotationError
from rotation_function.steps import STEPS
from tests.pgserver import PgServer
from tests.rotation_lambda_world import LambdaWorld

WAIT_S = 20.0  # generous on a loaded 2-core machine; the test never sleeps this long when it passes




def _rotate_in_thread(lw: LambdaWorld, role: str, token: str, errors: list[BaseException], out: list[str]) -> threading.Thread:
    runner = lw.runner(out=out.append)

    def run() -> None:
        try:
            for step in STEPS:
                lw.step(role, step, token, runner)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"rotate-{role}")
    thread.start()
    return thread


def _until(condition: Any) -> bool:
    for _ in range(int(WAIT_S / 0.05)):
        if condition():
            return True
        threading.Event().wait(0.05)
    return False


def test_two_overlapping_rotations_change_passwords_one_after_the_other(lw: LambdaWorld, pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    w = lw.w
    events: list[str] = []
    errors: list[BaseException] = []
    master_log: list[str] = []
    migrator_log: list[str] = []
    master_started, master_release = threading.Event(), threading.Event()
    runner_class = type(lw.runner())
    original_set = runner_class.set

    def recording_set(self: Any, arn: str, token: str) -> None:
        if arn == lw.arns["migrator"]:
            events.append("migrator setSecret entered")
        if arn == lw.arns["master"]:
            # the master's setSecret stays in progress until the test lets it go (on RDS the new
            # password takes a while to reach every login)
            master_started.set()
            assert master_release.wait(WAIT_S), "the test never released the master's setSecret"
        original_set(self, arn, token)
        if arn == lw.arns["master"]:
            events.append("master password applied")

    monkeypatch.setattr(runner_class, "set", recording_set)
    master_token, migrator_token = lw.start("master"), lw.start("migrator")
    master = _rotate_in_thread(lw, "master", master_token, errors, master_log)
    assert master_started.wait(WAIT_S), "the master rotation never reached setSecret"
    # The master's setSecret holds the lock now (its password change in progress): a migrator rotation
    # started meanwhile reaches its setSecret, connects as the master, and must wait there.
    migrator = _rotate_in_thread(lw, "migrator", migrator_token, errors, migrator_log)
    assert _until(lambda: any("connected as master" in line for line in migrator_log)), migrator_log
    with pg.connect_super() as conn:
        holders = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted", (LOCK_KEY,)).fetchone()
    assert holders and holders[0] == 1
    threading.Event().wait(1.0)  # time for the migrator to run ahead if nothing held it back
    assert "migrator setSecret entered" not in events, "the migrator changed a password while the master's was being changed"
    master_release.set()
    master.join(WAIT_S)
    migrator.join(WAIT_S)
    assert not errors, errors
    assert not master.is_alive() and not migrator.is_alive()
    assert events.index("master password applied") < events.index("migrator setSecret entered")
    # both rotations completed: each secret's AWSCURRENT logs in, no AWSPENDING left, no lock left behind
    for role in ("master", "migrator"):
        current = w.secret(role)
        assert current and pg.can_login(current["username"], current["password"], current.get("dbname") or "postgres")
        stages = w.sm.describe_secret(SecretId=lw.arns[role])["VersionIdsToStages"]
        assert not any("AWSPENDING" in s for s in stages.values())
    with pg.connect_super() as conn:
        left = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s", (LOCK_KEY,)).fetchone()
    assert left and left[0] == 0


def test_a_lock_held_too_long_fails_the_step_in_one_sentence_and_changes_nothing(lw: LambdaWorld, pg: PgServer) -> None:
    w = lw.w
    lw.rotate("master")
    master = w.secret("master") or {}
    token = lw.start("migrator")
    lw.step("migrator", "createSecret", token)
    lines: list[str] = []
    with pg.connect_as(master["username"], master["password"]) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))  # another rotation, stuck
        runner = lw.runner(out=lines.append)
        runner.config = type(runner.config)(**{**runner.config.__dict__, "lock_wait_s": 0.3})
        with pytest.raises(Exception) as failed:
            lw.step("migrator", "setSecret", token, runner)
    message = str(failed.value)
    assert "another rotation kept the database's rotation lock" in message and "\n" not in message
    pending = w.secret("migrator", "AWSPENDING")
    assert pending and not pg.can_login(pending["username"], pending["password"], pending["dbname"])  # nothing changed
    # the holder's session ended, so the lock is free: the same token now finishes the rotation
    for step in STEPS[1:]:
        lw.step("migrator", step, token)
    current = w.secret("migrator")
    assert current and pg.can_login(current["username"], current["password"], current["dbname"])


def test_the_cli_rotator_waits_for_the_function_on_the_same_lock(lw: LambdaWorld, pg: PgServer) -> None:
    """`python -m bootstrap rotate` (bootstrap/rotation.py) and the function share one key."""
    w = lw.w
    lw.rotate("master")
    master = w.secret("master") or {}
    lines: list[str] = []
    rotator = w.rotator(out=lines.append)
    rotator.lock_wait_s = 0.3
    with pg.connect_as(master["username"], master["password"]) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        with pytest.raises(RotationError, match="another rotation kept the database's rotation lock"):
            rotator.rotate("migrator")
    rotator.rotate("migrator")  # resumes the AWSPENDING it stored
    current = w.secret("migrator")
    assert current and pg.can_login(current["username"], current["password"], current["dbname"])


def test_the_lock_is_released_when_the_block_raises(pg: PgServer) -> None:
    with pg.connect_super() as conn:
        conn.autocommit = True
        with pytest.raises(ValueError), rotation_lock(conn, "t", error=RuntimeError, wait_s=1):
            raise ValueError("step failed")
        held = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s", (LOCK_KEY,)).fetchone()
    assert held and held[0] == 0

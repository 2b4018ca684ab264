"""One rotation step at a time per database: a PostgreSQL advisory lock held on a master connection.

Why not Lambda reserved concurrency: Lambda refuses a reservation that leaves the account fewer
than 100 unreserved executions (new accounts often have a quota of 10), and a slot of 1 throttles
the second of two rotations Secrets Manager starts at once, which then leaves AWSPENDING behind.
Secrets Manager runs rotations of different secrets concurrently (RotateSecret is asynchronous),
so the function, and `python -m bootstrap rotate` beside it, serialise on the database instead:
the step that changes a password (setSecret) takes this lock first and keeps it until done.

The lock is session-level (`pg_try_advisory_lock`), so it needs autocommit and no transaction, and
the server frees it if the holder dies (a Lambda timeout closes the connection): a crashed step
can never wedge later rotations. Advisory locks are per database; every holder connects as the
master to the master secret's database, so they all meet on the same key.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from dbcore.waiting import wait_until

# A fixed key for "a pghome rotation is changing a password on this database" (a stable 32-bit
# number, so any session can see it in pg_locks as classid 0, objid LOCK_KEY).
LOCK_KEY = zlib.crc32(b"pghome:rotation:setSecret")
# The function's timeout is 600 s (components/rotation_function.py): wait at most 480 s for the
# other rotation, keeping the rest for this step's own work.
DEFAULT_WAIT_S = 480.0


@contextmanager
def rotation_lock(
    conn: psycopg.Connection,
    what: str,
    *,
    error: type[Exception],
    wait_s: float = DEFAULT_WAIT_S,
    interval_s: float = 2.0,
    heartbeat_s: float = 30.0,
    out: Callable[[str], None] = print,
) -> Iterator[None]:
    """Hold the rotation lock on `conn` (autocommit, connected as the master) while the block runs.

    Waits up to `wait_s` for another holder, saying every `heartbeat_s` what it waits for; then
    raises `error` with one sentence (the caller's step fails and is retried with the same token).
    """
    last_beat = 0.0

    def acquired() -> bool | None:
        row = conn.execute("SELECT pg_catalog.pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        return True if row and row[0] else None

    def waiting(elapsed: float) -> None:
        nonlocal last_beat
        if elapsed - last_beat >= heartbeat_s:
            last_beat = elapsed
            out(f"{what}: waiting for another rotation to finish changing a password ({int(elapsed)}s elapsed)")

    wait_until(acquired, timeout_s=wait_s, interval_s=interval_s, waiting=waiting, timed_out=lambda elapsed: error(
        f"{what}: another rotation kept the database's rotation lock for {int(elapsed)}s; this step is retried with the same token, "
        f"or re-run it once the other rotation has finished"))
    try:
        yield
    finally:
        try:
            conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", (LOCK_KEY,))
        except psycopg.Error:
            pass  # the connection is gone, and the server released the lock with it

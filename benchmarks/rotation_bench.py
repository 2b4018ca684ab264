"""Rotation benchmark: wall time of the DB work, and app connection failures during rotation.

Starts its own throwaway PostgreSQL (tests/pgserver.py) and runs Secrets Manager/RDS under moto.

    venv/bin/python benchmarks/rotation_bench.py [--rounds 5]

Client contract measured (what the app must do, see docs/rotation-and-deploy.md): connect with
the AWSCURRENT password; on "password authentication failed", re-read the secret and try
AWSPENDING, then AWSCURRENT again (a rotation may have been promoted meanwhile). A naive client
(AWSCURRENT only, no retry) is measured alongside to show the window the contract closes.

Then the same app login rotated by the rotation function's four steps with alternating users
(rotation_function/): a naive client that reads the secret once "at task start" (as ECS injects
it) and never again, across one rotation, and a naive client re-reading AWSCURRENT without retry.
Both must see 0 failed connections.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import psycopg  # noqa: E402

from tests.pgserver import PgServer, server_major  # noqa: E402
from tests.rotation_lambda_world import LambdaWorld  # noqa: E402
from tests.rotation_world import World, make_world  # noqa: E402


class LoadLoop(threading.Thread):
    """Connects as the app role continuously; counts failures for the naive and contract clients."""

    def __init__(self, world: World, pg: PgServer):
        super().__init__(daemon=True)
        self.world, self.pg = world, pg
        self.sm = boto3.client("secretsmanager", region_name=world.settings.region)
        self.name_ = f"{world.settings.prefix}/db/app"
        self.stop = threading.Event()
        self.attempts = self.naive_failures = self.contract_failures = self.retries = 0

    def _secret(self, stage: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.sm.get_secret_value(SecretId=self.name_, VersionStage=stage)["SecretString"]))
        except self.sm.exceptions.ResourceNotFoundException:
            return None

    def _try(self, s: dict[str, Any] | None) -> bool:
        if not s or not s.get("password"):
            return False
        try:
            with psycopg.connect(self.pg.dsn(s["username"], s["password"], s["dbname"])) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def run(self) -> None:
        while not self.stop.is_set():
            self.attempts += 1
            if self._try(self._secret("AWSCURRENT")):
                continue
            self.naive_failures += 1
            self.retries += 1
            if not (self._try(self._secret("AWSPENDING")) or self._try(self._secret("AWSCURRENT"))):
                self.contract_failures += 1


class TaskLoop(threading.Thread):
    """A naive task: credentials read once at start (held), or AWSCURRENT re-read per attempt
    (held=False); no retry either way."""

    def __init__(self, world: World, pg: PgServer, held: bool):
        super().__init__(daemon=True)
        self.world, self.pg, self.held = world, pg, held
        self.sm = boto3.client("secretsmanager", region_name=world.settings.region)
        self.name_ = f"{world.settings.prefix}/db/app"
        self.creds = self._read()
        self.stop = threading.Event()
        self.attempts = self.failures = 0

    def _read(self) -> dict[str, Any]:
        return dict(json.loads(self.sm.get_secret_value(SecretId=self.name_, VersionStage="AWSCURRENT")["SecretString"]))

    def run(self) -> None:
        while not self.stop.is_set():
            s = self.creds if self.held else self._read()
            self.attempts += 1
            try:
                with psycopg.connect(self.pg.dsn(s["username"], s["password"], s["dbname"])) as conn:
                    conn.execute("SELECT 1")
            except psycopg.OperationalError:
                self.failures += 1


def alternating(world: World, pg: PgServer, rounds: int) -> tuple[TaskLoop, TaskLoop, list[float]]:
    lw = LambdaWorld(world)
    try:
        lw.rotate("app")  # first password: the state right after provisioning
        started = TaskLoop(world, pg, held=True)  # reads the secret once, now
        rereads = TaskLoop(world, pg, held=False)
        for loop in (started, rereads):
            loop.start()
        time.sleep(0.3)
        times = []
        t0 = time.perf_counter()
        lw.rotate("app")  # the one rotation the held credentials must survive
        times.append(time.perf_counter() - t0)
        time.sleep(0.3)
        started.stop.set()
        started.join()
        for _ in range(rounds - 1):
            t0 = time.perf_counter()
            lw.rotate("app")
            times.append(time.perf_counter() - t0)
            time.sleep(0.1)
        rereads.stop.set()
        rereads.join()
        return started, rereads, times
    finally:
        lw.drop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    pg = PgServer.start()
    try:
        with make_world(pg) as world:
            marks: dict[str, float] = {}

            def hook(role: str, step: str) -> None:
                marks[step] = time.perf_counter()

            rot = world.rotator(hook=hook)
            rot.rotate("master")
            rot.rotate("app")  # first password, so the load loop has something to use
            results: dict[str, list[tuple[float, float]]] = {"master": [], "app": []}
            loop = LoadLoop(world, pg)
            loop.start()
            time.sleep(0.3)
            for _ in range(args.rounds):
                for role in ("master", "app"):
                    t0 = time.perf_counter()
                    rot.rotate(role)
                    total = time.perf_counter() - t0
                    db = marks["testSecret"] - marks["createSecret"]  # setSecret + testSecret
                    results[role].append((db, total))
                    time.sleep(0.1)
            time.sleep(0.3)
            loop.stop.set()
            loop.join()
            started, rereads, alt_times = alternating(world, pg, args.rounds)
        print(f"rotation benchmark: {args.rounds} rounds, local PostgreSQL {server_major()} over TLS, Secrets Manager/RDS under moto")
        for role, rows in results.items():
            dbs, totals = [r[0] * 1000 for r in rows], [r[1] * 1000 for r in rows]
            print(f"  {role:<7} DB work (setSecret+testSecret): median {statistics.median(dbs):7.1f} ms  max {max(dbs):7.1f} ms"
                  f"   whole rotation incl. moto: median {statistics.median(totals):7.1f} ms")
        print(f"  app load loop: {loop.attempts} connection attempts during {args.rounds} app rotations")
        print(f"    naive client (AWSCURRENT only, no retry): {loop.naive_failures} failed")
        print(f"    contract client (retry AWSPENDING, then re-read AWSCURRENT): {loop.contract_failures} failed ({loop.retries} retries)")
        print(f"  alternating users (rotation function's four steps), {len(alt_times)} rotations, median {statistics.median(alt_times) * 1000:7.1f} ms each:")
        print(f"    naive task, secret read once at start, across one rotation: {started.failures} failed of {started.attempts} connections")
        print(f"    naive client re-reading AWSCURRENT, no retry, across {len(alt_times)} rotations: {rereads.failures} failed of {rereads.attempts} connections")
        ok = loop.contract_failures == 0 and started.failures == 0 and rereads.failures == 0
        return 0 if ok else 1
    finally:
        pg.stop()


if __name__ == "__main__":
    sys.exit(main())

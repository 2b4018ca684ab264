"""`restore` from start to end: refuse bad input, restore (bootstrap/restore.py), verify through
the access path (bootstrap/tunnel.py, bootstrap/restore_verify.py), report the measured recovery
time and data age; then either delete the instance (`--drill`, on every exit) or print the
switch-over steps (nothing else is changed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bootstrap.restore.rds import Point, RestoreError, Restorer, Source, duration, show_time, target_identifier
from bootstrap.restore.verify import Check, Facts, compare, failed, model_checks, read_facts
from dbcore import pgconn

EXIT_OK, EXIT_FAILED = 0, 1


@dataclass
class Seams:
    """Everything that reaches AWS or the network (tests: moto, a Stubber, a loopback forwarder)."""

    rds: Any
    secrets: Any
    ecs: Any
    sessions: Any  # bootstrap.tunnel.SessionStarter
    probe: Callable[[str, int], bool]
    backups: Any = None  # DescribeDBInstanceAutomatedBackups; default: rds
    tunnel_kw: dict[str, Any] = field(default_factory=dict)  # timeout_s, interval_s, clock, sleep of the tunnel


@dataclass(frozen=True)
class Options:
    stack: str
    to_time: str = ""
    latest: bool = False
    snapshot: str = ""
    drill: bool = False
    tunnel: str = "auto"
    ca_file: str = ""
    region: str | None = None


@dataclass
class Outcome:
    target: str = ""
    checks: list[Check] = field(default_factory=list)
    error: str = ""
    cleanup_error: str = ""
    available_s: float | None = None
    recovery_s: float | None = None

    @property
    def ok(self) -> bool:
        return not self.error and not self.cleanup_error and not failed(self.checks)


def plain(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in outputs.items()}


def master_credential(secrets: Any, secret_name: str) -> tuple[str, str]:
    from dbcore.secret import secret_json

    try:
        value = secret_json(secrets, secret_name)
    except Exception as exc:
        from bootstrap.restore.rds import aws_message

        raise RestoreError(f"cannot read the master secret {secret_name} ({aws_message(exc)}); the restore needs secretsmanager:GetSecretValue on it") from None
    if not value.get("username") or not value.get("password"):
        raise RestoreError(f"the master secret {secret_name} has no username/password")
    return str(value["username"]), str(value["password"])


def _tags(source: Source, kind: str, point: Point, target: str) -> dict[str, str]:
    """The source's tags (Project, Stack, ...; cost reports keep working), then what marks a restore."""
    tags = {t["Key"]: t["Value"] for t in source.raw.get("TagList") or [] if not str(t.get("Key", "")).startswith("aws:")}
    tags.update({"Name": target, "pghome:restore": kind, "pghome:restored-from": source.identifier, "pghome:restore-point": point.at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return tags


class Run:
    def __init__(self, settings: Any, outputs: Mapping[str, Any], opts: Options, seams: Seams, *, out: Callable[[str], None] = print,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC), clock: Callable[[], float] = time.monotonic,
                 restorer: Restorer | None = None):
        self.settings, self.outputs, self.opts, self.seams = settings, plain(outputs), opts, seams
        self.out, self.now, self.clock = out, now, clock
        self.restorer = restorer or Restorer(seams.rds, seams.backups, out=out, clock=clock)
        self.outcome = Outcome()

    # --- the whole command ------------------------------------------------------------------

    def run(self) -> int:
        """Refusals (RestoreInputError, RestoreError before the restore call) propagate: nothing exists yet."""
        opts, r = self.opts, self.restorer
        source = r.source(self.outputs, opts.stack)
        point = r.point(source, to_time=opts.to_time, latest=opts.latest, snapshot=opts.snapshot)
        user, password = master_credential(self.seams.secrets, self.settings.database.master_secret_name)
        kind = "drill" if opts.drill else "restore"
        target = target_identifier(source.identifier, kind, self.now())
        request = r.request(source, point, target, drill=opts.drill, tags=_tags(source, kind, point, target))
        self.out(f"{kind}: {source.identifier} -> new instance {target} ({request['DBInstanceClass']}, subnet group {request['DBSubnetGroupName']}, "
                 f"security group {source.security_group_id}, parameter group {request['DBParameterGroupName']}) from {point.describe()}")
        started = self.clock()
        o = self.outcome
        o.target = target
        try:
            r.restore(source, point, request)
            r.wait_available(target, "restoring")
            o.available_s = self.clock() - started
            restored = r.finish(source, target, password)
            o.checks += [Check(n, ok, d) for n, ok, d in r.settings_checks(source, restored)]
            o.checks += self.verify(restored, user, password, same_point=point.kind == "latest")
            o.recovery_s = self.clock() - started
        except RestoreError as exc:
            o.error = str(exc)
        finally:
            if opts.drill and r.created:
                try:
                    r.delete(target)
                except RestoreError as exc:
                    o.cleanup_error = str(exc)
        self.report(point)
        if not opts.drill and o.target in r.created:
            self.out(switch_over(self.settings, self.outputs, source.identifier, target, ok=o.ok, stamp=self.now()))
        return EXIT_OK if o.ok else EXIT_FAILED

    # --- verification through the access path ---------------------------------------------

    @contextlib.contextmanager
    def _connections(self, address: str, port: int, user: str, password: str, what: str) -> Iterator[tuple[Any, Any]]:
        """(master on postgres, master on the app database) at address:port, through the route the
        tools use (direct when it answers, else the stack's tunnel; per --tunnel)."""
        from bootstrap.access.tunnel import db_route

        outputs = {**self.outputs, "dbAddress": address, "dbPort": port}
        base = pgconn.Endpoint(host=address, port=port, sslmode="verify-full", sslrootcert=self.opts.ca_file or None)
        self.out(f"{what}: connecting to {address}:{port}")
        with db_route(outputs, stack=self.opts.stack, sessions=self.seams.sessions, mode=self.opts.tunnel, ecs=self.seams.ecs, region=self.opts.region,
                      probe=self.seams.probe, out=self.out, **self.seams.tunnel_kw) as route, \
                pgconn.connect(route.endpoint(base), user, password) as master:
            if not self.app_db:
                yield master, None
                return
            with pgconn.connect(route.endpoint(dataclasses.replace(base, dbname=self.settings.app_database.name)), user, password) as app:
                yield master, app

    @property
    def app_db(self) -> bool:
        """The app database exists once deploy's phase 3 ran (output appDbEnabled)."""
        return str(self.outputs.get("appDbEnabled", "")).lower() == "true"

    def verify(self, restored: Mapping[str, Any], user: str, password: str, *, same_point: bool) -> list[Check]:
        import psycopg

        from bootstrap.access.tunnel import TunnelError
        from dbcore.pgconn import ConnectionSettingsError

        model, checks_cfg = self.settings.app_database.model(), self.settings.restore
        endpoint = restored.get("Endpoint") or {}
        address, port = str(endpoint.get("Address", "")), int(endpoint.get("Port") or self.settings.database.port)
        checks: list[Check] = []
        try:
            with self._connections(address, port, user, password, "restored database") as (master, app):
                version = master.execute("SHOW server_version").fetchone()
                checks.append(Check("restored database reachable", True, f"as {user} over verified TLS, PostgreSQL {version[0] if version else '?'}"))
                if app is None:
                    self.out("the stack has no app database yet (appDbEnabled false): model, migrations and row counts not checked")
                    return checks
                checks += model_checks(master, app, model)
                mine = read_facts(app, model, checks_cfg)
        except (TunnelError, ConnectionSettingsError, psycopg.Error) as exc:
            return checks + [Check("restored database reachable", False, _first_line(exc))]
        production: Facts | None = None
        try:
            prod_port = int(self.outputs.get("dbPort") or port)
            with self._connections(str(self.outputs.get("dbAddress", "")), prod_port, user, password, "production") as (_, app):
                production = read_facts(app, model, checks_cfg) if app is not None else None
        except (TunnelError, ConnectionSettingsError, psycopg.Error) as exc:
            self.out(f"production not reachable ({_first_line(exc)}): row counts and migration version are not compared")
        return checks + compare(mine, production, checks_cfg, same_point=same_point)

    # --- the report ---------------------------------------------------------------------------

    def report(self, point: Point) -> None:
        o = self.outcome
        self.out("")
        self.out(f"checks of {o.target}:")
        for check in o.checks:
            self.out(check.line())
        if o.error:
            self.out(f"  FAIL  restore: {o.error}")
        age = max(0.0, (self.now() - point.at).total_seconds())  # a snapshot "taken" ahead of this machine's clock: no negative age
        self.out(f"restore point: {show_time(point.at)} (data age {duration(age)})")
        if o.available_s is not None:
            self.out(f"instance available after {duration(o.available_s)}")
        if o.recovery_s is not None:
            what = "measured recovery time (restore call to verified database)" if o.ok else "time from the restore call to the end of the checks"
            self.out(f"{what}: {duration(o.recovery_s)}")
        if o.cleanup_error:
            self.out(f"CLEANUP FAILED: {o.cleanup_error}")
        bad = len(failed(o.checks)) + bool(o.error) + bool(o.cleanup_error)
        self.out(f"{'drill' if self.opts.drill else 'restore'}: {'passed' if o.ok else f'FAILED ({bad} problem(s))'}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def switch_over(settings: Any, outputs: Mapping[str, Any], source_id: str, target: str, *, ok: bool, stamp: dt.datetime) -> str:
    """The exact steps that make the restored instance the stack's database (printed, never run):
    the restored instance takes the source's identifier, so its endpoint, the secrets' host and
    the Pulumi state's id all stay what they were."""
    aside = target_identifier(source_id, "pre-restore", stamp)
    cluster, service, stack = outputs.get("clusterName", "<cluster>"), outputs.get("serviceName", "<service>"), settings.stack
    lines = [
        "",
        "The restored instance is running; nothing else was changed." if ok else
        f"Checks FAILED: do not switch over. Delete the instance with `aws rds delete-db-instance --db-instance-identifier {target} --skip-final-snapshot`.",
        "To make it the stack's database (docs/restore.md explains each step):",
        f"  1. stop writes:      aws ecs update-service --cluster {cluster} --service {service} --desired-count 0",
        f"  2. move prod aside:  aws rds modify-db-instance --db-instance-identifier {source_id} --new-db-instance-identifier {aside} --apply-immediately",
        f"                       aws rds wait db-instance-available --db-instance-identifier {aside}",
        f"  3. take its name:    aws rds modify-db-instance --db-instance-identifier {target} --new-db-instance-identifier {source_id} --apply-immediately",
        f"                       aws rds wait db-instance-available --db-instance-identifier {source_id}",
        f"  4. login passwords:  python -m bootstrap rotate --stack {stack} --role all   (the restore point's passwords are older than the secrets)",
        f"  5. reconcile:        python -m bootstrap refresh --stack {stack} --yes && python -m bootstrap deploy --stack {stack}   (desired count, protection, backups, IAM auth resource id)",
        f"  6. once satisfied:   aws rds modify-db-instance --db-instance-identifier {aside} --no-deletion-protection --apply-immediately",
        f"                       aws rds delete-db-instance --db-instance-identifier {aside} --final-db-snapshot-identifier {aside}-final",
    ]
    return "\n".join(lines)

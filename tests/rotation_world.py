"""Shared by the rotation/audit tests: moto AWS + the local PostgreSQL standing in for RDS."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
from moto import mock_aws
from psycopg import sql

from bootstrap.rotation.local import Endpoint, Rotator
from config.load import load_settings
from config.settings import Settings
from config.stack_file import stack_config
from dbcore.rds_admin import RdsAdmin
from dbcore.secret import new_password
from dbcore.verifier import scram_verifier
from tests.pgserver import PgServer

STACK = "dev"
LOGIN_ROLES = ("app", "app_clone", "migrator")  # after the prefix: <prefix>_app, ...


class KilledError(Exception):
    """Stands in for a crash/kill of the rotation process."""


class DeferringRds:
    """The moto RDS client with RDS's rule for a master password change: it takes effect now only
    with ApplyImmediately=True; otherwise it waits for the maintenance window, and until then
    DescribeDBInstances lists it under PendingModifiedValues (as "****", RDS API reference:
    PendingModifiedValues.MasterUserPassword). moto applies every change at once, so without this a
    rotation that forgot ApplyImmediately would pass every test."""

    def __init__(self, rds: Any):
        self.rds = rds
        self.applied_password: str | None = None
        self.pending_password: str | None = None

    def modify_db_instance(self, **kwargs: Any) -> Any:
        if "MasterUserPassword" in kwargs and kwargs.get("ApplyImmediately") is not True:
            self.pending_password = kwargs["MasterUserPassword"]
            rest = {k: v for k, v in kwargs.items() if k != "MasterUserPassword"}
            return self.rds.modify_db_instance(**rest)
        reply = self.rds.modify_db_instance(**kwargs)
        if "MasterUserPassword" in kwargs:
            self.applied_password, self.pending_password = kwargs["MasterUserPassword"], None
        return reply

    def describe_db_instances(self, **kwargs: Any) -> Any:
        reply = self.rds.describe_db_instances(**kwargs)
        if self.pending_password is not None:
            for inst in reply["DBInstances"]:
                inst.setdefault("PendingModifiedValues", {})["MasterUserPassword"] = "****"
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rds, name)


class MirroringAdmin:
    """The test's DatabaseAdmin: the real RdsAdmin against moto (behind DeferringRds), then the
    change RDS actually applied mirrored onto the local server, sent as a SCRAM verifier. A change
    RDS only queued is not mirrored: the database keeps the old password, as it would on AWS.
    Mutation tried: `ApplyImmediately=True` -> `False` in dbcore/rds_admin.py (the rotation tests
    failed: RdsAdmin waited out its timeout on the pending change; before, they all passed)."""

    def __init__(self, rds: Any, pg: PgServer, master: str):
        self.rds = DeferringRds(rds)
        self.inner = RdsAdmin(self.rds, timeout_s=5, interval_s=0.01)
        self.pg = pg
        self.master = master
        self.calls = 0

    def set_master_password(self, instance_id: str, password: str) -> None:
        try:
            self.inner.set_master_password(instance_id, password)
        finally:
            if self.rds.applied_password == password:
                with self.pg.connect_super() as conn:
                    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(self.master), sql.Literal(scram_verifier(conn, self.master, password))))
        self.calls += 1


class World:
    """One stack's worth of AWS (moto) + database state, with a fresh name suffix per test."""

    def __init__(self, pg: PgServer, settings: Settings, initial_master_password: str | None = None):
        self.pg = pg
        self.settings = settings
        self.sm = boto3.client("secretsmanager", region_name=settings.region)
        self.rds = boto3.client("rds", region_name=settings.region)
        self.master = settings.database.master_username
        self.initial_master_password = initial_master_password or new_password()
        self.instance = settings.name("db")
        pg.make_rds_master(self.master, self.initial_master_password)
        # As on RDS, the master (not a superuser) creates the login roles and the database.
        with pg.connect_as(self.master, self.initial_master_password) as conn:
            for role in LOGIN_ROLES:  # the app login's clone too (components/pgmodel.py): the app rotation alternates
                name = f"{settings.app_database.role_prefix}_{role}"
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
                conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(settings.app_database.name), sql.Identifier(self.master)))
        self.rds.create_db_instance(
            DBInstanceIdentifier=self.instance, DBInstanceClass="db.t4g.micro", Engine="postgres",
            MasterUsername=self.master, MasterUserPassword=self.initial_master_password, AllocatedStorage=20,
        )
        host = self.rds.describe_db_instances(DBInstanceIdentifier=self.instance)["DBInstances"][0]["Endpoint"]["Address"]
        tags = [{"Key": k, "Value": v} for k, v in settings.tags.items()]
        self.sm.create_secret(Name=f"{settings.prefix}/db/master", Tags=tags, SecretString=json.dumps({
            "engine": "postgres", "host": host, "port": 5432, "username": self.master,
            "password": self.initial_master_password, "dbname": "postgres", "dbInstanceIdentifier": self.instance,
        }))
        for role in ("app", "migrator"):
            self.sm.create_secret(Name=f"{settings.prefix}/db/{role}", Tags=tags, SecretString=json.dumps({
                "engine": "postgres", "host": "stale.example", "port": 1, "dbname": "stale",
                "username": f"{settings.app_database.role_prefix}_{role}", "password": "",
            }))
        self.admin = MirroringAdmin(self.rds, pg, self.master)
        self.endpoint = Endpoint(host="localhost", port=pg.port, sslmode="verify-full", sslrootcert=str(pg.ca_file))

    def rotator(self, hook: Any = None, out: Any = None) -> Rotator:
        kw: dict[str, Any] = {}
        if hook:
            kw["hook"] = hook
        return Rotator(self.settings, secrets_client=self.sm, admin=self.admin, endpoint=self.endpoint, out=out or (lambda s: None), master_test_timeout_s=1.0, **kw)

    def secret(self, role: str, stage: str = "AWSCURRENT") -> dict[str, Any] | None:
        try:
            return json.loads(self.sm.get_secret_value(SecretId=f"{self.settings.prefix}/db/{role}", VersionStage=stage)["SecretString"])
        except self.sm.exceptions.ResourceNotFoundException:
            return None

    def can_login_with_any(self, role: str) -> bool:
        for stage in ("AWSCURRENT", "AWSPENDING"):
            s = self.secret(role, stage)
            if s and s.get("password") and self.pg.can_login(s["username"], s["password"], s["dbname"]):
                return True
        return False

    def drop(self) -> None:
        with self.pg.connect_super() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(self.settings.app_database.name)))
            for role in LOGIN_ROLES:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(f"{self.settings.app_database.role_prefix}_{role}")))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.master)))


@contextlib.contextmanager
def make_world(pg: PgServer, initial_master_password: str | None = None) -> Iterator[World]:
    """A fresh app name per test, so secrets/roles never collide; roles dropped afterwards."""
    suffix = uuid.uuid4().hex[:6]
    settings = load_settings(stack_config(STACK, {"appName": f"t{suffix}"}), stack=STACK)
    with mock_aws():
        w = World(pg, settings, initial_master_password)
        try:
            yield w
        finally:
            w.drop()



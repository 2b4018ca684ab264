"""`restore` against moto's RDS (the restore calls, DescribeDBInstances, ModifyDBInstance,
DeleteDBInstance) with a Stubber where moto does not serve (the restorable window; exact request
shapes; the states a real restore passes through): refusals before anything is created, the
request's shape, progress while waiting, and the drill's cleanup on failure at every step.
The verification against real PostgreSQL servers is tests/test_restore_pg.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from bootstrap.restore.rds import Point, RestoreError, RestoreInputError, Restorer, target_identifier, utc
from bootstrap.restore.run import Options, Run, Seams
from tests import restore_world as w
from tests.tunnel_world import LoopbackForwarder, ecs_client


@pytest.fixture
def world() -> Any:
    with mock_aws():
        yield w.build()


def restorer(world: w.World, rds: Any = None, backups: Any = None, lines: list[str] | None = None) -> Restorer:
    out = lines.append if lines is not None else (lambda s: None)
    return Restorer(rds or world.rds, backups, out=out, interval_s=0, sleep=lambda s: None)


def run(world: w.World, opts: Options, *, rds: Any = None, ecs: Any = None, lines: list[str] | None = None, backups_calls: int = 1) -> tuple[int, list[str]]:
    lines = [] if lines is None else lines
    backups, _ = w.backups_stub(world, calls=backups_calls)
    seams = Seams(rds=rds or world.rds, secrets=world.secrets, ecs=ecs or ecs_client(), sessions=LoopbackForwarder({}),
                  probe=lambda h, p: False, backups=backups, tunnel_kw={"sleep": lambda s: None, "interval_s": 0})
    r = Restorer(seams.rds, backups, out=lines.append, interval_s=0, sleep=lambda s: None)
    code = Run(w.settings(), world.outputs, opts, seams, out=lines.append, now=lambda: w.NOW, restorer=r).run()
    return code, lines


def error(code: str, message: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, op)


# --- refusals: one sentence, before anything is created -------------------------------------------


@pytest.mark.parametrize("when", ["2026-11-20T00:00:00Z", "2026-12-04T15:29:00+00:00"])
def test_a_time_outside_the_restorable_window_is_refused_before_anything_exists(world, when):
    with pytest.raises(RestoreInputError) as exc:
        run(world, Options(stack="dev", to_time=when, drill=True))
    message = str(exc.value)
    assert "outside the restorable window of shop-dev-db (2026-11-27 15:30:00 UTC to 2026-12-04 15:26:00 UTC)" in message
    assert message.count(".") <= 1 + message.count("UTC") and "\n" not in message
    assert [i["DBInstanceIdentifier"] for i in world.rds.describe_db_instances()["DBInstances"]] == [w.SOURCE]


def test_a_time_inside_the_window_is_restored_to_exactly(world):
    r = restorer(world, backups=w.backups_stub(world)[0])
    src = r.source(world.outputs, "dev")
    point = r.point(src, to_time="2026-12-01T10:00:00+01:00")
    assert point == Point("time", dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC), time=dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    assert r.request(src, point, "x", drill=True, tags={})["RestoreTime"] == point.time


@pytest.mark.parametrize("text, says", [("yesterday", "is not a time"), ("2026-12-04T10:00:00", "has no time zone")])
def test_a_time_that_is_not_one_is_refused(text, says):
    with pytest.raises(RestoreInputError, match=says):
        utc(text)


def test_a_snapshot_of_another_engine_major_is_refused(world):
    world.rds.create_db_instance(DBInstanceIdentifier="old15", Engine="postgres", EngineVersion="15.7", DBInstanceClass="db.t4g.micro",
                                 MasterUsername="m", MasterUserPassword="long-enough-pw", AllocatedStorage=20, StorageEncrypted=True, KmsKeyId=world.kms_key)
    world.rds.create_db_snapshot(DBInstanceIdentifier="old15", DBSnapshotIdentifier="old15-snap")
    with pytest.raises(RestoreInputError) as exc:
        run(world, Options(stack="dev", snapshot="old15-snap", drill=True))
    assert str(exc.value).startswith("snapshot old15-snap is PostgreSQL 15 but shop-dev-db runs 16: ")
    assert world.instance(target_identifier(w.SOURCE, "drill", w.NOW)) is None


def test_a_snapshot_under_another_kms_key_or_missing_is_refused(world):
    other = w.client("kms").create_key()["KeyMetadata"]["Arn"]
    world.rds.create_db_instance(DBInstanceIdentifier="elsewhere", Engine="postgres", EngineVersion="16.4", DBInstanceClass="db.t4g.micro",
                                 MasterUsername="m", MasterUserPassword="long-enough-pw", AllocatedStorage=20, StorageEncrypted=True, KmsKeyId=other)
    world.rds.create_db_snapshot(DBInstanceIdentifier="elsewhere", DBSnapshotIdentifier="elsewhere-snap")
    r = restorer(world)
    src = r.source(world.outputs, "dev")
    with pytest.raises(RestoreInputError, match="copy-db-snapshot --kms-key-id"):
        r.point(src, snapshot="elsewhere-snap")
    with pytest.raises(RestoreInputError, match="snapshot nope does not exist"):
        r.point(src, snapshot="nope")


def test_no_restorable_window_is_refused_with_the_way_out(world):
    c = w.client("rds")
    with Stubber(c) as stub:
        stub.add_response("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": []}, {"DBInstanceIdentifier": w.SOURCE})
        r = restorer(world, backups=c)
        with pytest.raises(RestoreInputError, match="has no restorable window .*: use --snapshot"):
            r.point(r.source(world.outputs, "dev"), latest=True)


# --- the requests: shaped from the source, validated against the RDS API model -------------------


def test_the_point_in_time_request_carries_the_stacks_network_parameters_ca_iam_and_logs(world):
    r = restorer(world, backups=w.backups_stub(world)[0])
    src = r.source(world.outputs, "dev")
    point = r.point(src, latest=True)
    request = r.request(src, point, w.DRILL_TARGET, drill=True, tags={"Stack": "dev"})
    stubbed = w.client("rds")
    with Stubber(stubbed) as stub:  # the Stubber validates the parameters against botocore's RDS model
        stub.add_response("restore_db_instance_to_point_in_time", {"DBInstance": {"DBInstanceIdentifier": w.DRILL_TARGET}}, {
            "SourceDBInstanceIdentifier": w.SOURCE, "TargetDBInstanceIdentifier": w.DRILL_TARGET, "UseLatestRestorableTime": True,
            "DBInstanceClass": "db.t4g.micro", "DBSubnetGroupName": "shop-dev-db-subnets", "VpcSecurityGroupIds": [world.db_sg],
            "DBParameterGroupName": "shop-dev-db-params", "CACertificateIdentifier": "rds-ca-rsa2048-g1", "EnableIAMDatabaseAuthentication": True,
            "EnableCloudwatchLogsExports": ["postgresql", "upgrade"], "Port": 5432, "PubliclyAccessible": False, "MultiAZ": False,
            "StorageType": "gp3", "AutoMinorVersionUpgrade": True, "CopyTagsToSnapshot": True, "DeletionProtection": False,
            "BackupRetentionPeriod": 0, "MaxAllocatedStorage": 50, "Tags": [{"Key": "Stack", "Value": "dev"}]})
        Restorer(stubbed).restore(src, point, request)


def test_a_restore_keeps_the_sources_protection_and_backups_a_drill_does_not(world):
    r = restorer(world)
    src = r.source(world.outputs, "dev")
    src.raw["DeletionProtection"], src.raw["MultiAZ"] = True, True  # as prod's instance
    snap = Point("snapshot", w.NOW, snapshot="shop-dev-db-final")
    real = r.request(src, snap, w.RESTORE_TARGET, drill=False, tags={})
    drill = r.request(src, snap, w.DRILL_TARGET, drill=True, tags={})
    assert (real["DeletionProtection"], real["MultiAZ"], real["BackupRetentionPeriod"], real["PreferredBackupWindow"]) == (True, True, 7, "03:00-03:30")
    assert (drill["DeletionProtection"], drill["MultiAZ"], drill["BackupRetentionPeriod"]) == (False, False, 0)
    assert real["DBSnapshotIdentifier"] == "shop-dev-db-final" and "MaxAllocatedStorage" not in real  # not a parameter of that call


def test_target_names_fit_rds_limits():
    name = target_identifier("a" * 60, "pre-restore", w.NOW)
    assert len(name) <= 63 and name.endswith("-pre-restore-202612041530") and "--" not in name


# --- waiting: progress with elapsed time ---------------------------------------------------------


def test_waiting_reports_each_status_and_a_heartbeat_with_elapsed_time():
    c, now = w.client("rds"), [0.0]
    lines: list[str] = []
    with Stubber(c) as stub:
        for status in ("creating", "creating", "creating", "backing-up", "available"):
            stub.add_response("describe_db_instances", {"DBInstances": [{"DBInstanceIdentifier": "t", "DBInstanceStatus": status}]}, {"DBInstanceIdentifier": "t"})
        r = Restorer(c, out=lines.append, interval_s=40, heartbeat_s=60, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
        assert r.wait_available("t", "restoring")["DBInstanceStatus"] == "available"
    assert lines == ["  t: creating (0m00s)", "  still waiting: restoring, t is creating (1m20s elapsed)", "  t: backing-up (2m00s)", "  t: available (2m40s)"]


def test_a_failed_restore_status_stops_the_wait_with_where_to_look():
    c = w.client("rds")
    with Stubber(c) as stub:
        stub.add_response("describe_db_instances", {"DBInstances": [{"DBInstanceIdentifier": "t", "DBInstanceStatus": "incompatible-restore"}]}, {"DBInstanceIdentifier": "t"})
        with pytest.raises(RestoreError, match="is incompatible-restore while restoring: see `aws rds describe-events"):
            Restorer(c, out=lambda s: None).wait_available("t", "restoring")


def test_delete_asks_again_while_rds_is_busy_then_waits_until_gone():
    c = w.client("rds")
    expected = {"DBInstanceIdentifier": "t", "SkipFinalSnapshot": True, "DeleteAutomatedBackups": True}
    with Stubber(c) as stub:
        stub.add_client_error("delete_db_instance", "InvalidDBInstanceState", "Instance t is currently creating", 400, expected_params=expected)
        stub.add_response("delete_db_instance", {"DBInstance": {"DBInstanceIdentifier": "t", "DBInstanceStatus": "deleting"}}, expected)
        stub.add_response("describe_db_instances", {"DBInstances": [{"DBInstanceIdentifier": "t", "DBInstanceStatus": "deleting"}]}, {"DBInstanceIdentifier": "t"})
        stub.add_client_error("describe_db_instances", "DBInstanceNotFound", "DBInstance t not found.", 404, expected_params={"DBInstanceIdentifier": "t"})
        Restorer(c, out=lambda s: None, interval_s=0, sleep=lambda s: None).delete("t")
        stub.assert_no_pending_responses()


# --- the drill's cleanup, on failure at every step --------------------------------------------------


@pytest.mark.parametrize("method, after, says", [
    ("restore_db_instance_to_point_in_time", 0, "RDS refused the restore"),
    ("describe_db_instances", 1, "cannot describe RDS instance"),  # the first describe reads the source; fail the wait's
    ("describe_db_instances", 2, "cannot describe RDS instance"),  # the wait after ModifyDBInstance
    ("modify_db_instance", 0, "RDS refused to set monitoring and the master password"),
])
def test_a_drill_deletes_what_it_created_whichever_rds_step_fails(world, method, after, says):
    faulty = w.Faulty(world.rds, method, error("InternalFailure", "boom", method), after=after, times=1)
    code, lines = run(world, Options(stack="dev", latest=True, drill=True), rds=faulty)
    assert code == 1
    assert any(says in line for line in lines) and lines[-1] == "drill: FAILED (1 problem(s))"
    assert world.instance(w.DRILL_TARGET) is None
    assert [i["DBInstanceIdentifier"] for i in world.rds.describe_db_instances()["DBInstances"]] == [w.SOURCE]


def test_a_restore_call_that_failed_after_creating_is_still_cleaned_up(world):
    class CreatedThenTimedOut(w.Faulty):
        def __getattr__(self, name: str) -> Any:
            if name == "restore_db_instance_to_point_in_time":
                def call(**kw: Any) -> Any:
                    self.inner.restore_db_instance_to_point_in_time(**kw)
                    raise error("RequestTimeout", "read timed out", name)
                return call
            return getattr(self.inner, name)

    code, lines = run(world, Options(stack="dev", latest=True, drill=True), rds=CreatedThenTimedOut(world.rds, "", RuntimeError()))
    assert code == 1 and f"drill: {w.DRILL_TARGET} deleted" in lines and world.instance(w.DRILL_TARGET) is None


def test_a_drill_whose_tunnel_cannot_open_fails_the_check_and_still_deletes(world):
    ecs = ecs_client()
    with Stubber(ecs) as stub:
        stub.add_client_error("run_task", "AccessDeniedException", "not allowed to RunTask", 400)
        code, lines = run(world, Options(stack="dev", latest=True, drill=True, tunnel="always"), ecs=ecs)
    assert code == 1
    assert any(line.startswith("  FAIL  restored database reachable: ECS RunTask") for line in lines)
    assert world.instance(w.DRILL_TARGET) is None


def test_an_interrupted_drill_deletes_its_instance_on_the_way_out(world):
    faulty = w.Faulty(world.rds, "modify_db_instance", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run(world, Options(stack="dev", latest=True, drill=True), rds=faulty)
    assert world.instance(w.DRILL_TARGET) is None


def test_a_drill_whose_cleanup_fails_says_how_to_finish_and_fails(world):
    faulty = w.Faulty(world.rds, "delete_db_instance", error("AccessDenied", "not allowed", "DeleteDBInstance"))
    ecs = ecs_client()
    with Stubber(ecs) as stub:
        stub.add_client_error("run_task", "AccessDeniedException", "no", 400)
        code, lines = run(world, Options(stack="dev", latest=True, drill=True, tunnel="always"), rds=faulty, ecs=ecs)
    assert code == 1
    assert any(line.startswith("CLEANUP FAILED: could not delete shop-dev-db-drill-202612041530 (AccessDenied: not allowed); delete it with "
                               "`aws rds delete-db-instance --db-instance-identifier shop-dev-db-drill-202612041530 --skip-final-snapshot") for line in lines)


def test_an_existing_target_is_never_deleted(world):
    world.rds.create_db_instance(DBInstanceIdentifier=w.DRILL_TARGET, Engine="postgres", DBInstanceClass="db.t4g.micro",
                                 MasterUsername="m", MasterUserPassword="long-enough-pw", AllocatedStorage=20)
    code, lines = run(world, Options(stack="dev", latest=True, drill=True))
    assert code == 1 and any("already exists (an earlier run?)" in line for line in lines)
    assert world.instance(w.DRILL_TARGET) is not None


@pytest.mark.parametrize("snapshot, extra", [("rds:shop-dev-db-2026-12-04-03-00", {"SnapshotType": "automated"}),
                                             ("arn:aws:rds:eu-west-1:210987654321:snapshot:shared-one", {"IncludeShared": True})])
def test_automated_and_shared_snapshots_are_looked_up_the_way_rds_finds_them(world, snapshot, extra):
    src = restorer(world).source(world.outputs, "dev")
    c = w.client("rds")
    with Stubber(c) as stub:
        stub.add_response("describe_db_snapshots", {"DBSnapshots": [{
            "DBSnapshotIdentifier": snapshot, "DBInstanceIdentifier": w.SOURCE, "Engine": "postgres", "EngineVersion": "16.4", "Status": "available",
            "KmsKeyId": world.kms_key, "Encrypted": True, "SnapshotCreateTime": w.LATEST, "SnapshotType": "automated"}]},
            {"DBSnapshotIdentifier": snapshot, **extra})
        point = Restorer(c, out=lambda s: None).point(src, snapshot=snapshot)
    assert point == Point("snapshot", w.LATEST, snapshot=snapshot)

"""The rotation steps (rotation_function/steps.py) one method at a time, in milliseconds: a small
in-memory Secrets Manager, a fake database behind the `pgconn.connect` seam, and fakes of the
helpers the steps call (SCRAM verifier, ADMIN check, rotation lock, rollout check), so every call,
argument and sentence can be asserted exactly. The same steps against moto and a real PostgreSQL:
tests/test_rotation_handler.py. These exist so that mutation testing (scripts/mutation.py, group
`rotation`) kills a mutant in the first second instead of after a server start."""
from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbcore import pgconn
from dbcore.secret import RotationError
from rotation_function import steps
from rotation_function.steps import FunctionConfig, other_user
from tests.rotation_step_fakes import APP, HOST, MASTER, MIG, FakeConn, World, a1, g1, m1, m2, steps_role_query, t1, t2, t3, t9, version


@pytest.fixture
def w(monkeypatch: pytest.MonkeyPatch) -> World:
    return World(monkeypatch)


def test_other_user_alternates_the_pair() -> None:
    assert other_user("shop_app") == "shop_app_clone"
    assert other_user("shop_app_clone") == "shop_app"
    assert other_user("clone") == "clone_clone" and other_user("a_clone_b") == "a_clone_b_clone"


def test_kind_prefers_master_then_alternating_and_names_a_foreign_secret() -> None:
    both = FunctionConfig(master_secret_arn="m", db_instance_id="db", login_secret_arns=frozenset({"m", "a", "s"}), alternating_secret_arns=frozenset({"m", "a"}))
    assert (both.kind("m"), both.kind("a"), both.kind("s")) == ("master", "alternating", "single")
    with pytest.raises(RotationError) as err:
        both.kind("x")
    assert str(err.value) == "secret x is not one this function rotates (master or a login secret of this stack)"


def test_value_and_pending_ask_for_the_exact_version(w: World) -> None:
    r = w.runner()
    assert r.value(APP, VersionStage="AWSCURRENT")["username"] == "shop_app"
    assert r.pending(APP, t1) is None
    w.pending(APP, t1, {"username": "x"})
    assert r.pending(APP, t1) == {"username": "x"}
    assert w.sm.calls == [("get", {"SecretId": APP, "VersionStage": "AWSCURRENT"})] + [("get", {"SecretId": APP, "VersionId": t1, "VersionStage": "AWSPENDING"})] * 2


def test_endpoint_follows_the_secret_then_the_defaults_and_overrides(w: World) -> None:
    r = w.runner()
    common: dict[str, Any] = {"sslmode": "verify-ca", "sslrootcert": "/ca.pem", "connect_timeout": 7}
    assert r.endpoint({"host": "h", "port": "6432", "dbname": "d"}) == pgconn.Endpoint(host="h", port=6432, dbname="d", **common)
    assert r.endpoint({}) == pgconn.Endpoint(host="", port=5432, dbname="postgres", **common)
    assert r.endpoint({"host": "h", "dbname": "d"}, dbname="other") == pgconn.Endpoint(host="h", port=5432, dbname="other", **common)
    from dataclasses import replace

    local = w.runner(replace(w.config, host_override="127.0.0.1", port_override=15432))
    assert local.endpoint({"host": "h", "port": 6432}) == pgconn.Endpoint(host="127.0.0.1", port=15432, dbname="postgres", **common)


def test_accepts_logs_in_once_and_says_why_it_cannot(w: World) -> None:
    r = w.runner()
    assert r.accepts({"username": "master", "password": ""}) is False and w.db.opened == []
    assert r.accepts({"host": HOST, "username": "master", "password": "m-old"}) is True
    assert w.db.opened == [(r.endpoint({"host": HOST}), "master", "m-old")] and w.db.executed == [("master", "SELECT 1", None)]
    assert r.accepts({"host": HOST, "username": "master", "password": "wrong"}) is False
    cases = [
        (pgconn.ConnectionSettingsError("sslrootcert /ca.pem does not exist"), "cannot connect to the database: sslrootcert /ca.pem does not exist"),
        (psycopg.OperationalError('FATAL:  database "shop" does not exist'), "database 'shop' or user 'shop_app' named by the secret does not exist on db.internal:6432"),
        (psycopg.OperationalError("connection timeout expired"), "database at db.internal:6432 is unreachable over TLS (sslmode=verify-ca); check the function's security group and subnets"),
    ]
    for error, sentence in cases:
        w.db.error = error
        with pytest.raises(RotationError) as err:
            r.accepts({"host": HOST, "port": 6432, "dbname": "shop", "username": "shop_app", "password": "p"})
        assert str(err.value) == sentence and err.value.__suppress_context__


def test_master_connection_tries_current_then_pending(w: World) -> None:
    r = w.runner()
    conn = r.master_connection()
    assert isinstance(conn, FakeConn)  # pgconn.connect is the fake database's
    assert conn.user == "master" and w.log == ["connected as master using AWSCURRENT"]
    assert w.db.opened[-1] == (r.endpoint({"host": HOST, "port": 5432, "dbname": "postgres"}), "master", "m-old")
    w.db.passwords["master"] = "m-new"  # a master rotation stopped after setSecret
    w.sm.add(MASTER, m2, {"host": HOST, "username": "master", "password": "m-new"}, "AWSPENDING")
    w.log.clear()
    conn = r.master_connection()
    assert isinstance(conn, FakeConn) and conn.user == "master" and w.log == ["connected as master using AWSPENDING"]
    w.db.passwords["master"] = "lost"
    with pytest.raises(RotationError) as err:
        r.master_connection()
    assert str(err.value) == f"the database rejected both AWSCURRENT and AWSPENDING of the master secret {MASTER}; the master must be rotated first"
    w.sm.stages[MASTER][m2] = []  # no AWSPENDING at all: the same sentence
    with pytest.raises(RotationError, match="rejected both"):
        r.master_connection()


def test_run_maps_each_step_and_serialises_only_set_secret(w: World) -> None:
    r = w.runner()
    seen: list[tuple[str, str, str, int]] = []
    for name in ("create", "set", "test", "finish"):
        setattr(r, name, lambda arn, token, name=name: seen.append((name, arn, token, len(w.locks))))
    for step in steps.STEPS:
        r.run(step, APP, "t")
    assert seen == [("create", APP, "t", 0), ("set", APP, "t", 1), ("test", APP, "t", 1), ("finish", APP, "t", 1)]
    conn, what, kw = w.locks[0]
    assert what == "setSecret" and kw == {"error": RotationError, "wait_s": 33.0, "out": w.log.append} and conn.closed


def test_serialised_without_the_master_login(w: World) -> None:
    w.db.passwords["master"] = "lost"
    r = w.runner()
    with r.serialised(MASTER):
        w.log.append("inside")
    assert w.log == ["setSecret: the database rejects the master secret, so no other rotation can run; changing it without the lock", "inside"]
    assert w.locks == []
    with pytest.raises(RotationError, match="rejected both"), r.serialised(APP):
        pytest.fail("a login secret must not be set without the lock")
    seen: list[tuple[str, str]] = []
    r.set = lambda arn, token: seen.append((arn, token))  # type: ignore[method-assign]
    r.run("setSecret", MASTER, t1)
    assert seen == [(MASTER, t1)]


def test_create_stores_a_new_value_per_kind(w: World) -> None:
    r = w.runner(ecs=object())
    r.create(MASTER, t1)
    assert w.value(MASTER, t1) == {"engine": "postgres", "host": HOST, "port": 5432, "dbname": "postgres", "username": "master", "password": "new-1"}
    r.create(MIG, t2)  # connection fields follow the master secret
    assert w.value(MIG, t2) == {"engine": "postgres", "host": HOST, "port": 5432, "dbname": "shop", "username": "shop_mig", "password": "new-2"}
    r.create(APP, t3)
    assert w.value(APP, t3)["username"] == "shop_app_clone" and w.value(APP, t3)["password"] == "new-3"
    assert ("put", {"SecretId": APP, "ClientRequestToken": t3, "SecretString": w.sm.values[(APP, t3)], "VersionStages": ["AWSPENDING"]}) in w.sm.calls
    assert w.log == [f"createSecret: new value stored as AWSPENDING for user {u}" for u in ("master", "shop_mig", "shop_app_clone")]
    assert w.rollout == []  # no service configured: nothing to check


def test_create_keeps_the_endpoint_of_a_master_secret_without_one(w: World) -> None:
    w.sm.add(MASTER, m1, {"username": "master", "password": "m-old"}, "AWSCURRENT")
    w.sm.add(MIG, g1, {"host": "old.internal", "port": 6432, "dbname": "shop", "username": "shop_mig", "password": "mig-old"}, "AWSCURRENT")
    w.runner().create(MIG, t1)  # a login secret always says its engine
    assert w.value(MIG, t1) == {"engine": "postgres", "host": "old.internal", "port": 6432, "dbname": "shop", "username": "shop_mig", "password": "new-1"}
    w.runner().create(MASTER, t2)  # the master's value is its own: only the password changes
    assert w.value(MASTER, t2) == {"username": "master", "password": "new-2"}


def test_create_is_a_no_op_on_retry(w: World) -> None:
    w.pending(APP, t1, {"username": "shop_app_clone", "password": "kept"})
    w.runner().create(APP, t1)
    assert w.log == [f"createSecret: version {t1} already holds the new value (retry)"] and "put" not in w.sm.names() and w.rollout == []


def test_create_checks_the_rollout_only_for_the_alternating_secret(w: World) -> None:
    from dataclasses import replace

    ecs = object()
    cfg = replace(w.config, ecs_cluster="shop-dev", ecs_service="shop-dev-app")
    w.problem = "the last deployment is unfinished"
    for arn in (MASTER, MIG):
        w.runner(cfg, ecs).create(arn, version(arn))
    assert w.rollout == []
    for partial, client in ((replace(cfg, ecs_cluster=""), ecs), (replace(cfg, ecs_service=""), ecs), (cfg, None)):
        w.runner(partial, client).create(APP, version(str(len(w.log))))
    assert w.rollout == [] and not w.warnings
    with pytest.raises(RotationError) as err:
        w.runner(cfg, ecs).create(APP, t9)
    assert str(err.value) == "createSecret: the last deployment is unfinished"
    assert w.warnings == ["createSecret: refused: the last deployment is unfinished"] and w.rollout == [(ecs, "shop-dev", "shop-dev-app")]
    current = next(v for v, stages in w.sm.stages[APP].items() if "AWSCURRENT" in stages)
    assert w.rollout_since == [w.sm.created[(APP, current)]]  # the deployment must be newer than AWSCURRENT
    assert (APP, t9) not in w.sm.values
    w.problem = None
    w.runner(cfg, ecs).create(APP, t9)
    assert w.value(APP, t9)["username"] == "shop_app_clone"


def test_set_and_test_need_a_pending_password(w: World) -> None:
    r = w.runner()
    for step, method in (("setSecret", r.set), ("testSecret", r.test)):
        with pytest.raises(RotationError) as err:
            method(APP, t1)
        assert str(err.value) == f"{step}: version {t1} of {APP} holds no new password; createSecret must run first"
    w.pending(APP, t2, {"username": "shop_app_clone"})
    with pytest.raises(RotationError, match=f"^setSecret: version {t2} .* holds no new password"):
        r.set(APP, t2)


def test_set_master_is_alter_role_by_the_master_itself(w: World) -> None:
    w.pending(MASTER, t1, {"host": HOST, "username": "master", "password": "m-new"})
    w.runner().set(MASTER, t1)
    assert w.db.passwords["master"] == "m-new" and w.db.verifiers == [("master", "m-new", "SCRAM-SHA-256$of:m-new")]
    alter = sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier("master"), sql.Literal("SCRAM-SHA-256$of:m-new"))
    assert [(u, q) for u, q, _ in w.db.executed if q != "SELECT 1"] == [("master", alter)]
    assert w.log[-1] == "setSecret: master master now accepts AWSPENDING (ALTER ROLE as the master itself, SCRAM verifier sent)"
    assert all(c.closed for c in w.db.conns[1:])
    w.log.clear()
    w.runner().set(MASTER, t1)  # retry: already accepted
    assert w.log == ["setSecret: the database already accepts AWSPENDING, skipped"]


def test_set_login_roles(w: World) -> None:
    w.pending(MIG, t1, {"host": HOST, "username": "shop_mig", "password": "mig-new"})
    w.runner().set(MIG, t1)
    assert w.db.passwords["shop_mig"] == "mig-new"
    role_check = ("master", steps_role_query, ("shop_mig",))
    alter = ("master", sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier("shop_mig"), sql.Literal("SCRAM-SHA-256$of:mig-new")), None)
    assert [e for e in w.db.executed if e[1] != "SELECT 1"] == [role_check, alter]
    ((conn, roles, error),) = w.admin_checks
    assert conn.user == "master" and roles == ["shop_mig"] and error is RotationError and conn.closed
    assert w.log[-1] == "setSecret: role shop_mig now accepts AWSPENDING (SCRAM verifier sent, not the password)"
    w.db.passwords["shop_app_clone"] = "unknown"
    w.pending(APP, t2, {"host": HOST, "username": "shop_app_clone", "password": "app-new"})
    w.runner().set(APP, t2)
    assert w.db.passwords["shop_app_clone"] == "app-new" and w.db.passwords["shop_app"] == "app-old"


def test_set_refuses_the_active_user_or_a_missing_role(w: World) -> None:
    w.pending(APP, t1, {"host": HOST, "username": "shop_app", "password": "app-new"})
    with pytest.raises(RotationError) as err:
        w.runner().set(APP, t1)
    assert str(err.value) == "setSecret: AWSPENDING names the active user shop_app; the alternating rotation only changes the inactive one"
    w.sm.add(APP, a1, {"username": "shop_app", "password": ""}, "AWSCURRENT")  # no working password yet: nothing to cut off
    w.runner().set(APP, t1)
    assert w.db.passwords["shop_app"] == "app-new"
    w.pending(MIG, t2, {"host": HOST, "username": "gone", "password": "x"})
    with pytest.raises(RotationError) as err:
        w.runner().set(MIG, t2)
    assert str(err.value) == "setSecret: role gone does not exist in the database; deploy the app database first"


class Clock:
    def __init__(self) -> None:
        self.now, self.sleeps = 100.0, list[float]()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(steps, "time", c)
    return c


def test_test_waits_for_the_master_only(w: World, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    w.pending(MIG, t1, {"host": HOST, "username": "shop_mig", "password": "mig-old"})
    w.runner().test(MIG, t1)
    assert w.log == ["testSecret: login as shop_mig with AWSPENDING over TLS succeeded"] and clock.sleeps == []
    w.pending(MIG, t2, {"host": HOST, "username": "shop_mig", "password": "wrong"})
    with pytest.raises(RotationError) as err:
        w.runner().test(MIG, t2)
    assert str(err.value) == "testSecret: the database rejected the AWSPENDING login of shop_mig; AWSCURRENT is unchanged"
    assert clock.sleeps == [] and len(w.db.opened) == 2
    w.pending(MASTER, t3, {"host": HOST, "username": "master", "password": "m-new"})
    with pytest.raises(RotationError, match="login of master;"):
        w.runner().test(MASTER, t3)
    assert clock.sleeps == [5.0] * 12  # 60 s in steps of min(5, 60/10)
    for timeout, step in ((0.5, 0.05), (0.05, 0.01)):
        clock.sleeps.clear()
        with pytest.raises(RotationError):
            w.runner(replace(w.config, master_test_timeout_s=timeout)).test(MASTER, t3)
        assert clock.sleeps and clock.sleeps == [pytest.approx(step)] * len(clock.sleeps)
        assert timeout - step < sum(clock.sleeps) < timeout + 1.5 * step

    def later(s: float) -> None:  # RDS applies the change while the function waits
        clock.now += 5
        if clock.now >= 115:
            w.db.passwords["master"] = "m-new"

    monkeypatch.setattr(clock, "sleep", later)
    w.log.clear()
    w.runner().test(MASTER, t3)
    assert w.log == ["testSecret: login as master with AWSPENDING over TLS succeeded"]


def test_finish_moves_awscurrent_then_drops_awspending(w: World) -> None:
    w.pending(MIG, t1, {"username": "shop_mig", "password": "p"})
    w.runner(ecs=object()).finish(MIG, t1)
    assert [c for c in w.sm.calls if c[0] == "stage"] == [
        ("stage", {"SecretId": MIG, "VersionStage": "AWSCURRENT", "MoveToVersionId": t1, "RemoveFromVersionId": g1}),
        ("stage", {"SecretId": MIG, "VersionStage": "AWSPENDING", "RemoveFromVersionId": t1}),
    ]
    assert w.sm.stages[MIG] == {g1: [], t1: ["AWSCURRENT"]}
    assert w.log == [f"finishSecret: AWSCURRENT moved to version {t1}", "finishSecret: done, no AWSPENDING left"]
    w.log.clear()
    w.sm.calls.clear()
    w.runner().finish(MIG, t1)  # nothing left to do
    assert w.sm.calls == [("describe", {"SecretId": MIG})] and w.log == ["finishSecret: done, no AWSPENDING left"]
    w.sm.stages[MIG][t1].append("AWSPENDING")  # promoted, label left behind
    w.runner().finish(MIG, t1)
    assert w.sm.stages[MIG][t1] == ["AWSCURRENT"]


class Ecs:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls, self.error = list[dict[str, Any]](), error

    def update_service(self, **kw: Any) -> None:
        self.calls.append(kw)
        if self.error:
            raise self.error


def test_finish_redeploys_only_after_an_alternating_rotation(w: World) -> None:
    from dataclasses import replace

    cfg = replace(w.config, ecs_cluster="shop-dev", ecs_service="shop-dev-app")
    ecs = Ecs()
    for arn, token in ((MASTER, t1), (MIG, t2)):
        w.pending(arn, token, {"username": "u", "password": "p"})
        w.runner(cfg, ecs).finish(arn, token)
    assert ecs.calls == []
    w.pending(APP, t3, {"username": "shop_app_clone", "password": "p"})
    w.log.clear()
    w.runner(cfg, ecs).finish(APP, t3)
    assert ecs.calls == [{"cluster": "shop-dev", "service": "shop-dev-app", "forceNewDeployment": True}]
    assert w.log == [f"finishSecret: AWSCURRENT moved to version {t3}",
                     "finishSecret: new deployment of service shop-dev-app forced, so every task reads the new credentials",
                     "finishSecret: done, no AWSPENDING left"]


def test_redeploy_needs_cluster_and_service_and_never_fails_the_step(w: World) -> None:
    from dataclasses import replace

    from botocore.exceptions import ClientError

    cfg = replace(w.config, ecs_cluster="shop-dev", ecs_service="shop-dev-app")
    ecs = Ecs()
    for partial in (replace(cfg, ecs_cluster=""), replace(cfg, ecs_service="")):
        w.runner(partial, ecs).redeploy()
    assert ecs.calls == [] and w.log == []
    tail = "; running tasks keep working until the next-but-one rotation, redeploy the service before then"
    head = "finishSecret: the secret is rotated, but forcing a new deployment of service shop-dev-app in cluster shop-dev did not succeed"
    for error, named in ((ClientError({"Error": {"Code": "ServiceNotFoundException", "Message": "m"}}, "UpdateService"), "ServiceNotFoundException"),
                         (TimeoutError("slow"), "TimeoutError")):
        w.warnings.clear()
        w.runner(cfg, Ecs(error)).redeploy()
        assert w.warnings == [f"{head} ({named}){tail}"] and w.log == []

"""The rotation function driven by the four Secrets Manager events, against moto (Secrets Manager,
RDS) and the real local PostgreSQL standing in for RDS."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from rotation_function.handler import RotationStepError, config_from_env
from rotation_function.steps import STEPS, StepRunner, other_user
from tests.pgserver import PgServer
from tests.rotation_lambda_world import LambdaWorld
from tests.rotation_world import KilledError


def _stages(lw: LambdaWorld, role: str) -> dict[str, list[str]]:
    return dict(lw.w.sm.describe_secret(SecretId=lw.arns[role])["VersionIdsToStages"])


def test_four_events_rotate_master_then_both_app_users_and_migrator(lw: LambdaWorld, pg: PgServer) -> None:
    w = lw.w
    token = lw.rotate("master")
    master = w.secret("master")
    assert master and pg.can_login(w.master, master["password"]) and not pg.can_login(w.master, w.initial_master_password)
    # issue 28 item 8: the master changed its own password in SQL on the real server; no ModifyDBInstance
    assert w.admin.calls == 0 and "AWSCURRENT" in _stages(lw, "master")[token]
    assert any("ALTER ROLE as the master itself" in line for line in lw.log)
    assert not any("AWSPENDING" in s for s in _stages(lw, "master").values())

    lw.rotate("migrator")
    mig = w.secret("migrator")
    assert mig and mig["host"] == master["host"] and pg.can_login(mig["username"], mig["password"], mig["dbname"])

    users = []
    for _ in range(2):  # both app users get a password, one per rotation
        lw.rotate("app")
        app = w.secret("app")
        assert app and pg.can_login(app["username"], app["password"], app["dbname"])
        users.append(app["username"])
        assert not any("AWSPENDING" in s for s in _stages(lw, "app").values())
    assert users == [lw.clone_user, lw.app_user]
    for step in STEPS:
        assert any(line.startswith(step) for line in lw.log)
    text = "\n".join(lw.log)
    for pw in (master["password"], mig["password"], w.initial_master_password):
        assert pw not in text


def test_alternating_users_keep_a_task_connected_until_the_next_but_one_rotation(lw: LambdaWorld, pg: PgServer) -> None:
    """A task reads the secret once, at start; it must keep connecting through one rotation."""
    w = lw.w
    lw.rotate("app")  # a first password (the clone), as right after provisioning
    held: list[dict[str, Any]] = []  # credentials read "at task start", one task per rotation
    for _ in range(3):
        app = w.secret("app")
        assert app
        held.append(app)
        lw.rotate("app")
        latest = w.secret("app")
        assert latest and latest["username"] != app["username"] and pg.can_login(latest["username"], latest["password"], latest["dbname"])
        assert pg.can_login(app["username"], app["password"], app["dbname"]), "a running task lost the database after one rotation"
        if len(held) >= 2:
            old = held[-2]  # started two rotations ago: its user has been given a new password
            assert not pg.can_login(old["username"], old["password"], old["dbname"])
    assert {h["username"] for h in held} == {lw.app_user, lw.clone_user}


@pytest.mark.parametrize("role", ["master", "app", "migrator"])
@pytest.mark.parametrize("crash_at", STEPS)
def test_crash_in_a_step_and_retry_with_the_same_token(lw: LambdaWorld, pg: PgServer, role: str, crash_at: str) -> None:
    w = lw.w
    if role != "master":
        lw.rotate(role)  # a working password first
    before = w.secret(role)
    assert before
    token = lw.start(role)

    def crash(line: str) -> None:  # dies right after the step's first effect (finishSecret: between its two label moves)
        if line.startswith(crash_at) and "nothing to do" not in line:
            raise KilledError(line)

    for step in STEPS:
        if step == crash_at:
            with pytest.raises(RotationStepError):
                lw.step(role, step, token, runner=StepRunner(lw.config, w.sm, w.admin, out=crash))
            assert w.can_login_with_any(role), f"{role} locked out after a crash in {step}"
            assert w.can_login_with_any("master")
        lw.step(role, step, token)  # Secrets Manager's retry: same step, same token
    after = w.secret(role)
    assert after and after["password"] != before["password"]
    assert pg.can_login(after["username"], after["password"], after["dbname"])
    assert "AWSCURRENT" in _stages(lw, role)[token] and not any("AWSPENDING" in s for s in _stages(lw, role).values())
    if role == "app":  # the user AWSCURRENT named before still works (alternating)
        assert after["username"] == other_user(before["username"]) and pg.can_login(before["username"], before["password"], before["dbname"])
    else:
        assert not pg.can_login(before["username"], before["password"], before["dbname"])
    # a late duplicate of any step after completion changes nothing
    for step in STEPS:
        assert lw.step(role, step, token) == "already current"
    assert w.secret(role) == after


def test_event_checks_and_errors_are_one_sentence_without_secrets(lw: LambdaWorld, pg: PgServer, caplog: pytest.LogCaptureFixture) -> None:
    w = lw.w
    lw.rotate("master")
    master_pw = w.secret("master")["password"]  # type: ignore[index]
    caplog.set_level(logging.ERROR, logger="pghome.rotation")

    def fails(event: dict[str, str], match: str, runner: StepRunner | None = None) -> None:
        caplog.clear()
        with pytest.raises(RotationStepError, match=match) as err:
            from rotation_function.handler import run_event

            run_event(event, runner or lw.runner())
        records = [r.getMessage() for r in caplog.records]
        assert len(records) == 1 and "\n" not in records[0] and records[0] == str(err.value)
        assert master_pw not in records[0] and err.value.__cause__ is None

    token = lw.start("app")
    fails(lw.event("app", "rotateEverything", token), "unknown step 'rotateEverything'")
    fails(lw.event("app", "createSecret", "not-a-version"), "is not a version of secret")
    fails(lw.event("app", "setSecret", token), "holds no new password; createSecret must run first")
    # a secret of another stack (not in the function's environment)
    other = w.sm.create_secret(Name="someone-else/db/app", SecretString='{"username": "x", "password": "y"}')["ARN"]
    lw.enable(other)
    other_token = str(uuid.uuid4())
    lw._moto_secret(other).versions[other_token] = {"createdate": 0, "version_id": other_token, "version_stages": ["AWSPENDING"]}
    fails({"SecretId": other, "ClientRequestToken": other_token, "Step": "createSecret"}, "not one this function rotates")
    stray = w.sm.put_secret_value(SecretId=lw.arns["app"], SecretString="{}", VersionStages=["STRAY"])["VersionId"]
    fails(lw.event("app", "createSecret", stray), "is not staged AWSPENDING")
    # rotation disabled
    plain = w.sm.create_secret(Name="plain/db/x", SecretString="{}")["ARN"]
    vid = next(iter(w.sm.describe_secret(SecretId=plain)["VersionIdsToStages"]))
    fails({"SecretId": plain, "ClientRequestToken": vid, "Step": "createSecret"}, "does not have rotation enabled")
    # database unreachable: the step fails, AWSCURRENT untouched
    lw.step("app", "createSecret", token)
    from dataclasses import replace

    unreachable = StepRunner(replace(lw.config, host_override="127.0.0.1", port_override=1, sslmode="require", connect_timeout=1), w.sm, w.admin, out=lambda s: None)
    fails(lw.event("app", "setSecret", token), "unreachable over TLS", runner=unreachable)
    # an unexpected AWS error is named by its code, not its text
    class Broken:
        exceptions = w.sm.exceptions

        def describe_secret(self, **kw: object) -> None:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": f"denied {master_pw}"}}, "DescribeSecret")

    fails(lw.event("app", "setSecret", token), r"unexpected ClientError \(AccessDeniedException\)$", runner=StepRunner(lw.config, Broken(), w.admin))


def test_config_from_env() -> None:
    cfg = config_from_env({
        "PGHOME_MASTER_SECRET_ARN": "arn:m", "PGHOME_DB_INSTANCE_ID": "shop-dev-db",
        "PGHOME_LOGIN_SECRET_ARNS": "arn:mig", "PGHOME_ALTERNATING_SECRET_ARNS": "arn:app, ", "PGSSLROOTCERT": "/var/task/rds-ca.pem",
    })
    assert (cfg.kind("arn:m"), cfg.kind("arn:app"), cfg.kind("arn:mig")) == ("master", "alternating", "single")
    assert cfg.sslmode == "verify-full" and cfg.sslrootcert == "/var/task/rds-ca.pem"
    from dbcore.secret import RotationError

    with pytest.raises(RotationError, match="lacks PGHOME_DB_INSTANCE_ID"):
        config_from_env({"PGHOME_MASTER_SECRET_ARN": "arn:m"})


def test_other_user() -> None:
    assert other_user("shop_app") == "shop_app_clone" and other_user("shop_app_clone") == "shop_app"


def test_a_login_role_the_master_cannot_administer_is_one_sentence(lw: LambdaWorld, pg: PgServer, caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL 16+: a role created by someone else (an upgrade, a DBA) cannot be altered by the
    master; setSecret says so and what to run, and AWSCURRENT keeps working."""
    from psycopg import sql

    w = lw.w
    with pg.connect_super() as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(lw.clone_user)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(lw.clone_user)))  # not by the master
    token = lw.start("app")
    lw.step("app", "createSecret", token)
    caplog.set_level(logging.ERROR, logger="pghome.rotation")
    if pg.major < 16:
        # On 15, CREATEROLE alone lets the master alter any non-superuser role: nothing to refuse.
        lw.step("app", "setSecret", token)
        assert not caplog.records
        return
    with pytest.raises(RotationStepError, match=lw.clone_user) as err:
        lw.step("app", "setSecret", token)
    assert "\n" not in str(err.value) and len(caplog.records) == 1
    assert w.secret("app", "AWSPENDING") and w.secret("app")


class CountingEcs:
    """moto's ECS, counting the UpdateService calls the function makes."""

    def __init__(self, ecs: Any):
        self.ecs, self.calls = ecs, list[dict[str, Any]]()

    def update_service(self, **kw: Any) -> Any:
        self.calls.append(kw)
        return self.ecs.update_service(**kw)

    def describe_services(self, **kw: Any) -> Any:  # createSecret's rollout check (dbcore/rollout.py)
        return self.ecs.describe_services(**kw)


def _app_service(region: str) -> Any:
    import boto3

    ecs = boto3.client("ecs", region_name=region)
    ecs.create_cluster(clusterName="shop-dev")
    ecs.register_task_definition(family="shop-dev-app", containerDefinitions=[{"name": "app", "image": "app:1", "memory": 512}])
    ecs.create_service(cluster="shop-dev", serviceName="shop-dev-app", taskDefinition="shop-dev-app", desiredCount=0)
    return ecs


def _primary(ecs: Any) -> dict[str, Any]:
    (svc,) = ecs.describe_services(cluster="shop-dev", services=["shop-dev-app"])["services"]
    return dict(next(d for d in svc["deployments"] if d["status"] == "PRIMARY"))


def test_an_app_rotation_forces_a_new_deployment_after_awscurrent_moved(lw: LambdaWorld, pg: PgServer) -> None:
    """A scheduled rotation has no CLI to redeploy: finishSecret of the alternating secret does,
    once AWSCURRENT names the new user, also on the retry after a crash between the two."""
    from dataclasses import replace

    w = lw.w
    ecs = CountingEcs(_app_service(w.settings.region))
    before = _primary(ecs.ecs)
    config = replace(lw.config, ecs_cluster="shop-dev", ecs_service="shop-dev-app")
    seen: list[str] = []

    def out(line: str) -> None:
        if line.startswith("finishSecret: new deployment"):  # forced only after the move
            seen.append(str((w.secret("app") or {}).get("username")))
        lw.log.append(line)

    runner = StepRunner(config, w.sm, w.admin, out=out, ecs=ecs)
    lw.rotate("migrator")
    token = lw.start("app")
    for step in STEPS:
        lw.step("app", step, token, runner)
    after = _primary(ecs.ecs)
    assert ecs.calls == [{"cluster": "shop-dev", "service": "shop-dev-app", "forceNewDeployment": True}]
    assert after["id"] != before["id"] and after["createdAt"] >= before["createdAt"]
    assert seen == [lw.clone_user]  # AWSCURRENT already named the new user when the deployment was forced
    # the master and the single-user migrator never redeploy
    for role in ("master", "migrator"):
        t = lw.start(role)
        for step in STEPS:
            lw.step(role, step, t, runner)
    assert len(ecs.calls) == 1
    # a crash right after the move: Secrets Manager's retry of finishSecret still redeploys
    token = lw.start("app")
    for step in STEPS[:3]:
        lw.step("app", step, token, runner)

    def crash(line: str) -> None:
        if line.startswith("finishSecret: AWSCURRENT moved"):
            raise KilledError(line)

    with pytest.raises(RotationStepError):
        lw.step("app", "finishSecret", token, StepRunner(config, w.sm, w.admin, out=crash, ecs=ecs))
    assert len(ecs.calls) == 1 and "AWSPENDING" in _stages(lw, "app")[token]
    assert lw.step("app", "finishSecret", token, runner) == "finished"
    assert len(ecs.calls) == 2 and not any("AWSPENDING" in s for s in _stages(lw, "app").values())


def test_a_failed_redeploy_is_one_logged_sentence_and_the_rotation_still_finishes(lw: LambdaWorld, pg: PgServer,
                                                                                 caplog: pytest.LogCaptureFixture) -> None:
    from dataclasses import replace

    w = lw.w
    _app_service(w.settings.region)
    import boto3

    config = replace(lw.config, ecs_cluster="shop-dev", ecs_service="not-this-service")
    caplog.set_level(logging.WARNING, logger="pghome.rotation")
    runner = StepRunner(config, w.sm, w.admin, out=lw.log.append, ecs=boto3.client("ecs", region_name=w.settings.region))
    token = lw.start("app")
    for step in STEPS:
        assert lw.step("app", step, token, runner) == "done"
    app = w.secret("app")
    assert app and app["username"] == lw.clone_user and pg.can_login(app["username"], app["password"], app["dbname"])
    assert "AWSCURRENT" in _stages(lw, "app")[token] and not any("AWSPENDING" in s for s in _stages(lw, "app").values())
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = record.getMessage()
    assert "\n" not in text and "not-this-service" in text and "next-but-one rotation" in text
    assert "failed for" not in text  # not a step failure: the CLI's log watch must not stop on it
    assert app["password"] not in text


def test_config_from_env_names_the_service() -> None:
    cfg = config_from_env({"PGHOME_MASTER_SECRET_ARN": "arn:m", "PGHOME_DB_INSTANCE_ID": "db",
                           "PGHOME_ECS_CLUSTER": "shop-dev", "PGHOME_ECS_SERVICE": "shop-dev-app"})
    assert (cfg.ecs_cluster, cfg.ecs_service) == ("shop-dev", "shop-dev-app")
    assert config_from_env({"PGHOME_MASTER_SECRET_ARN": "arn:m", "PGHOME_DB_INSTANCE_ID": "db"}).ecs_service == ""

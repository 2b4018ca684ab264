"""Issue 23 item 8: prod `destroy` then `up` meets the stack's secrets in their 30-day recovery
window. Against moto's Secrets Manager (DescribeSecret reports DeletedDate; a forced delete frees
the name at once)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bootstrap.deploy import deleted_secrets
from bootstrap.deploy.workspace import DeployError
from config.load import load_settings
from config.stack_file import stack_config


@pytest.fixture
def prod() -> Any:
    return load_settings(stack_config("prod"), stack="prod", check_credentials=False)


@pytest.fixture
def sm(prod: Any) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=prod.region)
        for role in prod.SECRET_ROLES:  # what `pulumi destroy` leaves: each secret deleted with prod's 30-day window
            client.create_secret(Name=prod.secret_name(role), SecretString="{}")
            client.delete_secret(SecretId=prod.secret_name(role), RecoveryWindowInDays=prod.database.secret_recovery_window_days)
        yield client


def test_prod_keeps_a_recovery_window(prod: Any) -> None:
    assert prod.database.secret_recovery_window_days == 30  # why `up` right after `destroy` meets them


def test_the_deploy_stops_before_any_change_and_names_the_commands(sm: Any, prod: Any) -> None:
    with pytest.raises(DeployError) as failed:
        deleted_secrets.check(sm, prod, purge=False, ask=lambda q: pytest.fail("must not ask without --purge-deleted-secrets"))
    message = str(failed.value)
    assert "\n" not in message and "--purge-deleted-secrets" in message
    for role in prod.SECRET_ROLES:
        assert f"aws secretsmanager delete-secret --secret-id {prod.secret_name(role)} --force-delete-without-recovery --region eu-west-1" in message
    assert all(sm.describe_secret(SecretId=prod.secret_name(r)).get("DeletedDate") for r in prod.SECRET_ROLES)  # untouched


def test_purge_asks_then_frees_the_names(sm: Any, prod: Any) -> None:
    asked: list[str] = []
    lines: list[str] = []

    def ask(question: str) -> bool:
        asked.append(question)
        return True

    deleted_secrets.check(sm, prod, purge=True, ask=ask, out=lines.append, interval_s=0.01)
    assert asked and "without recovery" in lines[0]
    for role in prod.SECRET_ROLES:  # the names are free: the stack can create them again
        sm.create_secret(Name=prod.secret_name(role), SecretString="{}")


def test_a_no_leaves_everything_as_it_was(sm: Any, prod: Any) -> None:
    with pytest.raises(DeployError, match="nothing was deleted"):
        deleted_secrets.check(sm, prod, purge=True, ask=lambda q: False, out=lambda s: None)
    assert all(sm.describe_secret(SecretId=prod.secret_name(r)).get("DeletedDate") for r in prod.SECRET_ROLES)


def test_live_secrets_of_a_running_stack_are_no_problem(prod: Any) -> None:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=prod.region)
        client.create_secret(Name=prod.secret_name("master"), SecretString="{}")
        deleted_secrets.check(client, prod, purge=False, ask=lambda q: pytest.fail("nothing to ask"))

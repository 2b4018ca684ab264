"""A stack's secrets still scheduled for deletion: found before `up`, removed only on request.

`pulumi destroy` deletes the stack's Secrets Manager secrets with their recovery window (30 days in
prod, config/sections.py). Until the window ends the name stays taken: CreateSecret with it fails
("You can't create this secret because a secret with this name is already scheduled for
deletion"), so `destroy` then `up` of the same stack fails halfway through the first phase.
Restoring (RestoreSecret) would not help either: the program creates its secrets, it does not
adopt them, and a restored secret holds a password of the destroyed database.

So before anything changes the deploy looks the names up. A name scheduled for deletion stops the
command with one sentence and the exact AWS CLI commands; `--purge-deleted-secrets` deletes them
without recovery instead, after showing which and asking (or `--yes`). The deletion is
asynchronous, so it waits until the names are free.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bootstrap.deploy.workspace import DeployError
from dbcore.waiting import wait_until


@dataclass(frozen=True)
class Scheduled:
    name: str
    deletion_date: str  # as Secrets Manager reports it (the end of the recovery window)


def stack_secret_names(settings: Any) -> list[str]:
    """Every secret the program creates: the master's and each login role's (config/settings.py)."""
    return [settings.secret_name(role) for role in settings.SECRET_ROLES]


def scheduled_for_deletion(sm: Any, names: Sequence[str]) -> list[Scheduled]:
    """Those of `names` that exist but are scheduled for deletion (DescribeSecret shows DeletedDate)."""
    found = []
    for name in names:
        try:
            desc = sm.describe_secret(SecretId=name)
        except sm.exceptions.ResourceNotFoundException:
            continue
        if desc.get("DeletedDate"):
            found.append(Scheduled(name, str(desc["DeletedDate"])))
    return found


def cli_commands(scheduled: Sequence[Scheduled], region: str) -> list[str]:
    return [f"aws secretsmanager delete-secret --secret-id {s.name} --force-delete-without-recovery --region {region}" for s in scheduled]


def check(sm: Any, settings: Any, *, purge: bool, ask: Callable[[str], bool], out: Callable[[str], None] = print,
          timeout_s: float = 120.0, interval_s: float = 2.0) -> None:
    """Stop (DeployError) when a secret of the stack is scheduled for deletion, unless `purge`: then,
    once `ask` agrees, delete them without recovery and wait until their names are free."""
    names = stack_secret_names(settings)
    scheduled = scheduled_for_deletion(sm, names)
    if not scheduled:
        return
    listed = ", ".join(f"{s.name} (until {s.deletion_date})" for s in scheduled)
    if not purge:
        raise DeployError(f"secret(s) {listed} of a destroyed stack are still scheduled for deletion, so the stack cannot create them again; "
                          f"re-run with --purge-deleted-secrets, or run: {'; '.join(cli_commands(scheduled, settings.region))}")
    out(f"these secrets of a destroyed stack are scheduled for deletion and will be deleted now, without recovery: {listed}")
    if not ask("delete them without recovery?"):
        raise DeployError("nothing was deleted; the secrets keep their recovery window and the deploy cannot create them until it ends")
    for s in scheduled:
        sm.delete_secret(SecretId=s.name, ForceDeleteWithoutRecovery=True)

    def freed() -> bool | None:
        return True if not [s.name for s in scheduled if _exists(sm, s.name)] else None

    wait_until(freed, timeout_s=timeout_s, interval_s=interval_s, waiting=lambda elapsed: out(f"  waiting for Secrets Manager to free the names ({int(elapsed)}s)"),
               timed_out=lambda elapsed: DeployError(f"Secrets Manager still holds {listed} after {int(elapsed)}s; re-run the deploy in a minute"))
    out(f"deleted {len(scheduled)} secret(s) scheduled for deletion; their names are free")


def check_stack(settings: Any, *, purge: bool, assume_yes: bool, out: Callable[[str], None] = print) -> None:
    """`check` with the stack's region through boto3 (the deploy's seam `before_first_up`). Without AWS
    access it only says so: the `up` that follows reports the access problem itself."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    sm = boto3.session.Session(region_name=settings.region).client("secretsmanager")
    try:
        check(sm, settings, purge=purge, ask=terminal_ask(assume_yes), out=out)
    except (BotoCoreError, ClientError) as exc:
        out(f"note: could not look for secrets scheduled for deletion ({type(exc).__name__}); a destroyed stack's secrets in their "
            "recovery window would stop the up (docs/first-deploy.md, item 8)")


def terminal_ask(assume_yes: bool) -> Callable[[str], bool]:
    """The question for `check`: yes with --yes, else asked on the terminal; no terminal refuses."""
    def ask(question: str) -> bool:
        if assume_yes:
            return True
        if not sys.stdin.isatty():
            raise DeployError("refusing to delete secrets without confirmation: no terminal to ask on; re-run with --yes after reviewing the list above")
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    return ask


def _exists(sm: Any, name: str) -> bool:
    try:
        sm.describe_secret(SecretId=name)
    except sm.exceptions.ResourceNotFoundException:
        return False
    return True

"""`release --stack S --image-tag T`: the argparse glue and the real seams of bootstrap/deploy/release.py,
with the gate of bootstrap/deploy/releasing.py (the migration, the exact-image check, the ledger record)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any

from bootstrap.deploy.ledger import Ledger, LedgerError, holder_name
from bootstrap.deploy.release import SEVERITIES, ReleaseError, ReleaseOptions, Releaser, StackUpdate, check_request
from config.stack_file import set_stack_config


def register(sub: Any) -> None:
    from bootstrap.cli.args import _backend_args, _common, _db_args, _yes, guarded

    p = sub.add_parser("release", help="deploy one pushed, scanned image tag and wait for ECS steady state")
    _common(p)
    p.add_argument("--image-tag", required=True, help="tag in this stack's ECR repository, e.g. 1.4.2 or a commit sha")
    p.add_argument("--fail-on-severity", default="CRITICAL", type=str.upper, help=f"refuse images with findings at or above this ({', '.join(SEVERITIES)})")
    p.add_argument("--scan-timeout", type=float, default=600, help="seconds to wait for a running scan (default 600)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for steady state (default 1800)")
    p.add_argument("--break-lock", action="store_true", help="first remove a release lock left by a killed run (refused while its migration task runs)")
    _backend_args(p)
    _db_args(p)
    _yes(p)
    p.set_defaults(func=guarded(_cmd_release))


def automation_update(args: Any) -> StackUpdate:
    """The real seam: the Automation API workspace of bootstrap/deploy/workspace.py (AutomationUpdate)."""
    return AutomationUpdate(args)


class AutomationUpdate:
    """The release's update through the Automation API. Like `deploy`, it is previewed first
    (replacements and deletions of stateful resources called out, refused without
    --allow-data-loss) and needs a yes (`--yes`; off a terminal without it, release refuses).
    `Releaser.release` calls `confirm` before the release gate runs the migration, so nothing (no
    migration, no stack-file edit) happens before the yes. Only then is the tag written to the
    stack file (as `pulumi config set` would: commit it, it stays the source of truth) and `up`
    run. The program records the tag in the state (the `imageTag` output, read back by
    bootstrap/deploy/image_tag.py), and `up` runs with the app database phase the state records;
    with the app database on, the master password reaches the postgresql provider in that
    process's env only, as for `deploy`."""

    def __init__(self, args: Any):
        self.args = args
        self._confirmed: tuple[Any, Any, str, Any, Any, Any] | None = None  # (stack, plan, config file, tmpdir, session, action)

    def confirm(self, config: Mapping[str, str]) -> None:
        import tempfile
        from pathlib import Path

        from bootstrap.cli import deploy as deploy_cli
        from bootstrap.deploy import data_loss, retired
        from bootstrap.deploy.confirm import ChangePlan, confirm
        from bootstrap.deploy.workspace import explain
        from bootstrap.progress import heartbeat
        from config.stack_file import APP_DB_KEY, with_app_db

        args = self.args
        session = deploy_cli._session(args, cli=True)  # noqa: SLF001 - the shared CLI session
        assert session.ws is not None
        sf = session.sf
        stack = session.ws.open()
        deployed = getattr(stack.outputs().get("appDbEnabled"), "value", None)
        app_db = str(sf.explicit(APP_DB_KEY) if sf.explicit(APP_DB_KEY) is not None else deployed).lower() == "true"
        if app_db:
            from dbcore.pgconn import provider_env

            stack = session.ws.open(provider_env(deploy_cli._rotator(session).current_password("master")))  # noqa: SLF001
        tmp = tempfile.TemporaryDirectory()
        # the tag goes into the temporary --config-file first: nothing is written before the yes
        cfg = str(with_app_db(sf, app_db, Path(tmp.name) / sf.path.name, {f"pghome:{k}": v for k, v in config.items()}))
        action = f"release {', '.join(config.values())} to stack {args.stack}"
        plan = ChangePlan()
        try:
            with heartbeat(print, f"pulumi preview of stack {args.stack}"):
                stack.preview(config_file=cfg, on_event=plan.on_event, on_output=lambda line: None)
        except Exception as exc:
            tmp.cleanup()
            raise ReleaseError(f"pulumi preview failed: {explain(exc, args.stack)}; fix the cause and re-run release") from None
        retired.announce(plan, action, print, updates=True)  # forgotten after the yes, never deleted
        try:
            data_loss.check(plan, action, allowed=bool(getattr(args, "allow_data_loss", False)), out=print)
            confirm(plan, action, assume_yes=bool(getattr(args, "yes", False)), out=print)
        except BaseException:
            tmp.cleanup()
            raise
        self._confirmed = (stack, plan, cfg, tmp, session, action)

    def __call__(self, config: Mapping[str, str]) -> Mapping[str, Any]:
        from bootstrap.deploy import retired
        from bootstrap.deploy.workspace import DeployError, changing, explain
        from bootstrap.progress import Progress

        if self._confirmed is None:
            self.confirm(config)
        assert self._confirmed is not None
        stack, plan, cfg, tmp, session, action = self._confirmed
        sf, args = session.sf, self.args
        try:
            try:
                retired.mark(stack, plan, action)  # first of the changes: a failure here leaves nothing changed
            except DeployError as exc:
                raise ReleaseError(str(exc)) from None
            for key, value in config.items():
                set_stack_config(sf.path, f"pghome:{key}", value)
            print(f"{sf.path.name}: {', '.join(f'{k}={v}' for k, v in config.items())}; the tag is also recorded in the stack's "
                  "state (the imageTag output), so a later deploy from a checkout without this change keeps the image; commit the "
                  "file to keep it the source of truth")
            if plan.empty:
                print("release up: no changes")
                return dict(stack.outputs())
            progress = Progress(print)
            try:
                with changing("up", args.stack), progress.watch():
                    stack.up(config_file=cfg, **progress.kwargs())
            except Exception as exc:
                raise ReleaseError(f"pulumi up failed: {explain(exc, args.stack)}; fix the cause and re-run release") from None
            progress.finish("release up")
            return dict(stack.outputs())
        finally:
            tmp.cleanup()
            self._confirmed = None


def _cmd_release(args: Any) -> int:
    return gated_release(args, kind="release", tag=args.image_tag)


def aws_session(region: str) -> Any:
    import boto3

    return boto3.session.Session(region_name=region)


def _task_running(ecs: Any, cluster: str) -> Callable[[str], bool]:
    def running(arn: str) -> bool:
        tasks = ecs.describe_tasks(cluster=cluster, tasks=[arn]).get("tasks") or []
        return bool(tasks) and tasks[0].get("lastStatus") != "STOPPED"

    return running


def gated_release(args: argparse.Namespace, *, kind: str, tag: str, expected_digest: str = "") -> int:
    """`release` / `rollback`: bootstrap/deploy/release.py's Releaser with the gate of bootstrap/deploy/releasing.py."""
    from bootstrap.cli import deploy as deploy_cli
    from bootstrap.deploy.migrate import MigrationRunner
    from bootstrap.deploy.outputs import plain_outputs
    from bootstrap.deploy.releasing import ReleaseGate, run_gated
    from bootstrap.deploy.workspace import require_cli

    session = deploy_cli._session(args, cli=False)  # noqa: SLF001 - settings from the stack file, no CLI needed yet
    settings = session.settings
    opts = ReleaseOptions(tag, args.fail_on_severity, args.scan_timeout, args.timeout)
    check_request(settings, opts)  # exit 2: the input is wrong, whatever AWS says
    deploy_cli.require_rotation_archive(args)
    require_cli()  # the update needs the CLI: say so before reading ECR with AWS credentials
    try:
        aws = aws_session(settings.region)
        ecs = aws.client("ecs")
        ledger = Ledger(aws.client("dynamodb"), settings.prefix)
        if getattr(args, "break_lock", False):
            print(ledger.break_lock(_task_running(ecs, settings.prefix)))
        state: list[Mapping[str, Any]] = []

        def stack_outputs() -> Mapping[str, Any]:
            if not state:
                state.append(plain_outputs(deploy_cli._stack(deploy_cli._session(args, cli=True)).outputs()))  # noqa: SLF001
            return state[0]

        releaser: Releaser | None = None

        def outputs() -> Mapping[str, Any]:
            return plain_outputs(releaser.outputs) if releaser is not None and releaser.outputs else stack_outputs()

        gate = ReleaseGate(settings, ecs, ledger, MigrationRunner(ecs, aws.client("logs")), outputs, kind=kind, holder=holder_name(),
                           deploy_timeout=args.timeout)
        gate.expected_digest = expected_digest
        releaser = Releaser(settings, aws.client("ecr"), ecs, automation_update(args), gate=gate)
        return run_gated(releaser, gate, opts)
    except (ReleaseError, LedgerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

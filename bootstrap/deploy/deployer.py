"""Deploy orchestration over the Pulumi Automation API.

`python -m bootstrap deploy --stack S` runs the phased deploy that leaves no live credential in the
Pulumi state:

  first deploy:  (1) up with appDbEnabled=false  (2) rotate master (through the stack's rotation
                 function: join the rotation its SecretRotation started)  (3) up with appDbEnabled=true,
                 PGPASSWORD from Secrets Manager in the workspace env only  (4) rotate login roles
                 (their first passwords)  (5) audit the state
  later deploys: (3) - (5), rotating only with --rotate or when --rotate-after-days N is due
                 (and always finishing an interrupted rotation).

The phase is passed with `--config-file` (a temporary copy of the stack file) and recorded in the
state as the `appDbEnabled` stack output; the stack file is never edited, so every clone and CI
runner sharing the backend plans the same thing. The image tag travels the same way when the
stack file sets none (the `imageTag` output, bootstrap/deploy/image_tag.py), so an uncommitted release is
not undone. Each `up` is previewed and confirmed first.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from bootstrap.deploy import data_loss, retired
from bootstrap.deploy.confirm import ChangePlan, ask_yes, confirm
from bootstrap.deploy.image_tag import choose as choose_image_tag
from bootstrap.deploy.outputs import as_bool, masked_outputs, output_value, plain_outputs  # noqa: F401 (plain_outputs re-exported)
from bootstrap.deploy.seams import RemoteRotation, RotatorLike, RouteLike, WorkspaceLike, direct_route  # noqa: F401 (re-exported)
from bootstrap.deploy.workspace import CLI_MISSING, CliMissingError, DeployError, StackLike, cause_of, changing, explain, resumable  # noqa: F401 (re-exported)
from bootstrap.progress import Progress, heartbeat, summary_text, violated
from bootstrap.rotation.audit import SECRET_MARK, SECRET_SIG, audit_state, find_credentials, login_users  # noqa: F401 (re-exported)
from config.stack_file import APP_DB_KEY, StackFile, with_app_db

EXIT_DRIFT = 2


class Deployer:
    def __init__(
        self,
        stack_file: StackFile,
        workspace: WorkspaceLike,
        rotator_factory: Callable[[], RotatorLike],
        auditor: Callable[[StackLike], int],
        *,
        out: Callable[[str], None] = print,
        assume_yes: bool = False,
        allow_data_loss: bool = False,
        ask: Callable[[str], str] | None = None,
        isatty: Callable[[], bool] | None = None,
        policy_packs: list[str] | None = None,
        policy_pack_configs: list[str] | None = None,
        prefix: str = "",
        route: Callable[[Mapping[str, Any]], AbstractContextManager[RouteLike]] = direct_route,
        password_logins: tuple[str, ...] = ("app", "migrator"),
        remote_rotation: RemoteRotation | None = None,
        before_first_up: Callable[[], None] = lambda: None,
    ):
        self.sf, self.ws = stack_file, workspace
        self.rotator_factory, self.auditor = rotator_factory, auditor
        self.out, self.assume_yes, self.ask = out, assume_yes, ask
        self.allow_data_loss = allow_data_loss  # --allow-data-loss: bootstrap/deploy/data_loss.py
        self.isatty = isatty
        self.policy_packs = policy_packs or []
        self.policy_pack_configs = policy_pack_configs or []  # paired with policy_packs by position
        self.prefix = prefix
        self.password_logins = password_logins  # IAM-auth logins (appDbIamAuthRoles) have no password to rotate
        # Phases 2 and 4 through the stack's rotation function (RotateSecret + wait) when it exports one.
        self.remote_rotation = remote_rotation
        self.route = route  # opened after phase 1 for the phases that connect (a tunnel when needed)
        # checks only an empty stack needs (secrets a destroy left in their recovery window), before its first change
        self.before_first_up = before_first_up
        self._rotator: RotatorLike | None = None
        self.carried: dict[str, str] = {}  # config taken from the state besides the phase (the image tag)
        self._tmp = tempfile.TemporaryDirectory(prefix="pghome-deploy-")
        self.done: list[str] = []
        self.phase = ("phase 1/5", "infrastructure without the app database")  # what runs now, for the resume sentence

    @property
    def stack(self) -> str:
        return self.ws.stack

    @property
    def rotator(self) -> RotatorLike:
        if self._rotator is None:
            self._rotator = self.rotator_factory()
        return self._rotator

    # pieces ----------------------------------------------------------------------------------
    def config_file(self, app_db: bool) -> str:
        return str(with_app_db(self.sf, app_db, Path(self._tmp.name) / self.sf.path.name, self.carried))

    def carry_image_tag(self, outputs: Mapping[str, Any], say: bool = True) -> None:
        """The stack file's imageTag, else the one the state records (a release is never undone)."""
        choice = choose_image_tag(self.sf, outputs)
        self.carried = choice.overrides
        if say:
            self.out(choice.describe(self.sf.path.name))

    def _confirm(self, plan: ChangePlan, action: str, *, refresh: bool = False) -> None:
        if not refresh and ((data_loss.losses(plan) and not self.allow_data_loss) or data_loss.collisions(plan)):  # a refresh only rewrites the state
            self.out(f"{action}: planned changes")
            self.out(plan.render())  # what would be lost, before the refusal
        if not refresh:
            data_loss.check(plan, action, allowed=self.allow_data_loss, out=self.out)
        confirm(plan, action, assume_yes=self.assume_yes, out=self.out, ask=self.ask, isatty=self.isatty)

    def _packs(self) -> dict[str, Any]:
        if not self.policy_packs:
            return {}
        return {"policy_packs": self.policy_packs, **({"policy_pack_configs": self.policy_pack_configs} if self.policy_pack_configs else {})}

    def _resume(self, phase: str, what: str, cause: str) -> DeployError:
        done = "; ".join(self.done) if self.done else "no phase completed in this run"
        return DeployError(f"{phase} ({what}) failed: {cause}. Done so far: {done}. Fix the cause, then run "
                           f"`python -m bootstrap deploy --stack {self.stack}` to go on from {phase}")

    def _up(self, stack: StackLike, phase: str, what: str, app_db: bool, secret_values: tuple[str, ...] = ()) -> Mapping[str, Any]:
        cfg = self.config_file(app_db)
        self.out(f"[{phase}] {what}: preview ({APP_DB_KEY}={'true' if app_db else 'false'})")
        plan = ChangePlan()
        try:
            with heartbeat(self.out, f"pulumi preview of stack {self.stack}"):
                stack.preview(config_file=cfg, on_event=plan.on_event, on_output=lambda line: None, **self._packs())
        except Exception as exc:
            raise self._resume(phase, what, explain(exc, self.stack) + violated(plan.violations)) from None
        retired.announce(plan, f"deploy {phase}", self.out, updates=True)
        self._confirm(plan, f"deploy {phase} to stack {self.stack}")
        if plan.empty:
            self.out(f"[{phase}] no changes")
        else:
            retired.mark(stack, plan, f"deploy {phase}")
            progress = Progress(self.out)
            try:
                with changing("up", self.stack), progress.watch():
                    stack.up(config_file=cfg, **progress.kwargs(), **self._packs())
            except DeployError as exc:  # interrupted: what was done before, and the way back
                raise DeployError(f"{phase} ({what}) {exc}. Done before it: {'; '.join(self.done) or 'nothing'}") from None
            except Exception as exc:
                raise self._resume(phase, what, explain(exc, self.stack) + violated(progress.violations)) from None
            progress.finish(f"{phase} done")
        outputs = stack.outputs()
        for key, ov in outputs.items():  # PGPASSWORD must never leak into outputs
            if secret_values and str(getattr(ov, "value", ov)) in secret_values:
                raise DeployError(f"stack output {key!r} holds the master password; remove that export and rotate the master (--rotate)")
        return outputs

    def _rotate(self, phase: str, roles: tuple[str, ...]) -> None:
        from dbcore.secret import RotationError

        for role in roles:
            self.out(f"[{phase}] rotate {role}")
            try:
                self.rotator.rotate(role)
            except RotationError as exc:
                raise self._resume(phase, f"rotating {role}", str(exc)) from None
            self.done.append(f"{role} password rotated")

    # the deploy ------------------------------------------------------------------------------
    def deploy(self, *, rotate: bool = False, rotate_after_days: int | None = None) -> int:
        recorded: Mapping[str, Any] = {}
        if self.ws.exists():
            stack = self.ws.open()
            recorded = stack.outputs()
            first = not recorded
        else:
            # As `pulumi up` offers for a missing stack: ask before `stack init`, which creates the
            # stack in the backend and records the secrets provider in the stack file.
            self.out(f"stack {self.stack} does not exist in the backend: a first deploy creates it (`pulumi stack init`)")
            ask_yes(f"Create stack {self.stack} and deploy it (phases 1-5)?", f"create stack {self.stack}", assume_yes=self.assume_yes,
                    ask=self.ask, isatty=self.isatty)
            stack = self.ws.create()
            first = True
        self.out(f"deploy {self.stack}: {'first deploy (phases 1-5)' if first else 'later deploy (phases 3-5)'}")
        self.carry_image_tag(recorded)
        if first:
            self.before_first_up()
            outputs = self._up(stack, "phase 1/5", "infrastructure without the app database", app_db=False)
            self.done.append("infrastructure deployed without the app database")
        else:
            outputs = stack.outputs()
        with contextlib.ExitStack() as held:  # the route (a tunnel: its task) is closed however this ends
            try:
                self.phase = ("phase 2/5", "opening the route to the database")
                route = held.enter_context(self.route(outputs))
                return self._db_phases(first, rotate, rotate_after_days, route, outputs)
            except DeployError:
                raise
            except resumable() as exc:  # AWS, the database, the tunnel: still the resume sentence
                raise self._resume(*self.phase, cause_of(exc)) from None

    def _remote(self, outputs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The plain outputs when rotations go through the stack's rotation function, else None."""
        plain = plain_outputs(outputs)
        return plain if self.remote_rotation is not None and plain.get("rotationFunctionArn") else None

    def _master_phase(self, first: bool, rotate: bool, outputs: Mapping[str, Any]) -> None:
        """Phase 2. Through the function, the master's SecretRotation (phase 1, rotate_immediately)
        has already started a rotation inside the VPC: join it while it is pending, and start one
        only when none ever finished (needs_first_rotation: also true while one is pending) or with
        --rotate; so a first deploy whose immediate rotation already finished rotates once, not twice."""
        from dbcore.secret import RotationError

        self.phase = ("phase 2/5", "rotating master")
        plain = self._remote(outputs)
        if plain is not None and self.remote_rotation is not None:
            start = rotate or self.rotator.needs_first_rotation("master")
            self.out(f"[phase 2/5] master: {'rotate' if start else 'join a rotation in progress, if any,'} through the stack's rotation function "
                     "(--local-rotation: in-process)")
            try:
                self.remote_rotation(plain, ("master",), start)
            except RotationError as exc:
                raise self._resume("phase 2/5", "rotating master through the rotation function", str(exc).rstrip(".")) from None
            self.done.append("master rotation finished through the rotation function")
        elif first or rotate or self.rotator.needs_first_rotation("master"):
            self._rotate("phase 2/5", ("master",))

    def _db_phases(self, first: bool, rotate: bool, rotate_after_days: int | None, route: RouteLike, recorded: Mapping[str, Any]) -> int:
        """Phases 2-5: everything that connects to the database, through `route`."""
        self._master_phase(first, rotate, recorded)
        self.phase = ("phase 3/5", "reading the master password")
        master_pw = self.rotator.current_password("master")
        if not master_pw:
            raise DeployError(f"the master secret of stack {self.stack} holds no password; run the deploy again from phase 1")
        self._check_admin("phase 3/5")
        from dbcore.pgconn import provider_env

        app_stack = self.ws.open({**provider_env(master_pw), **route.pulumi_env(os.environ)})
        outputs = self._up(app_stack, "phase 3/5", "app database, roles and grants", app_db=True, secret_values=(master_pw,))
        self.done.append("app database deployed")
        self.phase = ("phase 4/5", "rotating the login roles")
        due = [r for r in self.password_logins if self._due(r, first, rotate, rotate_after_days)]
        plain = self._remote(outputs)
        if due and plain is not None and self.remote_rotation is not None:
            self.out(f"[phase 4/5] rotate {', '.join(due)} through the stack's rotation function (--local-rotation: in-process)")
            from dbcore.secret import RotationError

            # A first deploy's new SecretRotations (phase 3) already rotate immediately: join those,
            # start one only where none ever finished, --rotate, or the age is due (no double rotation).
            start = [r for r in due if self._due(r, False, rotate, rotate_after_days)]
            try:
                for roles, begin in ((start, True), ([r for r in due if r not in start], False)):
                    if roles:
                        self.remote_rotation(plain, tuple(roles), begin)
            except RotationError as exc:
                raise self._resume("phase 4/5", "rotating the login roles through the rotation function", str(exc).rstrip(".")) from None
            self.done.append(f"{', '.join(due)} rotated through the rotation function")
        elif due:
            self._check_admin("phase 4/5")
            self._rotate("phase 4/5", tuple(due))
        else:
            self.out("[phase 4/5] login roles: rotation not due (use --rotate or --rotate-after-days N)")
        self.phase = ("phase 5/5", "auditing the state")
        self.out("[phase 5/5] audit")
        live = self.auditor(app_stack)
        self.out(json.dumps(masked_outputs(outputs), indent=2, default=str))
        if live:
            raise DeployError(f"the audit found {live} credential(s) in the state that still log in (or could not be checked); "
                              f"run `python -m bootstrap rotate --stack {self.stack} --role all`, then `python -m bootstrap audit --stack {self.stack}`")
        if as_bool(self.sf.explicit(APP_DB_KEY)) is not True:
            self.out(f"note: the app database is enabled in the state; `pulumi up` run by hand also needs {APP_DB_KEY}: \"true\" in {self.sf.path.name}")
        return 0

    def _check_admin(self, phase: str) -> None:
        """PostgreSQL 16+: the master must be able to administer the login roles (nothing changed yet)."""
        from dbcore.secret import RotationError

        try:
            self.rotator.check_admin()
        except RotationError as exc:
            raise self._resume(phase, "checking the master's ADMIN OPTION", str(exc).rstrip(".")) from None

    def _due(self, role: str, first: bool, rotate: bool, after_days: int | None) -> bool:
        if first or rotate or self.rotator.needs_first_rotation(role):
            return True
        if after_days is not None:
            age = self.rotator.last_rotated_days(role)
            return age is None or age >= after_days
        return False

    # single operations -----------------------------------------------------------------------
    def app_db_enabled(self, stack: StackLike, outputs: Mapping[str, Any] | None = None) -> bool:
        """The stack file's explicit value, else the phase recorded in the state, else off."""
        explicit = self.sf.explicit(APP_DB_KEY)
        if explicit is not None:
            return as_bool(explicit)
        return as_bool(output_value(stack.outputs() if outputs is None else outputs, "appDbEnabled"))

    def single(self, op: str, env_for: Callable[[bool], dict[str, str]]) -> int:
        probe = self.ws.open()
        recorded = probe.outputs()
        app_db = self.app_db_enabled(probe, recorded)
        with contextlib.ExitStack() as held:  # the route (a tunnel: its task) is closed however this ends
            stack = probe
            if app_db:  # the postgresql provider connects: through the same route as deploy's phases 3-5
                route = held.enter_context(self.route(recorded))
                stack = self.ws.open({**env_for(True), **route.pulumi_env(os.environ)})
            return self._single(op, stack, app_db, recorded)

    def _single(self, op: str, stack: StackLike, app_db: bool, recorded: Mapping[str, Any]) -> int:
        self.out(f"pulumi {op} {self.stack} ({APP_DB_KEY}={'true' if app_db else 'false'})")
        self.carry_image_tag(recorded, say=op != "destroy")
        cfg = self.config_file(app_db)
        violations: list[str] = []  # mandatory policy violations seen, for the failure sentence
        try:
            if op == "drift":
                return self._drift(stack, cfg)
            if op == "preview":
                progress, seen = Progress(self.out), ChangePlan()  # seen: what up would refuse, said after the preview
                violations = progress.violations

                def both(event: Any) -> None:
                    progress.on_event(event)
                    seen.on_event(event)

                with progress.watch():
                    stack.preview(config_file=cfg, on_event=both, on_output=lambda line: None, **self._packs())
                progress.finish("preview")
                retired.announce(seen, f"preview stack {self.stack}", self.out, updates=False)
                for c in data_loss.collisions(seen):
                    self.out(c.collision_warning)
                return 0
            plan = ChangePlan()
            violations = plan.violations
            with heartbeat(self.out, f"pulumi {op} --preview-only of stack {self.stack}"):
                if op == "up":
                    if not recorded:
                        self.before_first_up()
                    stack.preview(config_file=cfg, on_event=plan.on_event, on_output=lambda line: None, **self._packs())
                elif op == "refresh":
                    stack.preview_refresh(config_file=cfg, on_event=plan.on_event, on_output=lambda line: None)
                elif op == "destroy":
                    stack.preview_destroy(config_file=cfg, on_event=plan.on_event, on_output=lambda line: None)
            if op != "refresh":  # up and destroy forget a retired resource rather than delete it
                retired.announce(plan, f"{op} stack {self.stack}", self.out, updates=True)
            self._confirm(plan, f"{op} stack {self.stack}", refresh=op == "refresh")
            if plan.empty and op != "refresh":
                self.out("no changes")
                return 0
            if op != "refresh":
                retired.mark(stack, plan, f"{op} stack {self.stack}")
            progress = Progress(self.out)
            violations = progress.violations
            with changing(op, self.stack), progress.watch():
                if op == "up":
                    stack.up(config_file=cfg, **progress.kwargs(), **self._packs())
                elif op == "refresh":
                    stack.refresh(config_file=cfg, **progress.kwargs())
                else:
                    stack.destroy(config_file=cfg, **progress.kwargs())
            progress.finish(op)
        except DeployError:
            raise
        except Exception as exc:
            raise DeployError(f"pulumi {op} failed: {explain(exc, self.stack)}{violated(violations)}") from None
        if op in ("up", "refresh"):
            self.out(json.dumps(masked_outputs(stack.outputs()), indent=2, default=str))
        return 0

    def _drift(self, stack: StackLike, cfg: str) -> int:
        """Refresh (read AWS) then preview: exit 0 = matches, 2 = changes (listed), 1 = error."""
        plan = ChangePlan()
        with heartbeat(self.out, f"pulumi preview --refresh of stack {self.stack}"):
            stack.preview(refresh=True, config_file=cfg, on_event=plan.on_event, on_output=lambda line: None)
        if plan.empty:
            self.out(f"no drift: AWS matches the program for stack {self.stack}")
            return 0
        self.out(f"drift: stack {self.stack} differs from the program ({summary_text(plan.counts)}):")
        self.out(plan.render())
        retired.announce(plan, f"drift stack {self.stack}", self.out, updates=False)
        return EXIT_DRIFT


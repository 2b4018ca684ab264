"""A test double of the `pulumi` executable: the CLI contract the Automation API relies on.

Commands, flags, outputs and error texts follow the installed SDK (pulumi/automation/_local_workspace.py,
_stack.py, errors.py, events.py) and the CLI sources (pkg/cmd/pulumi, pkg/backend/diy). Every
invocation is appended to $PULUMI_DOUBLE_LOG (JSON lines: argv, cwd, selected env) for assertions.
Secrets in the recorded env are replaced by a short hash.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.pulumi_double import aws_names, engine, policy  # noqa: E402
from tests.pulumi_double.backend import (  # noqa: E402
    VERSIONS,
    Backend,
    CliError,
    StackRef,
    cli_version,
    exit_code,
)
from tests.pulumi_double.cancel import CancellationScope, TerminatedError  # noqa: E402
from tests.pulumi_double.events import Events, diagnostic, replay  # noqa: E402
from tests.pulumi_double.refresh import emit_refresh  # noqa: E402
from tests.pulumi_double.stack_commands import StackCommands, one  # noqa: E402

VALUE_FLAGS = {"--stack", "-s", "--event-log", "--exec-kind", "--client", "--secrets-provider", "--file", "--page-size", "--page",
               "--message", "-m", "--config-file", "--policy-pack", "--policy-pack-config", "--target", "--replace", "--exclude",
               "--parallel", "-p", "--color", "--verbose", "-v", "--tracing"}
BOOL_FLAGS = {"--json", "--show-secrets", "--yes", "-y", "--skip-preview", "--non-interactive", "--secret", "--plaintext", "--path",
              "--expect-no-changes", "--diff", "--refresh", "--preview-only", "--create", "--no-select", "--force", "--debug",
              "--suppress-outputs", "--suppress-progress", "--logflow", "--logtostderr", "--clear-pending-creates", "--exclude-protected",
              "--target-dependents", "--continue-on-error", "--all", "--preserve-config", "--show-ids", "--show-urns", "--local"}
RECORDED_ENV = ("PULUMI_BACKEND_URL", "PULUMI_HOME", "PULUMI_AUTOMATION_API", "PULUMI_DEBUG_COMMANDS", "PULUMI_SKIP_UPDATE_CHECK",
                "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "PGOPTIONS")
HASHED_ENV = ("PGPASSWORD", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_ACCESS_TOKEN")
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # what the SDK parses (automation/_stack.py)


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def record(argv: list[str]) -> None:
    log = os.environ.get("PULUMI_DOUBLE_LOG")
    if not log:
        return
    env = {k: os.environ[k] for k in RECORDED_ENV if k in os.environ}
    env.update({k: digest(os.environ[k]) for k in HASHED_ENV if k in os.environ})
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "env": env, "pid": os.getpid()}) + "\n")


def parse(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    words: list[str] = []
    opts: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            words.extend(argv[i + 1:])
            break
        if a.startswith("-"):
            name, eq, val = a.partition("=")
            if eq:
                opts.setdefault(name, []).append(val)
            elif (name in ("--plaintext", "--secret") and i + 1 < len(argv) and not argv[i + 1].startswith("-")
                  and ("=" in argv[i + 1] or words[:2] == ["config", "set-all"])):
                opts.setdefault(name + "=", []).append(argv[i + 1])  # config set-all --plaintext k=v (set-all's flags take a value)
                i += 1
            elif name in BOOL_FLAGS:
                opts[name] = True
            elif name in VALUE_FLAGS and i + 1 < len(argv):
                opts.setdefault(name, []).append(argv[i + 1])
                i += 1
            else:
                raise CliError(f"unknown flag: {name}")
        else:
            words.append(a)
        i += 1
    return words, opts


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime(DATETIME_FORMAT)


class Cli(StackCommands):
    # commands (stack and config: tests/pulumi_double/stack_commands.py) -------------------------
    def run(self) -> int:
        w = self.words
        if not w:
            raise CliError("no command given")
        if w[0] == "version":
            print(f"v{cli_version(self.env)}")
            return 0
        if w[0] == "whoami":
            b = self.backend()
            if self.opts.get("--json"):
                print(json.dumps({"user": "double", "organizations": ["organization"], "url": b.url}))
            else:
                print("double")
            return 0
        if w[0] == "login":
            url = w[1] if len(w) > 1 else ("file://~" if self.opts.get("--local") else "https://api.pulumi.com")
            home = Path(self.env.get("PULUMI_HOME") or Path.home() / ".pulumi")
            home.mkdir(parents=True, exist_ok=True)
            (home / "credentials.json").write_text(json.dumps({"current": url}))
            print(f"Logged in to {url}")
            return 0
        if w[0] == "stack":
            return self.stack_cmd(w[1] if len(w) > 1 else "select-current", w[2:])
        if w[0] == "config":
            return self.config_cmd(w[1] if len(w) > 1 else "", w[2:])
        if w[0] in ("up", "preview", "refresh", "destroy"):
            return self.operation(w[0])
        if w[0] == "cancel":
            b = self.backend()
            ref, _ = self.stack_ref(b)
            b.cancel(ref)
            print(f"The currently running update for '{ref.name}' has been canceled!")  # pkg/cmd/pulumi/cancel/cancel.go
            return 0
        raise CliError(f"unknown command \"{w[0]}\" for \"pulumi\"")

    def operation(self, op: str) -> int:
        started = time.monotonic()
        if one(self.opts, "--client"):
            raise CliError("the pulumi double runs local programs only (--client is for inline programs)")
        preview = op == "preview" or bool(self.opts.get("--preview-only"))
        self.require_confirmation(preview)
        b = self.backend()
        ref, _ = self.stack_ref(b)
        path, doc, secrets = self.settings(ref)
        secrets.check()
        # The CLI loads the packs (and their config) before the program runs: a bad pack changes nothing.
        packs = policy.load_all(self.opts.get("--policy-pack", []), self.opts.get("--policy-pack-config", [])) if op in ("up", "preview") else []
        violations: list[policy.Violation] = []
        # pkg/backend/diy/backend.go: Update, Refresh, Destroy (and Import) lock the stack; Preview and
        # the --preview-only forms go straight to apply with DryRun, neither taking nor checking a lock.
        lock = None if preview else b.lock(ref)
        events = Events(one(self.opts, "--event-log"), VERSIONS[cli_version(self.env)].events)
        account = aws_names.Account(b.root)
        diags: list[str] = []
        saved: list[list[dict[str, Any]]] = []

        def diag(urn: str, message: str, severity: str = "error") -> None:
            events.emit(diagnosticEvent=diagnostic(message, severity, urn))
            diags.append(f"  {urn.rsplit('::', 1)[-1]}:\n    {severity}: {message}" if urn else f"    {severity}: {message}")

        def summary(counts: dict[str, int], result: str) -> None:
            events.emit(summaryEvent={"maybeCorrupt": False, "durationSeconds": int(time.monotonic() - started), "resourceChanges": counts,
                                      "PolicyPacks": {p.name: p.version for p in packs}, "isPreview": preview, "result": result})
            events.emit(cancelEvent={})

        def save(resources: list[dict[str, Any]], counts: dict[str, int], result: str) -> None:
            account.save()
            deployment = {"manifest": {"time": now(), "magic": "", "version": f"v{cli_version(self.env)}"},
                          "secrets_providers": {"type": secrets.provider.split("://")[0] if "://" in secrets.provider else "passphrase"},
                          "resources": resources}
            b.write_deployment(ref, deployment)
            b.add_history(ref, {"kind": op if op != "up" else "update", "startTime": now(), "endTime": now(), "message": "",
                                "environment": {"exec.kind": one(self.opts, "--exec-kind") or "cli"}, "config": {},
                                "result": result, "resourceChanges": counts})

        scope = CancellationScope(events, preview)
        try:
            with scope:
                if self.env.get("PULUMI_DOUBLE_REPLAY"):  # a recorded stream instead of the engine (recorded.py)
                    return exit_code("bail", self.env) if replay(events, Path(self.env["PULUMI_DOUBLE_REPLAY"])) else 0
                config, secret_keys = engine.program_config(self.cwd, doc, secrets)
                if packs:
                    events.emit(policyLoadEvent={})
                events.emit(preludeEvent={"config": {k: ("[secret]" if k in secret_keys else v) for k, v in config.items()}})
                deployment = b.read_deployment(ref)
                old = deployment.get("resources") or []
                run = {"preview": preview, "diag": diag, "scope": scope, "on_step": saved.append}
                if op == "refresh" or (op == "preview" and self.opts.get("--refresh")):
                    refreshed = engine.cloud_view(old)
                    if op == "refresh":
                        counts = emit_refresh(refresh_steps(old, refreshed), old, events, preview=preview, scope=scope, on_step=saved.append)
                        failed, new_state = False, refreshed
                    else:
                        old = refreshed
                if op in ("up", "preview"):
                    graphs: list[Any] = []
                    try:
                        program = engine.run_program(self.cwd, ref.name, b.project, config, secrets, on_graph=graphs.append)
                    except engine.AssetError as exc:  # the engine refused a registration
                        return self.program_failed(ref, b, events, diag, diags, summary, str(exc))
                    except Exception as exc:  # the program failed: what the language host reports
                        message = f"Program failed with an unhandled exception:\n{''.join(traceback.format_exception_only(type(exc), exc)).strip()}"
                        return self.program_failed(ref, b, events, diag, diags, summary, message)
                    first = engine.delete_first(graphs[0])
                    steps = aws_names.plan(program, old, lambda o, n: engine.plan_steps(o, n, secrets, first))
                    analysis = policy.run(packs, graphs[0], program[0]["urn"])
                    violations = analysis.violations
                    if not preview and policy.invalid_resource(violations):
                        policy.emit(analysis, events, stack_level=False)
                        new_state, counts, failed = old, {}, True  # analyze_snapshot.go: the resource is invalid, the update bails
                    else:  # each resource's analysis as it registers, before its step
                        on_register = functools.partial(policy.emit_resource, analysis, events)
                        new_state, counts, failed = engine.apply(steps, old, events, account=account, on_register=on_register, **run)  # type: ignore[arg-type]
                    policy.emit(analysis, events, stack_level=True)  # stack policies: after the steps (AnalyzeResources)
                    if any(v.level == "mandatory" for v in violations):
                        failed = True
                        diag("", f"{'preview' if preview else 'update'} failed")  # deployment_executor.go reportExecResult
                elif op == "destroy":
                    steps = [("delete", r, None, []) for r in reversed(old)]
                    new_state, counts, failed = engine.apply(steps, old, events, account=account, **run)  # type: ignore[arg-type]
                if scope.cancelled:
                    # deployment_executor.go reportExecResult: the error diagnostic, then a bail (no error text)
                    diag("", f"{'preview' if preview else 'update'} canceled")
                    if not preview:
                        save(new_state, counts, "failed")
                    summary(counts, "failed")
                    print("Diagnostics:\n" + "\n".join(diags))
                    return exit_code("bail", self.env)
                changes = {k: v for k, v in counts.items() if k != "same" and v}
                summary(counts, "failed" if failed else "succeeded")
                if not preview:
                    save(new_state, counts, "failed" if failed else "succeeded")
        except TerminatedError:
            if saved:
                save(saved[-1], {}, "failed")
            return exit_code("bail", self.env)
        finally:
            events.close()
            if lock is not None:
                lock.unlink(missing_ok=True)
        print(f"{'Previewing' if preview else 'Updating'} ({ref.name}):")
        if diags:
            print("Diagnostics:\n" + "\n".join(diags))
        if packs:
            print(policy.policies_section(violations, packs))
        print("Resources:\n" + "\n".join(f"    {n} {k}" for k, n in sorted(counts.items())))
        if failed:
            return exit_code("bail", self.env)
        if self.opts.get("--expect-no-changes") and changes:
            # backenderr.NoChangesExpectedError, with the operation named (preview.go, up.go, refresh.go)
            raise CliError(f"no changes were expected for {'update' if op == 'up' else op} but changes were proposed", "no-changes")
        return 0

    def require_confirmation(self, preview: bool) -> None:
        """pkg/cmd/pulumi/operations (up, refresh, destroy): without a terminal, a mutating command
        needs --yes, --skip-preview or PULUMI_SKIP_CONFIRMATIONS (backenderr.NoConfirmationInNonInteractiveError)."""
        yes = self.opts.get("--yes") or self.opts.get("-y") or self.opts.get("--skip-preview") or \
            self.env.get("PULUMI_SKIP_CONFIRMATIONS", "").lower() in ("1", "true")
        interactive = not self.opts.get("--non-interactive") and sys.stdin.isatty() and sys.stdout.isatty()
        if not preview and not yes:
            if not interactive:
                raise CliError("--yes or --skip-preview or --preview-only must be passed in to proceed when running in non-interactive mode", "config")
            raise CliError("the pulumi double cannot prompt for confirmation; pass --yes")

    def program_failed(self, ref: StackRef, b: Backend, events: Events, diag: Any, diags: list[str], summary: Any, message: str) -> int:
        diag(f"urn:pulumi:{ref.name}::{b.project}::pulumi:pulumi:Stack::{b.project}-{ref.name}", message)
        summary({}, "failed")
        print("Diagnostics:\n" + "\n".join(diags))
        return exit_code("bail", self.env)


def refresh_steps(old: list[dict[str, Any]], refreshed: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, list[str]]]:
    by = {r["urn"]: r for r in refreshed}
    steps: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, list[str]]] = []
    for r in old:
        now_ = by.get(r["urn"])
        if now_ is None:
            steps.append(("delete", r, None, []))
        elif now_ != r:
            steps.append(("update", r, now_, sorted(k for k in now_.get("inputs", {}) if now_["inputs"].get(k) != r.get("inputs", {}).get(k))))
        else:
            steps.append(("same", r, r, []))
    return steps


def main(argv: list[str]) -> int:
    record(argv)
    try:
        words, opts = parse(argv)
        return Cli(words, opts).run()
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc.kind, dict(os.environ))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The `pulumi` double's stack and config commands (`stack init|select|ls|output|export|import|rm|
history`, `config get|set|rm|set-all|...`) and the helpers every command shares: which backend,
which stack, which stack settings file. tests/pulumi_double/double.py adds the engine operations
(up, preview, refresh, destroy) and the entry point; sources as named there."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.pulumi_double import engine, integrity
from tests.pulumi_double.backend import Backend, CliError, Secrets, StackRef, read_settings, salt_for, settings_path, write_settings


def one(opts: dict[str, Any], *names: str) -> str | None:
    for n in names:
        if n in opts and isinstance(opts[n], list):
            return str(opts[n][-1])
    return None


class StackCommands:
    def __init__(self, words: list[str], opts: dict[str, Any]):
        self.words, self.opts = words, opts
        self.cwd = Path.cwd()
        self.env = dict(os.environ)

    # helpers ---------------------------------------------------------------------------------
    def backend(self) -> Backend:
        return Backend(self.cwd, self.env)

    def current_file(self, b: Backend) -> Path:
        return Path(self.env.get("PULUMI_HOME") or Path.home() / ".pulumi") / "workspaces" / f"{b.project}-double-workspace.json"

    def stack_ref(self, b: Backend, must_exist: bool = True) -> tuple[StackRef, str]:
        given = one(self.opts, "--stack", "-s")
        if not given:
            cur = self.current_file(b)
            if not cur.is_file():
                raise CliError("no stack selected; please use `pulumi stack select` to choose one", "stack-not-found")
            given = json.loads(cur.read_text())["stack"]
        ref = b.ref(given)
        if must_exist:
            b.require(ref, given)
        return ref, given

    def settings(self, ref: StackRef) -> tuple[Path, dict[str, Any], Secrets]:
        path = settings_path(self.cwd, ref, one(self.opts, "--config-file"))
        doc = read_settings(path)
        return path, doc, Secrets(doc, self.env)

    # stack and config commands -------------------------------------------------------------
    def stack_cmd(self, sub: str, rest: list[str]) -> int:
        b = self.backend()
        if sub == "init":
            given = rest[0] if rest else one(self.opts, "--stack", "-s")
            if not given:
                raise CliError("a stack name is required")
            ref = b.ref(given)
            if b.exists(ref):
                raise CliError(f"stack '{ref.fq}' already exists")
            path, doc, _ = self.settings(ref)
            provider = one(self.opts, "--secrets-provider") or "passphrase"
            if provider == "passphrase":
                if not doc.get("encryptionsalt") and not doc.get("secretsprovider"):
                    secrets = Secrets({}, self.env)
                    secrets.check()  # a passphrase must be available
                    phrase = self.env.get("PULUMI_CONFIG_PASSPHRASE")
                    if phrase is None:
                        phrase = Path(self.env["PULUMI_CONFIG_PASSPHRASE_FILE"]).read_text()
                    doc = {"encryptionsalt": salt_for(phrase), **doc}
                    write_settings(path, doc)
            elif not doc.get("secretsprovider"):
                if not provider.startswith("awskms://"):
                    raise CliError(f"the pulumi double speaks the passphrase and awskms:// secrets providers, not {provider!r}")
                from tests.pulumi_double import kms

                doc = {"secretsprovider": provider, "encryptedkey": kms.new_encrypted_key(provider, self.env), **doc}
                write_settings(path, doc)
            b.write_deployment(ref, {})
            self.select(b, ref)
            print(f"Created stack '{ref.name}'")
            return 0
        if sub in ("select", "select-current"):
            given = rest[0] if rest else one(self.opts, "--stack", "-s")
            if not given:
                raise CliError("no stack selected; please use `pulumi stack select` to choose one", "stack-not-found")
            ref = b.ref(given)
            if not b.exists(ref):
                if self.opts.get("--create"):
                    b.write_deployment(ref, {})
                else:
                    raise CliError(f"no stack named '{given}' found", "stack-not-found")
            if sub == "select":
                self.select(b, ref)
            return 0
        if sub == "ls":
            cur_file = self.current_file(b)
            current = json.loads(cur_file.read_text())["stack"] if cur_file.is_file() else ""
            rows = []
            for ref in b.stacks():
                resources = b.read_deployment(ref).get("resources") or []
                hist = b.history(ref)
                row: dict[str, Any] = {"name": ref.name, "current": current == ref.fq, "updateInProgress": b.lock_dir(ref).is_dir() and any(b.lock_dir(ref).iterdir())}
                if hist:
                    row["lastUpdate"] = hist[0]["endTime"]
                    row["resourceCount"] = len(resources)
                rows.append(row)
            print(json.dumps(rows, indent=4))
            return 0
        ref, _ = self.stack_ref(b)
        _, _, secrets = self.settings(ref)
        deployment = b.read_deployment(ref)
        if sub == "output":
            reveal = bool(self.opts.get("--show-secrets"))
            stack_res = next((r for r in deployment.get("resources") or [] if r["type"] == "pulumi:pulumi:Stack"), None)
            outputs = (stack_res or {}).get("outputs") or {}
            shown = {k: (engine.unwrap(v, secrets) if reveal else engine.mask(v)) for k, v in outputs.items()}
            print(json.dumps(shown, indent=4))
            return 0
        if sub == "export":
            reveal = bool(self.opts.get("--show-secrets"))
            text = json.dumps({"version": 3, "deployment": engine.show(deployment, secrets, reveal)}, indent=4)
            target = one(self.opts, "--file")
            if target:
                Path(target).write_text(text)
            else:
                print(text)
            return 0
        if sub == "import":
            src = one(self.opts, "--file")
            doc = json.loads(Path(src).read_text() if src else sys.stdin.read())
            if not isinstance(doc, dict) or "deployment" not in doc:
                raise CliError("could not read deployment: the file is not a stack export")
            errors = integrity.import_errors(doc["deployment"].get("resources") or [], ref.name)
            if errors:
                raise CliError(integrity.multierror(errors))
            b.check_unlocked(ref)
            b.write_deployment(ref, engine.conceal(doc["deployment"], secrets))
            print("Import complete.")
            return 0
        if sub == "history":
            entries = b.history(ref)
            size = one(self.opts, "--page-size")
            if size:
                page = int(one(self.opts, "--page") or 1)
                entries = entries[(page - 1) * int(size): page * int(size)]
            print(json.dumps(entries, indent=4))
            return 0
        raise CliError(f"unknown command \"{sub}\" for \"pulumi stack\"")

    def select(self, b: Backend, ref: StackRef) -> None:
        cur = self.current_file(b)
        cur.parent.mkdir(parents=True, exist_ok=True)
        cur.write_text(json.dumps({"stack": ref.fq}))

    def config_cmd(self, sub: str, rest: list[str]) -> int:
        b = self.backend()
        ref, _ = self.stack_ref(b)
        path, doc, secrets = self.settings(ref)
        project = b.project
        config = doc.setdefault("config", {}) or {}
        doc["config"] = config

        def full(key: str) -> str:
            return key if ":" in key else f"{project}:{key}"

        def plain(value: Any) -> tuple[str, bool]:
            if isinstance(value, dict) and "secure" in value:
                return secrets.decrypt(str(value["secure"])), True
            return engine.as_cli_string(value), False

        def put(key: str, value: str, secret: bool) -> None:
            config[full(key)] = {"secure": secrets.encrypt(value)} if secret else value

        if sub in ("", "--json"):
            out = {}
            for k, v in config.items():
                value, secret = plain(v)
                out[k] = {"value": value if (not secret or self.opts.get("--show-secrets")) else "[secret]", "secret": secret}
            print(json.dumps(out, indent=4))
            return 0
        if sub == "get":
            key = full(rest[0])
            if key not in config:
                raise CliError(f"configuration key '{key}' not found for stack '{ref.name}'")
            value, secret = plain(config[key])
            print(json.dumps({"value": value, "secret": secret}) if self.opts.get("--json") else value)
            return 0
        if sub == "set":
            key, value = rest[0], rest[1] if len(rest) > 1 else ""
            put(key, value, bool(self.opts.get("--secret")))
        elif sub == "set-all":
            for flag, secret in (("--plaintext", False), ("--secret", True)):
                for pair in self.opts.get(flag + "=", []):
                    key, eq, value = pair.partition("=")
                    if not eq:  # the CLI's parseKeyValuePair (pkg/cmd/pulumi/config)
                        raise CliError("config value must be in the form [key]=[value]")
                    put(key, value, secret)
        elif sub == "rm":
            config.pop(full(rest[0]), None)
        else:
            raise CliError(f"unknown command \"{sub}\" for \"pulumi config\"")
        write_settings(path, doc)
        return 0

    # engine operations -----------------------------------------------------------------------

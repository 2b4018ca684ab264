"""The stack settings file (`Pulumi.<stack>.yaml`) as the deploy commands need it: strict reading
(UTF-8, YAML, no duplicate keys), the secrets provider it records, which values are `secure:`,
and the typed settings once encrypted values are decrypted by the CLI.

The file named for a fully qualified stack (`org/dev`, `org/project/dev`) is `Pulumi.dev.yaml`,
as the Automation API maps it (`get_stack_settings_name`: the last path segment).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
APP_DB_KEY = "pghome:appDbEnabled"


class InputError(ValueError):
    """Bad input (a stack file, a state file, an argument): one sentence, exit status 2."""


def settings_name(stack: str) -> str:
    return stack.split("/")[-1]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last one silently)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise InputError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return dict(loader.construct_mapping(node, deep=deep))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_strict_yaml(path: Path) -> Any:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except InputError as exc:
        raise InputError(f"{path.name}: {exc}; each key may appear once") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path.name} is not valid YAML ({str(exc).splitlines()[0]})") from None


@dataclass
class StackFile:
    path: Path
    config: dict[str, Any]  # '<namespace>:<key>' -> YAML value ({'secure': ...} for encrypted ones)
    secrets_provider: str = ""  # as recorded by `stack init` ('' = passphrase)
    encryption_salt: str = ""
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def secure_keys(self) -> list[str]:
        return sorted(k for k, v in self.config.items() if isinstance(v, dict) and "secure" in v)

    @property
    def uses_passphrase(self) -> bool:
        return self.secrets_provider in ("", "passphrase")

    def explicit(self, key: str) -> Any:
        return self.config.get(key)


def read_stack_file(stack: str, project_dir: Path = PROJECT_DIR) -> StackFile:
    project = str((load_strict_yaml(project_dir / "Pulumi.yaml") or {}).get("name", ""))
    path = project_dir / f"Pulumi.{settings_name(stack)}.yaml"
    if not path.is_file():
        raise InputError(f"stack {stack!r} has no settings file {path.name} in {project_dir}; create it (see README) or check --stack")
    doc = load_strict_yaml(path) or {}
    if not isinstance(doc, dict):
        raise InputError(f"{path.name} must be a mapping with a 'config:' section")
    raw = doc.get("config") or {}
    if not isinstance(raw, dict):
        raise InputError(f"{path.name}: 'config' must be a mapping of key: value")
    config = {(k if ":" in str(k) else f"{project}:{k}"): v for k, v in raw.items()}
    return StackFile(path, config, str(doc.get("secretsprovider") or ""), str(doc.get("encryptionsalt") or ""), doc)


def settings_for(sf: StackFile, stack: str, decrypted: Mapping[str, str] | None = None) -> Any:
    """Typed settings from the stack file, with `secure:` values replaced by their decrypted text.
    The PGPASSWORD check belongs to the program the CLI runs, not here (check_credentials=False)."""
    from config.load import load_settings

    raw: dict[str, Any] = {}
    for key, value in sf.config.items():
        if isinstance(value, dict) and "secure" in value:
            if decrypted is None or key not in decrypted:
                raise InputError(f"{sf.path.name}: {key} is encrypted and could not be decrypted")
            raw[key] = decrypted[key]
        else:
            raw[key] = value
    return load_settings(raw, stack=settings_name(stack), check_credentials=False)


def with_app_db(sf: StackFile, enabled: bool, target: Path, carried: Mapping[str, str] | None = None) -> Path:
    """A copy of the stack file with appDbEnabled set, for `--config-file`: the deploy phase lives
    in the state (the `appDbEnabled` stack output), never as an uncommitted edit of the stack file.
    `carried`: other values taken from the state (the image tag, bootstrap/deploy/image_tag.py)."""
    doc = dict(sf.doc)
    doc["config"] = {**(sf.doc.get("config") or {}), **(carried or {}), APP_DB_KEY: "true" if enabled else "false"}
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def set_stack_config(path: Any, key: str, value: str) -> None:
    """`pulumi config set` for one plain key, editing only its line (comments and order stay)."""
    import re as _re

    file = Path(path)
    lines = file.read_text().splitlines(keepends=True)
    entry = f"  {key}: {json.dumps(value)}\n"
    for i, line in enumerate(lines):
        if _re.match(rf"^\s+{_re.escape(key)}\s*:", line):
            lines[i] = entry
            break
    else:
        at = next((i + 1 for i, line in enumerate(lines) if line.startswith("config:")), None)
        if at is None:
            lines += ["config:\n", entry]
        else:
            lines.insert(at, entry)
    file.write_text("".join(lines))

"""The one reader of the project's YAML files, used by every command (plan, sql, cost, tunnel and
the deploy commands alike):

* strict reading: UTF-8, valid YAML, no duplicate keys, each problem one sentence (`InputError`);
* `read_stack_file()`: `Pulumi.<stack>.yaml` with the secrets provider it records and which values
  are `secure:`; the file named for a fully qualified stack (`org/dev`, `org/project/dev`) is
  `Pulumi.dev.yaml`, as the Automation API maps it (`get_stack_settings_name`: the last segment);
* `stack_config()`: what the Pulumi CLI would hand the program: Pulumi.yaml defaults, the stack
  file, then `--set` overrides, as `<namespace>:<key>` -> text; a `secure:` value is judged only
  after the overrides (one that is overridden needs no decryption);
* (`settings_for()`, the typed settings once the CLI has decrypted the `secure:` values, is in config/load.py.)

No Pulumi import.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT_FILE = PROJECT_DIR / "Pulumi.yaml"
APP_DB_KEY = "pghome:appDbEnabled"


class InputError(ValueError):
    """Bad input (a stack file, a state file, an argument): one sentence, exit status 2."""


class StackFileError(InputError):
    """A project or stack file that cannot be read (missing, not UTF-8, not YAML, wrong shape)."""


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


# libyaml's parser when available (10x faster on Pulumi.yaml), with the same duplicate-key check
if hasattr(yaml, "CSafeLoader"):
    class _FastStrictLoader(yaml.CSafeLoader):  # type: ignore[name-defined,misc]
        pass

    _FastStrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)  # type: ignore[arg-type]
    _LOADER: type = _FastStrictLoader
else:
    _LOADER = _StrictLoader


@functools.lru_cache(maxsize=32)
def _parse(path: Path, mtime_ns: int, size: int) -> Any:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StackFileError(f"{path.name} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except InputError as exc:
        raise StackFileError(f"{path.name}: {exc}; each key may appear once") from None
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path.name} is not valid YAML ({str(exc).splitlines()[0]})") from None


def load_strict_yaml(path: Path) -> Any:
    """Parse a YAML file strictly, once per modification (the plan and the tests read the same files often)."""
    try:
        stat = path.stat()
    except OSError:
        raise StackFileError(f"{path.name} does not exist in {path.parent}") from None
    return copy.deepcopy(_parse(path, stat.st_mtime_ns, stat.st_size))


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    return str((load_strict_yaml(project_dir / "Pulumi.yaml") or {}).get("name", ""))


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
    project = project_name(project_dir)
    path = project_dir / f"Pulumi.{settings_name(stack)}.yaml"
    if not path.is_file():
        raise StackFileError(f"stack {stack!r} has no settings file {path.name} in {project_dir.name or project_dir}; create it (see README) or check --stack")
    doc = load_strict_yaml(path) or {}
    if not isinstance(doc, dict):
        raise StackFileError(f"{path.name} must be a mapping with a 'config:' section")
    raw = doc.get("config") or {}
    if not isinstance(raw, dict):
        raise StackFileError(f"{path.name}: 'config' must be a mapping of key: value")
    config = {(k if ":" in str(k) else f"{project}:{k}"): v for k, v in raw.items()}
    return StackFile(path, config, str(doc.get("secretsprovider") or ""), str(doc.get("encryptionsalt") or ""), doc)


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


def cli_string(value: Any) -> str:
    """The text form the CLI hands a program: JSON for structured values, lowercase booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def project_defaults(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """Pulumi.yaml's defaults (and fixed values), keyed '<namespace>:<key>'."""
    doc = load_strict_yaml(project_dir / "Pulumi.yaml") or {}
    project = str(doc.get("name", ""))
    out: dict[str, Any] = {}
    for key, spec in (doc.get("config") or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(spec, dict) and "default" in spec:
            out[full] = spec["default"]
        elif isinstance(spec, dict) and "value" in spec:
            out[full] = spec["value"]
    return out


def stack_config(stack: str, overrides: Mapping[str, Any] | None = None, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """Merge Pulumi.yaml defaults, Pulumi.<stack>.yaml and overrides, keyed '<namespace>:<key>'.

    Bare override keys (no ':') belong to the project namespace, as with `pulumi config set`. A
    `secure:` value must be overridden; it is judged after the overrides, so `--set <key>=<value>`
    is the way to plan a stack with encrypted values offline (the deploy commands decrypt through
    the CLI: config/load.py settings_for).
    """
    sf = read_stack_file(stack, project_dir)
    project = project_name(project_dir)
    merged: dict[str, Any] = {**project_defaults(project_dir), **sf.config}
    for key, value in (overrides or {}).items():
        merged[key if ":" in key else f"{project}:{key}"] = value
    for key, value in merged.items():
        if isinstance(value, dict) and "secure" in value:
            bare = key.split(":", 1)[1] if key.startswith(f"{project}:") else key
            raise StackFileError(f"{sf.path.name}: {key} is an encrypted value that this command cannot decrypt; "
                                 f"override it with --set {bare}=<value>")
    return {k: cli_string(v) for k, v in merged.items()}

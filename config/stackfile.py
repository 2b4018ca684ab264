"""The project's config schema and the stack-file merge: what the Pulumi CLI would hand the program.

* `project_schema()` reads the `config:` block of Pulumi.yaml (type, description, default per key);
* `stack_config()` merges the Pulumi.yaml defaults, `Pulumi.<stack>.yaml` and overrides into the
  string-valued map the CLI passes (`<namespace>:<key>` -> text).

Used by the config loader, the offline plan, `deploy` and `sql`; no Pulumi import.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT_FILE = PROJECT_DIR / "Pulumi.yaml"

def _cli_string(value: Any) -> str:
    """The text form the CLI hands a program: JSON for structured values, lowercase booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


class StackFileError(ValueError):
    """A stack file that cannot be read (missing, not YAML, wrong shape)."""


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 10x faster


@functools.lru_cache(maxsize=32)
def _load_yaml_cached(path: Path, mtime_ns: int) -> Any:
    return yaml.load(path.read_text(), Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file once per modification (the plan and the tests read the same files often)."""
    return copy.deepcopy(_load_yaml_cached(path, path.stat().st_mtime_ns))


def stack_config(stack: str, overrides: Mapping[str, Any] | None = None, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """Merge Pulumi.yaml defaults, Pulumi.<stack>.yaml and overrides, keyed '<namespace>:<key>'.

    Bare override keys (no ':') belong to the project namespace, as with `pulumi config set`.
    """
    project_doc = load_yaml(project_dir / "Pulumi.yaml")
    project = project_doc["name"]
    merged: dict[str, Any] = {}
    for key, spec in (project_doc.get("config") or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(spec, dict) and "default" in spec:
            merged[full] = spec["default"]
        elif isinstance(spec, dict) and "value" in spec:
            merged[full] = spec["value"]
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise StackFileError(f"stack {stack!r} has no stack file {stack_file.name} in {project_dir}")
    try:
        stack_doc = load_yaml(stack_file) or {}
    except yaml.YAMLError as exc:
        raise StackFileError(f"{stack_file.name} is not valid YAML: {exc}") from None
    stack_values = stack_doc.get("config") if isinstance(stack_doc, dict) else None
    if stack_values is None:
        stack_values = {}
    if not isinstance(stack_values, dict):
        raise StackFileError(f"{stack_file.name}: 'config' must be a mapping of key: value")
    for key, value in stack_values.items():
        if isinstance(value, dict) and "secure" in value:
            raise StackFileError(f"{stack_file.name}: {key} is an encrypted value; the offline plan cannot decrypt it, override it with --set")
        merged[key if ":" in key else f"{project}:{key}"] = value
    for key, value in (overrides or {}).items():
        merged[key if ":" in key else f"{project}:{key}"] = value
    return {k: _cli_string(v) for k, v in merged.items()}


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    return str(load_yaml(project_dir / "Pulumi.yaml")["name"])


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: str  # string | integer | boolean | array
    description: str
    default: Any
    has_default: bool


@dataclass(frozen=True)
class ProjectSchema:
    project: str
    keys: Mapping[str, KeySpec]

    @classmethod
    def load(cls, path: Path = PROJECT_FILE) -> ProjectSchema:
        doc = load_yaml(path)
        keys: dict[str, KeySpec] = {}
        for name, spec in (doc.get("config") or {}).items():
            keys[name] = KeySpec(
                name=name,
                type=spec.get("type", "string"),
                description=spec.get("description", ""),
                default=spec.get("default"),
                has_default="default" in spec,
            )
        return cls(project=doc["name"], keys=keys)


_SCHEMA_CACHE: dict[Path, ProjectSchema] = {}


def project_schema(path: Path = PROJECT_FILE) -> ProjectSchema:
    if path not in _SCHEMA_CACHE:
        _SCHEMA_CACHE[path] = ProjectSchema.load(path)
    return _SCHEMA_CACHE[path]


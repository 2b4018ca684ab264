"""The project's config schema: the `config:` block of Pulumi.yaml (type, description, default per key)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.stack_file import PROJECT_FILE, load_strict_yaml


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
        doc = load_strict_yaml(path)
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


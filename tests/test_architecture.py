"""The layering of docs/architecture.md, checked on the source: no import cycle among the
project's modules (imports inside functions included), and each layer imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("controls", "config", "dbcore", "components", "bootstrap", "policy", "rotation_function")
# The app database model is plain data (no Pulumi import) that the core, the config and the rotation
# function read: it is its own layer although it sits in components/.
MODEL = {"components.pgmodel", "components.pgsql"}
BOOTSTRAP_CORE = {"bootstrap.progress"}
# Who may import whom, by layer (see docs/architecture.md); a layer may always import itself.
ALLOWED: dict[str, set[str]] = {
    "controls": set(),
    "model": set(),
    "dbcore": {"model"},
    "config": {"controls", "model"},
    "components": {"controls", "config", "dbcore", "model"},
    "policy": {"controls"},
    "rotation_function": {"dbcore", "model"},
    "bootstrap.progress": set(),
    "bootstrap.cost": {"config", "controls"},
    "bootstrap.plan": {"config", "controls", "model"},
    "bootstrap.access": {"bootstrap.progress", "config", "dbcore"},
    "bootstrap.rotation": {"bootstrap.access", "bootstrap.progress", "config", "dbcore", "model"},
    "bootstrap.restore": {"bootstrap.access", "bootstrap.progress", "config", "dbcore", "model"},
    "bootstrap.deploy": {"bootstrap.access", "bootstrap.cost", "bootstrap.plan", "bootstrap.progress", "bootstrap.rotation", "config", "controls", "dbcore", "model"},
    "bootstrap.ops": {"bootstrap.deploy", "config"},
    "bootstrap.cli": {"bootstrap.access", "bootstrap.cost", "bootstrap.deploy", "bootstrap.ops", "bootstrap.plan", "bootstrap.progress", "bootstrap.restore",
                      "bootstrap.rotation",
                      "components", "config", "controls", "dbcore", "model"},
    "bootstrap": {"bootstrap.cli"},  # bootstrap/__init__.py and __main__.py: the entry point only
}


def layer_of(module: str) -> str:
    """The layer a module belongs to: its top-level package, a bootstrap sub-package, or the model."""
    if module in MODEL:
        return "model"
    parts = module.split(".")
    if parts[0] == "bootstrap" and len(parts) > 1 and f"bootstrap.{parts[1]}" in ALLOWED:
        return f"bootstrap.{parts[1]}"
    return parts[0]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in the file (top level or inside functions)."""
    out: set[str] = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            # the longest prefix that is a project module
            parts = name.split(".")
            for i in range(len(parts), 0, -1):
                candidate = ".".join(parts[:i])
                if candidate in modules:
                    out.add(candidate)
                    break
    out.discard(_module_name(path))
    return out


def _graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_finder_sees_a_cycle() -> None:
    """The checker itself: a planted cycle is found, an acyclic graph passes."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_project_modules() -> None:
    graph = _graph()
    assert len(graph) > 30, "the scan must see the project's modules"
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    for package in PACKAGES:
        graph[package] = {m for m in graph.get(package, set()) if not m.startswith(package + ".")}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_layers_import_only_what_is_below_them() -> None:
    wrong = []
    for module, deps in _graph().items():
        layer = layer_of(module)
        for dep in deps:
            if layer_of(dep) not in ALLOWED[layer] | {layer}:
                wrong.append(f"{module} imports {dep}")
    assert not wrong, "layering broken (see docs/architecture.md): " + "; ".join(sorted(wrong))


def test_every_module_has_a_layer() -> None:
    """A new package or bootstrap sub-package must be placed in ALLOWED (and docs/architecture.md)."""
    assert {layer_of(m) for m in _graph()} <= set(ALLOWED)


def test_no_package_imports_the_command_line() -> None:
    """bootstrap/cli/ is glue: only the entry point imports it, so every other package stays usable alone."""
    wrong = [f"{m} imports {d}" for m, deps in _graph().items() for d in deps
             if layer_of(d) == "bootstrap.cli" and layer_of(m) not in ("bootstrap.cli", "bootstrap")]
    assert not wrong, "; ".join(sorted(wrong))


def test_checker_sees_an_upward_import() -> None:
    """The layer check itself: a planted upward import is reported."""
    assert layer_of("bootstrap.deploy.deployer") == "bootstrap.deploy"
    assert layer_of("components.pgsql") == "model"
    assert "bootstrap.deploy" not in ALLOWED["bootstrap.rotation"]
    assert "bootstrap" not in ALLOWED["dbcore"] and "rotation_function" not in ALLOWED["dbcore"]

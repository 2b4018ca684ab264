"""Run the Pulumi program in-process under `pulumi.runtime.set_mocks` and record its resource graph.

This is the one harness behind the offline plan (`python -m bootstrap plan`), the unit tests and
the security checks. It needs no Pulumi CLI, no provider plugins and no cloud credentials:

* the config comes from `config/stack_file.py` (`stack_config()`: Pulumi.yaml defaults, the
  stack file and overrides, as the CLI would hand them to the program);
* `RecordingMonitor` (a `MockMonitor`) records every RegisterResource request: type, name,
  inputs (secrets unwrapped, their paths remembered), parent, dependencies and options;
* `GraphMocks` answers resource registrations with plausible computed outputs (ids, ARNs,
  endpoints) and the data-source invokes the program uses, from the tables in
  `bootstrap/plan/mockanswers.py`. An invoke it does not know fails loudly;
* the recorded `Graph` (bootstrap/plan/graph.py) adapts itself to the security controls (`Graph.inventory()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import runpy
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pulumi

from bootstrap.plan.graph import Graph, Invoke, Resource  # noqa: F401 (re-exported: tests and the plan import them from here)
from bootstrap.plan.mockanswers import CALL_HANDLERS, computed_state
from config.stack_file import PROJECT_DIR, project_name, settings_name, stack_config

# --------------------------------------------------------------------------------------------
# Mocks
# --------------------------------------------------------------------------------------------


def _unwrap(value: Any, path: str, secrets: set[str]) -> Any:
    from pulumi.runtime import rpc

    if rpc.is_rpc_secret(value):
        secrets.add(path)
        return _unwrap(rpc.unwrap_rpc_secret(value), path, secrets)
    if isinstance(value, dict):
        return {k: _unwrap(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}.{i}" if path else str(i), secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf carries every number as a double
    return value


class GraphMocks(pulumi.runtime.Mocks):
    """pulumi.runtime.Mocks implementation: computed outputs for resources, canned data sources."""

    def __init__(self, region: str, invokes: list[Invoke]):
        self.region = region
        self.invokes = invokes

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        inputs = _unwrap(args.inputs, "", set())
        if args.typ.startswith("pulumi:providers:"):
            return f"{args.name}-provider-id", inputs
        return computed_state(args.typ, args.name, inputs, self.region)

    def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        plain = _unwrap(args.args, "", set())
        self.invokes.append(Invoke(args.token, plain))
        handler = CALL_HANDLERS.get(args.token)
        if handler is None:
            raise NotImplementedError(f"the offline plan has no mock for data source {args.token}; add one to bootstrap/plan/mockanswers.py CALL_HANDLERS")
        return handler(plain, self.region), []

    # Newer SDKs call these on the mocks; transforms are not used by this program.
    def register_transform(self, transform: Any) -> None:
        pass

    def register_invoke_transform(self, transform: Any) -> None:
        pass


def _make_monitor(mocks: GraphMocks, recorded: list[Resource], lock: threading.Lock, thread_loops: set[asyncio.AbstractEventLoop]) -> Any:
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import rpc

    def note_thread_loop() -> None:
        # The SDK's MockMonitor gives each executor thread an event loop (_ensure_event_loop) and
        # never closes it; the run closes them at its end (else each is garbage-collected open,
        # an "unclosed event loop" warning in whatever test runs then).
        if threading.current_thread() is threading.main_thread():
            return
        try:
            made = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return  # this call made none (the stack's registration, a failed call)
        with lock:
            thread_loops.add(made)

    class RecordingMonitor(pulumi_mocks.MockMonitor):
        """MockMonitor that keeps every RegisterResource request, options included."""

        def Invoke(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
            try:
                return super().Invoke(request)
            finally:
                note_thread_loop()

        def ReadResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
            try:
                return super().ReadResource(request)
            finally:
                note_thread_loop()

        def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
            try:
                response = super().RegisterResource(request)
            finally:
                note_thread_loop()
            if request.type == "pulumi:pulumi:Stack":
                return response
            secrets: set[str] = set()
            inputs = _unwrap(rpc.deserialize_properties(request.object), "", secrets)
            state = _unwrap(self.resources[response.urn].state, "", set()) if response.urn in self.resources else {}
            record = Resource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                inputs=inputs,
                secret_paths=frozenset(secrets),
                parent=request.parent,
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                custom=bool(request.custom),
                provider=request.provider,
                protect=bool(request.protect),
                ignore_changes=list(request.ignoreChanges),
                additional_secret_outputs=list(request.additionalSecretOutputs),
                replace_on_changes=list(request.replaceOnChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
                retain_on_delete=bool(request.retainOnDelete),
                id=response.id,
                state=state,
            )
            with lock:
                recorded.append(record)
            return response

    return RecordingMonitor(mocks)


# --------------------------------------------------------------------------------------------
# Running a program
# --------------------------------------------------------------------------------------------


def run_program(
    program: Callable[[], Any],
    *,
    stack: str,
    config: Mapping[str, str],
    project: str | None = None,
    preview: bool = True,
    recorded: list[Resource] | None = None,
) -> Graph:
    """Run `program` (a function that declares resources) under mocks and return its graph.

    Each run gets a fresh contextvars context, so many runs can share one process (tests).
    Exceptions from the program (e.g. ConfigError) propagate unchanged; pass `recorded` to see
    what was registered before one was raised.
    """
    project = project or project_name()
    region = config.get("aws:region", "eu-west-1")
    recorded = [] if recorded is None else recorded
    invokes: list[Invoke] = []
    lock = threading.Lock()
    result: dict[str, Any] = {}

    def _run() -> None:
        import pulumi
        from pulumi.runtime import config as runtime_config
        from pulumi.runtime import settings as runtime_settings
        from pulumi.runtime.stack import run_pulumi_func, wait_for_rpcs

        runtime_settings.ROOT.set(None)
        # Output tasks the SDK tracks process-wide: one left by an earlier run (a program that raised)
        # belongs to that run's closed loop, and waiting on it here fails with "Event loop is closed".
        with runtime_settings.SETTINGS.lock:
            runtime_settings.SETTINGS.outputs.clear()
        runtime_config.set_all_config(dict(config), [])
        mocks = GraphMocks(region, invokes)
        thread_loops: set[asyncio.AbstractEventLoop] = set()
        monitor = _make_monitor(mocks, recorded, lock, thread_loops)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)  # type: ignore[arg-type]
            root = runtime_settings.get_root_resource()
            loop.run_until_complete(run_pulumi_func(program))
            outputs, secret_names = loop.run_until_complete(_resolve_outputs(getattr(root, "outputs", {})))
            result["outputs"], result["secrets"] = outputs, secret_names
            # Register the stack's outputs as the engine would at the end, and let that settle.
            if root is not None and hasattr(root, "_finish"):
                root._finish()
            loop.run_until_complete(wait_for_rpcs())
        finally:
            # After a failed program, RPCs still in flight are abandoned: cancel them quietly.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())  # the executor threads are done with their loops
            loop.close()
            for stale in thread_loops:
                if not stale.is_running() and not stale.is_closed():
                    stale.close()
            asyncio.set_event_loop(None)

    with _no_source_positions(), _frozen_heap():
        contextvars.Context().run(_run)
    # Registrations arrive from executor threads; order them by URN creation order is not
    # guaranteed, so keep registration order (the list order) as the canonical one.
    return Graph(
        stack=stack,
        project=project,
        config=dict(config),
        resources=recorded,
        invokes=invokes,
        outputs=result.get("outputs", {}),
        secret_outputs=frozenset(result.get("secrets", ())),
    )


@contextlib.contextmanager
def _no_source_positions() -> Iterator[None]:
    """The SDK walks and reads the whole Python stack (traceback.extract_stack, with source lines)
    for every registration, to tell the engine where a resource was declared; mocks drop it. A
    quarter of an offline evaluation's time; the recorded graph does not change."""
    from pulumi.runtime import resource as sdk_resource
    from pulumi.runtime.proto import source_pb2

    saved = sdk_resource._get_stack_trace  # noqa: SLF001
    sdk_resource._get_stack_trace = source_pb2.StackTrace  # noqa: SLF001
    try:
        yield
    finally:
        sdk_resource._get_stack_trace = saved  # noqa: SLF001


_freezes = 0  # depth of _frozen_heap (gc.get_freeze_count() is O(heap), a call costs ~15 ms)


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep the cyclic garbage collector off what is alive before the run (the SDK's ~1,000 modules
    and their classes): each full collection during an evaluation walked all of it again, about a
    third of an evaluation's CPU. gc.unfreeze puts it all back, so nothing is kept for good.
    Reentrant: run_stack freezes around reading the stack file too, and run_program inside it."""
    global _freezes
    _freezes += 1
    if _freezes == 1:
        gc.freeze()
    try:
        yield
    finally:
        _freezes -= 1
        if not _freezes:
            gc.unfreeze()


async def _resolve_outputs(outputs: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    import pulumi

    resolved: dict[str, Any] = {}
    secrets: set[str] = set()
    for key, value in outputs.items():
        out = pulumi.Output.from_input(value)
        resolved[key] = await out.future()
        if await out.is_secret():
            secrets.add(key)
    return resolved, secrets


def run_stack(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    project_dir: Path = PROJECT_DIR,
    preview: bool = True,
    recorded: list[Resource] | None = None,
) -> Graph:
    """Run the project's __main__.py for `stack` under mocks (config merged like the CLI does)."""
    with _frozen_heap():
        return _run_stack(stack, overrides, project_dir, preview, recorded)


def _run_stack(stack: str, overrides: Mapping[str, Any] | None, project_dir: Path, preview: bool, recorded: list[Resource] | None) -> Graph:
    config = stack_config(stack, overrides, project_dir)
    main = str(project_dir / "__main__.py")
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))

    def program() -> None:
        runpy.run_path(main, run_name="__main__")

    # pulumi.get_stack() is the bare name for a fully qualified stack (org/dev -> dev), as with the CLI
    return run_program(program, stack=settings_name(stack), config=config, project=project_name(project_dir), preview=preview, recorded=recorded)

"""A fork server for the `pulumi` test double: the same executable contract, without paying the
SDK's import on every call.

Each `pulumi preview/up` of the double evaluates the program under mocks in a fresh interpreter,
and most of that time is importing the pulumi_aws modules the program uses. The server imports
them once; each call of `tests/pulumi_double/pulumi` (the client below, run by the SDK exactly as
it runs the real CLI) hands its stdin/stdout/stderr, argv, environment and working directory over
a Unix socket, and a forked child runs `double.main` in that context and reports the exit code.
The child is a copy of the pristine server, so calls cannot leak state into each other. The child
first tells the client its pid, and the client passes SIGINT/SIGTERM on to it: Ctrl-C reaches the
double as it reaches the real CLI (the child is not in the caller's process group).

Without $PULUMI_DOUBLE_SERVER (or when the server is gone) the client runs double.py directly.
"""

from __future__ import annotations

import array
import contextlib
import importlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_REQUEST = 4 * 1024 * 1024


def _preload() -> None:
    """Evaluate both stacks once (app database on), output discarded: the SDK loads its resource
    classes lazily, on first use, so only a real evaluation warms what `up` will use; a second
    evaluation in the same process costs a fifth of the first."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    importlib.import_module("tests.pulumi_double.double")
    from bootstrap.plan.mockgraph import run_stack

    saved = dict(os.environ)
    os.environ["PGPASSWORD"] = "fork-server-warm-up-connects-nowhere"
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            for stack in ("dev", "prod"):
                run_stack(stack, {"appDbEnabled": "true"})
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    fds = array.array("i")
    chunks: list[bytes] = []
    size = 0
    while True:
        data, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(3 * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        if not data:
            break
        chunks.append(data)
        size += len(data)
        if data.endswith(b"\n") or size > MAX_REQUEST:
            break
    return json.loads(b"".join(chunks)), list(fds)


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """Runs in the forked child: become the `pulumi` process the client stands for."""
    code = 255
    try:
        conn.sendall(f"pid {os.getpid()}\n".encode())
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [str(Path(__file__).with_name("double.py")), *request["argv"]]
        from tests.pulumi_double import double

        try:
            code = int(double.main(request["argv"]) or 0)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - a crash of the double is reported like the interpreter would
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the reader may be gone
                pass
        try:
            conn.sendall(f"{code}\n".encode())
        finally:
            os._exit(code & 0xFF)


def serve(path: str) -> None:
    _preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        try:
            request, fds = _recv_request(conn)
        except (OSError, ValueError):
            conn.close()
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _child(conn, request, fds)
        for fd in fds:
            os.close(fd)
        conn.close()


def _await_child(conn: socket.socket) -> int:
    """Read `pid <n>` then the exit code; meanwhile forward the caller's interrupts to the child."""
    reader = conn.makefile("rb")
    first = reader.readline()
    if not first.startswith(b"pid "):
        return 1
    child = int(first.split()[1])

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    while True:
        try:
            reply = reader.readline()
            break
        except InterruptedError:
            continue
    conn.close()
    return int(reply) if reply.strip() else 1


def client(argv: list[str]) -> int:
    """What `tests/pulumi_double/pulumi` runs: hand this process's context to the server, or run
    the double in-process when there is no server."""
    path = os.environ.get("PULUMI_DOUBLE_SERVER", "")
    if path:
        try:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(path)
        except OSError:
            conn = None
        if conn is not None:
            for fd in (0, 1, 2):  # a closed standard stream is handed over as /dev/null
                try:
                    os.fstat(fd)
                except OSError:
                    os.dup2(os.open(os.devnull, os.O_RDWR), fd)
            request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode() + b"\n"
            conn.sendmsg([request[:65536]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
            if len(request) > 65536:
                conn.sendall(request[65536:])
            return _await_child(conn)
    sys.path.insert(0, str(ROOT))
    from tests.pulumi_double import double

    return int(double.main(argv) or 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
    else:
        sys.exit(client(sys.argv[1:]))

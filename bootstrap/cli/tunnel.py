"""`python -m bootstrap tunnel --stack S [--local-port N]`: hold a tunnel to the private database
until Ctrl-C (or SIGTERM, as a CI runner sends on cancel); the access task is stopped either way.

Reads the access path from the stack outputs (Automation API), starts the tunnel
(bootstrap/access/tunnel.py) and prints how to connect with psql and with `pulumi` (verify-full kept).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bootstrap.access.tunnel import LOOPBACK, AccessTarget, EcsClient, SessionStarter, Tunnel, TunnelError, connect_hint, open_tunnel
from config.ca_bundle import DEFAULT_PATH

RDS_CA_BUNDLE = DEFAULT_PATH  # `ca-bundle fetch` writes it (config/ca_bundle.py)


def register(sub: Any) -> None:
    p = sub.add_parser("tunnel", help="open a tunnel to the private database (ECS access task + SSM port forwarding) until Ctrl-C")
    p.add_argument("--stack", required=True, help="stack name (reads Pulumi.<stack>.yaml and the stack's outputs)")
    p.add_argument("--local-port", type=int, default=0, metavar="N", help="local port on 127.0.0.1 (default: a free one)")
    p.add_argument("--outputs-file", default="", metavar="F", help="the stack outputs as JSON (`pulumi stack output --json`) instead of reading the stack (no Pulumi CLI needed)")
    p.add_argument("-C", "--cwd", default="", help="project directory (default: this repository)")
    p.add_argument("--backend", default="", help="state backend URL; default: PULUMI_BACKEND_URL, backend.url in Pulumi.yaml, "
                   "the current `pulumi login`, else file://<project>/.pulumi-state")
    p.add_argument("--secrets-provider", default="", help="passphrase (default, PULUMI_CONFIG_PASSPHRASE) or awskms://alias/<name>?region=<r>")
    p.add_argument("--profile", default="", help="AWS profile for the ECS calls and the SSM session (default: the environment's credentials)")
    p.add_argument("--timeout", type=int, default=300, metavar="S", help="seconds to wait for the access task's exec agent (default 300)")
    p.set_defaults(func=cmd_tunnel)


def check_args(args: argparse.Namespace) -> str | None:
    """One sentence for a bad argument, or None."""
    if args.local_port and not 1024 <= args.local_port <= 65535:
        return f"--local-port {args.local_port} is invalid: use 1024-65535 (an unprivileged port), or leave it out for a free one"
    if not 30 <= args.timeout <= 1800:
        return f"--timeout {args.timeout} is invalid: use 30-1800 seconds"
    return None


def wait_forever() -> None:
    threading.Event().wait()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (CI cancel, `kill`) unwinds like Ctrl-C, so the task is stopped on the way out."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def print_usage(tunnel: Tunnel, out: Callable[[str], None], user: str = "<user>") -> None:
    env = tunnel.proxy_env(os.environ)
    out("")
    out(f"  psql (verify-full against {tunnel.db_host}):")
    out(f"    {connect_hint(tunnel, user=user, ca_file=RDS_CA_BUNDLE)}")
    out("  pulumi / the postgresql provider (host stays the RDS name, dialled through SOCKS5):")
    out(f"    export ALL_PROXY={env['ALL_PROXY']} NO_PROXY={env['NO_PROXY']}")
    out("  rotate / deploy / audit from another shell (libpq dials PGHOSTADDR, verifies the secret's host name):")
    out(f"    PGHOSTADDR={LOOPBACK} python -m bootstrap rotate --stack <stack> --port {tunnel.local_port}")
    out("")
    out("Press Ctrl-C to close the tunnel and stop the access task.")


def hold_tunnel(
    target: AccessTarget,
    *,
    ecs: EcsClient,
    sessions: SessionStarter,
    local_port: int = 0,
    region: str | None = None,
    user: str = "<user>",
    out: Callable[[str], None] = print,
    hold: Callable[[], None] = wait_forever,
    **tunnel_kw: Any,
) -> int:
    """Open, print, hold until interrupted; 0 after Ctrl-C/SIGTERM, 1 with one sentence on failure."""
    try:
        with _sigterm_as_interrupt(), open_tunnel(target, ecs=ecs, sessions=sessions, local_port=local_port, region=region, out=out, **tunnel_kw) as tunnel:
            print_usage(tunnel, out, user)
            hold()
    except KeyboardInterrupt:
        out("tunnel closed")
        return 0
    except TunnelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def read_outputs(args: argparse.Namespace) -> Mapping[str, Any]:
    """The stack's outputs: from --outputs-file, else through the Automation API (deploy's workspace)."""
    from bootstrap.deploy.workspace import DeployError, open_existing
    from config.stack_file import PROJECT_DIR, InputError

    if args.outputs_file:
        try:
            data = json.loads(Path(args.outputs_file).read_text())
        except (OSError, ValueError) as exc:
            raise TunnelError(f"--outputs-file {args.outputs_file} is not readable JSON ({type(exc).__name__}); write it with `pulumi stack output --json`") from None
        if not isinstance(data, dict):
            raise TunnelError(f"--outputs-file {args.outputs_file} holds no JSON object; write it with `pulumi stack output --json`")
        return data

    try:  # the configured backend (as deploy uses it); select, never create
        project_dir = Path(args.cwd).resolve() if getattr(args, "cwd", "") else PROJECT_DIR
        return open_existing(args.stack, project_dir, args.backend or None, args.secrets_provider or None, os.environ).outputs()
    except (DeployError, InputError) as exc:
        raise TunnelError(str(exc)) from None


def cmd_tunnel(args: argparse.Namespace) -> int:
    from bootstrap.access.ssm_session import AwsCliSessionStarter
    from config.load import load_settings
    from config.stack_file import settings_name, stack_config

    problem = check_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    settings = load_settings(stack_config(args.stack), stack=settings_name(args.stack), check_credentials=False)
    sessions = AwsCliSessionStarter(profile=args.profile or None)
    try:
        sessions.preflight()  # before reading the state: a missing CLI is the first thing to say
        target = AccessTarget.from_outputs(read_outputs(args), args.stack)
    except TunnelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    import boto3

    ecs = boto3.session.Session(region_name=settings.region, profile_name=args.profile or None).client("ecs")
    return hold_tunnel(target, ecs=ecs, sessions=sessions, local_port=args.local_port, region=settings.region,
                       user=settings.database.master_username, timeout_s=float(args.timeout))

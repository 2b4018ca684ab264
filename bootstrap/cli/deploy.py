"""The deploy family of commands: deploy, preview, up, refresh, destroy, drift, rotate, audit.

Each handler reads and checks everything it can offline first (stack file, secrets provider,
prod prerequisites, security controls), then reaches the CLI and AWS. Every failure is one line on
stderr: exit 1 for a failed operation, 2 for bad input, and for `drift` 2 = changes found.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.cli.args import _backend_args, _common, _db_args, _purge_arg, _tunnel_arg, _yes, guarded
from bootstrap.deploy.workspace import Backend, Workspace, check_secrets, require_cli, resolve_backend
from config.load import settings_for
from config.stack_file import APP_DB_KEY, PROJECT_DIR, InputError, StackFile, read_stack_file


def make_db_admin(rds_client: Any) -> Any:
    """How the master password is changed (RDS ModifyDBInstance); the one seam tests replace,
    because no local RDS can change a real PostgreSQL server's password."""
    from dbcore.rds_admin import RdsAdmin

    return RdsAdmin(rds_client)


def make_remote_rotator(region: str, outputs: dict[str, Any]) -> Any:
    """How `rotate` has Secrets Manager run the stack's rotation function (RotateSecret, then
    DescribeSecret until done; CloudWatch Logs for the function's failures; ECS for the redeploy);
    the one seam tests replace, since Secrets Manager cannot invoke a Lambda here."""
    import boto3

    from bootstrap.rotation.remote import RemoteRotator

    session = boto3.session.Session(region_name=region)
    return RemoteRotator(session.client("secretsmanager"), session.client("ecs"), outputs, logs=session.client("logs"))


def make_app_service(ecs_client: Any, prefix: str) -> Any:
    """The app's service as the in-process rotation checks, redeploys and waits for it (names as
    components/service.py gives them); tests replace it to poll without sleeping."""
    from bootstrap.rotation.app_service import AppService
    from config import naming

    return AppService(ecs_client, naming.cluster(prefix), naming.ecs_service(prefix))


@dataclass(frozen=True)
class TunnelSeams:
    ecs: Any  # the three ECS calls of bootstrap.access.tunnel.EcsClient
    sessions: Any  # bootstrap.access.tunnel.SessionStarter
    probe: Callable[[str, int], bool]  # is host:port directly reachable from here?


def make_tunnel_seams(region: str) -> TunnelSeams:
    """How the tunnel reaches ECS and SSM (boto3, the AWS CLI with the session-manager plugin);
    the one seam tests replace (a Stubber and a loopback forwarder), since neither runs here."""
    import boto3

    from bootstrap.access.ssm_session import AwsCliSessionStarter
    from bootstrap.access.tunnel import reachable

    return TunnelSeams(boto3.session.Session(region_name=region).client("ecs"), AwsCliSessionStarter(), reachable)


@dataclass
class Session:
    args: argparse.Namespace
    project_dir: Path
    sf: StackFile
    backend: Backend | None
    ws: Workspace | None
    settings: Any
    decrypted: dict[str, str]

    def program_config(self) -> dict[str, Any]:
        """The config the CLI will hand the program (decrypted), with the app database on."""
        cfg = {k: self.decrypted.get(k, v) for k, v in self.sf.config.items()}
        cfg[APP_DB_KEY] = "true"
        return cfg


def _session(args: argparse.Namespace, *, cli: bool) -> Session:
    project_dir = _project_dir(args)
    sf = read_stack_file(args.stack, project_dir)
    backend = ws = None
    decrypted: dict[str, str] = {}
    if cli or sf.secure_keys:
        require_cli()
        provider = check_secrets(sf, getattr(args, "secrets_provider", "") or None, os.environ)
        backend = resolve_backend(getattr(args, "backend", "") or None, os.environ, project_dir)
        ws = Workspace(args.stack, backend, provider, project_dir)
        if sf.secure_keys:  # the CLI decrypts them (passphrase or KMS), as it will for the program
            config = ws.open().get_all_config()
            decrypted = {k: str(getattr(v, "value", v)) for k, v in config.items() if k in sf.secure_keys}
    settings = settings_for(sf, args.stack, decrypted)
    sslmode = getattr(args, "sslmode", "")
    if settings.is_prod and sslmode and sslmode != "verify-full":  # issue 28: never downgraded in prod, not even for one run
        raise InputError(f"--sslmode {sslmode} is refused for prod stack {args.stack}: prod connections verify the server (verify-full with the RDS CA bundle)")
    return Session(args, project_dir, sf, backend, ws, settings, decrypted)


def _rotator(s: Session) -> Any:
    import boto3

    from bootstrap.rotation.local import Endpoint, Rotator

    app = s.settings.app_database
    ca = s.args.ca_file or app.ssl_root_cert or None
    if ca and not Path(ca).is_absolute():
        ca = str(s.project_dir / ca)
    endpoint = Endpoint(
        host=s.args.host or app.host_override or None,
        port=s.args.port or app.port_override or None,
        sslmode=s.args.sslmode or str(getattr(app.ssl_mode, "value", app.ssl_mode)),
        sslrootcert=ca,
    )
    session = boto3.session.Session(region_name=s.settings.region)
    return Rotator(s.settings, secrets_client=session.client("secretsmanager"), admin=make_db_admin(session.client("rds")), endpoint=endpoint,
                   service=make_app_service(session.client("ecs"), s.settings.prefix))


@contextlib.contextmanager
def _db_route(s: Session, rot: Callable[[], Any], outputs: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """The route to the database for the phases that connect, per --tunnel: `never` = direct;
    `auto` = direct when the address we would dial answers (a host override, else the master
    secret's host), else a tunnel; `always` = a tunnel. While it is open, the rotator (and so the
    audit) connects through it; the caller hands `route.pulumi_env(...)` to the `pulumi` process.
    The tunnel's task is stopped when the block ends, however it ends."""
    from bootstrap.access.tunnel import DbRoute, db_route

    mode, rotator = s.args.tunnel, rot()
    rotator.check_settings()
    seams: TunnelSeams | None = None
    if mode != "always":
        fields = rotator.connection_fields()
        host, port = str(fields.get("host") or ""), int(fields.get("port") or 5432)
        if mode == "auto":
            seams = make_tunnel_seams(s.settings.region)
            mode = "never" if host and seams.probe(host, port) else "always"
            if mode == "always":
                print(f"database {host or '?'}:{port} is not reachable from here: opening a tunnel (--tunnel never to connect directly)")
        if mode == "never":
            print(f"database {host or '?'}:{port}: connecting directly")
            yield DbRoute()
            return
    if outputs is None:
        outputs = _stack(s).outputs()
    seams = seams or make_tunnel_seams(s.settings.region)
    base = rotator.endpoint
    with db_route(outputs, stack=s.args.stack, mode="always", ecs=seams.ecs, sessions=seams.sessions, region=s.settings.region, out=print) as route:
        rotator.endpoint = route.endpoint(base)  # host stays the RDS name (verify-full), bytes go to the tunnel
        try:
            yield route
        finally:
            rotator.endpoint = base


def _stack(s: Session) -> Any:
    """The existing stack (for its outputs): the session's workspace, else the configured backend."""
    from bootstrap.deploy.workspace import open_existing

    if s.ws is not None:
        return s.ws.open()
    return open_existing(s.args.stack, s.project_dir, getattr(s.args, "backend", "") or None, getattr(s.args, "secrets_provider", "") or None, os.environ)


def _auditor(s: Session, rot_factory: Callable[[], Any]) -> Callable[[Any], int]:
    from bootstrap.deploy.workspace import export_with_secrets
    from bootstrap.rotation.audit import audit_state, login_users

    def run(stack: Any) -> int:
        live, unverifiable = audit_state(export_with_secrets(stack), login_users(s.settings), rot_factory().accepts)
        return live + unverifiable

    return run


def _deployer(s: Session, rot_factory: Callable[[], Any]) -> Any:
    from bootstrap.deploy import deleted_secrets
    from bootstrap.deploy.deployer import Deployer
    from bootstrap.deploy.preflight import policy_pack_configs, policy_packs
    from bootstrap.deploy.seams import RemoteRotation

    assert s.ws is not None
    remote: RemoteRotation | None = None
    if not getattr(s.args, "local_rotation", True):
        def through_function(outputs: dict[str, Any], roles: tuple[str, ...], start: bool = True) -> Any:
            # join: each new SecretRotation (master: phase 1, logins: phase 3) starts an immediate rotation of its own
            return make_remote_rotator(s.settings.region, outputs).rotate(roles, join_pending=True, start=start)

        remote = through_function
    return Deployer(s.sf, s.ws, rot_factory, _auditor(s, rot_factory), assume_yes=s.args.yes, allow_data_loss=getattr(s.args, "allow_data_loss", False), policy_packs=(packs := policy_packs(s.project_dir)),
                    policy_pack_configs=policy_pack_configs(packs, s.settings.is_prod),
                    route=lambda outputs: _db_route(s, rot_factory, outputs), password_logins=s.settings.app_database.password_logins(),
                    remote_rotation=remote, before_first_up=lambda: deleted_secrets.check_stack(
                        s.settings, purge=getattr(s.args, "purge_deleted_secrets", False), assume_yes=getattr(s.args, "yes", False)))


def _offline_checks(s: Session, controls: bool) -> None:
    from bootstrap.deploy.preflight import check_prerequisites, security_gate

    check_prerequisites(s.settings, s.project_dir)
    if controls:
        security_gate(s.args.stack, s.program_config(), print, s.project_dir)


def _lazy(factory: Callable[[], Any]) -> Callable[[], Any]:
    made: list[Any] = []

    def get() -> Any:
        if not made:
            made.append(factory())
        return made[0]

    return get


def _project_dir(args: argparse.Namespace) -> Path:
    return Path(args.cwd).resolve() if getattr(args, "cwd", "") else PROJECT_DIR


def require_rotation_archive(args: argparse.Namespace) -> None:
    from bootstrap.deploy.preflight import require_rotation_archive as check

    check(_project_dir(args))


def cmd_deploy(args: argparse.Namespace) -> int:
    require_rotation_archive(args)
    s = _session(args, cli=True)
    _offline_checks(s, controls=True)
    rot = _lazy(lambda: _rotator(s))
    return int(_deployer(s, rot).deploy(rotate=args.rotate, rotate_after_days=args.rotate_after_days))


def cmd_single(args: argparse.Namespace) -> int:
    if args.op in ("preview", "up", "drift"):  # the ops that run the program
        require_rotation_archive(args)
    s = _session(args, cli=True)
    if args.op != "destroy":
        _offline_checks(s, controls=args.op in ("up", "preview"))
    rot = _lazy(lambda: _rotator(s))

    def env_for(app_db: bool) -> dict[str, str]:
        from dbcore.pgconn import provider_env

        return provider_env(rot().current_password("master")) if app_db else {}

    return int(_deployer(s, rot).single(args.op, env_for))


def cmd_rotate(args: argparse.Namespace) -> int:
    from bootstrap.rotation.local import roles_for
    from bootstrap.rotation.remote import RemoteRotator

    s = _session(args, cli=False)
    iam = s.settings.app_database.iam_auth_roles
    if args.role in iam:
        raise InputError(f"role {args.role} uses IAM authentication (appDbIamAuthRoles) and has no password to rotate; "
                         f"rotate master{''.join(', ' + r for r in s.settings.app_database.password_logins())} or all")
    roles = tuple(r for r in roles_for(args.role) if r not in iam)
    if not args.local:
        # Secrets Manager runs the stack's rotation function inside the VPC: AWS API access only.
        from bootstrap.deploy.outputs import plain_outputs

        plain = plain_outputs(_stack(s).outputs())
        if RemoteRotator.available(plain):
            make_remote_rotator(s.settings.region, plain).rotate(roles)
            print("rotation complete")
            return 0
        print(f"stack {args.stack} has no rotation function (output rotationFunctionArn): rotating in-process")
    rot = _rotator(s)
    with _db_route(s, lambda: rot):
        if any(r != "master" for r in roles):  # 16+: ADMIN OPTION on the login roles, before anything changes
            rot.check_admin([r for r in roles if r != "master"])
        for role in roles:
            rot.rotate(role)
    print("rotation complete")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from bootstrap.deploy.workspace import export_with_secrets
    from bootstrap.rotation.audit import audit_state, config_and_history, login_users, read_state_file

    s = _session(args, cli=not args.state_file)
    config: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    if args.state_file:
        state = read_state_file(args.state_file)
        print("audit: --state-file: the stack's config and update history are not searched (run without it to include them)")
    else:
        assert s.ws is not None
        stack = s.ws.open()
        state = export_with_secrets(stack)
        config, history = config_and_history(stack)
    rot = _rotator(s)
    with contextlib.ExitStack() as held:
        opened: list[Any] = []

        def accepts(user: str, password: str, dbname: str = "postgres") -> bool:
            if not opened:  # the route (maybe a tunnel) only once there is a credential to try
                opened.append(held.enter_context(_db_route(s, lambda: rot)))
            return bool(rot.accepts(user, password, dbname))

        live, unverifiable = audit_state(state, login_users(s.settings), accepts, config=config, history=history)
    return 1 if live or unverifiable else 0


# --------------------------------------------------------------------------------------------
# Parsers and the error guard
# --------------------------------------------------------------------------------------------


def register(sub: Any) -> None:
    p = sub.add_parser("rotate", help="rotate the master and/or login role passwords: through the stack's rotation function "
                       "(RotateSecret; AWS API access only), or in-process with --local")
    _common(p)
    p.add_argument("--role", choices=["master", "app", "migrator", "all"], default="all")
    p.add_argument("--local", action="store_true", help="rotate in-process (the runner connects to the database, --tunnel applies) "
                   "instead of through the stack's rotation function")
    _backend_args(p)
    _db_args(p)
    _tunnel_arg(p)
    p.set_defaults(func=guarded(cmd_rotate))

    p = sub.add_parser("deploy", help="phased deploy: up, rotate master, up with app db, rotate logins, audit")
    _common(p)
    _backend_args(p)
    _db_args(p)
    _yes(p)
    p.add_argument("--rotate", action="store_true", help="rotate the login roles (and master) even if not due")
    p.add_argument("--rotate-after-days", type=int, default=None, metavar="N", help="rotate login roles whose AWSCURRENT is N days old or older")
    p.add_argument("--local-rotation", action="store_true", help="rotate the login roles in-process (the runner connects to the "
                   "database) instead of through the stack's rotation function")
    _purge_arg(p)
    _tunnel_arg(p)
    p.set_defaults(func=guarded(cmd_deploy))

    for op, help_ in (("preview", "pulumi preview"), ("up", "pulumi up (no rotation; prefer deploy)"), ("refresh", "pulumi refresh"),
                      ("destroy", "pulumi destroy"), ("drift", "refresh then preview: exit 0 no drift, 2 drift (listed), 1 error")):
        p = sub.add_parser(op, help=help_)
        _common(p)
        _backend_args(p)
        _db_args(p)
        _tunnel_arg(p)  # with the app database on, the postgresql provider connects (as in deploy's phases 3-5)
        if op in ("up", "refresh", "destroy"):
            _yes(p, data_loss=op != "refresh")
        if op == "up":
            _purge_arg(p)
        else:
            p.set_defaults(yes=False)
        p.set_defaults(func=guarded(cmd_single), op=op)

    p = sub.add_parser("audit", help="check every credential in the state against the database; non-zero if any still works")
    _common(p)
    _backend_args(p)
    _db_args(p)
    p.add_argument("--state-file", default="", help="an exported state JSON (pulumi stack export --show-secrets) instead of the live stack")
    _tunnel_arg(p)
    p.set_defaults(func=guarded(cmd_audit))

"""The arguments every deploy-family command shares (stack, backend, database, tunnel, confirmation),
and `guarded`: every expected failure of a command as one line on stderr and an exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bootstrap.deploy.workspace import DeployError, explain
from config.stack_file import InputError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", required=True, help="stack name, or org/stack, org/project/stack (reads Pulumi.<stack>.yaml)")
    p.add_argument("-C", "--cwd", default="", help="project directory (default: this repository)")


def _db_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="", help="connect here instead of appDbHostOverride / the secret's host (tunnel, bastion)")
    p.add_argument("--port", type=int, default=0, help="port to use with --host (default appDbPortOverride / the secret's port)")
    p.add_argument("--sslmode", choices=["require", "verify-ca", "verify-full"], default="", help="TLS mode (default: appDbSslMode, verify-full; require is a dev-only opt-out, refused for prod)")
    p.add_argument("--ca-file", default="", help="CA bundle for verify-ca/verify-full (default: appDbSslRootCert)")


def _tunnel_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tunnel", choices=["auto", "always", "never"], default="auto",
                   help="reach the database through the stack's access task and SSM (verify-full kept): auto (default) when it "
                        "does not answer directly, always, or never")


def _backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="", help="state backend URL; default: PULUMI_BACKEND_URL, backend.url in Pulumi.yaml, "
                   "the current `pulumi login`, else file://<project>/.pulumi-state")
    p.add_argument("--secrets-provider", default="", help="for a new stack: passphrase (default) or awskms://alias/<name>?region=<r>")


def _purge_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--purge-deleted-secrets", action="store_true", help="delete without recovery this stack's secrets that a destroy "
                   "left scheduled for deletion (otherwise the command stops and names them)")


def _yes(p: argparse.ArgumentParser, *, data_loss: bool = True) -> None:
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation (required without a terminal)")
    if data_loss:  # refresh only rewrites the state: nothing to allow
        p.add_argument(
            "--allow-data-loss", action="store_true",
            help="accept a preview that deletes or replaces a resource holding data (DB, app database, secrets, keys, buckets, "
                 "repositories, log groups); refused without it, even with --yes (docs/data-loss.md)")


def guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Every expected failure as one line on stderr, never a traceback."""

    def run(args: argparse.Namespace) -> int:
        import psycopg
        from botocore.exceptions import BotoCoreError, ClientError
        from pulumi import automation as auto

        from bootstrap.access.tunnel import TunnelError
        from config.load import ConfigError
        from dbcore.pgconn import ConnectionSettingsError
        from dbcore.secret import RotationError

        try:
            return fn(args)
        except auto.CommandError as exc:  # a CLI call outside the Deployer's own handling (outputs, config)
            print(f"error: {explain(exc, getattr(args, 'stack', ''))}", file=sys.stderr)
            return 1
        except (InputError, ConfigError, ConnectionSettingsError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (DeployError, RotationError, TunnelError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except ClientError as exc:
            err = exc.response.get("Error", {})
            print(f"error: AWS {exc.operation_name} failed: {err.get('Code', '')}: {err.get('Message', '')}", file=sys.stderr)
            return 1
        except BotoCoreError as exc:
            print(f"error: AWS call failed: {exc} (check AWS_PROFILE / credentials and the region)", file=sys.stderr)
            return 1
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"error: the database refused: {first} ({type(exc).__name__})", file=sys.stderr)
            return 1
        except (KeyboardInterrupt, EOFError):  # outside a CLI update (those say more: workspace.interrupted)
            print("error: interrupted (Ctrl-C) before the command finished; re-run it to go on (an interrupted rotation is finished first)",
                  file=sys.stderr)
            return 1

    return run

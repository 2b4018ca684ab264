"""`python -m bootstrap ca-bundle fetch|check [--stack S]`: obtain the RDS CA bundle every
verify-full connection trusts, and judge it (config/ca_bundle.py) before anything relies on it.

`fetch` downloads it over HTTPS (the global bundle, or `--region-bundle` for the stack's region
only), checks the bytes, and only then replaces the file, so a failed or wrong download never
leaves a bad bundle behind. `check` judges the file already there. With `--stack`, the file is the
stack's appDbSslRootCert and the bundle must hold the root of the stack's region and
dbCaCertIdentifier. The download goes through `download`, the one seam tests replace.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from config.ca_bundle import DEFAULT_PATH, GLOBAL_URL, MAX_BYTES, BundleError, check_bundle, region_url
from config.stack_file import PROJECT_DIR

TIMEOUT_S = 30


class DownloadError(RuntimeError):
    """The bundle could not be downloaded; one sentence."""


def download(url: str) -> bytes:
    """The bundle's bytes from `url`: https (AWS's trust store), or file:// for an offline mirror.
    Plain http is refused: whoever sits on the path could hand us a CA of their own."""
    import urllib.error
    import urllib.request

    if not url.startswith(("https://", "file://")):
        raise DownloadError(f"{url} is not an https:// (or file://) URL; a CA bundle fetched over plain http could be replaced on the way")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 (scheme checked above)
            data = bytes(response.read(MAX_BYTES + 1))
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"could not download {url}: {reason}") from None
    return data


def register(sub: Any) -> None:
    p = sub.add_parser("ca-bundle", help="download (fetch) or check the RDS CA bundle that verify-full connections trust")
    actions = p.add_subparsers(dest="action", required=True)
    fetch = actions.add_parser("fetch", help="download the RDS CA bundle over HTTPS, check it, then write it (default: the global bundle)")
    check = actions.add_parser("check", help="check the RDS CA bundle file: PEM CA certificates, Amazon RDS roots, none expired")
    for q in (fetch, check):
        q.add_argument("--stack", default="", help="stack name: the file is its appDbSslRootCert and the bundle must hold the root of "
                       "its region and dbCaCertIdentifier")
        q.add_argument("--file", default="", help=f"bundle path, relative to the project (default: appDbSslRootCert, else {DEFAULT_PATH})")
        q.add_argument("--sha256", default="", metavar="HEX", help="refuse the bundle unless its sha256 is this (a copy your team reviewed)")
    source = fetch.add_mutually_exclusive_group()
    source.add_argument("--region-bundle", action="store_true", help="the bundle of the stack's region only (needs --stack)")
    source.add_argument("--url", default="", help=f"download from here instead (https:// or file://; default {GLOBAL_URL})")
    fetch.set_defaults(func=cmd_fetch)
    check.set_defaults(func=cmd_check)


def _target(args: argparse.Namespace) -> tuple[Path, str, str, Any]:
    """The bundle's path, how to show it, the stack name for advice, and the stack's settings (or None)."""
    settings = None
    configured = DEFAULT_PATH
    if args.stack:
        from config.load import load_settings
        from config.stack_file import settings_name, stack_config

        settings = load_settings(stack_config(args.stack), stack=settings_name(args.stack), check_credentials=False)
        configured = settings.app_database.ssl_root_cert or DEFAULT_PATH
    shown = args.file or configured
    path = Path(shown)
    return (path if path.is_absolute() else PROJECT_DIR / path), shown, args.stack, settings


def _judge(data: bytes, args: argparse.Namespace, settings: Any) -> Any:
    region = settings.region if settings is not None else ""
    ca = settings.database.ca_cert_identifier if settings is not None else ""
    return check_bundle(data, region=region, ca_identifier=ca, expect_sha256=args.sha256)


def cmd_fetch(args: argparse.Namespace) -> int:
    from config.stack_file import InputError

    path, shown, stack, settings = _target(args)
    if args.region_bundle and settings is None:
        raise InputError("--region-bundle needs --stack: the region is the stack's aws:region")
    url = args.url or (region_url(settings.region) if args.region_bundle else GLOBAL_URL)
    print(f"downloading {url} ...", flush=True)
    try:
        data = download(url)
        bundle = _judge(data, args, settings)
    except DownloadError as exc:
        return _fail(f"{exc}; {shown} was not changed")
    except BundleError as exc:
        return _fail(f"the downloaded bundle from {url} is refused: {exc}; {shown} was not changed")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # readers see the old bundle or the new one, never half of one
    print(f"wrote {shown}: {bundle.summary()}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    path, shown, stack, settings = _target(args)
    advice = f"python -m bootstrap ca-bundle fetch{f' --stack {stack}' if stack else ''}"
    if not path.is_file():
        return _fail(f"the RDS CA bundle {shown} does not exist; run `{advice}`")
    try:
        bundle = _judge(path.read_bytes(), args, settings)
    except BundleError as exc:
        return _fail(f"the RDS CA bundle {shown} is refused: {exc}; run `{advice}` to replace it")
    print(f"{shown}: {bundle.summary()}")
    return 0


def _fail(sentence: str) -> int:
    print(f"error: {sentence}", file=sys.stderr)
    return 1

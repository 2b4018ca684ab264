"""`build-rotation`: build the rotation function's archive (bootstrap/rotation/package.py) from the CLI."""

from __future__ import annotations

import sys

from bootstrap.rotation.package import DEFAULT_CA_BUNDLE, DEFAULT_OUTPUT, ROOT, PackageError, build
from config.rotation_archive import ARCHITECTURE


def register(sub: object) -> None:
    """`build-rotation` on the bootstrap CLI."""
    import argparse

    assert isinstance(sub, argparse._SubParsersAction)
    # No --architecture: the archive is built for the function's own (config/rotation_archive.py).
    p = sub.add_parser("build-rotation", help="build the rotation function's archive reproducibly and print its sha256 "
                       f"(for the function's architecture, {ARCHITECTURE})")
    p.add_argument("--output", default=DEFAULT_OUTPUT, help=f"archive path (default {DEFAULT_OUTPUT})")
    p.add_argument("--ca-bundle", default=DEFAULT_CA_BUNDLE, help=f"RDS CA bundle PEM (default {DEFAULT_CA_BUNDLE})")
    p.set_defaults(func=_cmd)


def _cmd(args: object) -> int:
    try:
        build(output=ROOT / args.output, ca_bundle=ROOT / args.ca_bundle)  # type: ignore[attr-defined]
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0

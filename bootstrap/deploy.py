"""placeholder"""
from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("rotate", help="rotate the master and/or login role passwords (Secrets Manager protocol)")
    p.add_argument("--stack", required=True)
    p.add_argument("--role", choices=["master", "app", "migrator", "all"], default="all")
    p.add_argument("--host", default="")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--sslmode", choices=["require", "verify-ca", "verify-full"], default="")
    p.add_argument("--ca-file", default="")
    p.set_defaults(func=_rotate)


def _rotate(args: argparse.Namespace) -> int:
    from bootstrap import rotation
    return rotation.cli(args)

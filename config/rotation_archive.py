"""The rotation function's archive: where it is and which architecture it is built for, in one place.

`python -m bootstrap build-rotation` writes it (bootstrap/rotation/package.py), the program reads it
by path (`__main__.py` -> components/rotation_function.py), and every command that runs the program
for real (plan, preview, up, deploy, release) refuses before touching the backend when it is not
built, since the engine would otherwise fail half-way with `failed to compute archive hash`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# The Lambda architecture of the function and of the wheels in its archive: one value, so an
# archive is never built for a machine the function does not run on.
ARCHITECTURE = "arm64"
DEFAULT_ARCHIVE = "build/rotation-function.zip"
ENV_VAR = "PGHOME_ROTATION_ARCHIVE"  # another path (CI artefacts, tests)


def archive_path(project_dir: Path, environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(ENV_VAR) or project_dir / DEFAULT_ARCHIVE)


def missing_archive(project_dir: Path, environ: Mapping[str, str] = os.environ) -> str | None:
    """The one sentence to print when the archive is not built, else None."""
    path = archive_path(project_dir, environ)
    if path.is_file():
        return None
    shown = path.relative_to(project_dir) if path.is_relative_to(project_dir) else path
    via = f" ({ENV_VAR})" if environ.get(ENV_VAR) else ""
    return (f"the rotation function's archive {shown}{via} is not built; run `python -m bootstrap build-rotation` "
            "first (nothing was changed)")

"""The `deepdive` command line, one module per group of commands. Errors a user can cause print one
line `error: ...` and exit 1.

- `listen`: classify, detect
- `training`: prepare, train, evaluate, quantize, data watkins
- `recordings`: scan, segments, embed, search
- `serving`: demo, serve
"""

from __future__ import annotations

import sys

from . import listen, recordings, serving, training  # noqa: F401  (each registers its commands on `app`)
from .common import app, fail

__all__ = ["app", "main"]


def main() -> None:
    """The command line; a system error nothing else caught (a full disk, a folder that cannot be written)
    is one line naming the path, not a traceback."""
    try:
        app()
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()

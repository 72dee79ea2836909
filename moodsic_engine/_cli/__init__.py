"""The `moodsic` command: parses, calls the public API or a front end, reports.

One module per command group; each registers on the apps in `apps`. A new command is a new
module here, named in COMMAND_MODULES.

Exit codes: 0 done; 1 bad input or missing resource (one line on stderr); 2 usage; 3 a batch
finished with some clips failed; 130 interrupted.
"""

from __future__ import annotations

import importlib
import os
import sys

from .apps import app
from .common import err

COMMAND_MODULES: tuple[str, ...] = (
    "score",
    "timeline",
    "batch",
    "weights",
    "library",
    "bench",
    "blender",
    "train",
    "evaluate",
    "live",
    "serve",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["COMMAND_MODULES", "app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        app(args=argv, standalone_mode=True)
    except KeyboardInterrupt:
        err("interrupted")
        sys.exit(130)

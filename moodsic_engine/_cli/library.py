"""`moodsic library info`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .apps import library_app
from .common import (
    ProgressMode,
    load_config,
    reporting,
)


@library_app.command("info")
def library_info(
    path: Annotated[
        str, typer.Argument(help="builtin, a DEAM folder, a manifest or an audio folder.")
    ],
    plot: Annotated[Path | None, typer.Option(help="Write a V/A scatter plot PNG here.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    allow_outside: Annotated[
        bool, typer.Option(help="Let a library manifest point outside its own folder.")
    ] = False,
) -> None:
    """Print a library's tracks and mood clusters (with sizes); optionally plot them."""
    import warnings

    from ..library import load_library
    from ..library.report import info_lines, plot_library

    with reporting(ProgressMode.none), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's warnings are printed below
        cfg = load_config(config)
        lib = load_library(path, match_config=cfg.match, allow_outside=allow_outside)
        for line in info_lines(lib):
            typer.echo(line)
        if plot is not None:
            typer.echo(f"plot     {plot_library(lib, plot)}")

"""`moodsic blender build-addon|speech`: helpers for the Blender VSE add-on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .apps import blender_app
from .common import (
    ProgressMode,
    ProgressOpt,
    info,
    reporting,
)


@blender_app.command("build-addon")
def blender_build_addon(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Folder for the zip.")
    ] = None,
) -> None:
    """Build the Blender extension zip (install it from Blender's Preferences > Get Extensions)."""
    from ..blender_build import build_addon

    with reporting(ProgressMode.none):
        typer.echo(str(build_addon(output)))


@blender_app.command("speech")
def blender_speech(
    video: Annotated[Path, typer.Argument(help="Video whose own audio is searched for speech.")],
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Where the video's audio has speech (the add-on ducks the music there)."""
    from ..blender_build import dialogue_regions

    with reporting(progress) as (report, json_out):
        report("speech", 0, 1)
        regions = dialogue_regions(video)
        report("speech", 1, 1)
        if json_out is not None:
            json_out.emit("done", speech=[list(r) for r in regions])
        else:
            for a, b in regions:
                info(progress, f"{a:8.2f} {b:8.2f}")

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
    load_config,
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
    cue: Annotated[
        Path | None,
        typer.Option(
            "--cue", help="Its cue sheet: also report the levels the mixdown would set for it."
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Where the video's audio has speech (the add-on ducks the music there); with --cue, also
    the dialogue loudness and the music's gain and ducking depth as the mixdown sets them."""
    from ..blender_build import dialogue_regions, strip_levels

    with reporting(progress) as (report, json_out):
        report("speech", 0, 1)
        levels = None
        if cue is not None:
            found = strip_levels(video, cue, load_config(config).mix)
            regions = [tuple(r) for r in found["speech"]]
            levels = found["levels"]
        else:
            regions = dialogue_regions(video)
        report("speech", 1, 1)
        if json_out is not None:
            extra = {} if levels is None else {"levels": levels}
            json_out.emit("done", speech=[list(r) for r in regions], **extra)
        else:
            for a, b in regions:
                info(progress, f"{a:8.2f} {b:8.2f}")
            if levels is not None:
                info(
                    progress,
                    f"dialogue {levels['dialogue_lufs']} LUFS, music {levels['music_db']} dB, "
                    f"ducked {levels['duck_db']} dB under speech",
                )

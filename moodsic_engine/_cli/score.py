"""`moodsic score` and `moodsic demo`: one video in, a cue sheet and its outputs out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .apps import app
from .common import (
    EXPERTS_HELP,
    CalibrationOpt,
    ProgressMode,
    ProgressOpt,
    finish,
    load_config,
    parse_experts,
    reporting,
    with_calibration,
)


@app.command()
def score(
    video: Annotated[Path, typer.Argument(help="Video file to score.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Cue sheet path.")] = None,
    library: Annotated[
        str, typer.Option(help="builtin, a DEAM folder, a manifest or an audio folder.")
    ] = "builtin",
    experts: Annotated[str | None, typer.Option(help=EXPERTS_HELP)] = None,
    sample_fps: Annotated[float | None, typer.Option(help="Samples per second.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for deterministic choices.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    scene_model: Annotated[str | None, typer.Option(help="open_clip model name.")] = None,
    scene_pretrained: Annotated[
        str | None, typer.Option(help="open_clip tag or checkpoint path.")
    ] = None,
    scene_head: Annotated[Path | None, typer.Option(help="Trained scene head file.")] = None,
    emonet: Annotated[Path | None, typer.Option(help="EmoNet checkpoint (emonet_8.pth).")] = None,
    calibration: CalibrationOpt = None,
    mix: Annotated[Path | None, typer.Option(help="Write the finished soundtrack here.")] = None,
    bed: Annotated[
        Path | None, typer.Option(help="Write the music bed (after ducking) here.")
    ] = None,
    mux: Annotated[
        Path | None, typer.Option(help="Write the video with the new soundtrack here.")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a V/A plot PNG here.")] = None,
    music_under_dialogue: Annotated[
        float | None,
        typer.Option(
            help="LU the music sits under the dialogue where people speak (default 12; "
            "the video's own sound is never raised)."
        ),
    ] = None,
    reroll: Annotated[
        list[int] | None,
        typer.Option(help="Segment index to re-roll to its next best track (repeatable)."),
    ] = None,
    allow_outside: Annotated[
        bool, typer.Option(help="Let a library manifest point outside its own folder.")
    ] = False,
    reuse: Annotated[
        Path | None,
        typer.Option(
            help="An earlier cue sheet of this video: reuse its analysis when the file and "
            "analysis settings are the same (fast re-rolls); else analyse again."
        ),
    ] = None,
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Score one video: cue sheet, and on request the mix, the music bed, the muxed MP4 and a plot."""
    from ..api import score_video_to_files

    out = output or Path.cwd() / f"{video.stem}.moodsic.json"
    names = parse_experts(experts)
    with reporting(progress) as (report, json_out):
        from ..errors import VideoError
        from ..fileio import regular_file

        regular_file(video, "video", error=VideoError)  # a FIFO or device would block decoding
        cfg = load_config(
            config,
            seed=seed,
            experts=names,
            **{
                "sample.sample_fps": sample_fps,
                "scene.model": scene_model,
                "scene.pretrained": scene_pretrained,
                "scene.head": str(scene_head) if scene_head else None,
                "face.emonet": str(emonet) if emonet else None,
                "mix.music_under_dialogue_lu": music_under_dialogue,
            },
        )
        cfg = with_calibration(cfg, calibration, weights_dir)
        from ..serve.client import score_via_server

        # A running `moodsic serve` has the models loaded already; without one, in-process.
        job = {
            "library": library,
            "config": cfg,
            "weights_dir": weights_dir,
            "mix": mix,
            "bed": bed,
            "mux": mux,
            "plot": plot,
            "reroll": _reroll_counts(reroll),
            "allow_outside": allow_outside,
            "reuse": reuse,
            "progress": report,
        }
        result = score_via_server(video, out, **job) or score_video_to_files(video, out, **job)
        extras = {k: str(v) for k, v in result.extras.items()}
        finish(progress, json_out, result.summary_lines(), cue=str(result.cue_path), **extras)


def _reroll_counts(indices: list[int] | None) -> dict[int, int]:
    counts: dict[int, int] = {}
    for i in indices or []:
        counts[i] = counts.get(i, 0) + 1
    return counts


# ----------------------------------------------------------------------------- demo
@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path(
        "moodsic-demo"
    ),
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Generate a 60 s demo clip and a built-in library, score it, and write every output."""
    from ..demo import run_demo

    with reporting(progress) as (report, json_out):
        result = run_demo(output, progress=report)
        finish(progress, json_out, result.summary_lines(), cue=str(result.cue_path))

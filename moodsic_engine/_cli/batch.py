"""`moodsic batch`: many clips, one process pool or Ray."""

from __future__ import annotations

from enum import StrEnum
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


class BatchBackend(StrEnum):
    local = "local"
    ray = "ray"


@app.command()
def batch(
    input: Annotated[
        list[str],
        typer.Argument(help="Folders (recursive), globs or videos, or one CSV/JSONL manifest."),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output folder (mirrors the input tree).")
    ],
    workers: Annotated[
        int | None, typer.Option(min=1, help="Parallel workers (default: the CPU cores).")
    ] = None,
    backend: Annotated[
        BatchBackend, typer.Option(help="local process pool, or Ray.")
    ] = BatchBackend.local,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: start a local Ray).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds a clip may take before it is stopped.")
    ] = None,
    mix: Annotated[
        bool, typer.Option(help="Also write each clip's mixdown (NAME.mix.wav).")
    ] = False,
    mux: Annotated[
        bool, typer.Option(help="Also write each clip muxed with it (NAME.scored.mp4).")
    ] = False,
    library: Annotated[
        str, typer.Option(help="builtin, a DEAM folder, a manifest or an audio folder.")
    ] = "builtin",
    experts: Annotated[str | None, typer.Option(help=EXPERTS_HELP)] = None,
    sample_fps: Annotated[float | None, typer.Option(help="Samples per second.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for deterministic choices.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    calibration: CalibrationOpt = None,
    music_under_dialogue: Annotated[
        float | None,
        typer.Option(
            help="LU the music sits under the dialogue where people speak (default 12; "
            "the video's own sound is never raised)."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Skip clips whose outputs are complete and unchanged (--no-resume redoes all)."
        ),
    ] = True,
    contact_sheet: Annotated[bool, typer.Option(help="Write contact_sheet.html.")] = True,
    allow_outside: Annotated[
        bool, typer.Option(help="Let a library manifest point outside its own folder.")
    ] = False,
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Score many clips: cue sheets (and mixes/muxes) under OUTDIR, batch.jsonl, batch.csv, a contact sheet.

    Exit code 3 when the batch finished but some clips failed (see batch.jsonl for why).
    """
    from ..batch import run_batch
    from ..batch.report import batch_reporter

    names = parse_experts(experts)
    with reporting(progress) as (_, json_out):
        cfg = load_config(
            config,
            seed=seed,
            experts=names,
            **{
                "sample.sample_fps": sample_fps,
                "mix.music_under_dialogue_lu": music_under_dialogue,
            },
        )
        cfg = with_calibration(cfg, calibration, weights_dir)
        with batch_reporter(progress.value, json_out.emit if json_out else None) as reporter:
            result = run_batch(
                input,
                output,
                config=cfg,
                library=library,
                weights_dir=weights_dir,
                workers=workers,
                backend=backend.value,
                ray_address=ray_address,
                timeout_s=timeout,
                mix=mix,
                mux=mux,
                resume=resume,
                allow_outside=allow_outside,
                contact_sheet=contact_sheet,
                reporter=reporter,
            )
        finish(
            progress,
            json_out,
            result.summary_lines(),
            summary=str(result.summary_jsonl),
            csv=str(result.summary_csv),
            contact_sheet=str(result.contact_sheet) if result.contact_sheet else None,
            ok=result.count("ok"),
            skipped=result.count("skipped"),
            failed=result.count("failed"),
        )
    if result.exit_code:
        raise typer.Exit(result.exit_code)

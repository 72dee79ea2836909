"""`moodsic score-timeline`: an editor's edit in, the scored edit out."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from .apps import app
from .common import (
    EXPERTS_HELP,
    CalibrationOpt,
    ProgressMode,
    ProgressOpt,
    info,
    load_config,
    parse_experts,
    reporting,
    with_calibration,
)


@app.command("score-timeline")
def score_timeline_cmd(
    edit: Annotated[
        Path,
        typer.Argument(help="Edit to score: any format OTIO reads (.otio, .fcpxml, .edl, ...)."),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Scored timeline (format from the suffix).")
    ],
    library: Annotated[
        str, typer.Option(help="builtin, a DEAM folder, a manifest or an audio folder.")
    ] = "builtin",
    strict: Annotated[bool, typer.Option(help="Fail if any clip's media cannot be read.")] = False,
    experts: Annotated[str | None, typer.Option(help=EXPERTS_HELP)] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for deterministic choices.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    calibration: CalibrationOpt = None,
    rate: Annotated[
        float | None, typer.Option(help="Frame rate of an EDL (EDLs do not carry one).")
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="Which project of an FCPXML library holding several.")
    ] = None,
    media_dir: Annotated[
        Path | None,
        typer.Option(help="Relink media by clip name, source file or reel inside this folder."),
    ] = None,
    layout: Annotated[
        str, typer.Option(help="alternate (two overlapping music tracks) or single.")
    ] = "alternate",
    cue: Annotated[
        Path | None, typer.Option(help="Also write the edit's cue sheet (record time) here.")
    ] = None,
    allow_outside: Annotated[
        bool, typer.Option(help="Let a library manifest point outside its own folder.")
    ] = False,
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Score an existing edit: music tracks and mood markers added to a copy of the timeline."""
    names = parse_experts(experts)
    with reporting(progress) as (report, json_out):
        from ..errors import InputError

        if output.resolve() == edit.resolve() or (
            cue is not None and cue.resolve() == edit.resolve()
        ):
            raise InputError("the output would overwrite the input edit; choose another -o path")
        if cue is not None and cue.resolve() == output.resolve():
            raise InputError("--cue and -o name the same file; give the cue sheet its own path")
        from otio_adapter.edit_io import check_writable, read_edit, write_timeline
        from otio_adapter.score import score_timeline_report

        from ..fileio import atomic_path
        from ..library import load_library

        check_writable(output)  # a format that cannot hold the result: refused before analysis
        cfg = with_calibration(
            load_config(config, seed=seed, experts=names), calibration, weights_dir
        )
        timeline = read_edit(edit, rate=rate, project=project, media_dir=media_dir)
        lib = load_library(library, match_config=cfg.match, allow_outside=allow_outside)
        scored, result = score_timeline_report(
            timeline,
            lib,
            cfg,
            weights_dir=weights_dir,
            strict=strict,
            base_dir=edit.resolve().parent,
            layout=layout,
            progress=report,
        )
        with contextlib.ExitStack() as stack:
            # The cue sheet lands only once the timeline has: a failure leaves neither.
            cue_tmp = stack.enter_context(atomic_path(cue)) if cue is not None else None
            if cue_tmp is not None:
                cue_tmp.write_text(result.cue.to_json_text(cue.parent) + "\n", encoding="utf-8")
            write_timeline(scored, output)
        for line in result.missing_lines():
            info(progress, f"not scored: {line}")
        if json_out is not None:
            json_out.emit(
                "done",
                timeline=str(output),
                cue=str(cue) if cue else None,
                missing=[c.name for c in result.missing],
            )
        else:
            scored_n = len(result.clips) - len(result.missing)
            info(
                progress,
                f"scored {scored_n} of {len(result.clips)} clips; {len(result.cue.segments)} mood segments",
            )
            info(progress, f"timeline: {output}")
            if cue is not None:
                info(progress, f"cue sheet: {cue}")

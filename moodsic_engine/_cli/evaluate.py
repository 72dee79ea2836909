"""`moodsic eval veatic|findingemo`: accuracy reports on public datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .apps import eval_app
from .common import (
    EXPERTS_HELP,
    CalibrationOpt,
    ProgressMode,
    ProgressOpt,
    err,
    finish,
    load_config,
    parse_csv,
    parse_experts,
    reporting,
)


@eval_app.command("veatic")
def eval_veatic_cmd(
    root: Annotated[Path, typer.Option(help="VEATIC folder (videos/, rating_averaged/).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Report folder.")] = Path(
        "veatic-report"
    ),
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N videos.")] = None,
    videos: Annotated[str | None, typer.Option(help="Comma list of video ids.")] = None,
    experts: Annotated[str | None, typer.Option(help=EXPERTS_HELP)] = None,
    sample_fps: Annotated[float | None, typer.Option(help="Samples per second.")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Expert-output cache (default: REPORT_DIR/cache).")
    ] = None,
    plots: Annotated[bool, typer.Option(help="Write a plot per video.")] = True,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    calibration: CalibrationOpt = None,
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Per-frame and clip-mean accuracy on VEATIC for each expert, the fusion and the stable score;
    fits and writes calibration.json (each expert's raw spread -> expected squared error)."""
    from ..eval.veatic import evaluate_veatic
    from ..weights import resolve_weights_dir

    names = parse_experts(experts)
    ids = list(parse_csv(videos) or ()) or None
    with reporting(progress) as (report, json_out):
        cfg = load_config(
            config,
            experts=names,
            **{
                "sample.sample_fps": sample_fps,
                "fusion.calibration": str(calibration) if calibration else None,
            },
        )
        result = evaluate_veatic(
            root, output, cfg, weights_dir=resolve_weights_dir(weights_dir), videos=ids,
            limit=limit, cache_dir=cache_dir, plots=plots, progress=report,
        )  # fmt: skip
        lines = result.summary_lines()
        finish(
            progress, json_out, lines, report=str(result.summary_md), data=str(result.report_json)
        )


@eval_app.command("findingemo")
def eval_findingemo_cmd(
    images: Annotated[Path, typer.Option(help="Folder of FindingEmo images.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Report folder.")] = Path(
        "findingemo-report"
    ),
    experts: Annotated[str, typer.Option(help="Comma list from scene,face.")] = "scene,face",
    head: Annotated[
        Path | None, typer.Option(help="Trained scene head (default: installed).")
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="FindingEmo annotation CSV (default: findingemo-light's).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=2, help="At most N test images (face).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Embedding cache folder.")] = None,
    emonet: Annotated[Path | None, typer.Option(help="EmoNet checkpoint (emonet_8.pth).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Scene head and face expert on the FindingEmo test split (same images), beside reference figures."""
    from ..eval.findingemo_face import run_findingemo_eval
    from ..weights import resolve_weights_dir

    names = parse_csv(experts) or ()
    unknown = sorted(set(names) - {"scene", "face"})
    if unknown or not names:
        err(f"--experts takes scene and/or face, not {', '.join(unknown) or 'nothing'}")
        raise typer.Exit(2)
    with reporting(progress) as (report, json_out):
        cfg = load_config(config, **{"face.emonet": str(emonet) if emonet else None})
        result = run_findingemo_eval(
            images, output, cfg, experts=names, head=head, annotations=annotations,
            weights_dir=resolve_weights_dir(weights_dir), cache_dir=cache_dir, limit=limit,
            progress=report,
        )  # fmt: skip
        finish(progress, json_out, result.lines, **{k: str(v) for k, v in result.reports.items()})

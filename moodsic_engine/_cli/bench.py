"""`moodsic bench speed|library|batch|stability`: benchmarks that print ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .apps import bench_app
from .common import (
    ProgressMode,
    load_config,
    parse_experts,
    reporting,
)


@bench_app.command("speed")
def bench_speed(
    video: Annotated[
        Path | None, typer.Argument(help="Clip to time (default: a generated 60 s clip).")
    ] = None,
    experts: Annotated[str, typer.Option(help="Experts to time.")] = "grammar",
    memory: Annotated[
        bool, typer.Option(help="Also compare peak memory of 1- and 10-minute clips.")
    ] = False,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    end_to_end: Annotated[
        bool,
        typer.Option(
            "--end-to-end",
            help="Fixed cost (2 s clip) and a 60 s one-face clip through the CLI, all three "
            "experts on random weights, and where the time goes per stage and expert.",
        ),
    ] = False,
    reference: Annotated[
        bool,
        typer.Option(
            "--reference", help="With --end-to-end: the reference-style pipeline beside ours."
        ),
    ] = False,
) -> None:
    """Pipeline time against decoding every frame with ffmpeg; peak memory against length."""
    from ..bench import speed_report

    names = parse_experts(experts) or ()
    if end_to_end:
        from ..bench_e2e import end_to_end_report

        with reporting(ProgressMode.none):
            for line in end_to_end_report(reference=reference):
                typer.echo(line)
        return
    with reporting(ProgressMode.none):
        cfg = load_config(config)
        lines = speed_report(video, names, memory=memory, weights_dir=weights_dir, config=cfg)
        for line in lines:
            typer.echo(line)


@bench_app.command("library")
def bench_library_cmd(
    tracks: Annotated[int, typer.Option(help="Synthetic catalogue size.")] = 1_000_000,
    queries: Annotated[int, typer.Option(help="Queries to time.")] = 1000,
) -> None:
    """Index build time and per-query matching time on a large synthetic catalogue."""
    from ..library.report import bench_library

    with reporting(ProgressMode.none):
        for line in bench_library(tracks, queries):
            typer.echo(line)


@bench_app.command("batch")
def bench_batch(
    clips: Annotated[int, typer.Option(min=2, help="Generated clips to score.")] = 20,
    seconds: Annotated[float, typer.Option(help="Length of each generated clip.")] = 6.0,
    experts: Annotated[str, typer.Option(help="Experts to run.")] = "grammar",
    library: Annotated[str, typer.Option(help="Library to match against.")] = "builtin",
    ray: Annotated[
        bool, typer.Option(help="Also time the Ray backend against the local pool.")
    ] = True,
    repeat: Annotated[
        int, typer.Option(min=1, help="Runs per configuration; the fastest one counts.")
    ] = 3,
) -> None:
    """Clips/min with 1 and 2 local workers, the speed-up, and Ray's per-clip overhead."""
    from ..batch.bench import batch_report

    names = parse_experts(experts) or ()
    with reporting(ProgressMode.none):
        for line in batch_report(
            clips=clips, seconds=seconds, experts=names, library=library, ray=ray, repeat=repeat
        ):
            typer.echo(line)


@bench_app.command("stability")
def bench_stability(
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Folder for the report, best TOML and plot."),
    ] = Path("stability-report"),
    clips: Annotated[int, typer.Option(min=1, help="Synthetic clips per seed.")] = 4,
    seconds: Annotated[float, typer.Option(min=30.0, help="Length of each clip.")] = 180.0,
    seed: Annotated[int, typer.Option(help="First seed of the synthetic clips.")] = 0,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds (sets of clips) to report.")] = 5,
    uncertain_per_min: Annotated[
        float, typer.Option(min=0.0, help="Uncertain spans (dark, blur, ...) per minute.")
    ] = 2.0,
    jitter: Annotated[float, typer.Option(min=0.0, help="Scale of the expert noise.")] = 1.0,
    grid: Annotated[bool, typer.Option(help="Run the grid search over the settings.")] = True,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config (our settings).")
    ] = None,
) -> None:
    """Boundary precision/recall/F1, spurious switches and lag: our settings vs the reference
    implementation's stabilizer, per seed and pooled."""
    from ..eval.stability import run_stability

    with reporting(ProgressMode.none):
        cfg = load_config(config)
        result = run_stability(
            cfg,
            clips=clips,
            seconds=seconds,
            seed=seed,
            seeds=seeds,
            jitter=jitter,
            uncertain_per_min=uncertain_per_min,
            grid=grid,
            out_dir=output,
        )
        for line in result.lines:
            typer.echo(line)

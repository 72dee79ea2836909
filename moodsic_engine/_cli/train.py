"""`moodsic train scene`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .apps import train_app
from .common import (
    ProgressMode,
    ProgressOpt,
    finish,
    info,
    load_config,
    reporting,
)


@train_app.command("scene")
def train_scene_cmd(
    images: Annotated[
        Path, typer.Option(help="Folder of FindingEmo images (filled by --download).")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--out", help="Folder for the head and the report.")
    ] = Path("scene-head"),
    annotations: Annotated[
        Path | None,
        typer.Option(help="FindingEmo annotation CSV (default: the findingemo-light file)."),
    ] = None,
    download: Annotated[
        bool, typer.Option(help="Fetch missing images first (resumable, rate-limited).")
    ] = False,
    download_rate: Annotated[float, typer.Option(help="Download requests per second.")] = 2.0,
    limit: Annotated[
        int | None, typer.Option(help="Use a seeded subset of this many images.")
    ] = None,
    ablation: Annotated[
        str | None,
        typer.Option(help="Comma list of MODEL:PRETRAINED encoders, or 'default'; one table."),
    ] = None,
    install: Annotated[bool, typer.Option(help="Copy the head into the weights folder.")] = False,
    epochs: Annotated[
        int | None, typer.Option(help="Maximum epochs (early stopping decides).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Split and training seed.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Embedding cache folder.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    scene_model: Annotated[str | None, typer.Option(help="open_clip model name.")] = None,
    scene_pretrained: Annotated[
        str | None, typer.Option(help="open_clip tag or checkpoint path.")
    ] = None,
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Train the scene head on FindingEmo (annotations CC BY-NC-SA 4.0) and write its report."""
    from ..train.run import ablation as run_ablation
    from ..train.run import parse_encoders, train_scene
    from ..train.scene_head import TrainConfig

    with reporting(progress) as (report, json_out):
        cfg = load_config(
            config, seed=seed, **{"scene.model": scene_model, "scene.pretrained": scene_pretrained}
        )
        tc = TrainConfig(seed=cfg.seed, mc_passes=cfg.scene.mc_passes)
        if epochs is not None:
            tc = TrainConfig(seed=cfg.seed, mc_passes=cfg.scene.mc_passes, max_epochs=epochs)
        common: dict[str, Any] = {
            "annotations": annotations, "weights_dir": weights_dir, "cache_dir": cache_dir,
            "train_cfg": tc, "download": download, "download_rate": download_rate, "limit": limit,
        }  # fmt: skip
        say = lambda line: info(progress, line)  # noqa: E731
        if ablation:
            md, js, _ = run_ablation(
                images, output, cfg, parse_encoders(ablation), progress=report, echo=say, **common
            )
            if json_out is not None:
                json_out.emit("done", report=str(md), data=str(js))
            else:
                info(progress, f"ablation: {md}")
            return
        result = train_scene(
            images, output, cfg, install=install, progress=report, echo=say, **common
        )
        lines = result.summary_lines()
        finish(progress, json_out, lines, head=str(result.head_path), report=str(result.report_md))

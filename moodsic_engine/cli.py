"""The `moodsic` command: parses, calls the public API or a front end, reports.

Exit codes (DESIGN.md): 0 done; 1 bad input or missing resource (one line on stderr);
2 usage; 3 a batch finished with some clips failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from . import __version__
from .errors import MoodsicError

app = typer.Typer(
    name="moodsic",
    help="Score video with mood-matched music.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
weights_app = typer.Typer(
    help="Model weights: what is ready, and fetching them.", no_args_is_help=True
)
library_app = typer.Typer(help="Music libraries.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print ratios.", no_args_is_help=True)
eval_app = typer.Typer(help="Accuracy reports on public datasets.", no_args_is_help=True)
train_app = typer.Typer(help="Train expert heads.", no_args_is_help=True)
blender_app = typer.Typer(help="The Blender VSE add-on.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")
app.add_typer(library_app, name="library")
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
app.add_typer(blender_app, name="blender")


class ProgressMode(StrEnum):
    bar = "bar"
    json = "json"
    none = "none"


ProgressOpt = Annotated[
    ProgressMode,
    typer.Option("--progress", help="bar on a terminal, json lines for tools, or none."),
]


def _err(message: str) -> None:
    line = " ".join(str(message).split()) or "error"
    typer.echo(f"moodsic: error: {line}", err=True)


def _show_warning(message: Any, *args: Any, **kwargs: Any) -> None:  # noqa: ARG001
    # A warning is news for the user (tracks skipped, a fallback taken): one line on stderr,
    # not Python's "file:line: UserWarning" with a source line under it.
    line = " ".join(str(message).split())
    typer.echo(f"moodsic: warning: {line}", err=True)


@contextlib.contextmanager
def reporting(mode: ProgressMode) -> Iterator[tuple[Callable[[str, int, int], None], Any]]:
    """Yield (progress callback, json emitter or None); turn user errors into exit code 1
    and warnings into one `moodsic: warning:` line each."""
    import warnings

    from .progress import JsonProgress, RichProgress, no_progress

    json_out = JsonProgress() if mode == ProgressMode.json else None
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            if json_out is not None:
                yield json_out, json_out
            elif mode == ProgressMode.bar and sys.stderr.isatty():
                with RichProgress() as bar:
                    yield bar, None
            else:
                yield no_progress, None
        except MoodsicError as exc:
            if json_out is not None:
                json_out.emit("error", message=" ".join(str(exc).split()))
            _err(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            if json_out is not None:
                json_out.emit("error", message="interrupted")
            _err("interrupted")
            raise typer.Exit(130) from None


def info(mode: ProgressMode, message: str) -> None:
    """Human-readable lines: stdout normally, stderr in json mode (stdout is for JSON there)."""
    typer.echo(message, err=(mode == ProgressMode.json))


def finish(mode: ProgressMode, json_out: Any, lines: list[str], **fields: Any) -> None:
    """The end of a command: one `done` event in json mode, else the human summary lines."""
    if json_out is not None:
        json_out.emit("done", **fields)
    else:
        for line in lines:
            info(mode, line)


def _version_cb(value: bool) -> None:
    if value:
        typer.echo(f"moodsic {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_cb, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Moodsic: watch a clip, find its mood arc, and score it with fitting music."""


def _csv(text: str | None) -> tuple[str, ...] | None:
    """A comma list option ("scene, face") as a tuple; None when the option was not given."""
    if not text:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _experts(text: str | None) -> tuple[str, ...] | None:
    """--experts as names; an unknown name is a usage error (exit 2) that lists the valid ones."""
    names = _csv(text)
    if names:
        from .experts import EXPERT_NAMES  # the registry only: no model module is imported

        unknown = [n for n in names if n not in EXPERT_NAMES]
        if unknown:
            _err(
                f"--experts: unknown expert(s) {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(EXPERT_NAMES)}"
            )
            raise typer.Exit(2)
    return names


def _load_config(path: Path | None, **overrides: Any) -> Any:
    from .config import Config

    config = Config.from_toml(path) if path else Config()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return config.replace(**changes) if changes else config


# ----------------------------------------------------------------------------- score
@app.command()
def score(
    video: Annotated[Path, typer.Argument(help="Video file to score.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Cue sheet path.")] = None,
    library: Annotated[
        str, typer.Option(help="builtin, a DEAM folder, a manifest or an audio folder.")
    ] = "builtin",
    experts: Annotated[str | None, typer.Option(help="Comma list from scene,face,grammar.")] = None,
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
    mix: Annotated[Path | None, typer.Option(help="Write the finished soundtrack here.")] = None,
    bed: Annotated[
        Path | None, typer.Option(help="Write the music bed (after ducking) here.")
    ] = None,
    mux: Annotated[
        Path | None, typer.Option(help="Write the video with the new soundtrack here.")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a V/A plot PNG here.")] = None,
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
    from .api import score_video_to_files

    out = output or Path.cwd() / f"{video.stem}.moodsic.json"
    names = _experts(experts)
    with reporting(progress) as (report, json_out):
        from .errors import VideoError
        from .fileio import regular_file

        regular_file(video, "video", error=VideoError)  # a FIFO or device would block decoding
        cfg = _load_config(
            config,
            seed=seed,
            experts=names,
            **{
                "sample.sample_fps": sample_fps,
                "scene.model": scene_model,
                "scene.pretrained": scene_pretrained,
                "scene.head": str(scene_head) if scene_head else None,
                "face.emonet": str(emonet) if emonet else None,
            },
        )
        result = score_video_to_files(
            video,
            out,
            library=library,
            config=cfg,
            weights_dir=weights_dir,
            mix=mix,
            bed=bed,
            mux=mux,
            plot=plot,
            reroll=_reroll_counts(reroll),
            allow_outside=allow_outside,
            progress=report,
            reuse=reuse,
        )
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
    from .demo import run_demo

    with reporting(progress) as (report, json_out):
        result = run_demo(output, progress=report)
        finish(progress, json_out, result.summary_lines(), cue=str(result.cue_path))


# ----------------------------------------------------------------------------- weights
@weights_app.command("status")
def weights_status(
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List each expert, whether it is ready, and what it would use.

    Every weights file listed is loaded (safetensors, or PyTorch's weights-only loader) into
    the model that would use it, and compared with its checksum where one is known; a file
    that is there but unusable is "invalid", with the reason."""
    from .experts import verify_experts
    from .weights import resolve_weights_dir

    with reporting(ProgressMode.none):
        cfg = _load_config(config)
        rows = verify_experts(cfg, resolve_weights_dir(weights_dir))
        states = ["invalid" if r.invalid else "ready" if r.ready else "unavailable" for r in rows]
        if as_json:
            typer.echo(
                json.dumps([{**r.__dict__, "state": s} for r, s in zip(rows, states, strict=True)])
            )
            return
        for r, state in zip(rows, states, strict=True):
            typer.echo(f"{r.name:<8} {state:<12} {r.uses or ''}")
            if r.invalid:
                typer.echo(f"         invalid: {' '.join(r.reason.split())}")
            elif not r.ready and r.reason:
                typer.echo(f"         {r.reason}")


@weights_app.command("fetch")
def weights_fetch(
    what: Annotated[str, typer.Argument(help="scene or emonet")],
    accept_license: Annotated[
        bool, typer.Option(help="Accept the weights' licence (EmoNet).")
    ] = False,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
) -> None:
    """Download weights ahead of time (shows size and destination first)."""
    import importlib

    from .weights import resolve_weights_dir

    modules = {"scene": "moodsic_engine.experts.scene", "emonet": "moodsic_engine.experts.face"}
    if what not in modules:
        _err(f"unknown weights {what!r}: choose scene or emonet")
        raise typer.Exit(2)
    with reporting(ProgressMode.none):
        cfg = _load_config(config)
        module = importlib.import_module(modules[what])
        module.fetch(
            cfg, resolve_weights_dir(weights_dir), accept_license=accept_license, echo=typer.echo
        )


# ----------------------------------------------------------------------------- bench
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
) -> None:
    """Pipeline time against decoding every frame with ffmpeg; peak memory against length."""
    from .bench import speed_report

    names = _experts(experts) or ()
    with reporting(ProgressMode.none):
        cfg = _load_config(config)
        lines = speed_report(video, names, memory=memory, weights_dir=weights_dir, config=cfg)
        for line in lines:
            typer.echo(line)


# ---- section: library (issue 6) ----------------------------------------------------
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

    from .library import load_library
    from .library.report import info_lines, plot_library

    with reporting(ProgressMode.none), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's warnings are printed below
        cfg = _load_config(config)
        lib = load_library(path, match_config=cfg.match, allow_outside=allow_outside)
        for line in info_lines(lib):
            typer.echo(line)
        if plot is not None:
            typer.echo(f"plot     {plot_library(lib, plot)}")


@bench_app.command("library")
def bench_library_cmd(
    tracks: Annotated[int, typer.Option(help="Synthetic catalogue size.")] = 1_000_000,
    queries: Annotated[int, typer.Option(help="Queries to time.")] = 1000,
) -> None:
    """Index build time and per-query matching time on a large synthetic catalogue."""
    from .library.report import bench_library

    with reporting(ProgressMode.none):
        for line in bench_library(tracks, queries):
            typer.echo(line)


# ---- section: score-timeline (issue 7) -----------------------------------------------
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
    experts: Annotated[str | None, typer.Option(help="Comma list from scene,face,grammar.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for deterministic choices.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
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
    names = _experts(experts)
    with reporting(progress) as (report, json_out):
        from .errors import InputError

        if output.resolve() == edit.resolve() or (
            cue is not None and cue.resolve() == edit.resolve()
        ):
            raise InputError("the output would overwrite the input edit; choose another -o path")
        if cue is not None and cue.resolve() == output.resolve():
            raise InputError("--cue and -o name the same file; give the cue sheet its own path")
        from otio_adapter.edit_io import check_writable, read_edit, write_timeline
        from otio_adapter.score import score_timeline_report

        from .fileio import atomic_path
        from .library import load_library

        check_writable(output)  # a format that cannot hold the result: refused before analysis
        cfg = _load_config(config, seed=seed, experts=names)
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


# ---- section: blender (issue 8) ----------------------------------------------------
@blender_app.command("build-addon")
def blender_build_addon(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Folder for the zip.")
    ] = None,
) -> None:
    """Build the Blender extension zip (install it from Blender's Preferences > Get Extensions)."""
    from .blender_build import build_addon

    with reporting(ProgressMode.none):
        typer.echo(str(build_addon(output)))


@blender_app.command("speech")
def blender_speech(
    video: Annotated[Path, typer.Argument(help="Video whose own audio is searched for speech.")],
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Where the video's audio has speech (the add-on ducks the music there)."""
    from .blender_build import dialogue_regions

    with reporting(progress) as (report, json_out):
        report("speech", 0, 1)
        regions = dialogue_regions(video)
        report("speech", 1, 1)
        if json_out is not None:
            json_out.emit("done", speech=[list(r) for r in regions])
        else:
            for a, b in regions:
                info(progress, f"{a:8.2f} {b:8.2f}")


# ---- section: batch (issue 9) ------------------------------------------------------
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
    experts: Annotated[str | None, typer.Option(help="Comma list from scene,face,grammar.")] = None,
    sample_fps: Annotated[float | None, typer.Option(help="Samples per second.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for deterministic choices.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
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
    from .batch import run_batch
    from .batch.report import batch_reporter

    names = _experts(experts)
    with reporting(progress) as (_, json_out):
        cfg = _load_config(config, seed=seed, experts=names, **{"sample.sample_fps": sample_fps})
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
    from .batch.bench import batch_report

    names = _experts(experts) or ()
    with reporting(ProgressMode.none):
        for line in batch_report(
            clips=clips, seconds=seconds, experts=names, library=library, ray=ray, repeat=repeat
        ):
            typer.echo(line)


# ---- section: eval / train (issues 4, 10) -------------------------------------------
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
    from .train.run import ablation as run_ablation
    from .train.run import parse_encoders, train_scene
    from .train.scene_head import TrainConfig

    with reporting(progress) as (report, json_out):
        cfg = _load_config(
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


@eval_app.command("veatic")
def eval_veatic_cmd(
    root: Annotated[Path, typer.Option(help="VEATIC folder (videos/, rating_averaged/).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Report folder.")] = Path(
        "veatic-report"
    ),
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N videos.")] = None,
    videos: Annotated[str | None, typer.Option(help="Comma list of video ids.")] = None,
    experts: Annotated[str | None, typer.Option(help="Comma list from scene,face,grammar.")] = None,
    sample_fps: Annotated[float | None, typer.Option(help="Samples per second.")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Expert-output cache (default: REPORT_DIR/cache).")
    ] = None,
    plots: Annotated[bool, typer.Option(help="Write a plot per video.")] = True,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Per-frame and clip-mean accuracy on VEATIC for each expert, the fusion and the stable score."""
    from .eval.veatic import evaluate_veatic
    from .weights import resolve_weights_dir

    names = _experts(experts)
    ids = list(_csv(videos) or ()) or None
    with reporting(progress) as (report, json_out):
        cfg = _load_config(config, experts=names, **{"sample.sample_fps": sample_fps})
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
    from .eval.findingemo_face import run_findingemo_eval
    from .weights import resolve_weights_dir

    names = _csv(experts) or ()
    unknown = sorted(set(names) - {"scene", "face"})
    if unknown or not names:
        _err(f"--experts takes scene and/or face, not {', '.join(unknown) or 'nothing'}")
        raise typer.Exit(2)
    with reporting(progress) as (report, json_out):
        cfg = _load_config(config, **{"face.emonet": str(emonet) if emonet else None})
        result = run_findingemo_eval(
            images, output, cfg, experts=names, head=head, annotations=annotations,
            weights_dir=resolve_weights_dir(weights_dir), cache_dir=cache_dir, limit=limit,
            progress=report,
        )  # fmt: skip
        finish(progress, json_out, result.lines, **{k: str(v) for k, v in result.reports.items()})


@bench_app.command("stability")
def bench_stability(
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Folder for the report, best TOML and plot."),
    ] = Path("stability-report"),
    clips: Annotated[int, typer.Option(min=1, help="Synthetic clips.")] = 8,
    seconds: Annotated[float, typer.Option(min=30.0, help="Length of each clip.")] = 180.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic clips.")] = 0,
    jitter: Annotated[float, typer.Option(min=0.0, help="Scale of the expert noise.")] = 1.0,
    grid: Annotated[bool, typer.Option(help="Run the grid search over the settings.")] = True,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config (our settings).")
    ] = None,
) -> None:
    """Boundary precision/recall/F1, spurious switches and lag: our settings vs the naive ones."""
    from .eval.stability import run_stability

    with reporting(ProgressMode.none):
        cfg = _load_config(config)
        result = run_stability(
            cfg, clips=clips, seconds=seconds, seed=seed, jitter=jitter, grid=grid, out_dir=output
        )
        for line in result.lines:
            typer.echo(line)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        app(args=argv, standalone_mode=True)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()

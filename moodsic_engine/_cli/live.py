"""`moodsic live`: a camera, stream or file in a room chooses the music, continuously."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .apps import app
from .common import (
    EXPERTS_HELP,
    ProgressMode,
    ProgressOpt,
    finish,
    info,
    load_config,
    parse_experts,
    reporting,
)


@app.command()
def live(
    source: Annotated[
        str,
        typer.Argument(
            help="A camera (/dev/video0), a stream URL (rtsp://, http://, ...) or a video file "
            "played as if it were a camera."
        ),
    ],
    library: Annotated[
        str, typer.Option(help="builtin, a DEAM folder, a manifest or an audio folder.")
    ] = "builtin",
    experts: Annotated[str | None, typer.Option(help=EXPERTS_HELP)] = None,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default: run until stopped)."),
    ] = None,
    loop: Annotated[
        bool, typer.Option(help="Play a file source again from the start when it ends.")
    ] = False,
    out_audio: Annotated[
        Path | None, typer.Option(help="Record the music to this WAV (or .flac) file.")
    ] = None,
    stream: Annotated[
        str | None,
        typer.Option(
            help="Send the music to an HTTP/Icecast URL (icecast://source:pw@host:8000/live)."
        ),
    ] = None,
    play: Annotated[
        bool | None,
        typer.Option(
            "--play/--no-play",
            help="Play on the sound card (default: yes unless --out-audio or --stream is given).",
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Sound device name or index (default: the system's).")
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(help="Append a JSON-lines event log here (samples, moods, tracks)."),
    ] = None,
    status_port: Annotated[
        int | None,
        typer.Option(help="Serve a status page on http://127.0.0.1:PORT/ (0: any free port)."),
    ] = None,
    sample_fps: Annotated[float, typer.Option(help="Live samples per second.")] = 1.0,
    min_dwell: Annotated[
        float, typer.Option(help="Seconds a mood keeps the music at least (no flapping).")
    ] = 30.0,
    no_repeat: Annotated[int, typer.Option(help="No track plays again within this many.")] = 20,
    speed: Annotated[
        float,
        typer.Option(
            help="Play a file source this many times faster than real time (tests, demos; "
            "needs --no-play)."
        ),
    ] = 1.0,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for deterministic choices.")] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    progress: ProgressOpt = ProgressMode.bar,
) -> None:
    """Run live ambience music until stopped (Ctrl-C or SIGTERM fade out and exit cleanly).

    Frames stay in memory only while they are analysed; nothing the camera sees is written
    or sent anywhere.
    """
    from ..errors import InputError

    names = parse_experts(experts)
    with reporting(progress) as (_report, json_out):
        from ..experts import load_experts
        from ..library import load_library
        from ..live import LiveOptions, run_live, source_spec
        from ..weights import resolve_weights_dir

        for name, value in (
            ("--duration", duration),
            ("--speed", speed),
            ("--sample-fps", sample_fps),
        ):
            if value is not None and not value > 0:
                raise InputError(f"{name} must be a positive number")
        if status_port is not None and not 0 <= status_port <= 65535:
            raise InputError("--status-port must be between 0 and 65535")
        spec = source_spec(source, loop=loop)
        cfg = load_config(config, seed=seed, experts=names)
        lib = load_library(library, match_config=cfg.match)
        loaded = load_experts(cfg, resolve_weights_dir(weights_dir), names)
        options = LiveOptions(
            sample_fps=sample_fps,
            speed=speed,
            duration_s=duration,
            loop=loop,
            min_dwell_s=min_dwell,
            no_repeat=no_repeat,
            play=play,
            device=device,
            out_audio=out_audio,
            stream=stream,
            events=events,
            status_port=status_port,
        )

        def ready(url: str | None) -> None:
            where = f"; status page {url}" if url else ""
            info(
                progress, f"live: {spec.name} with {', '.join(loaded.names)}{where} (Ctrl-C stops)"
            )
            if json_out is not None:
                json_out.emit("ready", status_url=url)

        report = run_live(spec, lib, loaded, cfg, options, on_ready=ready)
        lines = [
            f"live: {report.seconds:.0f} s, {report.samples} samples, {report.mood_changes} mood "
            f"changes, {report.tracks} tracks, {report.reconnects} reconnects, "
            f"{report.problems} problems ({report.stop_reason})"
        ]
        if out_audio is not None:
            lines.append(f"recording: {out_audio}")
        finish(
            progress,
            json_out,
            lines,
            seconds=report.seconds,
            samples=report.samples,
            mood_changes=report.mood_changes,
            tracks=report.tracks,
            reconnects=report.reconnects,
            problems=report.problems,
            stop_reason=report.stop_reason,
        )

"""`moodsic serve`: keep the models loaded so `moodsic score` (and the Blender add-on, which
runs it) skips imports and model loading."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .apps import app
from .common import EXPERTS_HELP, ProgressMode, load_config, parse_experts, reporting


@app.command()
def serve(
    socket: Annotated[
        Path | None,
        typer.Option("--socket", help="Unix socket path (default: ~/.cache/moodsic/serve)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen on 127.0.0.1:PORT instead of a Unix socket.")
    ] = None,
    host: Annotated[str, typer.Option(help="Only 127.0.0.1 is accepted.")] = "127.0.0.1",
    experts: Annotated[str | None, typer.Option(help=EXPERTS_HELP)] = None,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    preload: Annotated[bool, typer.Option(help="Load the models before the first request.")] = True,
    idle_timeout: Annotated[
        float, typer.Option(help="Stop after this many seconds without a request (0: never).")
    ] = 0.0,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the running server.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Say whether one is running.")] = False,
) -> None:
    """Keep the models loaded behind a local socket; `moodsic score` uses it while it runs."""
    from ..serve.client import request

    names = parse_experts(experts)
    with reporting(ProgressMode.none):
        if stop or status:
            reply = request("ping")
            if reply is None:
                typer.echo("moodsic serve: not running")
                raise typer.Exit(1 if status else 0)
            if stop:
                request("stop")
                typer.echo(f"moodsic serve: stopped (pid {reply.get('pid')})")
            else:
                typer.echo(f"moodsic serve: running at {reply['server']} (pid {reply.get('pid')})")
            return
        from ..serve.server import serve_forever

        cfg = load_config(config, experts=names)
        serve_forever(
            unix=str(socket) if socket else None,
            port=port,
            host=host,
            config=cfg,
            weights_dir=str(weights_dir) if weights_dir else None,
            preload=preload,
            idle_timeout_s=idle_timeout,
            echo=lambda line: typer.echo(line, err=True),
        )

"""`moodsic weights status|fetch`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..experts.registry import fetchable
from .apps import weights_app
from .common import (
    ProgressMode,
    err,
    load_config,
    reporting,
)


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
    from ..experts import expert_spec, verify_experts
    from ..weights import resolve_weights_dir

    with reporting(ProgressMode.none):
        cfg = load_config(config)
        rows = verify_experts(cfg, resolve_weights_dir(weights_dir))
        states = ["invalid" if r.invalid else "ready" if r.ready else "unavailable" for r in rows]
        if as_json:
            specs = [expert_spec(r.name) for r in rows]  # kind and files from the registry
            typer.echo(
                json.dumps(
                    [
                        {**r.__dict__, "state": s, "kind": e.kind, "weights": list(e.weights),
                         "fetch": e.name if e.fetch else None}
                        for r, s, e in zip(rows, states, specs, strict=True)
                    ]
                )
            )  # fmt: skip
            return
        for r, state in zip(rows, states, strict=True):
            typer.echo(f"{r.name:<8} {state:<12} {r.uses or ''}")
            if r.invalid:
                typer.echo(f"         invalid: {' '.join(r.reason.split())}")
            elif not r.ready and r.reason:
                typer.echo(f"         {r.reason}")


@weights_app.command("fetch")
def weights_fetch(
    what: Annotated[str, typer.Argument(help=f"One of {', '.join(fetchable())}.")],
    accept_license: Annotated[
        bool, typer.Option(help="Accept the weights' licence (EmoNet).")
    ] = False,
    weights_dir: Annotated[Path | None, typer.Option(help="Folder with model weights.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
) -> None:
    """Download weights ahead of time (shows size and destination first)."""
    from ..errors import InputError
    from ..experts.registry import fetch_spec, function
    from ..weights import resolve_weights_dir

    try:
        spec = fetch_spec(what)  # the expert registry says who fetches what
    except InputError as exc:
        err(str(exc))
        raise typer.Exit(2) from None
    with reporting(ProgressMode.none):
        cfg = load_config(config)
        function(spec.fetch)(
            cfg, resolve_weights_dir(weights_dir), accept_license=accept_license, echo=typer.echo
        )

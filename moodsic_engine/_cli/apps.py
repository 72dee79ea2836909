"""The typer apps every command module registers on: the root and its sub-command groups."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__

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

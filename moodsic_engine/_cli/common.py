"""What every command shares: progress modes, error and warning lines, option parsing."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import MoodsicError
from ..experts.registry import EXPERT_NAMES, expert_names

# --experts' help: the expert registry's names
EXPERTS_HELP = f"Comma list from {','.join(EXPERT_NAMES)}."


class ProgressMode(StrEnum):
    bar = "bar"
    json = "json"
    none = "none"


ProgressOpt = Annotated[
    ProgressMode,
    typer.Option("--progress", help="bar on a terminal, json lines for tools, or none."),
]


def err(message: str) -> None:
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

    from ..progress import JsonProgress, RichProgress, no_progress

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
            err(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            if json_out is not None:
                json_out.emit("error", message="interrupted")
            err("interrupted")
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


def parse_csv(text: str | None) -> tuple[str, ...] | None:
    """A comma list option ("scene, face") as a tuple; None when the option was not given."""
    if not text:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_experts(text: str | None) -> tuple[str, ...] | None:
    """--experts as names; an unknown name is a usage error (exit 2) that lists the valid ones
    (the expert registry's, read now)."""
    names = parse_csv(text)
    if names:
        known = expert_names()  # the registry only: no model module is imported
        unknown = [n for n in names if n not in known]
        if unknown:
            err(
                f"--experts: unknown expert(s) {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(known)}"
            )
            raise typer.Exit(2)
    return names


def load_config(path: Path | None, **overrides: Any) -> Any:
    from ..config import Config

    config = Config.from_toml(path) if path else Config()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return config.replace(**changes) if changes else config


CalibrationOpt = Annotated[
    Path | None,
    typer.Option(
        "--calibration",
        help="Calibration file (from `moodsic eval veatic|findingemo`); default: calibration.json "
        "in the weights folder, else the built-in published figures. `none`: raw spreads.",
    ),
]


def with_calibration(config: Any, calibration: Path | None, weights_dir: Path | None) -> Any:
    """The config with `fusion.calibration` naming what the run uses (--calibration, else a
    calibration.json beside the weights, else builtin); a bad file is one line, exit 1."""
    from ..calibration import resolve_config

    if calibration is not None:
        config = config.replace(**{"fusion.calibration": str(calibration)})
    return resolve_config(config, weights_dir)

"""Use a running `moodsic serve` for `moodsic score`, or say there is none (None).

The request carries absolute paths (the server has its own working folder), the whole
config and the token from the user's token file. Progress and warnings come back as they
happen; a user error comes back as the same error class, so the command's exit code and
one-line message are the same as in-process.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import errors
from .protocol import OFF_ENV, LineReader, read_address, read_token, send

CONNECT_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class RemoteResult:
    """What the server reports back for a scored video (ScoreResult's reporting side)."""

    cue_path: Path
    extras: dict[str, Path] = field(default_factory=dict)
    lines: tuple[str, ...] = ()
    server: str = ""

    def summary_lines(self) -> list[str]:
        return list(self.lines)


def _absolute(value: Any) -> Any:
    return str(Path(value).expanduser().absolute()) if value else None


def _library_spec(library: str) -> str:
    # "builtin" is a name; anything that exists is a path the server must find from its cwd
    return _absolute(library) if library != "builtin" and Path(library).exists() else library


def request(
    op: str,
    args: dict[str, Any] | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    folder: Path | None = None,
    token: str | None = None,
) -> dict[str, Any] | None:
    """Send one request to the running server; its final reply, or None when no server
    answers (or it runs another version), so the caller goes on in-process."""
    from .. import __version__

    if os.environ.get(OFF_ENV, "").strip() not in ("", "0"):
        return None
    addr = read_address(folder)
    token = token if token is not None else read_token(folder)
    if addr is None or token is None:
        return None
    try:
        sock = addr.connect(CONNECT_TIMEOUT_S)
    except OSError:
        return None  # a server that is gone (its files stay after a hard kill)
    with sock:
        sock.settimeout(None)  # a long clip takes as long as it takes
        try:
            send(sock, {"token": token, "op": op, "args": args or {}, "version": __version__})
            reader = LineReader(sock)
            while True:
                msg = reader.read()
                if msg is None:
                    raise errors.ResourceError(
                        f"moodsic serve ({addr.describe()}) stopped during the request"
                    )
                event = msg.get("event")
                if event == "progress" and progress is not None:
                    progress(str(msg["stage"]), int(msg["done"]), int(msg["total"]))
                elif event == "warning":
                    warnings.warn(str(msg.get("message", "")), stacklevel=2)
                elif event in ("done", "error"):
                    break
        except (OSError, ValueError) as exc:
            raise errors.ResourceError(f"moodsic serve ({addr.describe()}): {exc}") from None
    if event == "error":
        kind = str(msg.get("kind", ""))
        if kind == "version":
            return None
        if kind == "auth":
            warnings.warn(
                f"moodsic serve at {addr.describe()} refused the token; scoring in-process",
                stacklevel=2,
            )
            return None
        cls = getattr(errors, kind, None)
        if not (isinstance(cls, type) and issubclass(cls, errors.MoodsicError)):
            from ..weights import WeightsError

            cls = WeightsError if kind == "WeightsError" else errors.ResourceError
        raise cls(str(msg.get("message", "moodsic serve failed")))
    return {**msg, "server": addr.describe()}


def score_via_server(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    library: str = "builtin",
    config: Any = None,
    weights_dir: str | os.PathLike[str] | None = None,
    mix: Any = None,
    bed: Any = None,
    mux: Any = None,
    plot: Any = None,
    reroll: dict[int, int] | None = None,
    allow_outside: bool = False,
    reuse: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
    folder: Path | None = None,
) -> RemoteResult | None:
    """`api.score_video_to_files` through the running server; None when there is none."""
    from ..weights import resolve_weights_dir

    args = {
        "video": _absolute(video),
        "out": _absolute(out),
        "library": _library_spec(library),
        "config": config.to_dict() if config is not None else {},
        "weights_dir": _absolute(weights_dir) or str(resolve_weights_dir(None)),
        "cwd": os.getcwd(),  # relative paths in the config resolve from here, as in-process
        "mix": _absolute(mix),
        "bed": _absolute(bed),
        "mux": _absolute(mux),
        "plot": _absolute(plot),
        "reroll": {str(k): int(v) for k, v in (reroll or {}).items()},
        "allow_outside": bool(allow_outside),
        "reuse": _absolute(reuse),
    }
    reply = request("score", args, progress=progress, folder=folder)
    if reply is None:
        return None
    return RemoteResult(
        cue_path=Path(reply["cue"]),
        extras={k: Path(v) for k, v in (reply.get("extras") or {}).items()},
        lines=tuple(reply.get("summary") or ()),
        server=str(reply.get("server", "")),
    )

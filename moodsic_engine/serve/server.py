"""`moodsic serve`: the models stay loaded; `moodsic score` sends its request here.

One request at a time (the experts keep per-clip state and share the CPU anyway); others
wait in the listen queue. Models are cached by the settings that shape them (experts,
scene, face, grammar and runtime sections, weights folder), the last two sets kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config
from ..errors import InputError, MoodsicError
from .protocol import (
    LOOPBACK,
    Address,
    LineReader,
    clear_files,
    new_token,
    read_address,
    send,
    serve_dir,
    token_ok,
    write_address,
)

MODEL_SECTIONS = ("experts", "scene", "face", "grammar", "runtime")
KEEP_MODEL_SETS = 2
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


class _Stop(Exception):
    """SIGTERM / SIGINT: leave the loop and clean up."""


class Engine:
    """Loaded experts by the settings they were loaded with."""

    def __init__(self) -> None:
        self._sets: OrderedDict[str, Any] = OrderedDict()
        self.scored = 0  # requests answered with a cue sheet
        self.loads = 0  # model sets loaded

    @staticmethod
    def key(config: Config, weights_dir: str | None) -> str:
        from ..weights import resolve_weights_dir

        # the folder as loading resolves it: None (preload) and the client's absolute
        # default path are the same models
        folder = str(resolve_weights_dir(weights_dir).expanduser().absolute())
        d = config.to_dict()
        return json.dumps([{k: d.get(k) for k in MODEL_SECTIONS}, folder], default=str)

    def experts(self, config: Config, weights_dir: str | None) -> Any:
        from ..experts import load_experts
        from ..weights import resolve_weights_dir

        k = self.key(config, weights_dir)
        if k in self._sets:
            self._sets.move_to_end(k)
            return self._sets[k]
        loaded = load_experts(config, resolve_weights_dir(weights_dir))
        self.loads += 1
        self._sets[k] = loaded
        while len(self._sets) > KEEP_MODEL_SETS:
            self._sets.popitem(last=False)
        return loaded


def _bind(unix: str | None, port: int | None, host: str) -> tuple[socket.socket, Address]:
    if host not in (LOOPBACK, "localhost"):
        raise InputError(
            f"moodsic serve listens on {LOOPBACK} or a Unix socket only (asked for {host})"
        )
    if port is not None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            sock.close()
            raise InputError(f"cannot listen on {LOOPBACK}:{port}: {exc.strerror or exc}") from None
        return sock, Address(port=sock.getsockname()[1])
    path = Path(unix) if unix else serve_dir() / "serve.sock"
    if len(str(path).encode()) > UNIX_PATH_MAX:
        raise InputError(f"socket path {path} is too long for a Unix socket (108 bytes at most)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() or path.is_symlink():
        if not path.is_socket():
            raise InputError(f"{path} exists and is not a socket")
        path.unlink()  # left by a server that is gone (a live one was ruled out before)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is created 0600: only this user may connect
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old)
    return sock, Address(unix=str(path))


def _running(folder: Path | None) -> Address | None:
    """The address of a server that answers, if any."""
    addr = read_address(folder)
    if addr is None:
        return None
    try:
        addr.connect(timeout=1.0).close()
    except OSError:
        return None
    return addr


def serve_forever(
    *,
    unix: str | None = None,
    port: int | None = None,
    host: str = LOOPBACK,
    config: Config | None = None,
    weights_dir: str | None = None,
    preload: bool = True,
    idle_timeout_s: float = 0.0,
    folder: Path | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Listen (Unix socket by default, else `port` on 127.0.0.1) until stopped.

    `preload`: load the experts for `config` before the first request. `idle_timeout_s`
    > 0: exit after that long without a request.
    """
    live = _running(folder)
    if live is not None:
        raise InputError(f"moodsic serve is already running at {live.describe()}")
    sock, addr = _bind(unix, port, host)
    engine = Engine()
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise _Stop

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        token = new_token(folder)
        write_address(addr, folder)
        sock.listen(8)
        if preload:
            t0 = time.perf_counter()
            engine.experts(config or Config(), weights_dir)
            echo(f"moodsic serve: models loaded in {time.perf_counter() - t0:.1f} s")
        echo(f"moodsic serve: listening on {addr.describe()} (pid {os.getpid()})")
        sock.settimeout(idle_timeout_s if idle_timeout_s > 0 else None)
        while not stopping:
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                echo("moodsic serve: idle, stopping")
                break
            with conn:
                conn.settimeout(None)
                stopping = _handle(conn, token, engine)
    except _Stop:
        echo("moodsic serve: stopped")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
        clear_files(addr, folder)


def _handle(conn: socket.socket, token: str, engine: Engine) -> bool:
    """Serve one request; True when it asked the server to stop."""
    try:
        req = LineReader(conn).read()
    except (OSError, ValueError, MoodsicError):
        return False
    if req is None:
        return False
    if not token_ok(req.get("token"), token):
        with contextlib.suppress(OSError):
            send(conn, {"event": "error", "kind": "auth", "message": "wrong token"})
        return False
    op = req.get("op")
    try:
        if req.get("version") not in (None, __version__):
            send(conn, {"event": "error", "kind": "version", "message": __version__})
        elif op == "ping":
            send(
                conn,
                {
                    "event": "done",
                    "version": __version__,
                    "pid": os.getpid(),
                    "scored": engine.scored,
                    "loads": engine.loads,
                },
            )
        elif op == "stop":
            send(conn, {"event": "done"})
            return True
        elif op == "score":
            _score(conn, req.get("args") or {}, engine)
        else:
            send(conn, {"event": "error", "kind": "InputError", "message": f"unknown op {op!r}"})
    except OSError:
        pass  # the client went away: its request is abandoned, the server goes on
    return False


def _score(conn: socket.socket, args: dict[str, Any], engine: Engine) -> None:
    from ..api import score_video_to_files

    def progress(stage: str, done: int, total: int) -> None:
        send(conn, {"event": "progress", "stage": stage, "done": done, "total": total})

    caught: list[warnings.WarningMessage] = []
    home = os.getcwd()
    try:
        # The client's working folder: relative paths in its config mean what they would
        # in-process (one request at a time, so changing folder is safe).
        os.chdir(args.get("cwd") or home)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            config = Config.from_dict(args.get("config") or {})
            wdir = args.get("weights_dir") or None
            experts = engine.experts(config, wdir) if not args.get("reuse") else None
            result = score_video_to_files(
                args["video"],
                args["out"],
                library=args.get("library", "builtin"),
                config=config,
                weights_dir=wdir,
                mix=args.get("mix"),
                bed=args.get("bed"),
                mux=args.get("mux"),
                plot=args.get("plot"),
                reroll={int(k): int(v) for k, v in (args.get("reroll") or {}).items()},
                allow_outside=bool(args.get("allow_outside")),
                progress=progress,
                reuse=args.get("reuse"),
                experts=experts,
            )
    except MoodsicError as exc:
        _warnings(conn, caught)
        send(conn, {"event": "error", "kind": type(exc).__name__, "message": str(exc)})
        return
    except Exception as exc:  # noqa: BLE001 - a bug must not take the server down
        _warnings(conn, caught)
        send(
            conn, {"event": "error", "kind": "internal", "message": f"{type(exc).__name__}: {exc}"}
        )
        return
    finally:
        with contextlib.suppress(OSError):
            os.chdir(home)
    _warnings(conn, caught)
    engine.scored += 1
    send(
        conn,
        {
            "event": "done",
            "cue": str(result.cue_path),
            "extras": {k: str(v) for k, v in result.extras.items()},
            "summary": result.summary_lines(),
        },
    )


def _warnings(conn: socket.socket, caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        send(conn, {"event": "warning", "message": str(w.message)})

"""The per-clip function shared by both batch backends, and the local process pool.

A worker is a fresh interpreter (never a fork: torch and decoder threads do not survive
a fork) that loads the experts and the library once, then scores clips one at a time as
the parent hands them out over a pipe. The parent keeps one clip per worker in flight,
so it always knows which clip a worker is on: a worker past the per-clip timeout is
killed, one that dies is noticed by the end of its pipe, and either way the clip is
recorded as failed and a fresh worker takes the place of the old one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from .batch import ClipTask, WarmSpec, _record, one_line
from .errors import MoodsicError, ResourceError
from .fileio import atomic_path, write_text_atomic

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_STOP_GRACE_S = 5.0
_MAX_FAILED_STARTS = 3


class WorkerStopped(BaseException):
    """Raised inside a worker on SIGTERM; a BaseException so no `except Exception` eats it,
    and every `atomic_path` on the way out removes its temp file."""


def resolve(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def apply_torch_threads(threads: int) -> None:
    """Torch reads OMP_NUM_THREADS at import; set it again in case it was imported earlier.
    Only when torch is already loaded: a grammar-only worker never imports it."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # only settable before first parallel work
            torch.set_num_interop_threads(1)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        with contextlib.suppress(Exception):
            cv2.setNumThreads(threads)


class WorkerContext:
    """Models held by one worker: experts per expert-config, libraries per spec, loaded once."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._experts: dict[str, Any] = {}
        self._libraries: dict[str, Any] = {}

    def warm(self, spec: WarmSpec) -> float:
        t0 = time.perf_counter()
        self.experts(spec.config, spec.weights_dir, spec.fns.load_experts)
        library = self.library(spec.library, spec.config, spec.allow_outside, spec.fns.load_library)
        # What the first clip would otherwise pay (about 0.5 s): the catalogue's KD-trees
        # (scipy.spatial's import), the decoder and the engine's modules. Startup, not scoring.
        build_index = getattr(library, "build_index", None)
        if callable(build_index):
            build_index()
        importlib.import_module("av")
        importlib.import_module("soundfile")  # track placement reads audio headers
        resolve(spec.fns.score)
        return time.perf_counter() - t0

    def experts(self, config: Any, weights_dir: str | None, loader: str) -> Any:
        # Only these parts of the config change which models load and how.
        key = json.dumps(
            [
                loader,
                weights_dir,
                list(config.experts),
                *(getattr(config, s).__dict__ for s in ("scene", "face", "grammar", "runtime")),
            ],
            sort_keys=True,
            default=str,
        )
        if key not in self._experts:
            self._experts[key] = resolve(loader)(config, Path(weights_dir) if weights_dir else None)
            if config.runtime.torch_threads <= 0:  # an explicit setting is the user's to keep
                apply_torch_threads(self.threads)
        return self._experts[key]

    def library(self, spec: str, config: Any, allow_outside: bool, loader: str) -> Any:
        key = json.dumps(
            [loader, spec, config.match.__dict__, allow_outside], sort_keys=True, default=str
        )
        if key not in self._libraries:
            self._libraries[key] = resolve(loader)(
                spec, match_config=config.match, allow_outside=allow_outside
            )
        return self._libraries[key]


def _share_of_cores(config: Any, threads: int) -> Any:
    """The config with decoder threads capped at this worker's share of the cores."""
    if config.sample.decoder_threads <= threads:
        return config
    return config.replace(**{"sample.decoder_threads": threads})


def process_clip(task: ClipTask, ctx: WorkerContext) -> dict[str, Any]:
    """Score one clip, write its outputs and completion record; never raises for a bad clip."""
    from .progress import no_progress

    t0 = time.perf_counter()
    base = dict(index=task.index, input=task.video, rel=task.rel)
    # An old completion record must not vouch for outputs this run is about to replace.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(task.state_path)
    try:
        experts = ctx.experts(task.config, task.weights_dir, task.fns.load_experts)
        library = ctx.library(task.library, task.config, task.allow_outside, task.fns.load_library)
        run_config = _share_of_cores(task.config, ctx.threads)
        cue = resolve(task.fns.score)(
            task.video, library, run_config, experts=experts, progress=no_progress
        )
        if (
            run_config is not task.config
            and isinstance(cue.engine, dict)
            and "config" in cue.engine
        ):
            # Thread counts do not change results: record the configuration as asked.
            cue = dataclasses.replace(cue, engine={**cue.engine, "config": task.config.to_dict()})
        cue.to_json(task.cue_path)
        outputs = {"cue": task.cue_path}
        if task.mix_path or task.mux_path:
            outputs.update(_mix_and_mux(task, cue))
    except MoodsicError as exc:
        return _record(base, "failed", seconds=_secs(t0), error=one_line(exc))
    except Exception as exc:  # noqa: BLE001 - a bug on one clip must not end the batch
        return _record(
            base,
            "failed",
            seconds=_secs(t0),
            error=f"internal error: {type(exc).__name__}: {one_line(exc)}",
            traceback=traceback.format_exc(limit=8),
        )
    record = _record(
        base,
        "ok",
        seconds=_secs(t0),
        duration_s=round(float(cue.video.duration_s), 3),
        segments=len(cue.segments),
        moods=[s.mood for s in cue.segments],
        mood_labels=[s.mood_label for s in cue.segments],
        tracks=[_track(s.track) for s in cue.segments],
        experts=list(cue.engine.get("experts", [])) if isinstance(cue.engine, dict) else [],
        outputs=outputs,
        input_sha256=task.input_sha256,
        config_sha256=task.config_sha256,
    )
    state = {
        "input_sha256": task.input_sha256,
        "config_sha256": task.config_sha256,
        "output_sizes": {p: os.stat(p).st_size for p in task.output_paths()},
        "record": record,
    }
    write_text_atomic(task.state_path, json.dumps(state, indent=1, default=str) + "\n")
    return record


def _mix_and_mux(task: ClipTask, cue: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    write_mix = resolve(task.fns.write_mix)
    if task.mix_path:
        with atomic_path(task.mix_path) as tmp:
            write_mix(cue, tmp, task.config.mix, video_path=task.video)
        out["mix"] = task.mix_path
    if task.mux_path:
        with contextlib.ExitStack() as stack:
            audio = task.mix_path
            if audio is None:
                # The mix is only a step towards the muxed video: a temp file named so a
                # sweep after a kill finds it, removed when done.
                fd, name = tempfile.mkstemp(
                    prefix=f".{Path(task.mux_path).stem}.",
                    suffix=".part.wav",
                    dir=Path(task.mux_path).parent,
                )
                os.close(fd)
                stack.callback(_unlink_quietly, name)
                write_mix(cue, name, task.config.mix, video_path=task.video)
                audio = name
            with atomic_path(task.mux_path) as tmp:
                resolve(task.fns.mux)(task.video, audio, tmp)
        out["mux"] = task.mux_path
    return out


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _secs(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)


def _track(track: Any) -> dict[str, Any] | None:
    if track is None:
        return None
    return {"id": track.id, "title": track.title, "artist": track.artist}


# ----------------------------------------------------------------------------- worker process
def worker_main(conn: Connection) -> None:
    """A worker process: receive the warm-up spec, load once, then score what the parent sends."""
    # Ctrl-C reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise WorkerStopped

    signal.signal(signal.SIGTERM, on_term)
    try:
        _, warm, threads = conn.recv()
        ctx = WorkerContext(threads)
        try:
            load_s = ctx.warm(warm)
        except MoodsicError as exc:
            conn.send(("fatal", type(exc).__name__, one_line(exc)))
            return
        except Exception as exc:  # noqa: BLE001
            msg = f"batch workers cannot load the models: {type(exc).__name__}: {one_line(exc)}"
            conn.send(("fatal", "ResourceError", msg))
            return
        conn.send(("ready", os.getpid(), load_s))
        while True:
            msg = conn.recv()
            if msg[0] == "stop":
                return
            task: ClipTask = msg[1]
            conn.send(("result", task.index, process_clip(task, ctx)))
    except (WorkerStopped, EOFError, BrokenPipeError, ConnectionResetError):
        return


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    conn: Connection
    state: str = "loading"  # loading | idle | busy
    task: ClipTask | None = None
    since: float = 0.0


def _start_worker(warm: WarmSpec, threads: int) -> _Worker:
    """A fresh interpreter running this module (not multiprocessing: no re-import of the
    caller's __main__, no fork of a process that may hold torch threads)."""
    parent_sock, child_sock = socket.socketpair()
    env = dict(os.environ)
    env.update({name: str(threads) for name in _THREAD_ENV})  # read by numpy/torch at import
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    with child_sock:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moodsic_engine.batch_worker", str(child_sock.fileno())],
            pass_fds=[child_sock.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
    conn = Connection(parent_sock.detach())
    conn.send(("init", warm, threads))
    return _Worker(proc=proc, conn=conn, since=time.monotonic())


def run_local(
    tasks: list[ClipTask],
    warm: WarmSpec,
    n_workers: int,
    timeout_s: float | None,
    on_result: Callable[[dict[str, Any]], None],
    on_ready: Callable[[], None],
) -> None:
    """Score `tasks` on `n_workers` worker processes; results go to `on_result` as they come."""
    from .batch import default_workers

    threads = max(1, default_workers() // n_workers)
    # Longest first (file size as a proxy): the last clips to finish are short ones.
    pending = deque(sorted(tasks, key=lambda t: -t.size))
    workers: list[_Worker] = []
    failed_starts = 0
    dispatching = False  # start only once every first worker is loaded, so timings compare

    def replace(w: _Worker, reason: str | None) -> None:
        nonlocal failed_starts
        if reason is not None and w.task is not None:
            base = dict(index=w.task.index, input=w.task.video, rel=w.task.rel)
            on_result(
                _record(base, "failed", seconds=round(time.monotonic() - w.since, 3), error=reason)
            )
        if w.state == "loading":
            failed_starts += 1
            if failed_starts >= _MAX_FAILED_STARTS:
                code = _describe_exit(w.proc.poll())
                raise ResourceError(f"batch workers keep dying while loading the models ({code})")
        _kill(w)
        workers.remove(w)
        if pending:
            workers.append(_start_worker(warm, threads))

    try:
        for _ in range(n_workers):
            workers.append(_start_worker(warm, threads))
        while pending or any(w.state == "busy" for w in workers):
            if not workers:
                raise ResourceError("no batch worker is left to run the remaining clips")
            if not dispatching and all(w.state != "loading" for w in workers):
                dispatching = True
                on_ready()
            if dispatching:
                for w in workers:
                    if w.state == "idle" and pending:
                        w.task = pending.popleft()
                        w.state, w.since = "busy", time.monotonic()
                        try:
                            w.conn.send(("task", w.task))
                        except OSError:
                            pass  # it died; the read below sees EOF and replaces it
            ready = wait([w.conn for w in workers], timeout=_next_wait(workers, timeout_s))
            for w in list(workers):
                if w.conn not in ready:
                    continue
                try:
                    msg = w.conn.recv()
                except (EOFError, OSError):
                    try:
                        w.proc.wait(timeout=_STOP_GRACE_S)
                    except subprocess.TimeoutExpired:
                        pass
                    replace(w, f"worker crashed while scoring ({_describe_exit(w.proc.poll())})")
                    continue
                if msg[0] == "ready":
                    w.state, w.since = "idle", time.monotonic()
                    failed_starts = 0
                elif msg[0] == "result":
                    w.state, w.task = "idle", None
                    on_result(msg[2])
                elif msg[0] == "fatal":
                    from . import errors

                    raise getattr(errors, msg[1], ResourceError)(msg[2])
            if timeout_s is not None:
                now = time.monotonic()
                for w in list(workers):
                    if w.state == "busy" and now - w.since > timeout_s:
                        replace(w, f"timed out after {timeout_s:g} s")
    finally:
        _stop_all(workers)


def _next_wait(workers: list[_Worker], timeout_s: float | None) -> float:
    if timeout_s is None:
        return 1.0
    now = time.monotonic()
    left = [timeout_s - (now - w.since) for w in workers if w.state == "busy"]
    return max(0.05, min([1.0, *left]))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _kill(w: _Worker) -> None:
    if w.proc.poll() is None:
        w.proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        w.proc.wait(timeout=_STOP_GRACE_S)
    with contextlib.suppress(OSError):
        w.conn.close()


def _stop_all(workers: list[_Worker]) -> None:
    """Idle workers are told to stop; busy or loading ones get SIGTERM (their temp files
    are removed on the way out); anything still alive after a grace period is killed."""
    for w in workers:
        with contextlib.suppress(OSError, ValueError):
            if w.state == "idle":
                w.conn.send(("stop",))
            else:
                w.proc.terminate()
    deadline = time.monotonic() + _STOP_GRACE_S
    for w in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        _kill(w)
    workers.clear()


if __name__ == "__main__":
    # Human-readable output of libraries goes to stderr: stdout belongs to the parent's
    # JSON progress lines.
    os.dup2(2, 1)
    from moodsic_engine.batch_worker import worker_main as _main

    _main(Connection(int(sys.argv[1])))

"""The local batch backend: a pool of worker processes, one clip in flight per worker.

A worker is a fresh interpreter (never a fork: torch and decoder threads do not survive
a fork) that loads the experts and the library once, then scores clips one at a time as
the parent hands them out over a pipe. The parent keeps one clip per worker in flight,
so it always knows which clip a worker is on: a worker past the per-clip timeout is
killed, one that dies is noticed by the end of its pipe, and either way the clip is
recorded as failed, the parent removes what the worker left (its temp files beside the
clip's outputs, its work folders in the temp folder), and a fresh worker takes its place.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from ..errors import ResourceError
from ..fileio import sweep_parts, sweep_work_dirs
from .model import ClipTask, WarmSpec, clip_record, default_workers

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_STOP_GRACE_S = 5.0
_MAX_FAILED_STARTS = 3
# The worker's entry point, run with -c: no `-m` double import of the package's modules.
_WORKER_CODE = "import sys; from moodsic_engine.batch.worker import main; main(int(sys.argv[1]))"


def clean_after(task: ClipTask, pid: int) -> None:
    """What a killed worker `pid` left for `task`: temp files beside its outputs (and its
    completion record) and its work folders in this machine's temp folder."""
    for target in (*task.output_paths(), task.state_path):
        sweep_parts(target, owner=pid)
    sweep_work_dirs(owner=pid)


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
            [sys.executable, "-c", _WORKER_CODE, str(child_sock.fileno())],
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
                clip_record(
                    base, "failed", seconds=round(time.monotonic() - w.since, 3), error=reason
                )
            )
        if w.state == "loading":
            failed_starts += 1
            if failed_starts >= _MAX_FAILED_STARTS:
                code = _describe_exit(w.proc.poll())
                raise ResourceError(f"batch workers keep dying while loading the models ({code})")
        _kill(w)
        if w.task is not None:
            clean_after(w.task, w.proc.pid)
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
                    from .. import errors

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

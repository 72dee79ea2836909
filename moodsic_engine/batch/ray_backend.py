"""The Ray backend: the same per-clip function as the local pool, in Ray actors.

Each actor is a worker: it loads the experts and the library once (in `ready()`, so a
load failure comes back as a message instead of a dead actor) and then scores one clip
per call. The driver keeps one call in flight per actor, which gives the same per-clip
timeout (kill the actor, start another) and the same fault isolation (a dead actor's
clip is recorded as failed) as the local pool. See `moodsic_engine.batch` for running
it on a cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import MoodsicError, ResourceError
from .model import ClipTask, WarmSpec, clip_record, default_workers, one_line


class ClipActor:
    """Holds one WorkerContext for its lifetime."""

    def __init__(self, warm: WarmSpec, threads: int) -> None:
        self.warm_spec = warm
        self.threads = threads
        self.ctx: Any = None

    def ready(self) -> tuple[Any, ...]:
        from .worker import WorkerContext

        self.ctx = WorkerContext(self.threads)
        try:
            return ("ready", os.getpid(), self.ctx.warm(self.warm_spec))
        except MoodsicError as exc:
            return ("fatal", type(exc).__name__, one_line(exc))
        except Exception as exc:  # noqa: BLE001
            msg = f"Ray actors cannot load the models: {type(exc).__name__}: {one_line(exc)}"
            return ("fatal", "ResourceError", msg)

    def score(self, task: ClipTask) -> dict[str, Any]:
        from .worker import process_clip

        return process_clip(task, self.ctx)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ResourceError(
            'the Ray backend needs Ray: pip install "moodsic[ray]" (or "ray[default]")'
        ) from None
    return ray


def run_ray(
    tasks: list[ClipTask],
    warm: WarmSpec,
    workers: int | None,
    timeout_s: float | None,
    address: str | None,
    on_result: Callable[[dict[str, Any]], None],
    on_ready: Callable[[], None],
) -> int:
    """Score `tasks` on Ray actors; returns the number of actors used."""
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        common: dict[str, Any] = dict(
            include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
        )
        try:
            if address:
                ray.init(address=address, **common)
            else:
                # "local" forces a private instance even when RAY_ADDRESS is set. Actors
                # get this interpreter's import path, so whatever the driver imports, they do.
                ray.init(
                    address="local",
                    num_cpus=workers or default_workers(),
                    runtime_env={
                        "env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
                    },
                    **common,
                )
        except ConnectionError as exc:
            raise ResourceError(
                f"cannot reach the Ray cluster at {address}: {one_line(exc)}"
            ) from None
        started_here = True
    try:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        n = max(1, min(n, len(tasks)))
        actor_cls = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(ClipActor)
        _drive(ray, actor_cls, tasks, warm, n, timeout_s, on_result, on_ready)
        return n
    finally:
        if started_here:
            with contextlib.suppress(Exception):
                ray.shutdown()


def _drive(
    ray: Any,
    actor_cls: Any,
    tasks: list[ClipTask],
    warm: WarmSpec,
    n: int,
    timeout_s: float | None,
    on_result: Callable[[dict[str, Any]], None],
    on_ready: Callable[[], None],
) -> None:
    pending = deque(sorted(tasks, key=lambda t: -t.size))
    starting: dict[Any, Any] = {}  # ready ref -> actor
    idle: list[Any] = []
    inflight: dict[Any, tuple[Any, ClipTask, float]] = {}  # score ref -> (actor, task, since)
    actors: list[Any] = []
    failed_starts = 0
    dispatching = False

    def start() -> None:
        actor = actor_cls.remote(warm, 1)
        actors.append(actor)
        starting[actor.ready.remote()] = actor

    def drop(actor: Any) -> None:
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)
        if actor in actors:
            actors.remove(actor)

    def fail(task: ClipTask, since: float, reason: str) -> None:
        base = dict(index=task.index, input=task.video, rel=task.rel)
        on_result(
            clip_record(base, "failed", seconds=round(time.monotonic() - since, 3), error=reason)
        )

    try:
        for _ in range(n):
            start()
        while pending or inflight:
            if not dispatching and not starting:
                dispatching = True
                on_ready()
            if dispatching:
                while idle and pending:
                    actor, task = idle.pop(), pending.popleft()
                    inflight[actor.score.remote(task)] = (actor, task, time.monotonic())
            if not (starting or inflight):
                raise ResourceError("no Ray actor is left to run the remaining clips")
            wait_s = 1.0
            if timeout_s is not None and inflight:
                now = time.monotonic()
                wait_s = max(
                    0.05, min(1.0, *(timeout_s - (now - s) for _, _, s in inflight.values()))
                )
            done, _ = ray.wait([*starting, *inflight], num_returns=1, timeout=wait_s)
            for ref in done:
                if ref in starting:
                    actor = starting.pop(ref)
                    try:
                        msg = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - the actor died while loading
                        drop(actor)
                        failed_starts += 1
                        if failed_starts >= 3:
                            raise ResourceError(
                                f"Ray actors keep dying while loading the models: {one_line(exc)[:200]}"
                            ) from None
                        start()
                        continue
                    if msg[0] == "fatal":
                        from .. import errors

                        raise getattr(errors, msg[1], ResourceError)(msg[2])
                    failed_starts = 0
                    idle.append(actor)
                    continue
                actor, task, since = inflight.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    fail(task, since, f"worker crashed while scoring ({_actor_death(exc)})")
                    drop(actor)
                    if pending:
                        start()
                    continue
                except Exception as exc:  # noqa: BLE001
                    fail(
                        task, since, f"internal error: {type(exc).__name__}: {one_line(exc)[:300]}"
                    )
                    idle.append(actor)
                    continue
                on_result(record)
                idle.append(actor)
            if timeout_s is not None:
                now = time.monotonic()
                for ref, (actor, task, since) in list(inflight.items()):
                    if now - since > timeout_s:
                        del inflight[ref]
                        fail(task, since, f"timed out after {timeout_s:g} s")
                        drop(actor)
                        if pending:
                            start()
    finally:
        for actor in list(actors):
            drop(actor)


def _actor_death(exc: BaseException) -> str:
    text = one_line(exc)
    for marker in ("SIGKILL", "SIGSEGV", "killed", "exit", "OOM", "memory"):
        if marker.lower() in text.lower():
            return "the actor process died: " + marker
    return "the actor process died"

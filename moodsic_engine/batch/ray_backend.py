"""The Ray backend: the same per-clip function as the local pool, in Ray actors.

Each actor is a worker: it loads the experts and the library once (in `ready()`, so a
load failure comes back as a message instead of a dead actor) and then scores one clip
per call. The driver keeps one call in flight per actor, which gives the same per-clip
timeout (kill the actor, start another) and the same fault isolation (a dead actor's
clip is recorded as failed) as the local pool. A clip whose actor died with its node
(a machine lost, a raylet killed) is not the clip's fault: it is given to another actor.
See `moodsic_engine.batch` for running it on a cluster.

Ray turns 127.0.0.1 into the machine's interface address wherever it meets it (a
cluster address, `_node_ip_address`), so a driver of a cluster bound to loopback could
not connect, and a private local instance would listen on the network. For a loopback
address, and for the private instance, the driver keeps every address on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import InputError, MoodsicError, ResourceError
from ..fileio import sweep_parts, sweep_work_dirs
from .model import ClipTask, WarmSpec, clip_record, default_workers, one_line

# A clip whose actor's node died is run again elsewhere this many times at most.
_NODE_LOSS_RETRIES = 2
_CONNECT_TIMEOUT_S = 5.0


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
            load_s = self.ctx.warm(self.warm_spec)
            return ("ready", os.getpid(), load_s, socket.gethostname())
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
    # Ray prints what its nodes report (a raylet that died, worker output) to sys.stdout,
    # which belongs to `--progress json`; the reporters hold the real stdout already.
    with contextlib.redirect_stdout(sys.stderr):
        return _run_ray(tasks, warm, workers, timeout_s, address, on_result, on_ready)


def _run_ray(
    tasks: list[ClipTask],
    warm: WarmSpec,
    workers: int | None,
    timeout_s: float | None,
    address: str | None,
    on_result: Callable[[dict[str, Any]], None],
    on_ready: Callable[[], None],
) -> int:
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        common: dict[str, Any] = dict(
            include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
        )
        if address and address != "auto" and "://" not in address:
            _check_reachable(address)
        try:
            with loopback_ray(ray, address) as lo:
                if address:
                    ray.init(address=address, **lo, **common)
                else:
                    # "local" forces a private instance even when RAY_ADDRESS is set. Actors
                    # get this interpreter's import path, so whatever the driver imports, they do.
                    ray.init(
                        address="local",
                        num_cpus=workers or default_workers(),
                        runtime_env={
                            "env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
                        },
                        **lo,
                        **common,
                    )
        except (ConnectionError, RuntimeError) as exc:
            raise ResourceError(
                f"cannot reach the Ray cluster at {address}: {one_line(exc)[:300]}"
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


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise InputError(
            f"--ray-address {address!r} is not HOST:PORT (or auto, or ray://HOST:PORT)"
        )
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_reachable(address: str) -> None:
    """A closed port or an unreachable machine is one line in seconds; Ray itself retries
    for about 20 s and then prints a traceback's worth."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        if isinstance(exc, TimeoutError | socket.timeout):
            why = f"no answer in {_CONNECT_TIMEOUT_S:g} s"
        raise ResourceError(f"cannot reach the Ray cluster at {address}: {why}") from None


@contextlib.contextmanager
def loopback_ray(ray: Any, address: str | None) -> Any:
    """Keyword arguments for ray.init that keep a loopback cluster (or the private local
    instance) on 127.0.0.1, with Ray's rewriting of 127.0.0.1 switched off meanwhile.

    Ray resolves "127.0.0.1" through services.get_node_ip_address(), which answers the
    interface address unless ray_constants.ENABLE_RAY_CLUSTER is off (as Ray itself does
    on macOS and Windows). It is off only while ray.init runs; afterwards the address
    comes from the connected node.
    """
    host = (
        _host_port(address)[0] if address and address != "auto" and "://" not in address else None
    )
    if address and (host is None or not _is_loopback(host)):
        yield {}  # a real cluster: Ray's choice of this machine's address is the right one
        return
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    previous = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if constants is not None and previous is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield {"_node_ip_address": "127.0.0.1"}
    finally:
        if constants is not None and previous is not None:
            constants.ENABLE_RAY_CLUSTER = previous


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
    where: dict[Any, tuple[int, str]] = {}  # actor -> (pid, host), from ready()
    tries: dict[int, int] = {}  # task index -> runs lost with a node
    failed_starts = 0
    dispatching = False

    def start() -> None:
        actor = actor_cls.remote(warm, 1)
        actors.append(actor)
        starting[actor.ready.remote()] = actor

    def drop(actor: Any, task: ClipTask | None = None) -> None:
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)
        if actor in actors:
            actors.remove(actor)
        if task is not None and actor in where:
            _clean_after(task, *where[actor])

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
                    if len(msg) >= 4:
                        where[actor] = (int(msg[1]), str(msg[3]))
                    idle.append(actor)
                    continue
                actor, task, since = inflight.pop(ref)
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    drop(actor, task)
                    lost = tries.get(task.index, 0)
                    if _node_lost(ray, exc) and lost < _NODE_LOSS_RETRIES:
                        # The machine went, not the clip's fault: another actor runs it.
                        tries[task.index] = lost + 1
                        pending.appendleft(task)
                    else:
                        fail(task, since, f"worker crashed while scoring ({_actor_death(exc)})")
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
                        drop(actor, task)
                        if pending:
                            start()
    finally:
        for actor in list(actors):
            drop(actor)


def _clean_after(task: ClipTask, pid: int, host: str) -> None:
    """What a killed actor left: temp files beside the clip's outputs (OUTDIR is shared by
    every node), and, when it ran on this machine, its work folders once it is gone. On
    another machine those go when the next actor there starts (WorkerContext.warm)."""
    from ..fileio import pid_alive

    local = host == socket.gethostname()
    if local:
        deadline = time.monotonic() + 5.0
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    for target in (*task.output_paths(), task.state_path):
        sweep_parts(target, owner=pid)
    if local:
        sweep_work_dirs(owner=pid)


def _node_lost(ray: Any, exc: BaseException) -> bool:
    """Whether an actor was lost with its node (machine gone, raylet killed, preempted)
    rather than by its own process dying. A lost connection to the actor's node comes back
    as ActorUnavailableError (the actor is never restarted here, so it is gone for good)."""
    unavailable = getattr(ray.exceptions, "ActorUnavailableError", None)
    if unavailable is not None and isinstance(exc, unavailable):
        return True
    if getattr(exc, "preempted", False):
        return True
    text = str(exc).lower()
    return any(
        phrase in text
        for phrase in ("node has died", "node died", "node is dead", "raylet", "node was")
    )


def _actor_death(exc: BaseException) -> str:
    text = one_line(exc)
    for marker in ("SIGKILL", "SIGSEGV", "killed", "exit", "OOM", "memory"):
        if marker.lower() in text.lower():
            return "the actor process died: " + marker
    return "the actor process died"

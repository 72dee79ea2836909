"""Running a planned batch on the local pool or Ray, with the output folder locked, and
the summary written at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..fileio import sweep_parts, sweep_tree_parts, sweep_work_dirs
from .discover import ClipInput, discover_many
from .model import (
    STATE_DIR,
    BatchReporter,
    BatchResult,
    ClipTask,
    EngineFns,
    NullReporter,
    clip_record,
    default_workers,
)
from .plan import Plan, plan_batch, read_state


def run_batch(
    input: str | os.PathLike[str] | list[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    *,
    config: Config | None = None,
    library: str = "builtin",
    weights_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    timeout_s: float | None = None,
    mix: bool = False,
    mux: bool = False,
    resume: bool = True,
    allow_outside: bool = False,
    contact_sheet: bool = True,
    reporter: BatchReporter | None = None,
    fns: EngineFns | None = None,
) -> BatchResult:
    """Score every clip of INPUT into OUTDIR; see the module docstring.

    Returns the result even when clips failed (`result.exit_code` is 3 then). Bad
    arguments, an unreadable manifest, or models/library that cannot load at all raise
    MoodsicError. Ctrl-C or SIGTERM stop the workers, remove half-written files, write the
    summary of what finished, and re-raise KeyboardInterrupt.
    """
    t_start = time.perf_counter()
    config = config or Config()
    fns = fns or EngineFns()
    reporter = reporter or NullReporter()
    if backend not in ("local", "ray"):
        raise InputError(f"unknown backend {backend!r} (choose local or ray)")
    if ray_address and backend != "ray":
        raise InputError("--ray-address needs --backend ray")
    if workers is not None and workers < 1:
        raise InputError("--workers must be at least 1")
    if timeout_s is not None and timeout_s <= 0:
        timeout_s = None
    out = Path(outdir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder is a file: {out}")
    specs = list(input) if isinstance(input, list | tuple) else [input]
    clips = discover_many(specs, exclude=out)
    out.mkdir(parents=True, exist_ok=True)
    with outdir_lock(out):
        plan = plan_batch(
            clips,
            out,
            config=config,
            library=library,
            weights_dir=os.fspath(weights_dir) if weights_dir else None,
            allow_outside=allow_outside,
            mix=mix,
            mux=mux,
            resume=resume,
            fns=fns,
        )
        return _run_planned(
            plan,
            clips,
            out,
            backend,
            workers,
            ray_address,
            timeout_s,
            contact_sheet,
            reporter,
            t_start,
        )


@contextlib.contextmanager
def outdir_lock(out: Path) -> Iterator[None]:
    """One batch per output folder at a time: a second one would score the same clips and
    sweep away the first one's temp files."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock_path = out / STATE_DIR / "lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            raise InputError(
                f"another batch ({owner}) is writing to {out}; wait for it or pick another folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fh.truncate(0)
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_planned(
    plan: Plan,
    clips: list[ClipInput],
    out: Path,
    backend: str,
    workers: int | None,
    ray_address: str | None,
    timeout_s: float | None,
    contact_sheet: bool,
    reporter: BatchReporter,
    t_start: float,
) -> BatchResult:
    records = plan.records
    total = len(records)
    skipped = sum(1 for r in records if r is not None)
    reporter.start(total, skipped, len(plan.tasks))
    # Leftovers of a batch that was killed hard: temp files anywhere in OUTDIR (this batch
    # holds its lock, so they are nobody's work in progress) and dead workers' work folders.
    sweep_tree_parts(out)
    sweep_work_dirs()

    clock = _Clock(total=total, already=skipped)

    def on_result(record: dict[str, Any]) -> None:
        records[record["index"]] = record
        rate, eta = clock.tick()
        reporter.clip(record, clock.done, total, rate, eta)

    def on_ready() -> None:
        clock.ready()

    n_workers = 0
    interrupted = False
    timing = {"startup_s": 0.0, "scoring_s": 0.0}
    with _sigterm_as_interrupt():
        try:
            if plan.tasks:
                n_workers = min(workers or default_workers(), len(plan.tasks))
                if backend == "local":
                    from .pool import run_local

                    run_local(plan.tasks, plan.warm, n_workers, timeout_s, on_result, on_ready)
                else:
                    from .ray_backend import run_ray

                    n_workers = run_ray(
                        plan.tasks, plan.warm, workers, timeout_s, ray_address, on_result, on_ready
                    )
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sweep_partials(plan.tasks)
            timing = clock.timing()
    by_index = {t.index: t for t in plan.tasks}
    for i, rec in enumerate(records):
        # A clip can finish in its worker just as the batch is stopped, before its result
        # reaches us: its completion record says so.
        done = read_state(by_index[i]) if rec is None and i in by_index else None
        if done is not None:
            records[i] = done
        elif rec is None:
            clip = clips[i]
            records[i] = clip_record(
                dict(index=i, input=str(clip.path), rel=clip.rel),
                "interrupted",
                error="batch stopped before this clip finished",
            )
    from .report import write_contact_sheet, write_summaries

    final = [r for r in records if r is not None]
    jsonl, csv_path = write_summaries(out, final)
    sheet = write_contact_sheet(out, final) if contact_sheet else None
    result = BatchResult(
        records=final,
        outdir=out,
        summary_jsonl=jsonl,
        summary_csv=csv_path,
        contact_sheet=sheet,
        wall_s=time.perf_counter() - t_start,
        startup_s=timing["startup_s"],
        scoring_s=timing["scoring_s"],
        workers=n_workers,
        backend=backend,
        interrupted=interrupted,
    )
    reporter.finish(result)
    if interrupted:
        raise KeyboardInterrupt
    return result


class _Clock:
    """Clips/s and ETA over the clips scored in this run (skipped ones cost nothing)."""

    def __init__(self, total: int, already: int) -> None:
        self.total = total
        self.done = already
        self.scored = 0
        self.t0 = time.perf_counter()
        self.t_ready: float | None = None
        self.t_last: float | None = None

    def ready(self) -> None:
        if self.t_ready is None:
            self.t_ready = time.perf_counter()

    def tick(self) -> tuple[float | None, float | None]:
        self.done += 1
        self.scored += 1
        now = time.perf_counter()
        self.t_last = now
        elapsed = now - (self.t_ready or self.t0)
        if elapsed <= 0:
            return None, None
        rate = self.scored / elapsed
        return rate, (self.total - self.done) / rate if rate > 0 else None

    def timing(self) -> dict[str, float]:
        ready = self.t_ready or self.t0
        end = self.t_last or ready
        return {"startup_s": ready - self.t0, "scoring_s": max(0.0, end - ready)}


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so both stop the batch the same clean way."""
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def sweep_partials(tasks: list[ClipTask]) -> None:
    """Remove temp files that workers now gone left beside the clips' outputs."""
    for task in tasks:
        for target in (*task.output_paths(), task.state_path):
            sweep_parts(target)

"""The per-clip function shared by both batch backends, and a worker process's main loop.

A clip's outputs are one unit: the cue sheet, mixdown and muxed video are written to temp
files beside their targets and renamed into place only when all of them are complete, the
cue sheet last, and the completion record after that. A clip that fails leaves none of
this run's outputs; a worker that is killed leaves temp files and a work folder named
after its pid, which the parent (`batch.pool`, `batch.ray_backend`) or the next run removes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..errors import MoodsicError
from ..fileio import atomic_path, part_file, sweep_work_dirs, write_text_atomic
from .model import ClipTask, WarmSpec, clip_record, one_line


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
        # Work folders of workers that died on this machine (a Ray node's too), before ours.
        sweep_work_dirs()
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
        from ..experts.registry import EXPERT_NAMES

        # Only these parts of the config change which models load and how: each expert's
        # own section (named as the expert) and the runtime.
        key = json.dumps(
            [
                loader,
                weights_dir,
                list(config.experts),
                *(getattr(config, s).__dict__ for s in (*EXPERT_NAMES, "runtime")),
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
    from ..progress import no_progress

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
        outputs, levels = _write_outputs(task, cue)
    except MoodsicError as exc:
        return clip_record(base, "failed", seconds=_secs(t0), error=one_line(exc))
    except Exception as exc:  # noqa: BLE001 - a bug on one clip must not end the batch
        return clip_record(
            base,
            "failed",
            seconds=_secs(t0),
            error=f"internal error: {type(exc).__name__}: {one_line(exc)}",
            traceback=traceback.format_exc(limit=8),
        )
    record = clip_record(
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
        **level_fields(levels),
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


def _write_outputs(task: ClipTask, cue: Any) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Mix, mux and cue sheet as one unit: each into a temp file beside its target, renamed
    into place only when all are written, the cue sheet last (an ExitStack renames in the
    reverse order of entry). Any failure removes every temp file and keeps earlier outputs.

    Returns the outputs written and the mix's levels (None without a mix), which the cue
    sheet records as `summary.levels` as `moodsic score --mix` does."""
    levels: dict[str, Any] | None = None
    with contextlib.ExitStack() as stack:
        cue_tmp = stack.enter_context(atomic_path(task.cue_path))
        mix_tmp = stack.enter_context(atomic_path(task.mix_path)) if task.mix_path else None
        mux_tmp = stack.enter_context(atomic_path(task.mux_path)) if task.mux_path else None
        audio = mix_tmp
        if mux_tmp is not None and audio is None:
            # The mix is only a step towards the muxed video: a pid-named temp file beside
            # it, so the parent can find it if this worker is killed.
            audio = part_file(task.mux_path or "", ".wav")
            stack.callback(_unlink_quietly, str(audio))
        if audio is not None:
            written = resolve(task.fns.write_mix)(
                cue, audio, task.config.mix, video_path=task.video
            )
            levels = _levels_dict(getattr(written, "levels", None))
            if levels is not None:
                cue = dataclasses.replace(cue, summary={**cue.summary, "levels": levels})
        if mux_tmp is not None:
            resolve(task.fns.mux)(task.video, str(audio), mux_tmp)
        cue_tmp.write_text(cue.to_json_text(Path(task.cue_path).parent) + "\n", encoding="utf-8")
    outputs = {"cue": task.cue_path}
    if task.mix_path:
        outputs["mix"] = task.mix_path
    if task.mux_path:
        outputs["mux"] = task.mux_path
    return outputs, levels


def _levels_dict(levels: Any) -> dict[str, Any] | None:
    """`mix.Levels` (or its dict) as the cue sheet's summary.levels; None for anything else
    (a write_mix that returns only the path)."""
    if hasattr(levels, "to_dict"):
        return levels.to_dict()
    return levels if isinstance(levels, dict) else None


def level_fields(levels: dict[str, Any] | None) -> dict[str, Any]:
    """The batch summary's per-clip level fields (None without a mix): the mix's integrated
    loudness and true peak, whether the video's own sound alone is louder than the target
    (the mixer never turns it down, so the music sits under it), and the mixer's warnings."""
    if levels is None:
        return {}
    orig, target = levels.get("original_lufs"), levels.get("target_lufs")
    return {
        "mix_lufs": levels.get("mix_lufs"),
        "mix_true_peak_dbtp": levels.get("mix_true_peak_dbtp"),
        # the mixer's own tolerance (levels._TOLERANCE_LU) for the same warning
        "louder_than_target": orig is not None and target is not None and orig > target + 0.1,
        "level_warnings": list(levels.get("warnings") or []),
    }


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
class WorkerStopped(BaseException):
    """Raised inside a worker on SIGTERM; a BaseException so no `except Exception` eats it,
    and every `atomic_path` and work folder on the way out is removed."""


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


def main(fd: int) -> None:
    """Entry point of a pool worker process (see `batch.pool`): `fd` is its socket to the parent."""
    # Human-readable output of libraries goes to stderr: stdout belongs to the parent's
    # JSON progress lines.
    os.dup2(2, 1)
    worker_main(Connection(fd))

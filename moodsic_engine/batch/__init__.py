"""Many clips at once: discovery, resume, a local process pool or Ray, and a summary.

`run_batch(INPUT, OUTDIR)` finds the clips (a folder, recursively; a glob; a single file;
or a CSV/JSONL manifest with per-clip options), skips those whose outputs are complete
and whose input bytes and effective configuration are unchanged, scores the rest in
parallel and writes, next to each clip's mirrored place under OUTDIR, its cue sheet
(`NAME.moodsic.json`) and on request its mixdown (`NAME.mix.wav`) and muxed video
(`NAME.scored.mp4`). The batch summary goes to `OUTDIR/batch.jsonl`, `OUTDIR/batch.csv`
and `OUTDIR/contact_sheet.html`.

The per-clip work (`worker.process_clip`) is the same function for both backends: a
worker process (`pool`) or Ray actor (`ray_backend`) loads the experts and the library
once and scores many clips. Faults stay with their clip: a clip that fails to decode,
hangs past the per-clip timeout or crashes its worker is recorded as failed with a
one-line reason, what it left is removed, the worker is replaced, and the batch goes on.
A clip's outputs are one unit (temp files renamed together, the cue sheet last) and a
clip counts as done only once its completion record (`OUTDIR/.moodsic-batch/state/
NAME.json`) is written after them, so an interrupted batch leaves complete outputs only
and a rerun redoes exactly the clips that were not finished.

Modules: `model` (tasks, results, file names), `discover` (inputs and manifests), `plan`
(hashing, resume), `run` (`run_batch`), `pool`, `worker`, `ray_backend`, `report`
(summaries and progress), `bench` (`moodsic bench batch`). README.md, "Batches" and
"Running batches on a Ray cluster", says how to run it on a cluster.
"""

from .discover import apply_overrides, discover, discover_many
from .model import (
    CONTACT_SHEET,
    CUE_SUFFIX,
    EXIT_SOME_FAILED,
    MANIFEST_EXTENSIONS,
    MIX_SUFFIX,
    MUX_SUFFIX,
    STATE_DIR,
    SUMMARY_CSV,
    SUMMARY_JSONL,
    VIDEO_EXTENSIONS,
    BatchReporter,
    BatchResult,
    ClipInput,
    ClipTask,
    EngineFns,
    NullReporter,
    WarmSpec,
    default_workers,
)
from .plan import Plan, plan_batch, read_state
from .run import outdir_lock, run_batch, sweep_partials

__all__ = [
    "CONTACT_SHEET",
    "CUE_SUFFIX",
    "EXIT_SOME_FAILED",
    "MANIFEST_EXTENSIONS",
    "MIX_SUFFIX",
    "MUX_SUFFIX",
    "STATE_DIR",
    "SUMMARY_CSV",
    "SUMMARY_JSONL",
    "VIDEO_EXTENSIONS",
    "BatchReporter",
    "BatchResult",
    "ClipInput",
    "ClipTask",
    "EngineFns",
    "NullReporter",
    "Plan",
    "WarmSpec",
    "apply_overrides",
    "default_workers",
    "discover",
    "discover_many",
    "outdir_lock",
    "plan_batch",
    "read_state",
    "run_batch",
    "sweep_partials",
]

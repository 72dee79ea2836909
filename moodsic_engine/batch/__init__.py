"""Many clips at once: discovery, resume, a local process pool or Ray, and a summary.

`run_batch(INPUT, OUTDIR)` finds the clips (a folder, recursively; a glob; a single file;
or a CSV/JSONL manifest with per-clip options), skips those whose outputs are complete
and whose input bytes and effective configuration are unchanged, scores the rest in
parallel and writes, next to each clip's mirrored place under OUTDIR, its cue sheet
(`NAME.moodsic.json`) and on request its mixdown (`NAME.mix.wav`) and muxed video
(`NAME.scored.mp4`). The batch summary goes to `OUTDIR/batch.jsonl`, `OUTDIR/batch.csv`
and `OUTDIR/contact_sheet.html`.

The per-clip work (`batch_worker.process_clip`) is the same function for both backends:
a worker or Ray actor loads the experts and the library once and scores many clips.
Faults stay with their clip: a clip that fails to decode, hangs past the per-clip timeout
or crashes its worker is recorded as failed with a one-line reason, the worker is
replaced, and the batch goes on. Every output is written atomically and a clip counts as
done only once its completion record (`OUTDIR/.moodsic-batch/state/NAME.json`) is
written after all its outputs, so an interrupted batch leaves complete outputs only and
a rerun redoes exactly the clips that were not finished.

Running on a Ray cluster
------------------------
`moodsic batch INPUT -o OUTDIR --backend ray --ray-address ADDR` runs the same per-clip
function in Ray actors, one per worker, each loading the models once.

1. Install the same environment on every node: `pip install "moodsic[ray]"` (same
   Python, same Moodsic and Ray versions; put model weights at the same path on every
   node or point `--weights-dir`/`MOODSIC_WEIGHTS` at a shared folder).
2. Inputs and OUTDIR must be visible at the same absolute paths on every node (NFS, a
   cluster file system, or a mounted bucket): actors read the clips and write the outputs
   themselves; only small summary records travel back to the driver.
3. Start the cluster: on the head node `ray start --head --port=6379`, on each worker
   node `ray start --address=HEAD_IP:6379` (or use `ray up cluster.yaml`, KubeRay, ...).
4. On the head node (or any machine that can reach it): `moodsic batch /shared/clips -o
   /shared/scored --backend ray --ray-address HEAD_IP:6379` (`auto` picks up a cluster
   started on this machine; `ray://HEAD_IP:10001` works through Ray Client). Without
   `--ray-address` a private local Ray is started and stopped again.
5. `--workers N` sets the number of actors (default: the cluster's CPUs); each actor asks
   Ray for one CPU and sets torch to that many threads. `--timeout S` kills an actor
   stuck on one clip and starts a replacement; a node that dies takes its actors' clips
   with it, which are recorded as failed and are redone by rerunning the same command.
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

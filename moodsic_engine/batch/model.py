"""The batch's data: clips, tasks, results, reporters, file names, and the per-clip record."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..config import Config

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
        ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".mxf", ".gif",
    }
)  # fmt: skip
MANIFEST_EXTENSIONS = frozenset({".csv", ".jsonl", ".ndjson"})
CUE_SUFFIX = ".moodsic.json"
MIX_SUFFIX = ".mix.wav"
MUX_SUFFIX = ".scored.mp4"
STATE_DIR = ".moodsic-batch"
SUMMARY_JSONL = "batch.jsonl"
SUMMARY_CSV = "batch.csv"
CONTACT_SHEET = "contact_sheet.html"
EXIT_SOME_FAILED = 3


@dataclass(frozen=True)
class EngineFns:
    """The engine functions a worker calls, as `module:attr` import paths.

    Strings rather than callables so a task pickles the same way to a spawned process or
    a Ray actor; tests swap in small fakes here.
    """

    score: str = "moodsic_engine.pipeline:score_video"
    load_experts: str = "moodsic_engine.experts:load_experts"
    load_library: str = "moodsic_engine.library:load_library"
    # Returns the path, or (path, levels) as `mix.write_mix_measured` does: the levels go in
    # the cue sheet (summary.levels) and the batch summaries.
    write_mix: str = "moodsic_engine.mix:write_mix_measured"
    mux: str = "moodsic_engine.mix:mux"


@dataclass(frozen=True)
class ClipInput:
    """One clip found in the input, before planning."""

    path: Path  # absolute
    rel: str  # output name relative to OUTDIR, posix, no suffix: "a/b/clip"
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config keys
    library: str | None = None
    mix: bool | None = None
    mux: bool | None = None
    where: str = ""  # manifest line, for messages


@dataclass(frozen=True)
class WarmSpec:
    """What a worker loads before its first clip (the batch-wide config and library)."""

    config: Config
    library: str
    weights_dir: str | None
    allow_outside: bool
    fns: EngineFns


@dataclass(frozen=True)
class ClipTask:
    """Everything a worker needs to score one clip and write its outputs."""

    index: int
    video: str
    rel: str
    cue_path: str
    mix_path: str | None
    mux_path: str | None
    state_path: str
    config: Config
    library: str
    weights_dir: str | None
    allow_outside: bool
    input_sha256: str
    config_sha256: str
    fns: EngineFns
    size: int = 0

    def output_paths(self) -> list[str]:
        return [p for p in (self.cue_path, self.mix_path, self.mux_path) if p]


class BatchReporter(Protocol):
    def start(self, total: int, skipped: int, to_run: int) -> None: ...

    def clip(
        self, record: dict[str, Any], done: int, total: int, rate: float | None, eta_s: float | None
    ) -> None: ...

    def finish(self, result: BatchResult) -> None: ...


class NullReporter:
    def start(self, total: int, skipped: int, to_run: int) -> None:
        return None

    def clip(
        self, record: dict[str, Any], done: int, total: int, rate: float | None, eta_s: float | None
    ) -> None:
        return None

    def finish(self, result: BatchResult) -> None:
        return None


@dataclass
class BatchResult:
    records: list[dict[str, Any]]
    outdir: Path
    summary_jsonl: Path
    summary_csv: Path
    contact_sheet: Path | None
    wall_s: float
    startup_s: float  # until every worker had its models loaded
    scoring_s: float  # from then until the last clip finished
    workers: int
    backend: str
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r["status"] == status)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] in ("failed", "interrupted")]

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.failed else 0

    def summary_lines(self) -> list[str]:
        lines = [
            f"{len(self.records)} clips: {self.count('ok')} scored, {self.count('skipped')} unchanged "
            f"(skipped), {self.count('failed')} failed"
            + (f", {self.count('interrupted')} not finished" if self.interrupted else ""),
        ]
        if self.scoring_s > 0 and self.count("ok"):
            rate = self.count("ok") / self.scoring_s * 60.0
            lines.append(
                f"{rate:.1f} clips/min on {self.workers} {self.backend} worker(s) (startup {self.startup_s:.1f} s)"
            )
        failed = self.failed
        for r in failed[:20]:
            lines.append(f"  failed: {r['input']}: {r.get('error') or r['status']}")
        if len(failed) > 20:
            lines.append(f"  ... and {len(failed) - 20} more (see {SUMMARY_JSONL})")
        lines.append(f"summary: {self.summary_jsonl}")
        if self.contact_sheet:
            lines.append(f"contact sheet: {self.contact_sheet}")
        return lines


def clip_record(base: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        **base,
        "status": status,
        "seconds": None,
        "duration_s": None,
        "segments": None,
        "moods": [],
        "tracks": [],
        "outputs": {},
        "error": None,
    }
    rec.update(fields)
    return rec


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__

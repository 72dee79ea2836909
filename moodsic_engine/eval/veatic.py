"""`moodsic eval veatic`: per-frame accuracy on VEATIC, per video and overall.

`evaluate_veatic` runs the experts once per video (or takes their outputs from the cache),
re-fuses and stabilizes them, scores every output against the per-frame ratings and writes
the report. The dataset reader and the alignment are in veatic_data.py, the expert-output
cache in veatic_cache.py, the results and report files in veatic_report.py (all re-exported
here).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any
from warnings import warn

import numpy as np

from ..calibration import Calibration, calibration_for, resolve_config
from ..config import Config
from ..errors import InputError
from ..experts import LoadedExperts, load_experts, probe_experts
from ..progress import ProgressFn, no_progress
from .calibrate import Labelled, from_series, labels_at, write_calibration
from .metrics import va_metrics
from .provenance import provenance
from .veatic_cache import CACHE_FORMAT, Perception, cache_key, perceive, refuse
from .veatic_data import (
    MAX_RATED_FRAMES,
    MAX_RATING_BYTES,
    VIDEO_EXTS,
    VeaticVideo,
    align,
    find_veatic,
    frame_times,
    read_labels,
    read_ratings,
)
from .veatic_report import (
    REFERENCE_CLIP_MEAN,
    REFERENCE_FACE_COVERAGE,
    VeaticReport,
    VideoResult,
    plot_video,
    write_report,
)

__all__ = [
    "CACHE_FORMAT",
    "MAX_RATED_FRAMES",
    "MAX_RATING_BYTES",
    "REFERENCE_CLIP_MEAN",
    "REFERENCE_FACE_COVERAGE",
    "VIDEO_EXTS",
    "Perception",
    "VeaticReport",
    "VeaticVideo",
    "VideoResult",
    "align",
    "cache_key",
    "evaluate_veatic",
    "find_veatic",
    "frame_times",
    "perceive",
    "plot_video",
    "read_labels",
    "read_ratings",
    "refuse",
]


def _expert_names(config: Config, weights_dir: Path | None) -> list[str]:
    if config.experts:
        return list(config.experts)
    return [a.name for a in probe_experts(config, weights_dir) if a.ready]


def _score_video(
    item: VeaticVideo, p: Perception, config: Config, cached: bool, cal: Calibration
) -> VideoResult:
    labels = read_labels(item)
    outputs = refuse(p, config, cal)
    ft = frame_times(len(labels), p.fps)
    metrics, clip_pred, aligned = {}, {}, {}
    for name, va in outputs.items():
        al = align(p.t, va, ft)
        aligned[name] = al
        metrics[name] = va_metrics(al, labels)
        covered = np.all(np.isfinite(al), axis=1)
        clip_pred[name] = (
            tuple(float(x) for x in al[covered].mean(axis=0))
            if covered.any()
            else (math.nan, math.nan)
        )
    clip_label = tuple(float(x) for x in np.nanmean(labels, axis=0))
    return VideoResult(
        id=item.id,
        frames=len(labels),
        fps=p.fps,
        metrics=metrics,
        clip_pred=clip_pred,  # type: ignore[arg-type]
        clip_label=clip_label,  # type: ignore[arg-type]
        face_coverage=p.face_coverage(),
        cached=cached,
        samples=len(p.t),
        video_frames=p.frames,
        aligned=aligned,
        labels=labels,
    )


def evaluate_veatic(
    root: str | Path,
    out_dir: str | Path,
    config: Config | None = None,
    *,
    weights_dir: Path | None = None,
    videos: list[str] | tuple[str, ...] | None = None,
    limit: int | None = None,
    experts: LoadedExperts | None = None,
    cache_dir: str | Path | None = None,
    plots: bool = True,
    progress: ProgressFn = no_progress,
) -> VeaticReport:
    """Score VEATIC videos and write the report (see the module docstring).

    `experts` (already loaded) overrides `config.experts`; otherwise models load only if some
    video is not in the cache. `cache_dir` defaults to `<out_dir>/cache`.
    """
    config = config or Config()
    root, out = Path(root), Path(out_dir)
    items = find_veatic(root, videos=videos, limit=limit)
    cache = Path(cache_dir) if cache_dir else out / "cache"
    if experts is not None:
        names = experts.names
        ident: dict[str, Any] = {
            "loaded": {
                e.name: [e.mode, type(e).__module__ + "." + type(e).__qualname__]
                for e in experts.experts
            }
        }
    else:
        names = _expert_names(config, weights_dir)
        if not names:
            raise InputError("no expert is available to evaluate (see `moodsic weights status`)")
        ident = {"weights": provenance(config, weights_dir=weights_dir, experts=names)["weights"]}
    loaded = experts

    results: list[VideoResult] = []
    labelled: list[Labelled] = []  # raw variances against labels, to fit the calibration
    config = resolve_config(config, weights_dir)  # fusion.calibration names what is used
    calibration = calibration_for(config)
    skipped: dict[str, str] = {}  # id -> one-line reason
    hits = 0
    progress("eval", 0, len(items))
    for i, item in enumerate(items):
        try:
            read_labels(item)  # cheap, and refuses a hostile rating file before any decoding
            key = cache_key(item.video, config, names, ident)
            path = cache / f"{item.id}-{key}.npz"
            p = Perception.load(path) if path.is_file() else None
            cached = p is not None
            if p is None:
                if loaded is None:
                    loaded = load_experts(config, weights_dir, tuple(names))
                p = perceive(item.video, loaded, config)
                p.save(path)
            results.append(_score_video(item, p, config, cached, calibration))
            at = labels_at(p.t, p.fps, read_labels(item))
            labelled += [from_series(s, at, i) for s in p.series]
            hits += cached
        except (InputError, OSError) as exc:  # this video or its ratings; models are fine
            # One bad video is reported and left out; it does not abort the evaluation.
            skipped[item.id] = " ".join(str(exc).split()) or type(exc).__name__
            warn(f"VEATIC video {item.id} left out: {skipped[item.id]}", stacklevel=2)
        progress("eval", i + 1, len(items))
    if not results:
        shown = "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3])
        raise InputError(f"no VEATIC video could be evaluated ({shown})")

    outputs = tuple([*names, "fusion", "stable"])
    overall = _overall(results, outputs)
    clip = _clip_mean(results, outputs)
    coverage = _pooled_coverage(results)
    prov = provenance(
        config,
        weights_dir=weights_dir,
        experts=names if experts is None else (),
        data={
            "root": str(root.resolve()),
            "videos": len(results),
            "ids": [r.id for r in results],
            "annotated_frames": int(sum(r.frames for r in results)),
            "left_out": skipped,
        },
    )
    if experts is not None:
        prov["weights"] = ident
    report = write_report(out, results, outputs, overall, clip, coverage, prov, hits, plots)
    lines = write_calibration(
        out, labelled, report.summary_md, f"eval veatic, {len(results)} videos", calibration
    )
    return dataclasses.replace(report, skipped=skipped, calibration_lines=tuple(lines))


def _overall(results: list[VideoResult], outputs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per-frame metrics pooled over every annotated frame of every video."""
    out = {}
    labels = np.concatenate([r.labels for r in results])
    for name in outputs:
        pred = np.concatenate([r.aligned[name] for r in results])
        m = va_metrics(pred, labels)
        covered = np.all(np.isfinite(pred), axis=1)
        m["frame_coverage"] = float(covered.mean()) if len(covered) else 0.0
        per_video = [
            r.metrics[name]["avg_mae"] for r in results if r.metrics[name]["avg_mae"] is not None
        ]
        m["mean_video_avg_mae"] = float(np.mean(per_video)) if per_video else None
        out[name] = m
    return out


def _clip_mean(results: list[VideoResult], outputs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Mean prediction vs mean label per video, then metrics across videos."""
    labels = np.array([r.clip_label for r in results], dtype=np.float64)
    out = {}
    for name in outputs:
        pred = np.array([r.clip_pred[name] for r in results], dtype=np.float64)
        out[name] = va_metrics(pred, labels)
    return out


def _pooled_coverage(results: list[VideoResult]) -> float | None:
    """Share of all samples (every video) in which the face expert found a face."""
    rows = [(r.face_coverage, r.samples) for r in results if r.face_coverage is not None]
    den = sum(n for _, n in rows)
    return sum(c * n for c, n in rows) / den if den else None

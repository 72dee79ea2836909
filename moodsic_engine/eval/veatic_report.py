"""VEATIC evaluation results and the report files written from them: per-video CSVs and
plots, metrics.csv, summary.md, report.json and the config used."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..fileio import write_text_atomic
from .figures import save_png
from .metrics import METRIC_COLUMNS, fmt, json_clean, markdown_table
from .provenance import provenance_markdown
from .veatic_data import frame_times

# Published clip-mean MAE on VEATIC, reference scale (the system this project grew from).
REFERENCE_CLIP_MEAN: dict[str, dict[str, float]] = {
    "fusion": {"v_mae": 0.193, "a_mae": 0.161},
    "face": {"v_mae": 0.208, "a_mae": 0.168},
    "scene": {"v_mae": 0.238, "a_mae": 0.203},
}
REFERENCE_FACE_COVERAGE = 0.861


@dataclass(frozen=True)
class VideoResult:
    id: str
    frames: int
    fps: Fraction
    metrics: dict[str, dict[str, Any]]  # output -> per-frame metrics
    clip_pred: dict[str, tuple[float, float]]  # output -> mean prediction over covered frames
    clip_label: tuple[float, float]
    face_coverage: float | None
    cached: bool
    samples: int
    video_frames: int
    aligned: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 2)))


@dataclass(frozen=True)
class VeaticReport:
    out_dir: Path
    summary_md: Path
    report_json: Path
    metrics_csv: Path
    overall: dict[str, dict[str, Any]]
    clip_mean: dict[str, dict[str, Any]]
    face_coverage: float | None
    videos: tuple[VideoResult, ...]
    cache_hits: int
    outputs: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # video id -> why it was left out
    calibration_lines: tuple[str, ...] = ()  # the calibration used, and the one written

    def summary_lines(self) -> list[str]:
        lines = [f"VEATIC: {len(self.videos)} videos ({self.cache_hits} from the cache)"]
        if self.skipped:
            lines.append(f"  left out {len(self.skipped)}: {', '.join(self.skipped)}")
        for name in self.outputs:
            m, c = self.overall[name], self.clip_mean.get(name, {})
            lines.append(
                f"  {name:<8} per-frame V-MAE {fmt(m['v_mae'])} A-MAE {fmt(m['a_mae'])} "
                f"CCC {fmt(m['ccc_v'])}/{fmt(m['ccc_a'])}   clip-mean V {fmt(c.get('v_mae'))} A {fmt(c.get('a_mae'))}"
            )
        if self.face_coverage is not None:
            lines.append(
                f"  face coverage {self.face_coverage:.3f} (reference {REFERENCE_FACE_COVERAGE})"
            )
        lines.extend(self.calibration_lines)
        lines.append(f"report: {self.summary_md}")
        return lines


def _per_video_csv(r: VideoResult, outputs: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["frame", "t", "label_v", "label_a", *[f"{o}_{ax}" for o in outputs for ax in "va"]])
    ft = frame_times(r.frames, r.fps)
    for k in range(r.frames):
        row: list[Any] = [k, f"{ft[k]:.6f}", *(_num(x) for x in r.labels[k])]
        for o in outputs:
            row.extend(_num(x) for x in r.aligned[o][k])
        w.writerow(row)
    return buf.getvalue()


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.6f}"


def _metrics_csv(results: list[VideoResult], outputs: tuple[str, ...], overall, clip) -> str:  # noqa: ANN001
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    keys = [k for k, _ in METRIC_COLUMNS]
    w.writerow(["video", "output", "variant", *keys, "face_coverage"])
    for r in results:
        for o in outputs:
            m = r.metrics[o]
            w.writerow(
                [r.id, o, "per-frame", *(_cell(m.get(k)) for k in keys), _cell(r.face_coverage)]
            )
    for o in outputs:
        w.writerow(["ALL", o, "per-frame", *(_cell(overall[o].get(k)) for k in keys), ""])
        w.writerow(["ALL", o, "clip-mean", *(_cell(clip[o].get(k)) for k in keys), ""])
    return buf.getvalue()


def _cell(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    return f"{x:.6f}" if isinstance(x, float) else str(x)


def plot_video(r: VideoResult, outputs: tuple[str, ...], path: Path) -> Path:
    """Labels vs predictions over time (valence above, arousal below)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ft = frame_times(r.frames, r.fps)
    fig, axes = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True, constrained_layout=True)
    style = {"stable": ("tab:red", "-", 2.0), "fusion": ("tab:orange", "-", 1.0)}
    for j, (ax, name) in enumerate(zip(axes, ("valence", "arousal"), strict=True)):
        ax.plot(ft, r.labels[:, j], color="black", lw=2.0, label="label")
        for o in outputs:
            colour, ls, lw = style.get(o, (None, ":", 1.0))
            ax.plot(ft, r.aligned[o][:, j], color=colour, ls=ls, lw=lw, label=o)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", ncol=len(outputs) + 1, fontsize=8)
    axes[1].set_xlabel("seconds")
    m = r.metrics["stable"]
    axes[0].set_title(
        f"VEATIC {r.id}: stable V-MAE {fmt(m['v_mae'])}, A-MAE {fmt(m['a_mae'])}, CCC {fmt(m['ccc_v'])}/{fmt(m['ccc_a'])}"
    )
    return save_png(fig, path)


def write_report(
    out: Path,
    results: list[VideoResult],
    outputs: tuple[str, ...],
    overall: dict[str, dict[str, Any]],
    clip: dict[str, dict[str, Any]],
    coverage: float | None,
    prov: dict[str, Any],
    hits: int,
    plots: bool,
) -> VeaticReport:
    """Write every report file under `out` (per-video CSVs and plots, metrics.csv,
    summary.md, report.json, config.toml) and return the report that names them."""
    for r in results:
        write_text_atomic(out / "videos" / f"{r.id}.csv", _per_video_csv(r, outputs))
        if plots:
            plot_video(r, outputs, out / "plots" / f"{r.id}.png")
    metrics_csv = write_text_atomic(
        out / "metrics.csv", _metrics_csv(results, outputs, overall, clip)
    )

    cm_cols = (("v_mae", "V-MAE"), ("a_mae", "A-MAE"), ("avg_mae", "avg MAE"),
               ("ref_v", "reference V-MAE"), ("ref_a", "reference A-MAE"),
               ("rho_v", "rho V"), ("rho_a", "rho A"), ("n", "videos"))  # fmt: skip
    cm_rows = {}
    for o in outputs:
        ref = REFERENCE_CLIP_MEAN.get(o if o != "stable" else "fusion", {})
        cm_rows[o] = {**clip[o], "ref_v": ref.get("v_mae"), "ref_a": ref.get("a_mae")}
    md = [
        "# VEATIC evaluation",
        "",
        f"- {len(results)} videos, {sum(r.frames for r in results)} annotated frames; "
        f"{hits} videos' expert outputs came from the cache",
        "- outputs: each expert alone, `fusion` (inverse-variance, before stabilizing) and "
        "`stable` (what the cue sheet uses)",
        "- per-frame: predictions interpolated by timestamp to every annotated frame (k / fps), "
        "pooled over all frames; experts with gaps (face) are scored where they have output",
        "",
        "## Per-frame, all videos pooled",
        "",
        markdown_table(
            overall,
            (
                *METRIC_COLUMNS,
                ("frame_coverage", "frames covered"),
                ("mean_video_avg_mae", "mean of video avg MAE"),
            ),
        ),  # fmt: skip
        "",
        "## Clip-mean (mean prediction vs mean label per video)",
        "",
        "Reference: published clip-mean MAE on VEATIC, reference scale; `stable` is compared "
        "with the published fusion.",
        "",
        markdown_table(cm_rows, cm_cols),
        "",
        f"Face coverage (share of samples with a face): ours {fmt(coverage)}, "
        f"reference {REFERENCE_FACE_COVERAGE}",
        "",
        "## Per video",
        "",
        "| video | frames | fps | stable avg MAE | fusion avg MAE | stable CCC V | stable CCC A | face coverage | cached |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        s, f = r.metrics["stable"], r.metrics["fusion"]
        md.append(
            f"| {r.id} | {r.frames} | {r.fps.numerator}/{r.fps.denominator} | {fmt(s['avg_mae'])} | "
            f"{fmt(f['avg_mae'])} | {fmt(s['ccc_v'])} | {fmt(s['ccc_a'])} | {fmt(r.face_coverage)} | {r.cached} |"
        )
    warnings = [
        f"video {r.id}: {r.frames} annotated frames but the video has {r.video_frames} "
        "(check the frame rate or the rating file)"
        for r in results
        if abs(r.frames - r.video_frames) > max(2, 0.01 * r.video_frames)
    ]
    warnings += [
        f"video {vid} left out: {why}" for vid, why in prov["data"].get("left_out", {}).items()
    ]
    if warnings:
        md += ["", "## Warnings", "", *[f"- {w}" for w in warnings]]
    md += ["", *provenance_markdown(prov)]
    summary = write_text_atomic(out / "summary.md", "\n".join(md))
    data = {
        "overall_per_frame": overall,
        "clip_mean": clip,
        "reference_clip_mean": REFERENCE_CLIP_MEAN,
        "face_coverage": coverage,
        "reference_face_coverage": REFERENCE_FACE_COVERAGE,
        "warnings": warnings,
        "videos": [
            {
                "id": r.id,
                "frames": r.frames,
                "video_frames": r.video_frames,
                "samples": r.samples,
                "fps": [r.fps.numerator, r.fps.denominator],
                "metrics": r.metrics,
                "clip_pred": r.clip_pred,
                "clip_label": r.clip_label,
                "face_coverage": r.face_coverage,
                "cached": r.cached,
            }
            for r in results
        ],
        "provenance": prov,
    }
    report_json = write_text_atomic(out / "report.json", json.dumps(json_clean(data), indent=2))
    write_text_atomic(out / "config.toml", Config.from_dict(prov["config"]).to_toml())
    return VeaticReport(
        out_dir=out,
        summary_md=summary,
        report_json=report_json,
        metrics_csv=metrics_csv,
        overall=overall,
        clip_mean=clip,
        face_coverage=coverage,
        videos=tuple(results),
        cache_hits=hits,
        outputs=outputs,
    )

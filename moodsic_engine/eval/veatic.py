"""`moodsic eval veatic`: per-frame accuracy on VEATIC, per video and overall.

Layout (as published): `videos/{id}.mp4` and `rating_averaged/{id}_valence.csv`,
`rating_averaged/{id}_arousal.csv` with per-frame averaged ratings in [-1, 1] (the
reference scale, so no conversion). A rating file holds one value per line, or
`frame,value` rows, with or without a header.

Alignment is by timestamp: annotated frame k sits at k / fps with the video's exact
rational frame rate, and each prediction series (sampled at `sample_fps`, on true frame
timestamps) is linearly interpolated there; before the first and after the last sample the
edge value is held. A series with gaps (the face expert where no face is seen) counts only
at frames whose nearest sample has a value.

Expert outputs are cached per video (npz keyed by a video fingerprint, the sampling and
expert config, and the weights' fingerprints), so running again with other fusion or
stabilizer settings re-fuses without running a model.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from warnings import warn

import numpy as np

from .. import __version__
from ..calibration import Calibration, calibration_for, resolve_config
from ..config import Config
from ..errors import InputError
from ..experts import ExpertSeries, LoadedExperts, load_experts, probe_experts
from ..fileio import atomic_path, regular_file, write_text_atomic
from ..fusion import fuse
from ..progress import ProgressFn, no_progress
from ..stabilize import stabilize
from .calibrate import Labelled, from_series, labels_at, write_calibration
from .metrics import METRIC_COLUMNS, fmt, json_clean, markdown_table, va_metrics
from .provenance import file_fingerprint, provenance, provenance_markdown

# Published clip-mean MAE on VEATIC, reference scale (the system this project grew from).
REFERENCE_CLIP_MEAN: dict[str, dict[str, float]] = {
    "fusion": {"v_mae": 0.193, "a_mae": 0.161},
    "face": {"v_mae": 0.208, "a_mae": 0.168},
    "scene": {"v_mae": 0.238, "a_mae": 0.203},
}
REFERENCE_FACE_COVERAGE = 0.861
CACHE_FORMAT = "moodsic.veatic-cache/1"
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi", ".webm")


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class VeaticVideo:
    id: str
    video: Path
    valence: Path
    arousal: Path


def _id_key(vid: str) -> tuple[int, int | str]:
    return (0, int(vid)) if vid.isdigit() else (1, vid)


def find_veatic(
    root: str | Path, *, videos: list[str] | tuple[str, ...] | None = None, limit: int | None = None
) -> list[VeaticVideo]:
    """Videos with both rating files, sorted by id (numerically where ids are numbers)."""
    root = Path(root)
    vdir, rdir = root / "videos", root / "rating_averaged"
    if not vdir.is_dir() or not rdir.is_dir():
        raise InputError(
            f"{root} is not a VEATIC folder (expected videos/ and rating_averaged/ inside it)"
        )
    found: dict[str, VeaticVideo] = {}
    for p in sorted(vdir.iterdir()):
        if p.suffix.lower() not in VIDEO_EXTS or not p.is_file():
            continue
        val, aro = rdir / f"{p.stem}_valence.csv", rdir / f"{p.stem}_arousal.csv"
        if val.is_file() and aro.is_file():
            found[p.stem] = VeaticVideo(p.stem, p, val, aro)
    if videos:
        missing = [v for v in videos if v not in found]
        if missing:
            raise InputError(
                f"VEATIC video id(s) not found with both rating files under {root}: {', '.join(missing)}"
            )
        items = [found[v] for v in videos]
    else:
        items = [found[k] for k in sorted(found, key=_id_key)]
    if limit is not None:
        items = items[: max(0, int(limit))]
    if not items:
        raise InputError(f"no VEATIC videos with rating files under {root}")
    return items


# 10 hours at 120 fps: more frames than any rated video has; the ratings array is sized by it.
MAX_RATED_FRAMES = 10 * 3600 * 120
MAX_RATING_BYTES = 256 << 20  # ~16 bytes a row: far above MAX_RATED_FRAMES rows

_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def read_ratings(path: str | Path) -> np.ndarray:
    """Per-frame ratings, index = frame number (0-based); NaN for frames without a rating.

    Accepts one value per line, or `frame,value` rows (the last column is the value), with or
    without a header line. Frame numbers that start at 1 and run 1..n are taken as 1-based.
    """
    p = regular_file(path, "rating file", max_bytes=MAX_RATING_BYTES)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read rating file {p}: {exc}") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    rows = [[c.strip() for c in r if c.strip()] for r in rows]
    if rows and not all(_NUM.match(c) for c in rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise InputError(f"rating file {p.name} has no values")
    bad = next((i for i, r in enumerate(rows) if not all(_NUM.match(c) for c in r)), None)
    if bad is not None:
        raise InputError(
            f"rating file {p.name}: line {bad + 1} is not numeric: {','.join(rows[bad])}"
        )
    if len(rows) > MAX_RATED_FRAMES:
        raise InputError(f"rating file {p.name} has {len(rows)} rows (at most {MAX_RATED_FRAMES})")
    width = {len(r) for r in rows}
    if width == {1}:
        return np.array([float(r[0]) for r in rows], dtype=np.float64)
    if min(width) < 2:
        raise InputError(f"rating file {p.name} mixes one-column and frame,value rows")
    frames = np.array([float(r[0]) for r in rows])
    values = np.array([float(r[-1]) for r in rows], dtype=np.float64)
    if np.any(frames < 0) or np.any(frames != np.round(frames)):
        raise InputError(f"rating file {p.name}: frame numbers must be whole and >= 0")
    # The array is sized by the largest frame number: refuse one no video can have before
    # allocating (1e12 would ask for 8 TB).
    if frames.max() >= MAX_RATED_FRAMES:
        raise InputError(
            f"rating file {p.name}: frame number {frames.max():.0f} is beyond any video "
            f"(at most {MAX_RATED_FRAMES - 1})"
        )
    idx = frames.astype(np.int64)
    if idx.min() == 1 and len(np.unique(idx)) == len(idx) and idx.max() == len(idx):
        idx = idx - 1
    out = np.full(int(idx.max()) + 1, np.nan)
    out[idx] = values
    return out


def read_labels(item: VeaticVideo) -> np.ndarray:
    """[F, 2] (valence, arousal); the shorter file is padded with NaN."""
    v, a = read_ratings(item.valence), read_ratings(item.arousal)
    n = max(len(v), len(a))
    out = np.full((n, 2), np.nan)
    out[: len(v), 0] = v
    out[: len(a), 1] = a
    return out


def frame_times(n_frames: int, fps: Fraction) -> np.ndarray:
    """k / fps for k in 0..n-1, from exact integers (no accumulated rounding)."""
    fps = Fraction(fps)
    k = np.arange(int(n_frames), dtype=np.int64)
    return (k * fps.denominator) / float(fps.numerator)


def align(t: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Interpolate a sample series to the times `at` (see the module docstring).

    `values` is [N] or [N, k]; rows with a NaN are gaps. Returns [len(at)] or [len(at), k].
    """
    t = np.asarray(t, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    flat = vals.ndim == 1
    vals = vals.reshape(len(t), -1)
    at = np.asarray(at, dtype=np.float64)
    out = np.full((len(at), vals.shape[1]), np.nan)
    ok = np.all(np.isfinite(vals), axis=1)
    if len(t) and ok.any():
        for j in range(vals.shape[1]):
            out[:, j] = np.interp(at, t[ok], vals[ok, j])
        # nearest sample (ties to the earlier one) decides whether the frame is covered
        right = np.clip(np.searchsorted(t, at, side="left"), 0, len(t) - 1)
        left = np.clip(right - 1, 0, len(t) - 1)
        nearest = np.where(np.abs(at - t[left]) <= np.abs(t[right] - at), left, right)
        out[~ok[nearest]] = np.nan
    return out[:, 0] if flat else out


# ----------------------------------------------------------------------------- perception
@dataclass(frozen=True)
class Perception:
    """The model-dependent part of an analysis: what the cache holds."""

    t: np.ndarray
    series: tuple[ExpertSeries, ...]
    cuts: tuple[float, ...]
    fps: Fraction
    duration_s: float
    frames: int
    modes: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    def face_coverage(self) -> float | None:
        for s in self.series:
            if s.name == "face":
                return float(np.mean(s.present)) if len(s.present) else 0.0
        return None

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "t": self.t,
            "cuts": np.asarray(self.cuts, dtype=np.float64),
        }
        for s in self.series:
            for attr in ("v", "a", "var_v", "var_a", "present"):
                arrays[f"{s.name}.{attr}"] = np.asarray(getattr(s, attr))
            if s.faces is not None:
                arrays[f"{s.name}.faces"] = np.asarray(s.faces)
        meta = {
            "format": CACHE_FORMAT,
            "names": [s.name for s in self.series],
            "modes": self.modes,
            "info": {s.name: json_clean(s.info) for s in self.series},
            "fps": [self.fps.numerator, self.fps.denominator],
            "duration_s": self.duration_s,
            "frames": self.frames,
            "unavailable": self.unavailable,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: Path) -> Perception | None:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != CACHE_FORMAT:
                    return None
                t = z["t"]
                series = []
                for name in meta["names"]:
                    faces = z[f"{name}.faces"] if f"{name}.faces" in z.files else None
                    series.append(
                        ExpertSeries(
                            name=name,
                            t=t,
                            v=z[f"{name}.v"],
                            a=z[f"{name}.a"],
                            var_v=z[f"{name}.var_v"],
                            var_a=z[f"{name}.var_a"],
                            present=z[f"{name}.present"].astype(bool),
                            faces=faces,
                            mode=meta["modes"].get(name, "trained"),
                            info=meta["info"].get(name, {}),
                        )
                    )
                return cls(
                    t=t,
                    series=tuple(series),
                    cuts=tuple(float(c) for c in z["cuts"]),
                    fps=Fraction(*meta["fps"]),
                    duration_s=float(meta["duration_s"]),
                    frames=int(meta["frames"]),
                    modes=dict(meta["modes"]),
                    unavailable=dict(meta["unavailable"]),
                )
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None  # a damaged cache entry is recomputed, never trusted


def perceive(video: str | Path, experts: LoadedExperts, config: Config) -> Perception:
    """Run sampling and the experts once (via the pipeline), keeping the raw expert series."""
    from ..pipeline import analyze_video

    # Near-unbounded clamps here: the real fusion clamps are applied when re-fusing, so the
    # cache does not depend on fusion settings.
    # Raw variances too (no calibration): `eval veatic` fits its calibration on them.
    loose = config.replace(
        **{"fusion.var_floor": 1e-12, "fusion.var_ceiling": 1e12, "fusion.calibration": "none"}
    )
    a = analyze_video(video, experts, loose)
    return Perception(
        t=a.t,
        series=a.series,
        cuts=a.cuts,
        fps=a.video.fps,
        duration_s=a.video.duration_s,
        frames=a.video.frames,
        modes=dict(a.modes),
        unavailable=dict(a.unavailable),
    )


def refuse(
    p: Perception, config: Config, calibration: Calibration | None = None
) -> dict[str, np.ndarray]:
    """Every output to score, [N, 2] with NaN where absent: each expert, 'fusion', 'stable'.
    The cached raw variances go through `calibration` (default: the one `config` names)."""
    out: dict[str, np.ndarray] = {}
    cal = calibration if calibration is not None else calibration_for(config)
    fl, ceil = config.fusion.var_floor, config.fusion.var_ceiling
    clean = [cal.apply(s).sanitized(fl, ceil) for s in p.series]
    for s in clean:
        va = np.stack([s.v, s.a], axis=1).astype(np.float64)
        va[~s.present] = np.nan
        out[s.name] = va
    fused, var = fuse(clean, config.fusion)
    stable, _ = stabilize(p.t, fused, var, config.stabilize, config.sample.sample_fps)
    out["fusion"] = fused
    out["stable"] = stable
    return out


def cache_key(video: Path, config: Config, names: list[str], ident: dict[str, Any]) -> str:
    """Video fingerprint + sampling config + each expert's config section + weights identity."""
    sections = {
        n: dataclasses.asdict(getattr(config, n)) if hasattr(config, n) else {} for n in names
    }
    blob = json.dumps(
        {
            "format": CACHE_FORMAT,
            "engine": __version__,
            "video": file_fingerprint(video),
            "sample": dataclasses.asdict(config.sample),
            "experts": sorted(names),
            "sections": json_clean(sections),
            "ident": json_clean(ident),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


# ----------------------------------------------------------------------------- evaluation
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
    report = _write_report(out, results, outputs, overall, clip, coverage, prov, hits, plots)
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


# ----------------------------------------------------------------------------- report files
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path


def _write_report(
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

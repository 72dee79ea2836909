"""`moodsic bench stability`: does the score follow real mood changes without flapping, and
does it beat the reference implementation's stabilizer?

Synthetic clips with known mood segments (`stability_data`: three noisy experts, and spans
of high uncertainty: dark, blurred, occluded, faces lost) go through the real fuse ->
stabilize -> segment_moods, and through the reference prototype's stabilizer and mood
switching (`stability_reference`: EMA alpha 0.7, hold while variance > 0.4, no maximum
hold, no hysteresis, no cut snapping, a forced switch after a 4 s dwell) on the same fused
series. Predicted boundaries are compared with the true ones:

- precision / recall / F1: a predicted boundary is a hit when it lies within +-1 s of a
  true boundary (one-to-one, nearest pairs first);
- spurious switches per minute: predicted boundaries that hit nothing;
- mean boundary lag: predicted minus true time for boundaries found within +-5 s
  (positive = late).

Every figure is given per seed (each seed its own set of clips) and pooled over the seeds,
with how much ours beats the reference by. A grid search over our stabilizer/segmenter
settings writes the best settings (TOML) and a trade-off plot.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..fusion import fuse
from ..library.clusters import MoodClusters
from ..progress import ProgressFn, no_progress
from ..segment import segment_moods
from ..stabilize import stabilize
from .metrics import fmt
from .stability_data import (
    UNCERTAIN_KINDS,
    SyntheticClip,
    UncertainSpan,
    bench_clusters,
    make_clip,
)
from .stability_reference import (
    REFERENCE,
    ReferenceSettings,
    reference_boundaries,
    reference_stabilize,
    reference_switches,
)

TOLERANCE_S = 1.0
LAG_WINDOW_S = 5.0
FPS = Fraction(25)
GATES_SHOWN = (0.1, 0.2, 0.4)  # the share of samples above each is reported

GRID: dict[str, tuple[float, ...]] = {
    "stabilize.ema_alpha": (0.35, 0.5, 0.6, 0.7),
    "stabilize.gate": (0.1, 0.2, 0.4),
    "stabilize.max_hold_s": (3.0, 6.0, 12.0),
    "segment.switch_penalty": (2.0, 4.0, 8.0),
    "segment.min_segment_s": (4.0, 8.0, 12.0),
}


# ----------------------------------------------------------------------------- scoring
def _pairs(true_b: np.ndarray, pred_b: np.ndarray, window: float) -> list[tuple[int, int]]:
    """One-to-one matches within `window`, nearest pairs first."""
    cand = sorted(
        (abs(p - q), i, j)
        for i, p in enumerate(true_b)
        for j, q in enumerate(pred_b)
        if abs(p - q) <= window + 1e-9
    )
    used_t: set[int] = set()
    used_p: set[int] = set()
    out = []
    for _, i, j in cand:
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            out.append((i, j))
    return out


def boundary_scores(
    true_b: list[float] | tuple[float, ...] | np.ndarray,
    pred_b: list[float] | tuple[float, ...] | np.ndarray,
    duration_s: float,
    *,
    tolerance_s: float = TOLERANCE_S,
    lag_window_s: float = LAG_WINDOW_S,
) -> dict[str, Any]:
    """Precision, recall, F1 (hits within +-tolerance), spurious switches/min, mean lag.

    With nothing predicted, precision is 1 (nothing wrong was claimed); with nothing to
    find, recall is 1. Counts are returned too, so several clips can be pooled.
    """
    tb = np.asarray(true_b, dtype=np.float64)
    pb = np.asarray(pred_b, dtype=np.float64)
    hits = _pairs(tb, pb, tolerance_s)
    lags = [float(pb[j] - tb[i]) for i, j in _pairs(tb, pb, lag_window_s)]
    return _finish(
        {
            "n_true": len(tb),
            "n_pred": len(pb),
            "hits": len(hits),
            "lag_sum": float(np.sum(lags)),
            "lag_n": len(lags),
            "minutes": duration_s / 60.0,
        }
    )


def _finish(c: dict[str, Any]) -> dict[str, Any]:
    p = c["hits"] / c["n_pred"] if c["n_pred"] else 1.0
    r = c["hits"] / c["n_true"] if c["n_true"] else 1.0
    return {
        **c,
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r > 0 else 0.0,
        "spurious_per_min": (c["n_pred"] - c["hits"]) / c["minutes"] if c["minutes"] else 0.0,
        "mean_lag_s": c["lag_sum"] / c["lag_n"] if c["lag_n"] else None,
    }


def pool(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the counts of several clips and recompute the rates."""
    keys = ("n_true", "n_pred", "hits", "lag_sum", "lag_n", "minutes")
    return _finish({k: sum(s[k] for s in scores) for k in keys})


@dataclass(frozen=True)
class _Fused:
    clip: SyntheticClip
    va: np.ndarray
    var: np.ndarray


def predicted_boundaries(
    clip: SyntheticClip,
    config: Config,
    clusters: MoodClusters,
    fused: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[float]:
    """fuse -> stabilize -> segment_moods; the start times of every segment but the first."""
    va, var = fused if fused is not None else fuse(list(clip.series), config.fusion)
    stable, _ = stabilize(clip.t, va, var, config.stabilize, config.sample.sample_fps)
    segs = segment_moods(
        clip.t,
        stable,
        clusters,
        clip.cuts,
        config.segment,
        duration_s=clip.duration_s,
        fps=FPS,
    )
    return [s.start_s for s in segs[1:]]


def score_setting(fused: list[_Fused], config: Config, clusters: MoodClusters) -> dict[str, Any]:
    per = [
        boundary_scores(
            f.clip.boundaries,
            predicted_boundaries(f.clip, config, clusters, (f.va, f.var)),
            f.clip.duration_s,
        )
        for f in fused
    ]
    return pool(per)


def reference_setting_scores(
    fused: list[_Fused], clusters: MoodClusters, settings: ReferenceSettings = REFERENCE
) -> dict[str, Any]:
    """The reference stabilizer and switching on the same fused series, pooled."""
    per = [
        boundary_scores(
            f.clip.boundaries,
            reference_boundaries(f.clip.t, f.va, f.var, clusters, settings, FPS),
            f.clip.duration_s,
        )
        for f in fused
    ]
    return pool(per)


def fuse_clips(clips: list[SyntheticClip], config: Config) -> list[_Fused]:
    out = []
    for clip in clips:
        va, var = fuse(list(clip.series), config.fusion)
        out.append(_Fused(clip, va, var))
    return out


def uncertainty_summary(fused: list[_Fused]) -> dict[str, Any]:
    """How uncertain the fused series are: the largest mean variance, the share of samples
    above each gate in GATES_SHOWN, and the uncertain spans by kind."""
    u = np.concatenate([np.mean(f.var, axis=1) for f in fused]) if fused else np.zeros(0)
    finite = u[np.isfinite(u)]
    kinds = {k: 0 for k in UNCERTAIN_KINDS}
    for f in fused:
        for s in f.clip.spans:
            kinds[s.kind] += 1
    return {
        "max_var": float(finite.max()) if len(finite) else 0.0,
        "above": {g: float(np.mean(u > g)) if len(u) else 0.0 for g in GATES_SHOWN},
        "spans": kinds,
    }


# ----------------------------------------------------------------------------- the bench
@dataclass(frozen=True)
class SeedResult:
    seed: int
    ours: dict[str, Any]
    reference: dict[str, Any]


@dataclass(frozen=True)
class StabilityReport:
    ours: dict[str, Any]  # pooled over every seed
    reference: dict[str, Any]
    per_seed: list[SeedResult]
    uncertainty: dict[str, Any]
    grid: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_toml: Path | None
    plot: Path | None
    report_md: Path | None
    lines: list[str]

    @property
    def seeds_won(self) -> int:
        """Seeds where ours has a higher F1 and fewer spurious switches than the reference."""
        return sum(
            r.ours["f1"] > r.reference["f1"]
            and r.ours["spurious_per_min"] < r.reference["spurious_per_min"]
            for r in self.per_seed
        )


def _row(name: str, s: dict[str, Any]) -> str:
    return (
        f"{name:<10} P {s['precision']:.3f}  R {s['recall']:.3f}  F1 {s['f1']:.3f}  "
        f"spurious/min {s['spurious_per_min']:.2f}  mean lag {fmt(s['mean_lag_s'], 2)} s"
    )


def stabilizer_setting(config: Config) -> dict[str, float]:
    """The stabilizer settings the grid varies, as {key: value}."""
    return {key: float(_get(config, key)) for key in GRID}


def _get(config: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def rank_key(s: dict[str, Any]) -> tuple[float, float, float]:
    """Best F1; then fewer spurious switches; then less lag."""
    lag = s["mean_lag_s"]
    return (-s["f1"], s["spurious_per_min"], abs(lag) if lag is not None else 99.0)


def _pct(new: float, old: float) -> str:
    return f"{(new - old) / old:+.0%}" if old else "n/a"


def margin_line(ours: dict[str, Any], ref: dict[str, Any], won: int, seeds: int) -> str:
    """How much ours beats (or trails) the reference by, on both measures."""
    return (
        f"ours vs reference: F1 {ours['f1']:.3f} vs {ref['f1']:.3f} "
        f"({ours['f1'] - ref['f1']:+.3f}, {_pct(ours['f1'], ref['f1'])}); spurious/min "
        f"{ours['spurious_per_min']:.2f} vs {ref['spurious_per_min']:.2f} "
        f"({ours['spurious_per_min'] - ref['spurious_per_min']:+.2f}, "
        f"{_pct(ours['spurious_per_min'], ref['spurious_per_min'])}); better on both in "
        f"{won}/{seeds} seeds"
    )


def run_stability(
    config: Config | None = None,
    *,
    clips: int = 4,
    seconds: float = 180.0,
    seed: int = 0,
    seeds: int = 5,
    jitter: float = 1.0,
    uncertain_per_min: float = 2.0,
    grid: bool = True,
    out_dir: str | Path | None = None,
    progress: ProgressFn = no_progress,
) -> StabilityReport:
    """Our settings vs the reference stabilizer over `seeds` seeds (seed, seed + 1, ...),
    `clips` clips of `seconds` each per seed; optionally the grid search over all of them."""
    config = config or Config()
    clusters = bench_clusters()
    fps = config.sample.sample_fps
    per_seed_data: list[tuple[int, list[_Fused]]] = []
    for s in range(seed, seed + max(1, seeds)):
        made = [
            make_clip(
                1000 * s + k,
                seconds,
                fps,
                jitter=jitter,
                uncertain_per_min=uncertain_per_min,
                clusters=clusters,
            )
            for k in range(clips)
        ]
        per_seed_data.append((s, fuse_clips(made, config)))
    data = [f for _, fs in per_seed_data for f in fs]
    per_seed = [
        SeedResult(s, score_setting(fs, config, clusters), reference_setting_scores(fs, clusters))
        for s, fs in per_seed_data
    ]
    ours = pool([r.ours for r in per_seed])
    ref = pool([r.reference for r in per_seed])
    unc = uncertainty_summary(data)
    won = sum(
        r.ours["f1"] > r.reference["f1"]
        and r.ours["spurious_per_min"] < r.reference["spurious_per_min"]
        for r in per_seed
    )
    n_true = sum(len(f.clip.boundaries) for f in data)
    spans = ", ".join(f"{k} {v}" for k, v in unc["spans"].items())
    lines = [
        f"stability: {len(per_seed)} seeds x {clips} synthetic clips x {seconds:.0f} s, "
        f"{n_true} true mood changes, 3 experts (jitter x{jitter:g}, dropouts, spikes); "
        f"hits within +-{TOLERANCE_S:g} s",
        f"uncertain spans: {spans}; fused variance max {unc['max_var']:.2f}, samples above "
        + ", ".join(f"{g:g}: {share:.1%}" for g, share in unc["above"].items()),
        _row("ours", ours) + "   " + describe_setting(config),
        _row("reference", ref) + "   " + describe_reference(REFERENCE),
        margin_line(ours, ref, won, len(per_seed)),
    ]
    lines += [
        f"  seed {r.seed}: ours F1 {r.ours['f1']:.3f} spurious/min "
        f"{r.ours['spurious_per_min']:.2f} | reference F1 {r.reference['f1']:.3f} spurious/min "
        f"{r.reference['spurious_per_min']:.2f}"
        for r in per_seed
    ]
    results: list[dict[str, Any]] = []
    best = None
    if grid:
        combos = list(itertools.product(*GRID.values()))
        for i, values in enumerate(combos):
            setting = dict(zip(GRID, values, strict=True))
            s = score_setting(data, config.replace(**setting), clusters)
            results.append({"setting": setting, **s})
            progress("grid", i + 1, len(combos))
        best = min(results, key=rank_key)
        lines.append(
            _row("best", best) + "   " + describe_setting(config.replace(**best["setting"]))
        )
    out = Path(out_dir) if out_dir else None
    best_toml = plot = md = None
    if out is not None:
        from .stability_report import plot_tradeoff, write_report  # it imports this module

        if best is not None:
            best_toml = config.replace(**best["setting"]).save_toml(out / "stability_best.toml")
            plot = plot_tradeoff(results, ours, ref, best, out / "stability_tradeoff.png")
        md = write_report(
            out, config, ours, ref, per_seed, unc, results, best, lines,
            {"clips": clips, "seconds": seconds, "seed": seed, "seeds": len(per_seed),
             "jitter": jitter, "uncertain_per_min": uncertain_per_min},
        )  # fmt: skip
        lines += [f"report: {md}"]
        if best_toml:
            lines += [f"best settings: {best_toml}", f"trade-off plot: {plot}"]
    return StabilityReport(ours, ref, per_seed, unc, results, best, best_toml, plot, md, lines)


def describe_setting(c: Config) -> str:
    """Our stabilizer/segmenter setting in one parenthesised line."""
    return (
        f"(alpha {c.stabilize.ema_alpha:g}, gate {c.stabilize.gate:g}, max hold "
        f"{c.stabilize.max_hold_s:g} s, penalty {c.segment.switch_penalty:g}, min segment "
        f"{c.segment.min_segment_s:g} s, cut snap {c.segment.cut_snap_s:g} s)"
    )


def describe_reference(r: ReferenceSettings) -> str:
    """The reference system's setting in one parenthesised line."""
    return (
        f"(alpha {r.ema_alpha:g}, hold while variance > {r.gate:g}, no max hold, no "
        f"hysteresis, no cut snap, forced switch after {r.dwell_s:g} s dwell)"
    )


__all__ = [
    "GRID",
    "REFERENCE",
    "ReferenceSettings",
    "SeedResult",
    "StabilityReport",
    "SyntheticClip",
    "UncertainSpan",
    "boundary_scores",
    "bench_clusters",
    "fuse_clips",
    "make_clip",
    "pool",
    "predicted_boundaries",
    "reference_boundaries",
    "reference_setting_scores",
    "reference_stabilize",
    "reference_switches",
    "run_stability",
    "uncertainty_summary",
]

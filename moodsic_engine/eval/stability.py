"""`moodsic bench stability`: does the score follow real mood changes without flapping?

Synthetic clips with known mood segments are turned into three noisy expert series
(Gaussian jitter, stretches where an expert is absent, short over-confident spikes),
then run through the real fuse -> stabilize -> segment_moods. Predicted boundaries are
compared with the true ones:

- precision / recall / F1: a predicted boundary is a hit when it lies within +-1 s of a
  true boundary (one-to-one, nearest pairs first);
- spurious switches per minute: predicted boundaries that hit nothing;
- mean boundary lag: predicted minus true time for boundaries found within +-5 s
  (positive = late).

Our defaults are reported beside the naive setting (EMA alpha 0.7, gate 0.4, no
hysteresis, a fixed short dwell), and a grid search over the stabilizer/segmenter
settings writes the best settings (TOML) and a trade-off plot.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..experts.base import ExpertSeries
from ..fileio import atomic_path, write_text_atomic
from ..fusion import fuse
from ..library.clusters import MoodClusters, name_clusters, slugify_unique
from ..progress import ProgressFn, no_progress
from ..segment import segment_moods
from ..stabilize import stabilize
from .metrics import fmt, json_clean
from .provenance import provenance, provenance_markdown

TOLERANCE_S = 1.0
LAG_WINDOW_S = 5.0
NAIVE_DWELL_S = 4.0
FPS = Fraction(25)

GRID: dict[str, tuple[float, ...]] = {
    "stabilize.ema_alpha": (0.2, 0.35, 0.5, 0.7),
    "stabilize.gate": (0.1, 0.2, 0.4),
    "segment.switch_penalty": (0.0, 2.0, 6.0, 12.0),
    "segment.min_segment_s": (4.0, 8.0, 12.0),
}


def naive_config(base: Config | None = None) -> Config:
    """The reference system's setting: fast EMA, loose gate, no hysteresis, fixed short dwell."""
    return (base or Config()).replace(
        **{
            "stabilize.ema_alpha": 0.7,
            "stabilize.gate": 0.4,
            "segment.switch_penalty": 0.0,
            "segment.min_segment_s": NAIVE_DWELL_S,
        }
    )


def bench_clusters() -> MoodClusters:
    """Four mood clusters, one per V/A quadrant (what a balanced library fits)."""
    centroids = np.array([[-0.3, -0.3], [-0.3, 0.3], [0.3, -0.3], [0.3, 0.3]])
    labels = name_clusters(centroids)
    return MoodClusters(
        center=np.zeros(2),
        scale=np.ones(2),
        weights=np.full(4, 0.25),
        means=centroids,
        variances=np.full((4, 2), 0.2**2),
        slugs=tuple(slugify_unique(labels)),
        labels=tuple(labels),
    )


# ----------------------------------------------------------------------------- synthetic clips
@dataclass(frozen=True)
class SyntheticClip:
    t: np.ndarray
    true_va: np.ndarray  # [N, 2]
    boundaries: tuple[float, ...]  # true mood changes, seconds
    labels: tuple[int, ...]  # cluster of each true segment
    series: tuple[ExpertSeries, ...]
    cuts: tuple[float, ...]
    duration_s: float


def _on_off(rng: np.random.Generator, n: int, dt: float, on_s: float, off_s: float) -> np.ndarray:
    """Presence as alternating stretches with exponential lengths (an expert coming and going)."""
    present = np.zeros(n, dtype=bool)
    i, state = 0, bool(rng.random() < on_s / (on_s + off_s))
    while i < n:
        length = max(1, int(round(rng.exponential(on_s if state else off_s) / dt)))
        present[i : i + length] = state
        i += length
        state = not state
    return present


def make_clip(
    seed: int,
    duration_s: float = 180.0,
    sample_fps: float = 2.0,
    *,
    jitter: float = 1.0,
    spike_rate: float = 0.03,
    clusters: MoodClusters | None = None,
) -> SyntheticClip:
    """A clip with segments of 12-40 s, each in one cluster, seen by three noisy experts.

    Clusters sit at +-0.3 (a DEAM-like library). Noise is AR(1) (correlation 0.8 per 0.5 s).
    scene: always present, sigma 0.22, roughly calibrated variance; face: present in
    stretches (mean 15 s on, 8 s off), sigma 0.18; grammar: always present, weak (shrunk
    toward 0, sigma 0.3). Each expert spikes (1-3 samples of a random value with its usual,
    i.e. over-confident, variance) at `spike_rate` per sample. `jitter` scales every sigma.
    """
    rng = np.random.default_rng(seed)
    clusters = clusters or bench_clusters()
    cents = clusters.centroids
    dt = 1.0 / sample_fps
    n = int(round(duration_s * sample_fps))
    t = np.arange(n) * dt
    bounds: list[float] = []
    labels: list[int] = [int(rng.integers(len(cents)))]
    pos = rng.uniform(12.0, 40.0)
    while pos < duration_s - 12.0:
        bounds.append(round(float(pos), 3))
        labels.append(int(rng.choice([k for k in range(len(cents)) if k != labels[-1]])))
        pos += rng.uniform(12.0, 40.0)
    seg = np.searchsorted(np.asarray(bounds), t, side="right")
    drift = 0.05 * np.stack([np.sin(t / 9.0 + seed), np.cos(t / 13.0 + 2 * seed)], axis=1)
    true_va = np.clip(cents[np.asarray(labels)[seg]] + drift, -1, 1)

    def expert(
        name: str, sigma: float, var: tuple[float, float], present: np.ndarray, shrink: float
    ) -> ExpertSeries:
        s = sigma * jitter
        # AR(1) noise: real expert errors persist for seconds (a misread shot), which is
        # what makes a score flap; white noise would average away.
        rho = 0.8 ** (1.0 / (sample_fps * 0.5))
        noise = np.zeros((n, 2))
        eps = rng.normal(0.0, s * np.sqrt(1 - rho**2), size=(n, 2))
        noise[0] = rng.normal(0.0, s, size=2)
        for i in range(1, n):
            noise[i] = rho * noise[i - 1] + eps[i]
        va = shrink * true_va + noise
        spikes = np.flatnonzero(rng.random(n) < spike_rate)
        for i in spikes:
            va[i : i + int(rng.integers(1, 4))] = rng.uniform(-1, 1, size=2)
        va = np.clip(va, -1, 1)
        scale = rng.uniform(0.7, 1.3, size=n)
        return ExpertSeries(
            name=name,
            t=t,
            v=va[:, 0],
            a=va[:, 1],
            var_v=np.full(n, var[0] * jitter**2) * scale,
            var_a=np.full(n, var[1] * jitter**2) * scale,
            present=present,
            mode="trained",
        )

    always = np.ones(n, dtype=bool)
    series = (
        expert("scene", 0.22, (0.22**2, 0.22**2), always, 1.0),
        expert("face", 0.18, (0.18**2, 0.18**2), _on_off(rng, n, dt, 15.0, 8.0), 1.0),
        expert("grammar", 0.30, (0.12, 0.08), always, 0.5),
    )
    cuts = [b + rng.uniform(-0.3, 0.3) for b in bounds if rng.random() < 0.6]
    cuts += list(np.cumsum(rng.exponential(6.0, size=int(duration_s / 3))))
    cuts = sorted({round(float(c), 3) for c in cuts if 0.5 < c < duration_s - 0.5})
    return SyntheticClip(
        t=t,
        true_va=true_va,
        boundaries=tuple(bounds),
        labels=tuple(labels),
        series=series,
        cuts=tuple(cuts),
        duration_s=float(n * dt),
    )


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


# ----------------------------------------------------------------------------- the bench
@dataclass(frozen=True)
class StabilityReport:
    ours: dict[str, Any]
    naive: dict[str, Any]
    grid: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_toml: Path | None
    plot: Path | None
    report_md: Path | None
    lines: list[str]


def _row(name: str, s: dict[str, Any]) -> str:
    return (
        f"{name:<10} P {s['precision']:.3f}  R {s['recall']:.3f}  F1 {s['f1']:.3f}  "
        f"spurious/min {s['spurious_per_min']:.2f}  mean lag {fmt(s['mean_lag_s'], 2)} s"
    )


def _setting(config: Config) -> dict[str, float]:
    return {
        "stabilize.ema_alpha": config.stabilize.ema_alpha,
        "stabilize.gate": config.stabilize.gate,
        "segment.switch_penalty": config.segment.switch_penalty,
        "segment.min_segment_s": config.segment.min_segment_s,
    }


def _rank(s: dict[str, Any]) -> tuple[float, float, float]:
    """Best F1; then fewer spurious switches; then less lag."""
    lag = s["mean_lag_s"]
    return (-s["f1"], s["spurious_per_min"], abs(lag) if lag is not None else 99.0)


def run_stability(
    config: Config | None = None,
    *,
    clips: int = 8,
    seconds: float = 180.0,
    seed: int = 0,
    jitter: float = 1.0,
    grid: bool = True,
    out_dir: str | Path | None = None,
    progress: ProgressFn = no_progress,
) -> StabilityReport:
    """Our settings vs the naive ones on `clips` synthetic clips; optionally the grid search."""
    config = config or Config()
    clusters = bench_clusters()
    data = []
    for k in range(clips):
        clip = make_clip(
            seed + k, seconds, config.sample.sample_fps, jitter=jitter, clusters=clusters
        )
        va, var = fuse(list(clip.series), config.fusion)
        data.append(_Fused(clip, va, var))
    ours = score_setting(data, config, clusters)
    naive_cfg = naive_config(config)
    naive = score_setting(data, naive_cfg, clusters)
    n_true = sum(len(f.clip.boundaries) for f in data)
    lines = [
        f"stability: {clips} synthetic clips x {seconds:.0f} s, {n_true} true mood changes, "
        f"3 experts (jitter x{jitter:g}, dropouts, spikes); hits within +-{TOLERANCE_S:g} s",
        _row("ours", ours) + "   " + _describe(config),
        _row("naive", naive) + "   " + _describe(naive_cfg),
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
        best = min(results, key=_rank)
        lines.append(_row("best", best) + "   " + _describe(config.replace(**best["setting"])))
    out = Path(out_dir) if out_dir else None
    best_toml = plot = md = None
    if out is not None:
        if best is not None:
            best_toml = config.replace(**best["setting"]).save_toml(out / "stability_best.toml")
            plot = plot_tradeoff(results, ours, naive, best, out / "stability_tradeoff.png")
        md = _write(out, config, ours, naive, results, best, lines, clips, seconds, seed, jitter)
        lines += [f"report: {md}"]
        if best_toml:
            lines += [f"best settings: {best_toml}", f"trade-off plot: {plot}"]
    return StabilityReport(ours, naive, results, best, best_toml, plot, md, lines)


def _describe(c: Config) -> str:
    return (
        f"(alpha {c.stabilize.ema_alpha:g}, gate {c.stabilize.gate:g}, "
        f"penalty {c.segment.switch_penalty:g}, min segment {c.segment.min_segment_s:g} s)"
    )


def plot_tradeoff(
    results: list[dict[str, Any]],
    ours: dict[str, Any],
    naive: dict[str, Any],
    best: dict[str, Any],
    path: Path,
) -> Path:
    """Spurious switches/min against recall for every grid point, coloured by mean lag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5), constrained_layout=True)
    x = [r["spurious_per_min"] for r in results]
    y = [r["recall"] for r in results]
    c = [r["mean_lag_s"] if r["mean_lag_s"] is not None else np.nan for r in results]
    sc = ax.scatter(x, y, c=c, cmap="viridis", s=22, alpha=0.8)
    fig.colorbar(sc, ax=ax, label="mean boundary lag (s)")
    for name, s, marker in (("ours", ours, "*"), ("naive", naive, "X"), ("best", best, "D")):
        ax.scatter(
            [s["spurious_per_min"]],
            [s["recall"]],
            marker=marker,
            s=160,
            color="red" if name == "ours" else "black",
            zorder=3,
        )
        ax.annotate(
            f"{name} (F1 {s['f1']:.2f})",
            (s["spurious_per_min"], s["recall"]),
            textcoords="offset points",
            xytext=(8, 4),
        )
    ax.set_xlabel("spurious switches per minute")
    ax.set_ylabel(f"boundary recall (+-{TOLERANCE_S:g} s)")
    ax.set_title("Stabilizer/segmenter settings: responsiveness vs flapping")
    ax.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path


def _write(
    out: Path,
    config: Config,
    ours: dict[str, Any],
    naive: dict[str, Any],
    results: list[dict[str, Any]],
    best: dict[str, Any] | None,
    lines: list[str],
    clips: int,
    seconds: float,
    seed: int,
    jitter: float,
) -> Path:
    cols = ("precision", "recall", "f1", "spurious_per_min", "mean_lag_s", "n_pred", "hits")
    rows = {"ours": (ours, config), "naive": (naive, naive_config(config))}
    if best is not None:
        rows["best of grid"] = (best, config.replace(**best["setting"]))
    md = [
        "# Stability of the score (synthetic clips)",
        "",
        f"- {lines[0]}",
        f"- seed {seed}; boundaries scored against the truth within +-{TOLERANCE_S:g} s; lag within +-{LAG_WINDOW_S:g} s",
        f"- naive: EMA alpha 0.7, gate 0.4, no hysteresis (switch penalty 0), fixed {NAIVE_DWELL_S:g} s dwell (minimum segment)",
        "",
        "| setting | " + " | ".join(cols) + " | alpha | gate | penalty | min segment s |",
        "|---|" + "---:|" * (len(cols) + 4),
    ]
    for name, (s, c) in rows.items():
        st = _setting(c)
        md.append(
            f"| {name} | " + " | ".join(fmt(s[k]) for k in cols) + " | "
            + " | ".join(fmt(float(v)) for v in st.values()) + " |"
        )  # fmt: skip
    if results:
        md += ["", f"Grid: {len(results)} settings over {', '.join(GRID)}; the 10 best:", ""]
        md += [
            "| rank | f1 | spurious/min | lag s | " + " | ".join(GRID) + " |",
            "|---|" + "---:|" * (3 + len(GRID)),
        ]
        for i, r in enumerate(sorted(results, key=_rank)[:10]):
            md.append(
                f"| {i + 1} | {r['f1']:.3f} | {r['spurious_per_min']:.2f} | {fmt(r['mean_lag_s'], 2)} | "
                + " | ".join(f"{v:g}" for v in r["setting"].values()) + " |"
            )  # fmt: skip
    prov = provenance(
        config,
        data={"synthetic": f"{clips} clips x {seconds:g} s, seed {seed}, jitter x{jitter:g}"},
    )
    md += ["", *provenance_markdown(prov)]
    path = write_text_atomic(out / "stability.md", "\n".join(md))
    write_text_atomic(
        out / "stability.json",
        json.dumps(
            json_clean(
                {"ours": ours, "naive": naive, "best": best, "grid": results,
                 "naive_setting": _setting(naive_config(config)), "ours_setting": _setting(config),
                 "provenance": prov}
            ),
            indent=2,
        ),
    )  # fmt: skip
    return path


__all__ = [
    "GRID",
    "StabilityReport",
    "SyntheticClip",
    "boundary_scores",
    "bench_clusters",
    "make_clip",
    "naive_config",
    "pool",
    "predicted_boundaries",
    "run_stability",
]

"""Library reports: `moodsic library info` lines, the cluster scatter plot, and the scale bench."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from . import Library, TrackTable


def info_lines(lib: Library) -> list[str]:
    if isinstance(lib.tracks, TrackTable):  # a large table: count from its columns
        sources = Counter({lib.tracks.va_source: len(lib.tracks)})
        with_audio = sum(1 for p in lib.tracks.paths() if p)
    else:
        sources = Counter(t.va_source for t in lib.tracks)
        with_audio = sum(1 for t in lib.tracks if t.path)
    lines = [
        f"library  {lib.name} ({lib.kind}) at {lib.root}",
        f"tracks   {len(lib.tracks)} ({with_audio} with audio); V/A: "
        + ", ".join(f"{n} {s}" for s, n in sorted(sources.items())),
        f"clusters {lib.clusters.k} (GMM on standardised V/A, K by BIC)",
    ]
    sizes = lib.cluster_sizes()
    for k, (slug, label) in enumerate(zip(lib.clusters.slugs, lib.clusters.labels, strict=True)):
        v, a = lib.clusters.centroids[k]
        lines.append(f"  {label:<34} {slug:<34} {sizes[k]:>7} tracks  V {v:+.2f}  A {a:+.2f}")
    lines.extend(f"warning: {w}" for w in lib.warnings)
    return lines


def plot_library(lib: Library, path: str | os.PathLike[str], *, max_points: int = 20000) -> Path:
    """Scatter of the tracks' V/A coloured by mood cluster, with each centroid labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    va, cl = lib.va, lib.track_cluster
    if len(va) > max_points:
        pick = np.random.default_rng(0).choice(len(va), max_points, replace=False)
        va, cl = va[pick], cl[pick]
    fig, ax = plt.subplots(figsize=(7, 6.5), dpi=110)
    cmap = plt.get_cmap("tab10")
    for k, label in enumerate(lib.clusters.labels):
        m = cl == k
        ax.scatter(
            va[m, 0],
            va[m, 1],
            s=10,
            alpha=0.6,
            color=cmap(k % 10),
            label=f"{label} ({int(m.sum())})",
        )
        cv, ca = lib.clusters.centroids[k]
        ax.scatter([cv], [ca], marker="X", s=120, color=cmap(k % 10), edgecolor="black", zorder=3)
        ax.annotate(
            label, (cv, ca), xytext=(6, 6), textcoords="offset points", fontsize=8, weight="bold"
        )
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.axvline(0, color="0.8", lw=0.8, zorder=0)
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    ax.set_title(f"{lib.name}: {len(lib.tracks)} tracks, {lib.clusters.k} mood clusters")
    ax.legend(loc="lower right", fontsize=7, framealpha=0.8)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def bench_library(n_tracks: int = 1_000_000, n_queries: int = 1000, seed: int = 0) -> list[str]:
    """Build the matching index for a synthetic catalogue and time single-segment queries."""
    from ..config import MatchConfig
    from .clusters import fit_clusters
    from .match import match_segments

    rng = np.random.default_rng(seed)
    # Synthetic catalogue: a few mood blobs, like real libraries, clipped to the scale.
    centres = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.4, -0.4], [0.0, 0.0]])
    va = np.clip(
        centres[rng.integers(0, len(centres), n_tracks)] + rng.normal(0, 0.18, (n_tracks, 2)), -1, 1
    )
    cfg = MatchConfig()
    t0 = time.perf_counter()
    clusters = fit_clusters(
        va, min_clusters=cfg.min_clusters, max_clusters=cfg.max_clusters, seed=seed
    )
    t1 = time.perf_counter()
    lib = Library(
        name="synthetic", root=Path("."), tracks=_SyntheticTracks(va), clusters=clusters, va=va
    )
    lib.build_index()
    t2 = time.perf_counter()
    q = np.clip(rng.normal(0, 0.5, (n_queries, 2)), -1, 1)
    post = clusters.posterior(q)
    match_segments(lib, q[:1], post[:1], cfg, seed)  # warm-up
    times = []
    for i in range(n_queries):
        s = time.perf_counter()
        match_segments(lib, q[i : i + 1], post[i : i + 1], cfg, seed)
        times.append(time.perf_counter() - s)
    ms = np.array(times) * 1000
    build = t2 - t0
    return [
        f"library bench: {n_tracks:,} synthetic tracks, {n_queries} single-segment queries",
        f"clusters  K={clusters.k} fitted in {t1 - t0:.2f} s (GMM by BIC on a subsample)",
        f"index     cluster assignment + KD-trees in {t2 - t1:.2f} s; total build {build:.2f} s",
        f"query     mean {ms.mean():.3f} ms, p99 {np.percentile(ms, 99):.3f} ms "
        f"(ratio to the 1 ms target: {ms.mean() / 1.0:.2f})",
    ]


class _SyntheticTracks:
    """A sequence of Track rows made on demand, so a million-track bench holds only arrays."""

    def __init__(self, va: np.ndarray) -> None:
        self._va = va

    def __len__(self) -> int:
        return len(self._va)

    def __getitem__(self, i: int):  # noqa: ANN204 - Track
        from . import Track

        v, a = self._va[i]
        return Track(
            id=f"syn-{i}",
            title=f"Synthetic {i}",
            artist="",
            path="",
            duration_s=None,
            valence=float(v),
            arousal=float(a),
        )

    def __iter__(self):  # noqa: ANN204
        return (self[i] for i in range(len(self)))

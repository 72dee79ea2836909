"""Synthetic clips for `moodsic bench stability`: known mood segments seen by three noisy
experts, with spans where seeing is hard.

Ordinary footage: segments of 12-40 s, each in one of four mood clusters (V/A quadrants at
+-0.3, a DEAM-like library), read by
- scene: always present, sigma 0.22, variance about its squared error;
- face: present in stretches (mean 15 s on, 8 s off), sigma 0.18;
- grammar: always present, weak (shrunk half-way to 0), sigma 0.3.
Expert errors are AR(1) (correlation 0.8 per 0.5 s): real errors persist for seconds (a
misread shot), which is what makes a score flap; white noise would average away. Each
expert also spikes (1-3 samples of a random value at its usual, i.e. over-confident,
variance) at `spike_rate` per sample.

Uncertain spans (`UNCERTAIN_KINDS`, about `uncertain_per_min` a minute, never overlapping)
are what the stabilizer's gate is for. Inside one the experts do not just get noisier: they
read the span itself, consistently wrong for seconds, and (being calibrated) say so with
a large variance:

| kind       | face            | scene                              | grammar                       | fused variance |
|------------|-----------------|------------------------------------|-------------------------------|----------------|
| dark       | absent          | reads "sad, calm" (-0.55, -0.45), var ~1 | reads "dark" (-0.9, -0.5), var 1.2 | ~0.5     |
| blur       | absent          | noise x2, var ~0.4                 | reads motion: arousal +0.7, var 0.5 | ~0.2     |
| occlusion  | absent          | reads the occluder (one random V/A for the span), var ~0.45 | the same, var 0.5 | ~0.25 |
| faces lost | absent          | a close-up it cannot read: noise x2, var ~0.4 | as usual           | ~0.08          |

So the largest fused variances reach past every gate tried (0.1-0.4), and each gate value
holds a different set of spans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..experts.base import ExpertSeries
from ..library.clusters import MoodClusters, name_clusters, slugify_unique

UNCERTAIN_KINDS: tuple[str, ...] = ("dark", "blur", "occlusion", "faces lost")
# span length range (s) per kind
_SPAN_S: dict[str, tuple[float, float]] = {
    "dark": (3.0, 10.0),
    "blur": (2.0, 6.0),
    "occlusion": (3.0, 8.0),
    "faces lost": (4.0, 12.0),
}


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


@dataclass(frozen=True)
class UncertainSpan:
    kind: str  # one of UNCERTAIN_KINDS
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SyntheticClip:
    t: np.ndarray
    true_va: np.ndarray  # [N, 2]
    boundaries: tuple[float, ...]  # true mood changes, seconds
    labels: tuple[int, ...]  # cluster of each true segment
    series: tuple[ExpertSeries, ...]
    cuts: tuple[float, ...]
    duration_s: float
    spans: tuple[UncertainSpan, ...] = ()


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


def uncertain_spans(
    rng: np.random.Generator, duration_s: float, per_min: float
) -> tuple[UncertainSpan, ...]:
    """Non-overlapping spans: exponential gaps (mean 60/per_min s), kinds drawn uniformly."""
    if per_min <= 0:
        return ()
    spans: list[UncertainSpan] = []
    pos = float(rng.exponential(60.0 / per_min))
    while pos < duration_s - 1.0:
        kind = UNCERTAIN_KINDS[int(rng.integers(len(UNCERTAIN_KINDS)))]
        lo, hi = _SPAN_S[kind]
        end = min(duration_s, pos + float(rng.uniform(lo, hi)))
        spans.append(UncertainSpan(kind, round(pos, 3), round(end, 3)))
        pos = end + 1.0 + float(rng.exponential(60.0 / per_min))
    return tuple(spans)


def _ar1(rng: np.random.Generator, n: int, sigma: float, sample_fps: float) -> np.ndarray:
    rho = 0.8 ** (1.0 / (sample_fps * 0.5))
    noise = np.zeros((n, 2))
    if n == 0:
        return noise
    eps = rng.normal(0.0, sigma * np.sqrt(1 - rho**2), size=(n, 2))
    noise[0] = rng.normal(0.0, sigma, size=2)
    for i in range(1, n):
        noise[i] = rho * noise[i - 1] + eps[i]
    return noise


def make_clip(
    seed: int,
    duration_s: float = 180.0,
    sample_fps: float = 2.0,
    *,
    jitter: float = 1.0,
    spike_rate: float = 0.03,
    uncertain_per_min: float = 2.0,
    clusters: MoodClusters | None = None,
) -> SyntheticClip:
    """A clip with mood segments of 12-40 s seen by three noisy experts, and uncertain spans
    (see the module docstring). `jitter` scales every sigma; `uncertain_per_min` 0 gives
    ordinary footage only.
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
        sigma: float, var: tuple[float, float], shrink: float
    ) -> tuple[np.ndarray, np.ndarray]:
        va = shrink * true_va + _ar1(rng, n, sigma * jitter, sample_fps)
        for i in np.flatnonzero(rng.random(n) < spike_rate):
            va[i : i + int(rng.integers(1, 4))] = rng.uniform(-1, 1, size=2)
        scale = rng.uniform(0.7, 1.3, size=n)[:, None]
        return va, np.asarray(var, dtype=np.float64)[None, :] * jitter**2 * scale

    scene_va, scene_var = expert(0.22, (0.22**2, 0.22**2), 1.0)
    face_va, face_var = expert(0.18, (0.18**2, 0.18**2), 1.0)
    face_on = _on_off(rng, n, dt, 15.0, 8.0)
    gram_va, gram_var = expert(0.30, (0.12, 0.08), 0.5)

    spans = uncertain_spans(rng, float(n * dt), uncertain_per_min)
    for span in spans:
        m = (t >= span.start_s) & (t < span.end_s)
        k = int(m.sum())
        if k == 0:
            continue
        face_on[m] = False  # no face is found in any of them
        wobble = rng.uniform(0.8, 1.3, size=(k, 1))  # the reported variance moves a little
        if span.kind == "dark":
            scene_va[m] = np.array([-0.55, -0.45]) + _ar1(rng, k, 0.3, sample_fps)
            scene_var[m] = 1.0 * wobble
            gram_va[m] = np.array([-0.9, -0.5]) + _ar1(rng, k, 0.1, sample_fps)
            gram_var[m] = 1.2 * wobble
        elif span.kind == "blur":
            scene_va[m] = true_va[m] + _ar1(rng, k, 0.44 * jitter, sample_fps)
            scene_var[m] = 0.4 * wobble
            gram_va[m, 1] = 0.7 + _ar1(rng, k, 0.1, sample_fps)[:, 1]
            gram_var[m] = 0.5 * wobble
        elif span.kind == "occlusion":
            occluder = rng.uniform(-0.8, 0.8, size=2)
            scene_va[m] = occluder + _ar1(rng, k, 0.15, sample_fps)
            scene_var[m] = 0.45 * wobble
            gram_va[m] = occluder + _ar1(rng, k, 0.15, sample_fps)
            gram_var[m] = 0.5 * wobble
        else:  # faces lost: a close-up the scene expert cannot read
            scene_va[m] = true_va[m] + _ar1(rng, k, 0.44 * jitter, sample_fps)
            scene_var[m] = 0.4 * wobble

    def series(name: str, va: np.ndarray, var: np.ndarray, present: np.ndarray) -> ExpertSeries:
        va = np.clip(va, -1, 1)
        return ExpertSeries(
            name=name,
            t=t,
            v=va[:, 0],
            a=va[:, 1],
            var_v=var[:, 0].copy(),
            var_a=var[:, 1].copy(),
            present=present,
            mode="trained",
        )

    always = np.ones(n, dtype=bool)
    all_series = (
        series("scene", scene_va, scene_var, always),
        series("face", face_va, face_var, face_on),
        series("grammar", gram_va, gram_var, always),
    )
    cuts = [b + rng.uniform(-0.3, 0.3) for b in bounds if rng.random() < 0.6]
    cuts += list(np.cumsum(rng.exponential(6.0, size=int(duration_s / 3))))
    cuts = sorted({round(float(c), 3) for c in cuts if 0.5 < c < duration_s - 0.5})
    return SyntheticClip(
        t=t,
        true_va=true_va,
        boundaries=tuple(bounds),
        labels=tuple(labels),
        series=all_series,
        cuts=tuple(cuts),
        duration_s=float(n * dt),
        spans=spans,
    )

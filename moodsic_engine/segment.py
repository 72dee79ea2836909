"""SEGMENT: stable V/A -> mood cluster per sample -> segments that tile the video.

1. Each sample's posterior over the library's mood clusters.
2. Hysteresis as a Viterbi path: changing mood costs `switch_penalty` nats, so a mood
   only changes when the evidence for the new one outweighs that cost (noise does not flap).
3. Segments shorter than `min_segment_s` merge into the neighbour that fits them best.
4. Boundaries snap to the nearest shot cut within `cut_snap_s` (when that keeps both
   neighbours long enough), then to the frame grid. Frame numbers are computed with exact
   rationals, so 29.97 and 23.976 material does not drift.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Protocol

import numpy as np

from .config import SegmentConfig
from .cue import Segment


class ClusterModel(Protocol):
    slugs: tuple[str, ...] | list[str]
    labels: tuple[str, ...] | list[str]

    def posterior(self, va: np.ndarray) -> np.ndarray: ...


def viterbi_labels(log_post: np.ndarray, switch_penalty: float) -> np.ndarray:
    """Most likely label path when every change of label costs `switch_penalty`."""
    n, k = log_post.shape
    score = log_post[0].copy()
    back = np.zeros((n, k), dtype=np.int64)
    for i in range(1, n):
        best = int(np.argmax(score))
        switch = score[best] - switch_penalty
        stay_better = score >= switch
        back[i] = np.where(stay_better, np.arange(k), best)
        score = np.where(stay_better, score, switch) + log_post[i]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def _runs(labels: list[int]) -> list[list[int]]:
    """[[start_index, end_index_exclusive, label], ...]"""
    runs: list[list[int]] = []
    for i, lab in enumerate(labels):
        if runs and runs[-1][2] == lab:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, lab])
    return runs


def _merge_short(
    runs: list[list[int]], bounds: np.ndarray, post: np.ndarray, min_len: float
) -> list[list[int]]:
    """Merge runs shorter than min_len (in seconds, via sample boundary times) into a neighbour."""

    def length(r: list[int]) -> float:
        return float(bounds[r[1]] - bounds[r[0]])

    while len(runs) > 1:
        lengths = [length(r) for r in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_len:
            break
        r = runs[i]
        candidates = [j for j in (i - 1, i + 1) if 0 <= j < len(runs)]
        # the neighbour whose mood the short run's own samples support most
        j = max(
            candidates, key=lambda c: (float(post[r[0] : r[1], runs[c][2]].mean()), length(runs[c]))
        )
        runs[i][2] = runs[j][2]
        merged: list[list[int]] = []
        for run in runs:
            if merged and merged[-1][2] == run[2]:
                merged[-1][1] = run[1]
            else:
                merged.append(list(run))
        runs = merged
    return runs


def _snap(
    boundaries: list[float], cuts: np.ndarray, tol: float, min_len: float, end: float
) -> list[float]:
    out = list(boundaries)
    for i, b in enumerate(out):
        if len(cuts) == 0:
            break
        order = np.argsort(np.abs(cuts - b))
        lo = out[i - 1] if i > 0 else 0.0
        hi = out[i + 1] if i + 1 < len(out) else end
        for c in cuts[order]:
            if abs(c - b) > tol:
                break
            if c - lo >= min_len - 1e-9 and hi - c >= min_len - 1e-9:
                out[i] = float(c)
                break
    return out


def segment_moods(
    t: np.ndarray,
    va: np.ndarray,
    clusters: ClusterModel,
    cuts: tuple[float, ...] | list[float] | np.ndarray,
    cfg: SegmentConfig | None = None,
    *,
    duration_s: float | None = None,
    fps: Fraction | None = None,
) -> list[Segment]:
    """Segments (track=None) tiling [0, duration) exactly, on the frame grid of `fps`."""
    cfg = cfg or SegmentConfig()
    t = np.asarray(t, dtype=np.float64)
    va = np.clip(np.nan_to_num(np.asarray(va, dtype=np.float64).reshape(-1, 2)), -1.0, 1.0)
    fps = Fraction(fps) if fps is not None else Fraction(25)
    if duration_s is None:
        duration_s = float(t[-1] + (t[-1] - t[-2] if len(t) > 1 else 1.0)) if len(t) else 1.0
    total_frames = max(1, int(round(Fraction(duration_s) * fps)))
    end = float(total_frames / fps)
    if len(t) == 0:
        t = np.array([0.0])
        va = np.zeros((1, 2))

    post = np.asarray(clusters.posterior(va), dtype=np.float64)
    labels = viterbi_labels(np.log(post + 1e-9), cfg.switch_penalty)
    # boundary time between samples i-1 and i is their midpoint; outer bounds are the clip ends
    bounds = np.concatenate([[0.0], (t[1:] + t[:-1]) / 2.0, [end]])
    runs = _merge_short(_runs(labels.tolist()), bounds, post, cfg.min_segment_s)

    starts = [float(bounds[r[0]]) for r in runs[1:]]
    starts = _snap(
        starts, np.asarray(sorted(cuts), dtype=np.float64), cfg.cut_snap_s, cfg.min_segment_s, end
    )
    frames = [0]
    kept_runs = [runs[0]]
    for s, run in zip(starts, runs[1:], strict=True):
        f = int(round(Fraction(s) * fps))
        if frames[-1] < f < total_frames:
            frames.append(f)
            kept_runs.append(run)
        else:  # rounding swallowed it: extend the previous segment
            kept_runs[-1] = [kept_runs[-1][0], run[1], kept_runs[-1][2]]
    frames.append(total_frames)

    segments: list[Segment] = []
    for i, run in enumerate(kept_runs):
        f0, f1 = frames[i], frames[i + 1]
        s0, s1 = float(f0 / fps), float(f1 / fps)
        inside = (t >= s0) & (t < s1)
        if not inside.any():
            inside = np.zeros(len(t), dtype=bool)
            inside[int(np.argmin(np.abs(t - (s0 + s1) / 2)))] = True
        k = int(run[2])
        mean_va = va[inside].mean(axis=0)
        conf = float(np.clip(post[inside, k].mean(), 0.0, 1.0))
        segments.append(
            Segment(
                start_s=s0,
                end_s=s1,
                start_frame=f0,
                end_frame=f1,
                mood=str(clusters.slugs[k]),
                mood_label=str(clusters.labels[k]),
                valence=float(np.clip(mean_va[0], -1, 1)),
                arousal=float(np.clip(mean_va[1], -1, 1)),
                confidence=conf if math.isfinite(conf) else 0.0,
            )
        )
    return segments

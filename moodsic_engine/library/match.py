"""Track matching: mood-cluster gate, nearest neighbour in V/A, no-repeat window, re-rolls.

For each segment the gate is its most probable mood cluster, widened to the top two when
that posterior is below `MatchConfig.cluster_gate`. Inside the gate the nearest track in V/A
wins (k = 1, KD-tree per cluster, so large catalogues stay fast), unless it was used within
the last `no_repeat` segments. Ties at equal distance are broken by a hash of the seed, so a
result is deterministic for a given seed. `reroll={i: n}` moves segment i to its n-th next
best track while every other segment keeps its choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..cue import TrackChoice
from . import Library

_TIE_EPS = 1e-9


def _tie_jitter(indices: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic per-(track, seed) jitter far below any real distance difference."""
    h = indices.astype(np.uint64) * np.uint64(2654435761) + np.uint64(
        (seed * 97531 + 12345) % (2**32)
    )
    h = (h ^ (h >> np.uint64(13))) % np.uint64(1_000_003)
    return h.astype(np.float64) / 1_000_003.0 * _TIE_EPS


def gate_clusters(post: np.ndarray, cluster_gate: float) -> list[int]:
    order = np.argsort(-post, kind="stable")
    gate = [int(order[0])]
    if len(order) > 1 and post[order[0]] < cluster_gate:
        gate.append(int(order[1]))
    return gate


def ranked_candidates(
    library: Library, va: np.ndarray, post: np.ndarray, cluster_gate: float, need: int, seed: int
) -> list[int]:
    """Track indices, best first: the gate's tracks by V/A distance, then the rest as fallback."""
    gate = gate_clusters(post, cluster_gate)
    order = [int(k) for k in np.argsort(-post, kind="stable")]
    ranked: list[int] = []
    for group in (gate, [k for k in order if k not in gate]):
        dists: list[np.ndarray] = []
        idxs: list[np.ndarray] = []
        for k in group:
            tree, members = library.tree(k)
            if tree is None:
                continue
            kk = min(need, len(members))
            d, j = tree.query(np.asarray(va, dtype=np.float64), k=kk)
            d, j = np.atleast_1d(d), np.atleast_1d(j)
            dists.append(d)
            idxs.append(members[j])
        if dists:
            d = np.concatenate(dists)
            ix = np.concatenate(idxs)
            ranked.extend(int(i) for i in ix[np.argsort(d + _tie_jitter(ix, seed), kind="stable")])
        if len(ranked) >= need:
            break
    return ranked


def match_segments(
    library: Library,
    seg_va: np.ndarray,
    seg_post: np.ndarray,
    cfg: Any,
    seed: int = 0,
    reroll: dict[int, int] | None = None,
    arcs: Sequence[np.ndarray] | None = None,
    arc_dt: float = 0.5,
) -> list[TrackChoice]:
    """Choose one track per segment; see the module docstring for the rules.

    `arcs` (optional): each segment's own V/A over time, [T, 2] sampled every `arc_dt` s.
    A chosen track with a V/A curve (DEAM dynamic annotations) then starts where its curve
    follows that arc best; without arcs, where it is closest to the segment's V/A.
    """
    seg_va = np.asarray(seg_va, dtype=np.float64).reshape(-1, 2)
    if len(seg_va) == 0:
        return []
    seg_post = np.asarray(seg_post, dtype=np.float64).reshape(len(seg_va), -1)
    reroll = {int(i): int(n) for i, n in (reroll or {}).items() if n > 0}
    m = len(library.tracks)
    keys: dict[int, str] = {}

    def key(t: int) -> str:
        """What "the same track" means for the no-repeat window: its audio file (a manifest may
        list one file twice), else its id."""
        if t not in keys:
            tr = library.tracks[t]
            keys[t] = tr.path or f"id:{tr.id}"
        return keys[t]

    # A library with fewer distinct tracks than the window would otherwise repeat one track in
    # consecutive segments: the window shrinks so each segment still differs from the last.
    distinct = len({key(t) for t in range(m)}) if m <= 64 else m
    window = max(0, min(int(cfg.no_repeat), distinct - 1))
    ranked_all: list[list[int]] = []
    for i in range(len(seg_va)):
        need = min(m, window + 1 + reroll.get(i, 0) + 1)
        ranked_all.append(
            ranked_candidates(library, seg_va[i], seg_post[i], cfg.cluster_gate, need, seed)
        )

    def widen(i: int, enough: Any) -> list[int]:
        """Segment i's candidates, queried deeper (doubling, up to the whole library) until
        `enough(ranked)`; a million-track library is not ranked whole for one re-roll."""
        ranked = ranked_all[i]
        k = len(ranked)
        while k < m and not enough(ranked):
            k = min(m, max(2 * k, 8))
            ranked = ranked_candidates(library, seg_va[i], seg_post[i], cfg.cluster_gate, k, seed)
        ranked_all[i] = ranked
        return ranked

    def pick(i: int, exclude: set[str]) -> tuple[int, int]:
        # all near ones may be recent (files listed twice): look deeper then
        ranked = widen(i, lambda r: any(key(t) not in exclude for t in r))
        free = [(r, t) for r, t in enumerate(ranked) if key(t) not in exclude]
        if not free:
            free = list(enumerate(ranked))  # library smaller than the window: repeats allowed
        return free[0]

    base: list[tuple[int, int]] = []  # (rank, track index) per segment, without re-rolls
    for i in range(len(ranked_all)):
        recent = {key(t) for _, t in base[max(0, i - window) : i]}
        base.append(pick(i, recent))
    final = list(base)
    for i, n in sorted(reroll.items()):
        if not 0 <= i < len(seg_va):
            continue
        # Neighbours keep their choices; a re-rolled neighbour's new track is taken too.
        near = [j for j in range(max(0, i - window), min(len(base), i + window + 1)) if j != i]
        neighbours = {key(base[j][1]) for j in near} | {key(final[j][1]) for j in near}

        def enough(r: list[int], i: int = i, n: int = n, nb: set[str] = neighbours) -> bool:
            free = [t for t in r if key(t) not in nb]
            start = free.index(base[i][1]) if base[i][1] in free else -1
            return len(free) > start + n

        ranked = widen(i, enough)
        # Re-roll n: skip the base choice's position among free tracks, then n-1 more.
        free = [t for t in ranked if key(t) not in neighbours]
        start = free.index(base[i][1]) if base[i][1] in free else -1
        target = free[(start + n) % len(free)] if free else base[i][1]
        final[i] = (ranked.index(target), target)
    out = []
    for i, (rank, t) in enumerate(final):
        in_s = 0.0
        curve = library.tracks[t].curve
        if curve:
            arc = arcs[i] if arcs is not None and i < len(arcs) else seg_va[i][None, :]
            in_s = arc_offset(curve, np.asarray(arc, dtype=np.float64).reshape(-1, 2), arc_dt)
        out.append(_choice(library, t, rank, in_s))
    return out


def arc_offset(curve: Sequence[Sequence[float]], arc: np.ndarray, arc_dt: float = 0.5) -> float:
    """Start time in a track whose V/A curve ((t, v, a) rows) best follows `arc` [T, 2].

    The arc is resampled to the curve's step and slid along it; the least mean squared
    V/A distance wins. An arc longer than the curve starts at the curve's beginning.
    """
    c = np.asarray(curve, dtype=np.float64).reshape(-1, 3)
    t, cva = c[:, 0], c[:, 1:]
    if len(c) == 0:
        return 0.0
    step = float(np.median(np.diff(t))) if len(t) > 1 else arc_dt
    span = (len(arc) - 1) * arc_dt
    n = max(1, int(round(span / step)) + 1)
    if n > len(cva):
        return float(t[0])
    x_old = np.arange(len(arc)) * arc_dt
    x_new = np.arange(n) * step
    target = np.stack([np.interp(x_new, x_old, arc[:, k]) for k in (0, 1)], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(cva, n, axis=0)  # [W, 2, n]
    err = np.mean((windows - target.T[None]) ** 2, axis=(1, 2))
    return float(t[int(np.argmin(err))])


def _choice(library: Library, index: int, rank: int, in_s: float = 0.0) -> TrackChoice:
    t = library.tracks[index]
    return TrackChoice(
        id=t.id,
        title=t.title,
        artist=t.artist,
        path=t.path,
        valence=float(t.valence),
        arousal=float(t.arousal),
        in_s=float(in_s),
        duration_s=t.duration_s,
        rank=int(rank),
    )

"""The reference implementation's stabilizer and mood switching, the baseline of `moodsic
bench stability`, exactly as the reference prototype did it (not our stabilizer with other
numbers: ours adds a maximum hold, sample-spacing-aware alpha, Viterbi hysteresis, merging
of short segments and cut snapping, none of which it had).

1. EMA: at each sample, if the mean of the fused V and A variances is above `gate` (0.4),
   or nothing was fused, the value is held, for as long as that lasts (no maximum hold);
   otherwise value += alpha * (fused - value), with alpha = 0.7 per sample whatever the
   spacing. The first fused sample starts the value.
2. Mood per sample: the cluster of highest posterior for the stabilized value (no
   hysteresis: no switch cost, no smoothing of labels).
3. Dwell: the current mood is kept for `dwell_s` (4 s) after it began; after that, the
   first sample whose mood differs forces the switch there. There is no other condition
   and no snapping to shot cuts. The boundary lies between the last sample of the old mood
   and the first of the new (their midpoint), then on the frame grid, the same convention
   as `segment_moods`, so the comparison measures decisions, not a half-sample offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..segment import ClusterModel


@dataclass(frozen=True)
class ReferenceSettings:
    """The reference prototype's numbers."""

    ema_alpha: float = 0.7  # per sample
    gate: float = 0.4  # hold while the mean fused variance is above this
    dwell_s: float = 4.0  # a mood lasts at least this long; then a differing sample switches


REFERENCE = ReferenceSettings()


def reference_stabilize(
    va: np.ndarray, var: np.ndarray, settings: ReferenceSettings = REFERENCE
) -> tuple[np.ndarray, np.ndarray]:
    """The reference EMA with its hold.

    Parameters
    ----------
    va : [N, 2] fused valence/arousal (NaN where nothing was fused)
    var : [N, 2] fused variances (inf where nothing was fused)

    Returns
    -------
    (stable va [N, 2], held [N] bool). Before the first fused sample the value is 0, held.
    """
    va = np.asarray(va, dtype=np.float64).reshape(-1, 2)
    var = np.asarray(var, dtype=np.float64).reshape(-1, 2)
    n = len(va)
    out = np.zeros((n, 2))
    held = np.zeros(n, dtype=bool)
    state: np.ndarray | None = None
    for i in range(n):
        fused = bool(np.all(np.isfinite(va[i])))
        uncertain = not fused or not float(np.mean(var[i])) <= settings.gate
        if state is None:
            if fused:
                state = va[i].copy()
                out[i] = state
            else:
                held[i] = True
            continue
        if uncertain:
            held[i] = True
        else:
            state = state + settings.ema_alpha * (va[i] - state)
        out[i] = state
    return out, held


def reference_switches(
    t: np.ndarray,
    stable: np.ndarray,
    clusters: ClusterModel,
    settings: ReferenceSettings = REFERENCE,
    fps: Fraction = Fraction(25),
) -> tuple[np.ndarray, list[float]]:
    """The reference mood switching: per-sample best cluster, kept for at least the dwell.

    Parameters
    ----------
    t : [N] sample times, seconds
    stable : [N, 2] stabilized V/A

    Returns
    -------
    (mood index per sample [N], boundary times in seconds on the frame grid of `fps`)
    """
    t = np.asarray(t, dtype=np.float64)
    n = len(t)
    if n == 0:
        return np.zeros(0, dtype=np.int64), []
    post = np.asarray(clusters.posterior(np.asarray(stable, dtype=np.float64)), dtype=np.float64)
    best = np.argmax(post, axis=1)
    mood = np.zeros(n, dtype=np.int64)
    mood[0] = best[0]
    since = float(t[0])
    bounds: list[float] = []
    for i in range(1, n):
        mood[i] = mood[i - 1]
        if best[i] != mood[i - 1] and t[i] - since >= settings.dwell_s - 1e-9:
            mood[i] = best[i]
            since = float(t[i])
            mid = (t[i - 1] + t[i]) / 2.0
            bounds.append(float(round(Fraction(mid) * fps) / fps))
    return mood, bounds


def reference_boundaries(
    t: np.ndarray,
    va: np.ndarray,
    var: np.ndarray,
    clusters: ClusterModel,
    settings: ReferenceSettings = REFERENCE,
    fps: Fraction = Fraction(25),
) -> list[float]:
    """Fused V/A and variances -> the reference's mood boundaries (seconds)."""
    stable, _ = reference_stabilize(va, var, settings)
    return reference_switches(t, stable, clusters, settings, fps)[1]

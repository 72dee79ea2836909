"""Loudness and peaks: integrated loudness (ITU-R BS.1770-4), loudness range (EBU Tech 3342),
true peak, a look-ahead true-peak limiter, normalisation to a target, and the per-track gain.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

_LIMITER_WINDOW_S = 0.05
_MAX_TRACK_GAIN_DB = 24.0


def _meter(sr: int) -> Any:
    import pyloudnorm

    return pyloudnorm.Meter(sr)


def _hop_power(y: np.ndarray, sr: int) -> tuple[np.ndarray, Any] | None:
    """K-weighted mean square per 100 ms hop, summed over channels ([n_hops]), with the meter;
    None where pyloudnorm's filters are not reachable or the channel weights are not all 1.

    pyloudnorm's own loop copies the whole signal to float64 and filters it at once (about
    0.7 GB for a 10-minute stereo mix); this streams the same K-weighting filters (taken from
    pyloudnorm's meter) over 10 s chunks and keeps only 100 ms sums of squares.
    """
    from scipy.signal import lfilter, lfilter_zi

    n, channels = y.shape
    meter = _meter(sr)
    stages = getattr(meter, "_filters", None)
    if not isinstance(stages, dict) or channels > 3:
        return None
    coeffs = [
        (np.asarray(f.b, dtype=np.float64), np.asarray(f.a, dtype=np.float64))
        for f in stages.values()
    ]
    hop = int(round(0.1 * sr))
    n_hops = n // hop
    sums = np.zeros((n_hops, channels))
    chunk = hop * 100
    for c in range(channels):
        state = [lfilter_zi(b, a) * 0.0 for b, a in coeffs]
        for s in range(0, n_hops * hop, chunk):
            e = min(s + chunk, n_hops * hop)
            x = y[s:e, c].astype(np.float64)
            for j, (b, a) in enumerate(coeffs):
                x, state[j] = lfilter(b, a, x, zi=state[j])
            sums[s // hop : e // hop, c] = np.square(x).reshape(-1, hop).sum(axis=1)
    return sums.sum(axis=1) / hop, meter


def _windows(power: np.ndarray, hops: int) -> np.ndarray:
    """Mean power of every window of `hops` consecutive hops (one per hop), [n - hops + 1]."""
    if len(power) < hops:
        return np.zeros(0)
    c = np.concatenate([[0.0], np.cumsum(power)])
    return (c[hops:] - c[:-hops]) / hops


def _lufs(power: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -0.691 + 10 * np.log10(power)


def integrated_lufs(y: np.ndarray, sr: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated), as pyloudnorm measures it, of [n, ch]."""
    if len(y) < max(1, int(0.4 * sr)):
        return -math.inf
    y = np.asarray(y).reshape(len(y), -1)
    found = _hop_power(y, sr)
    if found is None or len(found[0]) < 4:
        return float(_meter(sr).integrated_loudness(np.asarray(y, dtype=np.float64)))
    blocks = _windows(found[0], 4)  # 400 ms blocks with 75 % overlap = four 100 ms hops
    loud = _lufs(blocks)
    gated = blocks[loud >= -70.0]
    if len(gated) == 0:
        return -math.inf
    relative = float(_lufs(gated.mean())) - 10.0
    final = blocks[(loud >= -70.0) & (loud >= relative)]
    if len(final) == 0:
        return -math.inf
    return float(_lufs(final.mean()))


def lufs_over(y: np.ndarray, sr: int, regions: list[tuple[float, float]]) -> float:
    """Integrated loudness of [n, ch] over the (start_s, end_s) regions only, joined (a
    dialogue-gated measure: the speech, not the pauses between it)."""
    parts = [y[max(0, int(round(a * sr))) : int(round(b * sr))] for a, b in regions]
    parts = [p for p in parts if len(p)]
    if not parts:
        return -math.inf
    return integrated_lufs(np.concatenate(parts), sr)


def loudness_range(y: np.ndarray, sr: int) -> float:
    """Loudness range (LRA, EBU Tech 3342) of [n, ch] in LU; NaN when shorter than 3 s.

    Short-term loudness (3 s windows) every 100 ms; absolute gate at -70 LUFS; relative gate
    20 LU under the power mean of what passed; LRA = 95th minus 10th percentile of the rest.
    """
    y = np.asarray(y).reshape(len(y), -1)
    found = _hop_power(y, sr) if len(y) else None
    if found is None:
        return math.nan
    short = _windows(found[0], 30)
    if len(short) == 0:
        return math.nan
    loud = _lufs(short)
    gated = short[loud >= -70.0]
    if len(gated) == 0:
        return 0.0
    relative = float(_lufs(gated.mean())) - 20.0
    kept = loud[(loud >= -70.0) & (loud >= relative)]
    return float(np.percentile(kept, 95) - np.percentile(kept, 10))


def track_gain(y: np.ndarray, sr: int, target: float) -> float:
    """Linear gain bringing a track [n, channels] to `target` LUFS (at most +24 dB)."""
    lufs = integrated_lufs(y, sr)
    if not math.isfinite(lufs):
        return 1.0
    # A near-silent file is not pushed up into its noise floor.
    return float(10 ** (min(_MAX_TRACK_GAIN_DB, target - lufs) / 20))


def true_peak(y: np.ndarray, oversample: int = 4) -> np.ndarray:
    """Per-sample true-peak estimate (max over channels and the oversampled points), [n]."""
    from scipy.signal import resample_poly

    if len(y) == 0:
        return np.zeros(0, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
    n = len(y)
    out = np.empty(n, dtype=np.float32)
    block, pad = 10 * 48000, 64  # blocks keep a long mix's 4x copy small; pad covers the filter
    for s in range(0, n, block):
        e = min(n, s + block)
        a, b = max(0, s - pad), min(n, e + pad)
        up = np.abs(resample_poly(y[a:b], oversample, 1, axis=0))
        up = up[(s - a) * oversample : (e - a) * oversample]
        out[s:e] = up.reshape(e - s, oversample, -1).max(axis=(1, 2))
    return out


def smooth_gain(need: np.ndarray, sr: int) -> np.ndarray:
    """A smooth gain [n] at or below `need` [n] everywhere (look-ahead and release of
    `_LIMITER_WINDOW_S`), so a limiter does not distort."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    need = np.asarray(need, dtype=np.float32)
    half = max(1, int(_LIMITER_WINDOW_S * sr))
    # min over +-half, then a box of half+1: every averaged value is a minimum over a
    # window containing the sample, so the smooth gain stays at or below what is needed.
    g = uniform_filter1d(
        minimum_filter1d(need, 2 * half + 1, mode="nearest"), half + 1, mode="nearest"
    )
    g = np.minimum(g, need)
    # a hair under what is needed where it acts; untouched (exactly 1) everywhere else
    return np.where(g < 1.0, g * np.float32(0.999), np.float32(1.0)).astype(np.float32)


def _limiter_passes(
    y: np.ndarray, sr: int, ceiling_db: float
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The look-ahead true-peak limiter's passes over [n, ch]: (signal after the pass, that
    pass's gain [n]); at most four, until no true peak exceeds the ceiling."""
    ceiling = 10 ** (ceiling_db / 20)
    out = np.asarray(y, dtype=np.float32)
    for _ in range(4):
        peaks = true_peak(out)
        if peaks.max(initial=0.0) <= ceiling:
            break
        need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12)).astype(np.float32)
        step = smooth_gain(need, sr)
        out = out * step[:, None]
        yield out, step


def limit_gain(y: np.ndarray, sr: int, ceiling_db: float) -> np.ndarray:
    """The gain [n] (at most 1) the look-ahead true-peak limiter applies to [n, ch]."""
    total = np.ones(len(y), dtype=np.float32)
    for _, step in _limiter_passes(y, sr, ceiling_db):
        total *= step
    return total


def limit(y: np.ndarray, sr: int, ceiling_db: float) -> np.ndarray:
    """Look-ahead true-peak limiter: a smooth gain that never lets a peak exceed the ceiling."""
    out = np.asarray(y, dtype=np.float32)
    for limited, _ in _limiter_passes(y, sr, ceiling_db):
        out = limited
    return out


class BlockLimiter:
    """`limit`'s look-ahead true-peak limiter, one block at a time (live audio).

    Each block's true peak (`true_peak`) and smooth gain (`smooth_gain`) are computed with
    enough of the signal on both sides that every output sample gets the gain a single pass of
    `limit` over the whole stream would give it, so blocks join without a step. That needs
    `delay` samples of look-ahead: `process` returns its input `delay` samples late (silence
    first). A caller that wants no latency feeds `delay` samples ahead of what it plays.
    """

    _TP_PAD = 64  # true_peak's filter reach (as its own block padding)

    def __init__(self, sr: int, ceiling_db: float, channels: int = 2) -> None:
        half = max(1, int(_LIMITER_WINDOW_S * sr))
        reach = half + half // 2 + 2  # how far smooth_gain's min and box filters look
        self.ceiling = float(10 ** (ceiling_db / 20))
        self.sr = int(sr)
        self.delay = reach + self._TP_PAD
        self._hist = np.zeros((2 * self.delay, channels), dtype=np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        """The next block [n, ch] in; the limited block from `delay` samples earlier out."""
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        n, d = len(x), self.delay
        if n == 0:
            return x
        buf = np.concatenate([self._hist, x])
        self._hist = buf[-2 * d :]
        out = buf[d : d + n]  # the samples leaving the delay line
        # Need [out - reach, out + n + reach) exactly: true peaks of that span plus their pad.
        peaks = true_peak(buf)[self._TP_PAD : len(buf) - self._TP_PAD]
        if peaks.max(initial=0.0) <= self.ceiling:
            return out.copy()
        need = np.minimum(1.0, self.ceiling / np.maximum(peaks, 1e-12)).astype(np.float32)
        gain = smooth_gain(need, self.sr)[d - self._TP_PAD : d - self._TP_PAD + n]
        return out * gain[:, None]


def normalize(y: np.ndarray, sr: int, target_lufs: float, ceiling_db: float) -> np.ndarray:
    """Gain to the integrated target, limit true peaks, and re-gain (the limiter costs loudness)."""
    out = np.asarray(y, dtype=np.float32)
    for _ in range(5):
        lufs = integrated_lufs(out, sr)
        if not math.isfinite(lufs):
            return out
        if abs(lufs - target_lufs) < 0.1 and true_peak(out).max(initial=0) <= 10 ** (
            ceiling_db / 20
        ):
            break
        out = limit(out * np.float32(10 ** ((target_lufs - lufs) / 20)), sr, ceiling_db)
    return out

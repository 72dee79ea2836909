"""Integrated loudness (ITU-R BS.1770, LUFS) with numpy alone, for Blender's Python.

Blender ships numpy but not scipy, so the K-weighting filter is applied in the frequency
domain: the two biquads' magnitude response multiplies the spectrum. Loudness is an energy
measure, so the (zero-phase instead of causal) phase does not matter; only a few
milliseconds at the edges differ. Gating follows the standard: 400 ms blocks with 75 %
overlap, absolute gate -70 LUFS, relative gate -10 LU.
"""

from __future__ import annotations

import math

import numpy as np


def _biquad_response(b: tuple[float, ...], a: tuple[float, ...], w: np.ndarray) -> np.ndarray:
    z1 = np.exp(-1j * w)
    z2 = z1 * z1
    return (b[0] + b[1] * z1 + b[2] * z2) / (a[0] + a[1] * z1 + a[2] * z2)


def k_weighting(rate: float, n_bins: int, n_fft: int) -> np.ndarray:
    """|H(f)| of the BS.1770 pre-filter at rfft bins (libebur128's design: exact at 48 kHz)."""
    w = 2.0 * np.pi * np.arange(n_bins) / n_fft
    # High shelf, about +4 dB above 1.7 kHz (the head's acoustic effect).
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf_b = (
        (vh + vb * k / q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
    )
    shelf_a = (1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0)
    # High pass (RLB weighting) at about 38 Hz.
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1.0 + k / q + k * k
    hp_b = (1.0, -2.0, 1.0)
    hp_a = (1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0)
    return np.abs(_biquad_response(shelf_b, shelf_a, w) * _biquad_response(hp_b, hp_a, w))


def integrated_loudness(samples: np.ndarray, rate: float) -> float:
    """LUFS of `samples` ([n] or [n, channels], float, full scale 1.0); -inf for silence."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    block = int(round(0.4 * rate))
    if n < block or block <= 0:
        return float("-inf")
    spectrum = np.fft.rfft(x, axis=0)
    spectrum *= k_weighting(rate, spectrum.shape[0], n)[:, None]
    y = np.fft.irfft(spectrum, n=n, axis=0)
    step = max(1, block // 4)
    power = np.cumsum(np.concatenate([np.zeros((1, x.shape[1])), y * y]), axis=0)
    starts = np.arange(0, n - block + 1, step)
    z = (power[starts + block] - power[starts]) / block  # mean square per block and channel
    # Channel weights: 1.0 for up to stereo; surround channels (4, 5 of 5.1) weigh 1.41.
    weights = np.ones(x.shape[1])
    if x.shape[1] == 6:
        weights[[3]] = 0.0  # LFE
        weights[[4, 5]] = 1.41
    energy = z @ weights
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(energy)
    keep = block_lufs > -70.0
    if not np.any(keep):
        return float("-inf")
    relative = -0.691 + 10.0 * math.log10(float(np.mean(energy[keep]))) - 10.0
    keep &= block_lufs > relative
    return float(-0.691 + 10.0 * math.log10(float(np.mean(energy[keep]))))

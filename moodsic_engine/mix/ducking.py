"""Ducking: speech regions in the video's own audio (silero-vad, channel by channel where the
channels differ) and the gain envelope that lowers the music under them.
"""

from __future__ import annotations

import numpy as np

from ..config import MixConfig
from ..errors import ResourceError
from .audio import resample


def speech_regions(audio: np.ndarray, sr: int) -> list[tuple[float, float]]:
    """Speech (start_s, end_s) in the audio, found by silero-vad (its model ships in the package).

    `audio` is [n] or [n, channels]. Channels that carry the same signal are listened to as
    one (their mean); channels that differ (a phase-inverted pair that cancels in a mono sum,
    two speakers on two lavaliers) are listened to one by one and their speech joined.
    """
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim == 1:
        y = y[:, None]
    if len(y) < sr // 4:
        return []
    if y.shape[1] == 1 or _channels_agree(y):
        return _vad(y.mean(axis=1), sr)
    found: list[tuple[float, float]] = []
    for channel in range(y.shape[1]):
        if np.abs(y[:, channel]).max(initial=0) > 1e-4:
            found.extend(_vad(y[:, channel], sr))
    return _union(found)


def _channels_agree(y: np.ndarray) -> bool:
    """Whether every channel carries the same signal (mono speech in a stereo file): their
    mean keeps nearly all of the loudest channel's energy."""
    energy = np.mean(np.square(y, dtype=np.float64), axis=0)
    mean_energy = float(np.mean(np.square(y.mean(axis=1), dtype=np.float64)))
    return mean_energy >= 0.8 * float(energy.max(initial=0.0))


def _union(regions: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(regions):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _vad(mono: np.ndarray, sr: int) -> list[tuple[float, float]]:
    """silero-vad over one channel [n] at `sr`."""
    try:
        import torch
        from silero_vad import get_speech_timestamps, load_silero_vad
    except ImportError:
        raise ResourceError(
            "silero-vad is not installed (pip install silero-vad) for ducking"
        ) from None
    mono16 = resample(np.asarray(mono, dtype=np.float32)[:, None], sr, 16000)[:, 0]
    import warnings

    with warnings.catch_warnings():
        # silero-vad's loader trips deprecation notices in importlib/torch.jit; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        model = load_silero_vad()
    with torch.no_grad():
        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(mono16)), model, sampling_rate=16000
        )
    return [(s["start"] / 16000.0, s["end"] / 16000.0) for s in stamps]


def speech_shape(n: int, sr: int, regions: list[tuple[float, float]], cfg: MixConfig) -> np.ndarray:
    """How far each sample is into ducking, [n] in [0, 1]: 1 under speech, ramping up over
    `duck_attack_s` before each region (the audio is known in advance) and down over
    `duck_release_s` after it. Regions whose ramps would touch are merged, so the music does
    not pump between words."""
    out = np.zeros(n, dtype=np.float64)
    att, rel = max(1, int(cfg.duck_attack_s * sr)), max(1, int(cfg.duck_release_s * sr))
    for s, e in merged_regions(regions, cfg):
        a, b = int(round(s * sr)), int(round(e * sr))
        lo, hi = max(0, a - att), min(n, b + rel)
        idx = np.arange(lo, hi)
        part = np.ones(len(idx))
        ramp_in = idx < a
        part[ramp_in] = (idx[ramp_in] - (a - att)) / att
        ramp_out = idx >= b
        part[ramp_out] = 1 - (idx[ramp_out] - b) / rel
        out[lo:hi] = np.maximum(out[lo:hi], np.clip(part, 0, 1))
    return out


def merged_regions(regions: list[tuple[float, float]], cfg: MixConfig) -> list[tuple[float, float]]:
    """Speech regions with gaps shorter than attack + release closed (the music stays down)."""
    merged: list[list[float]] = []
    for s, e in sorted(regions):
        if merged and s - merged[-1][1] < cfg.duck_attack_s + cfg.duck_release_s:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(a, b) for a, b in merged]


def duck_envelope(
    n: int,
    sr: int,
    regions: list[tuple[float, float]],
    cfg: MixConfig,
    depth_db: float | None = None,
) -> np.ndarray:
    """Linear gain [n]: `depth_db` (default `cfg.duck_db`) under speech, ramping in dB over
    attack_s before each region and back over release_s after it (see `speech_shape`)."""
    depth = -abs(cfg.duck_db if depth_db is None else depth_db)
    db = depth * speech_shape(n, sr, regions, cfg)
    return (10 ** (db / 20)).astype(np.float32)

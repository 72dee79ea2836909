"""Click tracks on a beat grid for placement tests: clicks on every beat of a (fractional) tempo,
the first downbeat where asked, pickups before it, and the `.beats.json` sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 48000
DOWNBEAT, BEAT, PICKUP = 0.8, 0.4, 0.2  # click amplitudes: what an onset's peak tells


def click_track(
    path: Path,
    *,
    bpm: float,
    first_s: float,
    bars: int,
    extra_s: float,
    freq: float = 3000.0,
    decay_s: float = 0.001,
) -> Path:
    """Clicks on every beat of `bpm` (fractional), downbeat first at `first_s`, pickups before
    it; `bars` whole bars after it and `extra_s` more (a partial bar: never looped). A sidecar
    gives the grid, as the built-in library writes it. A longer `decay_s` narrows the clicks'
    spectrum (tracks told apart by frequency band)."""
    beat = 60.0 / bpm
    n = int(round((first_s + bars * 4 * beat + extra_s) * SR))
    y = np.zeros(n, dtype=np.float64)
    t = np.arange(int(5 * decay_s * SR)) / SR
    burst = np.sin(2 * np.pi * freq * t) * np.exp(-t / decay_s)
    if decay_s > 0.002:  # a Hann-shaped tone burst: its energy stays in its band
        burst = np.sin(2 * np.pi * freq * t) * np.hanning(len(t))
    k = -int(first_s // beat)
    while (at := first_s + k * beat) * SR + len(burst) < n:
        amp = PICKUP if k < 0 else DOWNBEAT if k % 4 == 0 else BEAT
        s = int(round(at * SR))
        y[s : s + len(burst)] += amp * burst
        k += 1
    sf.write(str(path), np.stack([y, y], axis=1).astype(np.float32), SR, subtype="FLOAT")
    grid = {"tempo_bpm": bpm, "beats_per_bar": 4, "first_beat_s": first_s}
    Path(f"{path}.beats.json").write_text(json.dumps(grid))
    return path

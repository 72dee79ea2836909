"""Bar grids of music tracks: from a `<audio file>.beats.json` sidecar (the built-in library
writes them) or, when asked, from librosa's beat tracker."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BeatGrid:
    bar_s: float  # length of one bar
    first_s: float  # first downbeat

    # A time within this of a downbeat is on it. Cue sheets keep in-points to 6 decimals, so a
    # downbeat read back from one can sit up to 5e-7 s late; a tighter tolerance moved such a
    # track a whole bar each time a placed cue was placed again.
    _ON_BEAT_S = 2e-6

    def downbeat_at_or_after(self, t: float) -> float:
        k = math.ceil((t - self.first_s - self._ON_BEAT_S) / self.bar_s)
        return self.first_s + max(0, k) * self.bar_s

    def downbeat_at_or_before(self, t: float) -> float:
        k = math.floor((t - self.first_s + self._ON_BEAT_S) / self.bar_s)
        return self.first_s + max(0, k) * self.bar_s

    def divided(self, parts: int) -> BeatGrid:
        """The grid of every 1/`parts` of a bar (its beats, for 4) with the same phase: its
        "downbeats" are this grid's downbeats and the points between them."""
        return BeatGrid(bar_s=self.bar_s / parts, first_s=self.first_s)


_BAR_RANGE_S = (0.25, 30.0)  # a bar of 4 beats at 960..8 BPM: anything else is not a grid


def _sidecar_grid(d: Any) -> BeatGrid | None:
    """A `.beats.json` sidecar's grid ({"bar_s"} or {"tempo_bpm", "beats_per_bar"}, plus
    "first_beat_s"), or None when it does not describe a usable one: zero/negative/absurd
    tempos or bars, non-finite numbers, booleans and non-objects are ignored (they crashed
    placement or put a track's start at 1e9 s). The first downbeat is taken within one bar."""

    def num(x: Any) -> float | None:
        if isinstance(x, bool) or not isinstance(x, int | float | str):
            return None
        try:
            v = float(x)
        except ValueError:
            return None
        return v if math.isfinite(v) else None

    if not isinstance(d, dict):
        return None
    bar = num(d.get("bar_s"))
    if bar is None or bar <= 0:
        tempo, beats = num(d.get("tempo_bpm")), num(d.get("beats_per_bar", 4))
        if tempo is None or beats is None or tempo <= 0 or beats < 1 or beats != int(beats):
            return None
        bar = 60.0 / tempo * beats
    if not _BAR_RANGE_S[0] <= bar <= _BAR_RANGE_S[1]:
        return None
    first = num(d.get("first_beat_s", 0.0))
    return BeatGrid(bar_s=bar, first_s=(first or 0.0) % bar)


def beat_grid(path: str, y: np.ndarray, sr: int, *, detect: bool) -> BeatGrid | None:
    """A track's bar grid: from its `.beats.json` sidecar, else librosa when `detect`."""
    side = Path(f"{path}.beats.json")
    if side.is_file():
        try:
            grid = _sidecar_grid(json.loads(side.read_text(encoding="utf-8")))
            if grid is not None:
                return grid
        except (OSError, ValueError, RecursionError):
            pass  # unreadable sidecar: as if there were none
    if not detect or len(y) < sr * 4:
        return None
    import librosa

    mono = (
        librosa.resample(y.mean(axis=1), orig_sr=sr, target_sr=22050)
        if sr != 22050
        else y.mean(axis=1)
    )
    tempo, beats = librosa.beat.beat_track(y=mono, sr=22050, units="time")
    tempo = float(np.atleast_1d(tempo)[0])
    if not np.isfinite(tempo) or tempo < 40 or len(beats) < 8:
        return None
    beat_s = 60.0 / tempo
    # Downbeat phase: the beat (of four) with the strongest onsets starts the bar.
    env = librosa.onset.onset_strength(y=mono, sr=22050)
    frames = librosa.time_to_frames(beats, sr=22050)
    frames = frames[frames < len(env)]
    strength = [float(env[frames[p::4]].mean()) if len(frames[p::4]) else 0.0 for p in range(4)]
    phase = int(np.argmax(strength))
    first = float(beats[phase]) if phase < len(beats) else float(beats[0])
    first = first % (4 * beat_s)
    return BeatGrid(bar_s=4 * beat_s, first_s=first)

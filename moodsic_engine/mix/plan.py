"""Where the music goes: bar grids (sidecar or librosa), loop lengths, start points and the
crossfade halves at segment boundaries, and `place_tracks`, which writes the start points into
the cue sheet so every front end agrees with the mixdown.

Beat grids come from a `<audio file>.beats.json` sidecar (the built-in library writes them)
or, when `MixConfig.beat_align` is on, from librosa's beat tracker.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import MixConfig
from ..cue import CueSheet
from ..ffmpeg import quiet_native_stderr
from .audio import read_audio


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


def _loop_len(y: np.ndarray, sr: int, grid: BeatGrid | None) -> int:
    """The loop body: whole bars from the grid's first downbeat, else the whole track."""
    if grid is None:
        return len(y)
    bars = math.floor((len(y) / sr - grid.first_s) / grid.bar_s + 1e-6)
    if bars < 1:
        return len(y)
    return int(round((grid.first_s + bars * grid.bar_s) * sr))


def _start_s(in_s: float, grid: BeatGrid | None, lead_s: float, loop_s: float) -> float:
    """Track position placed at a segment's start: `in_s`, moved to the next downbeat (so the
    incoming downbeat lands on the boundary) and past the crossfade's first half."""
    p0_s = max(0.0, float(in_s))
    if grid is not None:
        p0_s = grid.downbeat_at_or_after(max(p0_s, lead_s))
        if p0_s >= loop_s - 1e-9:
            # Past the loop's end: its first downbeat after the fade-in's lead, as a start
            # within the loop would get (so placing the result again changes nothing).
            p0_s = grid.downbeat_at_or_after(lead_s)
            if p0_s >= loop_s - 1e-9:
                p0_s = grid.first_s
        return p0_s
    if loop_s > 0 and p0_s >= loop_s:
        p0_s %= loop_s  # an in-point past the end of the track: where the loop has it
    if p0_s < lead_s < loop_s:
        # No grid (not loop-shaped): the fade-in starts at the track's beginning rather than
        # borrowing a pre-roll from its ending.
        p0_s = lead_s
    return p0_s


def _halves(cue: CueSheet, cfg: MixConfig) -> tuple[list[int], list[int]]:
    sr = int(cfg.sample_rate)
    n = int(round(cue.video.duration_s * sr))
    bounds = [int(round(s.start_s * sr)) for s in cue.segments] + [n]
    halves = [0] * (len(cue.segments) + 1)
    for i in range(1, len(cue.segments)):
        left = bounds[i] - bounds[i - 1]
        right = bounds[i + 1] - bounds[i]
        halves[i] = int(max(0, min(cfg.crossfade_s * sr / 2, left / 2, right / 2)))
    return bounds, halves


def _grid_and_loop_s(path: str, sr: int, *, detect: bool) -> tuple[BeatGrid | None, float]:
    """A track's bar grid and loop length. With a `.beats.json` sidecar only the file's header
    is read (placement runs for every cue sheet, so it must not decode whole tracks)."""
    no_audio = np.zeros((0, 2), dtype=np.float32)
    grid = beat_grid(path, no_audio, sr, detect=False)
    if grid is not None:
        try:
            import soundfile as sf

            with quiet_native_stderr(path):
                frames = int(round(sf.info(path).duration * sr))
            return grid, _loop_len(np.empty((frames, 0)), sr, grid) / sr
        except (RuntimeError, OSError, ValueError):
            pass  # not a soundfile format (MP3 on old libsndfile...): decode below
    y = read_audio(path, sr)
    grid = beat_grid(path, y, sr, detect=detect)
    return grid, _loop_len(y, sr, grid) / sr


def place_tracks(cue: CueSheet, cfg: MixConfig | None = None) -> CueSheet:
    """The cue with each track's `in_s` set to where the mixdown really starts it.

    Timeline front ends (OTIO, Blender) that place strips from the cue then agree with the
    mixdown; calling the mixers on the result changes nothing (the positions are fixed points).
    """
    import dataclasses

    cfg = cfg or MixConfig()
    sr = int(cfg.sample_rate)
    _, halves = _halves(cue, cfg)
    grids: dict[str, tuple[BeatGrid | None, float]] = {}
    segs = []
    for i, seg in enumerate(cue.segments):
        tr = seg.track
        if tr is None or not tr.path:
            segs.append(seg)
            continue
        if tr.path not in grids:
            grids[tr.path] = _grid_and_loop_s(tr.path, sr, detect=cfg.beat_align)
        grid, loop_s = grids[tr.path]
        start = round(_start_s(tr.in_s, grid, halves[i] / sr, loop_s), 6)
        segs.append(dataclasses.replace(seg, track=dataclasses.replace(tr, in_s=start)))
    return cue.with_segments(segs)

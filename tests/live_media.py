"""Generated media for the live tests: a room video in acts, a small beat-gridded library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from media import pipe_video

from moodsic_engine.library import Library, MoodClusters, Track, library_from_tracks

SR = 48000
# Acts of a room as the grammar expert sees them: bright, saturated and busy (high valence,
# high arousal) against dark, grey and still (low valence, low arousal).
BUSY, CALM = "busy", "calm"


_PALETTE = np.array([[250, 200, 40], [250, 90, 60], [240, 60, 200], [60, 230, 90]], dtype=float)
_TEXTURE = np.random.default_rng(3).random((12, 20, 1)).repeat(8, 0).repeat(8, 1)


def act_frame(kind: str, k: int, fps: int = 10) -> np.ndarray:
    """One 96x160 frame of an act: BUSY is bright, saturated, moving, cut every second;
    CALM is dark, grey and still."""
    if kind == BUSY:
        colour = _PALETTE[(k // fps) % len(_PALETTE)]  # a hard cut every second
        tex = np.roll(_TEXTURE, 8 * k, axis=1)  # fast panning: motion inside each shot
        img = colour * (0.5 + 0.5 * tex)
    else:
        img = np.full((96, 160, 3), 38.0) + np.array([0, 2, 6])
    return np.clip(img, 0, 255).astype(np.uint8)


def act_video(path: Path, acts: list[str], seconds_each: float, fps: int = 10) -> Path:
    """H.264 video of `acts` (BUSY/CALM), each `seconds_each` long, at `fps`."""
    n_each = int(round(seconds_each * fps))

    def frame(k: int) -> np.ndarray:
        return act_frame(acts[min(k // n_each, len(acts) - 1)], k, fps)

    return pipe_video(path, frame, n_each * len(acts), rate=str(fps), bframes=0)


def tone_track(
    seconds: float, freqs: list[float], bpm: float, seed: int, sr: int = SR
) -> np.ndarray:
    """A smooth stereo loop: sine chords pulsing on the beat (no clicks of its own), made of one
    bar repeated (every frequency a whole number of cycles per bar, so the joins are seamless)."""
    bar = 4 * 60.0 / bpm
    n_bar = int(round(bar * sr))
    t = np.arange(n_bar, dtype=np.float64) / sr
    rng = np.random.default_rng(seed)
    freqs = [round(f * bar) / bar for f in freqs]
    y = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) for f in freqs) / len(freqs)
    phase = (t % (60.0 / bpm)) / (60.0 / bpm)
    env = 0.55 + 0.45 * (0.5 + 0.5 * np.cos(2 * np.pi * phase)) ** 4  # smooth, peaks on beats
    mono = np.tile((0.3 * y * env).astype(np.float32), int(np.ceil(seconds / bar)))
    mono = mono[: int(round(seconds * sr))]
    ramp = np.minimum(
        1.0, np.minimum(np.arange(len(mono)), len(mono) - 1 - np.arange(len(mono))) / (0.01 * sr)
    )
    mono = (mono * ramp).astype(np.float32)  # 10 ms ramps at the file's ends
    return np.stack([mono, mono * np.float32(0.9)], axis=1)


MOODS = {  # valence, arousal of the tracks; pitches tell moods apart in a recording
    BUSY: ((0.7, 0.6), [440.0, 554.4, 659.3]),
    CALM: ((-0.6, -0.6), [196.0, 233.1, 293.7]),
    "tense": ((-0.6, 0.6), [311.1, 370.0, 415.3]),
    "serene": ((0.6, -0.6), [261.6, 329.6, 392.0]),
}


def quadrant_clusters(sd: float = 0.25) -> MoodClusters:
    """Four moods at the quadrants (given, not fitted: fitting imports scikit-learn, ~10 s)."""
    centres = np.array([[0.6, 0.5], [-0.6, -0.55], [-0.6, 0.6], [0.6, -0.6]])
    return MoodClusters(
        center=np.zeros(2),
        scale=np.ones(2),
        weights=np.full(4, 0.25),
        means=centres,
        variances=np.full((4, 2), sd**2),
        slugs=("bright-engaging", "downcast-low-energy", "tense-intense", "serene-tender"),
        labels=("Bright & Engaging", "Downcast & Low-energy", "Tense & Intense", "Serene & Tender"),
    )


def live_library(
    folder: Path,
    per_mood: int = 5,
    seconds: float = 24.0,
    bpm: float = 120.0,
    sr: int = SR,
) -> Library:
    """A library of 4 moods x `per_mood` tone tracks with `.beats.json` grids (bar = 2 s)."""
    folder.mkdir(parents=True, exist_ok=True)
    tracks = []
    rng = np.random.default_rng(0)
    for mood, ((v, a), freqs) in MOODS.items():
        for i in range(per_mood):
            path = folder / f"{mood}_{i}.wav"
            detune = 1.0 + 0.01 * i
            sf.write(
                str(path),
                tone_track(seconds, [f * detune for f in freqs], bpm, i, sr),
                sr,
                subtype="PCM_16",
            )
            Path(f"{path}.beats.json").write_text(
                json.dumps({"tempo_bpm": bpm, "beats_per_bar": 4, "first_beat_s": 0.0})
            )
            tracks.append(
                Track(
                    id=f"{mood}_{i}",
                    title=f"{mood} {i}",
                    artist="test",
                    path=str(path),
                    duration_s=seconds,
                    valence=float(np.clip(v + rng.normal(0, 0.05), -1, 1)),
                    arousal=float(np.clip(a + rng.normal(0, 0.05), -1, 1)),
                    tempo_bpm=bpm,
                )
            )
    return library_from_tracks(tracks, name="live-test", root=folder, clusters=quadrant_clusters())

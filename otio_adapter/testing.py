"""Synthetic cue sheets and music for tests and demos of the OTIO adapter (no downloads)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from moodsic_engine.cue import SCHEMA_ID, CueSheet

MOODS = (
    ("bright-engaging", "Bright & Engaging", 0.6, 0.5),
    ("calm-neutral", "Calm & Neutral", 0.05, -0.4),
    ("tense-intense", "Tense & Intense", -0.5, 0.6),
    ("downcast-low-energy", "Downcast & Low-energy", -0.5, -0.5),
)


def write_tone(path: str | Path, freq: float, seconds: float, sr: int = 48000) -> Path:
    """A steady sine (with a slow tremolo so it is music-like) as a 16-bit WAV."""
    import soundfile

    t = np.arange(int(round(seconds * sr))) / sr
    y = 0.4 * np.sin(2 * np.pi * freq * t) * (0.8 + 0.2 * np.sin(2 * np.pi * 0.5 * t))
    path = Path(path)
    soundfile.write(str(path), y.astype(np.float32), sr, subtype="PCM_16")
    return path


def make_cue(
    folder: str | Path,
    *,
    fps: Fraction = Fraction(25),
    boundaries_s: Sequence[float] = (0.0, 6.0, 12.5, 20.0),
    duration_s: float = 26.0,
    track_seconds: float = 40.0,
    in_s: Sequence[float] | None = None,
    freqs: Sequence[float] | None = None,
    crossfade_s: float = 2.0,
    write_audio: bool = True,
    video_name: str = "clip.mp4",
) -> CueSheet:
    """A schema-valid cue sheet whose segments start at `boundaries_s` (snapped to frames).

    Segment i uses its own track `track{i}.wav` (a sine at freqs[i]) from in_s[i] seconds;
    the WAVs are written into `folder` when `write_audio`. Paths are relative to `folder`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = int(round(Fraction(duration_s) * fps))
    starts = [int(round(Fraction(b) * fps)) for b in boundaries_s]
    n = len(starts)
    in_s = list(in_s) if in_s is not None else [3.0 + i for i in range(n)]
    freqs = list(freqs) if freqs is not None else [220.0 * (1.5**i) for i in range(n)]
    segments = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < n else frames
        slug, label, v, a = MOODS[i % len(MOODS)]
        name = f"track{i}.wav"
        if write_audio:
            write_tone(folder / name, freqs[i], track_seconds)
        segments.append(
            {
                "start_s": float(Fraction(start) / fps),
                "end_s": float(Fraction(end) / fps) if i + 1 < n else float(duration_s),
                "start_frame": start,
                "end_frame": end,
                "mood": slug,
                "mood_label": label,
                "valence": v,
                "arousal": a,
                "confidence": 0.8,
                "track": {
                    "id": f"t{i}",
                    "title": f"Tone {i}",
                    "artist": "Moodsic tests",
                    "path": name,
                    "valence": v,
                    "arousal": a,
                    "in_s": float(in_s[i]),
                    "duration_s": float(track_seconds),
                    "rank": 0,
                },
            }
        )
    data = {
        "schema": SCHEMA_ID,
        "video": {
            "path": video_name,
            "duration_s": float(duration_s),
            "fps": [fps.numerator, fps.denominator],
            "frames": frames,
        },
        "engine": {
            "version": "0.1.0",
            "experts": ["grammar"],
            "config": {"mix": {"crossfade_s": crossfade_s}},
        },
        "samples": [
            {
                "t": 0.5 * k,
                "experts": {"grammar": {"v": 0.1, "a": -0.2, "var_v": 0.1, "var_a": 0.1}},
                "fused": {"v": 0.1, "a": -0.2, "var_v": 0.1, "var_a": 0.1},
                "stable": {"v": 0.1, "a": -0.2},
                "held": False,
                "faces": 0,
            }
            for k in range(4)
        ],
        "cuts": [float(b) for b in boundaries_s[1:]],
        "segments": segments,
        "summary": {},
    }
    return CueSheet.from_dict(data)


def write_video(
    path: str | Path,
    seconds: float,
    *,
    colour: str | None = None,
    fps: str = "25",
    size: str = "160x96",
) -> Path:
    """A small H.264 clip from ffmpeg's lavfi: a moving test pattern, or a flat colour."""
    from moodsic_engine.ffmpeg import encode_lavfi

    source = (
        f"color=c={colour}:s={size}:r={fps}:d={seconds}"
        if colour
        else f"testsrc2=s={size}:r={fps}:d={seconds}"
    )
    path = Path(path)
    encode_lavfi(path, [source], "-c:v", "libx264", "-preset", "ultrafast",
                 "-pix_fmt", "yuv420p", "-g", "25", timeout=120)  # fmt: skip
    return path


def small_library(folder: str | Path, *, per_quadrant: int = 3, seconds: float = 30.0):  # noqa: ANN201
    """A Library of sine tracks spread over the four V/A quadrants (audio written to folder)."""
    from moodsic_engine.library import Track, library_from_tracks

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tracks = []
    for q, (sv, sa) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
        for k in range(per_quadrant):
            tid = f"q{q}k{k}"
            path = write_tone(folder / f"{tid}.wav", 200.0 + 40 * (q * per_quadrant + k), seconds)
            v, a = sv * rng.uniform(0.3, 0.8), sa * rng.uniform(0.3, 0.8)
            tracks.append(
                Track(tid, f"Tone {tid}", "tests", str(path.resolve()), seconds, float(v), float(a))
            )
    return library_from_tracks(tracks, name="tones", root=folder)


def make_edit(
    items: Sequence[tuple[str | Path | None, int, int] | tuple[str | Path | None, int, int, int]],
    *,
    fps: Fraction = Fraction(25),
    name: str = "edit",
):  # noqa: ANN201
    """A Timeline with one video track: (path, source start frame, frames[, media frames])
    per item. A None path makes a gap of that many frames.
    """
    import opentimelineio as otio

    rate = fps.numerator / fps.denominator
    rt = otio.opentime.RationalTime
    tr = otio.opentime.TimeRange
    timeline = otio.schema.Timeline(name=name)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for path, start, frames, *available in items:
        avail = tr(rt(0, rate), rt(available[0], rate)) if available else None
        if path is None:
            track.append(otio.schema.Gap(source_range=tr(rt(0, rate), rt(frames, rate))))
            continue
        track.append(
            otio.schema.Clip(
                name=Path(path).name,
                media_reference=otio.schema.ExternalReference(
                    target_url=str(path), available_range=avail
                ),
                source_range=tr(rt(start, rate), rt(frames, rate)),
            )
        )
    timeline.tracks.append(track)
    return timeline

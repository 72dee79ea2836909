"""Where the music sits in an OTIO timeline: the mixdown's music plan, in frames.

The plan (`moodsic_engine.mix.plan`) is the one the mixdown and the Blender add-on play: the
cue sheet's stored "placement" when it still fits the cue sheet and the crossfade, otherwise
one made here from the tracks' headers and beat-grid sidecars (no decoding, no beat tracking:
a cue sheet from `moodsic score` always carries its plan).

Rounding: the plan counts samples at its rate; a position becomes the nearest frame at the
video rate (exact rational arithmetic), and a fade's length in frames is the difference of
its two rounded ends. A pass whose rounded source range would reach past the media's last
whole frame starts up to one frame earlier in the file. The loop joins' 30 ms crossfades are
shorter than a frame: passes butt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from moodsic_engine.cue import CueSheet, Segment, TrackChoice, VideoRef
from moodsic_engine.mix.plan import (
    MusicPlan,
    Piece,
    TrackFacts,
    beat_grid,
    music_plan,
    stored_plan,
    track_facts,
)


@dataclass(frozen=True)
class Placement:
    """Where one segment's music sits, in frames at the video rate."""

    index: int
    rec_start: int  # record frame of the segment start (the mood change)
    rec_end: int  # exclusive
    src_in: int  # frame inside the music file that plays at rec_start
    head: int  # frames of the file played before rec_start (crossfade with the previous)
    tail: int  # frames played after rec_end (negative: the music stops on a bar line before)

    @property
    def length(self) -> int:
        return self.rec_end - self.rec_start


@dataclass(frozen=True)
class PieceFrames:
    """A plan piece in frames: record [rec_in, rec_out), source from src_in, fade lengths."""

    piece: Piece
    rec_in: int
    rec_out: int
    src_in: int
    fade_in: int
    fade_out: int


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    if base_dir is not None and not p.is_absolute():
        p = base_dir / p
    return p


def track_frames(track: TrackChoice, fps: Fraction, base_dir: Path | None) -> int | None:
    """Length of the track's audio in whole frames, when known (cue sheet, else the file
    header; a length of 0 in the cue sheet tells nothing)."""
    duration = track.duration_s
    if not duration or duration <= 0:
        try:
            import soundfile

            duration = soundfile.info(str(_resolve(track.path, base_dir))).duration
        except Exception:  # unreadable or missing: the handle is then not limited by the file
            return None
    frames = int(math.floor(Fraction(duration) * fps))
    return frames if frames > 0 else None


def _facts(track: TrackChoice, rate: int, base_dir: Path | None) -> TrackFacts:
    """Length (header, else the cue sheet's duration) and sidecar grid; never decodes."""
    path = str(_resolve(track.path, base_dir))
    try:
        facts = track_facts(path, rate, detect=False)
    except Exception:  # noqa: BLE001 - missing or unreadable: what the cue sheet says
        facts = TrackFacts(None)
    if facts.frames is None:
        import numpy as np

        grid = beat_grid(path, np.zeros((0, 2), dtype=np.float32), rate, detect=False)
        dur = track.duration_s
        frames = int(round(dur * rate)) if dur and dur > 0 else None
        facts = TrackFacts(frames, grid)
    return facts


def plan_of(cue: CueSheet, crossfade_s: float, base_dir: Path | None = None) -> MusicPlan:
    """The music plan the timeline shows (see the module docstring)."""
    found = stored_plan(cue, crossfade_s=crossfade_s)
    if found is not None:
        return found
    mix = cue.engine.get("config", {}).get("mix", {}) if isinstance(cue.engine, dict) else {}
    rate = mix.get("sample_rate") if isinstance(mix, dict) else None
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        from moodsic_engine.config import MixConfig

        rate = MixConfig().sample_rate
    facts: dict[str, TrackFacts] = {}
    for seg in cue.segments:
        tr = seg.track
        if tr is not None and tr.path and tr.path not in facts:
            facts[tr.path] = _facts(tr, rate, base_dir)
    return music_plan(cue, facts, rate=rate, crossfade_s=crossfade_s)


def to_frame(samples: int, rate: int, fps: Fraction) -> int:
    """The nearest frame at `fps` to a sample position at `rate`."""
    return int(round(Fraction(samples) * fps / rate))


def piece_frames(
    plan: MusicPlan, piece: Piece, fps: Fraction, total: int | None = None
) -> PieceFrames:
    """A plan piece in frames (see the module docstring for the rounding); `total`: the
    media's length in whole frames, when known."""
    rate = plan.rate
    rec_in, rec_out = to_frame(piece.rec_in, rate, fps), to_frame(piece.rec_out, rate, fps)
    src_in = to_frame(piece.src_in, rate, fps)
    if total is not None and src_in + (rec_out - rec_in) > total:
        src_in = max(0, total - (rec_out - rec_in))
    fade_in = to_frame(piece.rec_in + piece.fade_in, rate, fps) - rec_in
    fade_out = rec_out - to_frame(piece.rec_out - piece.fade_out, rate, fps)
    return PieceFrames(piece, rec_in, rec_out, src_in, fade_in, fade_out)


def placements(segments: Sequence[Segment], plan: MusicPlan, fps: Fraction) -> list[Placement]:
    """Each segment's music as a Placement (handles and in-point in frames) from the plan."""
    out = []
    for i, seg in enumerate(segments):
        pieces = plan.for_segment(i)
        if not pieces:
            out.append(Placement(i, seg.start_frame, seg.end_frame, 0, 0, 0))
            continue
        first, last = pieces[0], pieces[-1]
        s0 = int(round(seg.start_s * plan.rate))
        at_s0 = first.src_in + (s0 - first.rec_in)
        src = to_frame(at_s0, plan.rate, fps)
        tr = seg.track
        if tr is not None and at_s0 == int(round(tr.in_s * plan.rate)):
            # The plan kept the cue sheet's in-point: its frame as the cue sheet rounds it.
            src = int(round(Fraction(tr.in_s) * fps))
        head = seg.start_frame - to_frame(first.rec_in, plan.rate, fps)
        tail = to_frame(last.rec_out, plan.rate, fps) - seg.end_frame
        out.append(Placement(i, seg.start_frame, seg.end_frame, src, head, tail))
    return out


def place_segments(
    segments: tuple[Segment, ...] | list[Segment],
    fps: Fraction,
    crossfade_s: float,
    *,
    base_dir: Path | None = None,
) -> list[Placement]:
    """The placements of `segments` (a whole cue sheet's, in order) under `crossfade_s`: the
    plan the mixdown plays, made from the tracks' headers and sidecars."""
    segments = tuple(segments)
    last = segments[-1]
    video = VideoRef("", float(last.end_s), fps, int(last.end_frame))
    cue = CueSheet(video=video, engine={}, samples=(), cuts=(), segments=segments)
    return placements(segments, plan_of(cue, crossfade_s, base_dir), fps)

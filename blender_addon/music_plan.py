"""The music plan a cue sheet carries, read without the engine.

The engine (`moodsic_engine.mix.plan`) writes the plan its mixdown plays into the cue sheet as
"placement": every piece of music with its source in/out, record in/out, fades and gain, in
samples at the plan's rate. Blender's Python cannot import the engine, so this module (standard
library only, no bpy) reads that object, and the placement renders the same pieces as strips.
A plan that no longer fits its cue sheet (other segments, tracks or in-points, another
crossfade) is not used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PlanPiece:
    """One pass through a track: source samples [src_in, src_in + rec_out - rec_in) play at
    record (video) samples [rec_in, rec_out); equal-power fades of fade_in / fade_out samples
    at its ends; `join`: a loop join's overlap after rec_out (shorter than a frame)."""

    segment: int
    track_id: str
    loop: int
    rec_in: int
    rec_out: int
    src_in: int
    fade_in: int = 0
    fade_out: int = 0
    join: int = 0
    gain_db: float | None = None


@dataclass(frozen=True)
class CuePlan:
    rate: int  # samples per second of every position in the plan
    length: int
    crossfade_s: float
    pieces: tuple[PlanPiece, ...]

    def for_segment(self, index: int) -> tuple[PlanPiece, ...]:
        return tuple(p for p in self.pieces if p.segment == index)


def _int(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError("not an integer")
    return x


def _piece(d: Any) -> PlanPiece:
    if not isinstance(d, Mapping):
        raise TypeError("piece is not an object")
    gain = d.get("gain_db")
    if gain is not None and (isinstance(gain, bool) or not isinstance(gain, int | float)):
        raise TypeError("gain_db")
    piece = PlanPiece(
        segment=_int(d["segment"]),
        track_id=str(d.get("track_id", "")),
        loop=_int(d.get("loop", 0)),
        rec_in=_int(d["rec_in"]),
        rec_out=_int(d["rec_out"]),
        src_in=_int(d["src_in"]),
        fade_in=_int(d.get("fade_in", 0)),
        fade_out=_int(d.get("fade_out", 0)),
        join=_int(d.get("join", 0)),
        gain_db=None if gain is None or not math.isfinite(gain) else float(gain),
    )
    if piece.rec_out <= piece.rec_in or min(piece.rec_in, piece.src_in, piece.fade_in) < 0:
        raise ValueError("empty or negative piece")
    return piece


def _segment_key(seg: Mapping[str, Any]) -> list[Any]:
    track = seg.get("track")
    has = isinstance(track, Mapping) and bool(track.get("path"))
    return [
        int(seg["start_frame"]),
        int(seg["end_frame"]),
        str(track.get("id")) if has else None,
        round(float(track.get("in_s") or 0.0), 6) if has else None,
    ]


def read_plan(cue: Mapping[str, Any], crossfade_s: float | None = None) -> CuePlan | None:
    """The cue sheet's plan, or None when it has none, it is malformed, or it was made for
    other segments, tracks, in-points or (when given) another crossfade."""
    data = cue.get("placement") if isinstance(cue, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    try:
        rate, length = _int(data["rate"]), _int(data["length"])
        fade = float(data["crossfade_s"])
        pieces = tuple(_piece(p) for p in data["pieces"])
        made_for = [
            [a, b, None if t is None else str(t), None if s is None else round(float(s), 6)]
            for a, b, t, s in data["segments"]
        ]
        current = [_segment_key(s) for s in cue["segments"]]
        duration = float(cue["video"]["duration_s"])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if rate <= 0 or made_for != current or length != int(round(duration * rate)):
        return None
    if crossfade_s is not None and abs(float(crossfade_s) - fade) > 1e-9:
        return None
    return CuePlan(rate, length, fade, pieces)


def replace_segment(
    cue: Mapping[str, Any], new_cue: Mapping[str, Any], segment: int
) -> dict[str, Any] | None:
    """The "placement" for `cue` after its segment `segment` took its track from `new_cue`
    (re-roll): the new sheet's pieces of that segment with the old ones of the others (each
    segment's pieces depend on its own track and the boundaries only). None when either plan
    is missing or does not fit its sheet."""
    old, new = cue.get("placement"), new_cue.get("placement")
    if read_plan(cue) is None or read_plan(new_cue) is None:
        return None
    assert isinstance(old, Mapping) and isinstance(new, Mapping)
    if (old["rate"], old["crossfade_s"]) != (new["rate"], new["crossfade_s"]):
        return None
    pieces = [p for p in old["pieces"] if p["segment"] != segment]
    pieces += [p for p in new["pieces"] if p["segment"] == segment]
    pieces.sort(key=lambda p: (p["segment"], p["loop"]))
    segments = [list(s) for s in old["segments"]]
    segments[segment] = list(new["segments"][segment])
    return {**dict(old), "segments": segments, "pieces": pieces}

"""Where the music goes: bar grids, loop bodies, start points, cuts and fades, as one plan.

`music_plan` turns a cue sheet and the facts it needs about each track (length, bar grid,
loudness gain) into a `MusicPlan`: every piece of music with its source in/out, record in/out,
fades and gain, in samples at the mix rate. The mixdown (`render.render_music`), the OTIO/NLE
exports (`otio_adapter.timeline`) and the Blender add-on (`blender_addon/placement.py`, which
reads the plan from the cue sheet's "placement") all render that same plan; none of them
computes loop points itself.

Loops follow the bar grid: the lead-in (the audio before the first downbeat) plays once, then
a body of whole bars (first downbeat to the last whole bar's end) repeats, so downbeats stay
evenly spaced across every wrap. A segment's track enters with its downbeat on the boundary
and leaves at a bar line: the outgoing fade ends on the downbeat nearest the crossfade's end
(at or after the boundary), and the last segment ends on its last downbeat before the video's
end. Without a grid the whole track is the body and cuts fall where the crossfade ends.

Beat grids come from a `<audio file>.beats.json` sidecar (the built-in library writes them)
or, when `MixConfig.beat_align` is on, from librosa's beat tracker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import MixConfig
from ..cue import CueSheet, Segment
from ..ffmpeg import quiet_native_stderr
from .audio import read_audio
from .grid import BeatGrid, _sidecar_grid, beat_grid  # noqa: F401 - mix.plan._sidecar_grid
from .loudness import track_gain

# ----------------------------------------------------------------------------- track facts
_LOOP_JOIN_S = 0.03  # crossfade at a loop's wrap point (the audio past the bar fades out)
_START_FADE_S = 0.01  # the first segment's fade from silence at the video's start
_END_FADE_MIN_S = 0.05  # the shortest fade to silence at the video's end
_NO_END = 1 << 60  # a track of unknown length: it never wraps
_AT_START_S = BeatGrid._ON_BEAT_S  # an in-point this close to 0 is the file's start


@dataclass(frozen=True)
class TrackFacts:
    """What the plan needs to know about one track, at the plan's rate.

    `frames`: its length in samples (None: unknown, so it is never looped); `grid`: its bar
    grid, if any; `gain_db`: the gain that brings it to the target loudness (None: not
    measured)."""

    frames: int | None
    grid: BeatGrid | None = None
    gain_db: float | None = None


def track_facts(
    path: str,
    sr: int,
    *,
    detect: bool,
    target_lufs: float | None = None,
    audio: np.ndarray | None = None,
) -> TrackFacts:
    """The facts of the track at `path` at rate `sr`.

    `audio` (already decoded, [n, 2] at `sr`) is used when given; otherwise the file is
    decoded when the length, the grid (no sidecar and `detect`) or the loudness
    (`target_lufs` set) needs it, and only its header is read otherwise."""
    if audio is None and target_lufs is None:
        grid = beat_grid(path, np.zeros((0, 2), dtype=np.float32), sr, detect=False)
        if grid is not None or not detect:
            frames = _header_frames(path, sr)
            if frames is not None:
                return TrackFacts(frames, grid)
    y = read_audio(path, sr) if audio is None else audio
    grid = beat_grid(path, y, sr, detect=detect)
    gain = None
    if target_lufs is not None:
        from ..runtime.cache import remembered_for_file

        # A track's loudness never changes: measured once per file (and sample rate), which
        # also spares each later run the import of scipy.signal (~1-2 s on 2 cores).
        gain = remembered_for_file(
            "track-gain",
            path,
            [sr, target_lufs, len(y)],
            lambda: round(20 * math.log10(max(track_gain(y, sr, target_lufs), 1e-12)), 6),
        )
    return TrackFacts(len(y), grid, gain)


def _header_frames(path: str, sr: int) -> int | None:
    """A file's length in samples at `sr` from its header (None when soundfile cannot tell)."""
    try:
        import soundfile as sf

        with quiet_native_stderr(path):
            info = sf.info(path)
        return int(round(info.frames * sr / info.samplerate))
    except (RuntimeError, OSError, ValueError, ZeroDivisionError):
        return None


def loop_body(frames: int | None, sr: int, grid: BeatGrid | None) -> tuple[int, int]:
    """(first, end) samples of the loop body: whole bars from the first downbeat; the lead-in
    before it plays only once. Without a grid (or less than one whole bar) the whole track."""
    if frames is None:
        return 0, _NO_END
    if grid is None:
        return 0, frames
    bars = math.floor((frames / sr - grid.first_s) / grid.bar_s + 1e-6)
    if bars < 1:
        return 0, frames
    first = int(round(grid.first_s * sr))
    end = min(frames, int(round((grid.first_s + bars * grid.bar_s) * sr)))
    return (first, end) if end > first else (0, frames)


def fade_curve(pos: np.ndarray, length: int, *, rising: bool) -> np.ndarray:
    """The equal-power quarter-sine fade every front end plays (float64, same shape as `pos`).

    `pos` counts samples from the fade's first one; the gain is taken at each sample's middle,
    sin(pi/2 * (pos + 0.5) / length) rising or cos(...) falling, and held flat outside the fade
    (0 before / 1 after a rise, 1 before / 0 after a fall). Two crossing fades sum to constant
    power."""
    length = max(1, int(length))
    k = np.clip(np.asarray(pos, dtype=np.float64), -0.5, length - 0.5)
    angle = 0.5 * np.pi * (k + 0.5) / length
    return np.sin(angle) if rising else np.cos(angle)


def looped_pieces(
    frames: int, sr: int, grid: BeatGrid | None, count: int, *, track_id: str = ""
) -> list[Piece]:
    """The pieces that play a track of `frames` samples from its start for `count` samples as
    the plan loops it: the lead-in once, then the whole-bar body (`loop_body`) again and again,
    with the plan's loop join at each wrap (so downbeats stay evenly spaced); no fades at the
    two ends. Used where the audio is needed before any cue sheet exists (live mode)."""
    first, end = loop_body(frames, sr, grid)
    passes = _passes(0, count, first, end)
    join = int(_LOOP_JOIN_S * sr)
    return _pass_pieces(0, track_id, passes, 0, 0, 0, join, frames, None)


def _start_s(
    in_s: float, grid: BeatGrid | None, lead_s: float, loop_s: float, *, opening: bool = False
) -> float:
    """Track position placed at a segment's start: `in_s`, moved to the next downbeat (so the
    incoming downbeat lands on the boundary) and past the crossfade's first half.

    The `opening` segment (the video's first) plays a track that starts at its beginning from
    its beginning: the lead-in before the first downbeat plays (once), nothing is skipped."""
    p0_s = max(0.0, float(in_s))
    if opening and p0_s <= _AT_START_S and lead_s <= 0:
        return 0.0
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


def _halves(
    segments: Sequence[Segment], duration_s: float, sr: int, crossfade_s: float
) -> tuple[list[int], list[int]]:
    """Segment bounds (samples, plus the video's end) and the half crossfade at each inner
    boundary, limited by half of each neighbouring segment."""
    n = int(round(duration_s * sr))
    bounds = [int(round(s.start_s * sr)) for s in segments] + [n]
    halves = [0] * (len(segments) + 1)
    for i in range(1, len(segments)):
        left = bounds[i] - bounds[i - 1]
        right = bounds[i + 1] - bounds[i]
        halves[i] = int(max(0, min(crossfade_s * sr / 2, left / 2, right / 2)))
    return bounds, halves


# ----------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Piece:
    """One pass through a track's file, in samples at the plan's rate.

    The track plays source samples [src_in, src_out) at record (video) samples
    [rec_in, rec_out). Fades are equal-power quarter-sine ramps inside that range: up over
    the first `fade_in` samples, down over the last `fade_out`. `join` > 0 at a loop's wrap:
    the audio past `src_out` goes on for `join` samples after `rec_out`, fading out (cosine)
    while the next pass fades in. `gain_db` brings the track to the target loudness (None:
    not measured). `loop` counts the passes within the segment (0: the one that enters)."""

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

    @property
    def src_out(self) -> int:
        return self.src_in + self.rec_out - self.rec_in

    @property
    def length(self) -> int:
        return self.rec_out - self.rec_in


_PIECE_KEYS = ("segment", "track_id", "loop", "rec_in", "rec_out", "src_in", "fade_in",
               "fade_out", "join", "gain_db")  # fmt: skip


@dataclass(frozen=True)
class MusicPlan:
    """Every music piece of a cue sheet, in time order of entry; samples at `rate`.

    `segments` records what the plan was made for (per segment: start and end frame, track
    id, in-point), so a reader can tell a plan that no longer fits its cue sheet."""

    rate: int
    length: int  # the video's length in samples
    crossfade_s: float
    segments: tuple[tuple[int, int, str | None, float | None], ...]
    pieces: tuple[Piece, ...]

    def for_segment(self, index: int) -> tuple[Piece, ...]:
        return tuple(p for p in self.pieces if p.segment == index)

    def to_dict(self) -> dict[str, Any]:
        """The cue sheet's "placement" object (plain JSON)."""
        return {
            "rate": self.rate,
            "length": self.length,
            "crossfade_s": self.crossfade_s,
            "segments": [list(s) for s in self.segments],
            "pieces": [{k: getattr(p, k) for k in _PIECE_KEYS} for p in self.pieces],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MusicPlan:
        return cls(
            rate=int(data["rate"]),
            length=int(data["length"]),
            crossfade_s=float(data["crossfade_s"]),
            segments=tuple(
                (int(a), int(b), None if t is None else str(t), None if s is None else float(s))
                for a, b, t, s in data["segments"]
            ),
            pieces=tuple(Piece(**{k: p[k] for k in _PIECE_KEYS if k in p}) for p in data["pieces"]),
        )

    def fits(
        self, cue: CueSheet, *, rate: int | None = None, crossfade_s: float | None = None
    ) -> bool:
        """Whether this plan was made for `cue` as it is now (and this rate and crossfade)."""
        if rate is not None and rate != self.rate:
            return False
        if crossfade_s is not None and abs(crossfade_s - self.crossfade_s) > 1e-9:
            return False
        return self.length == int(round(cue.video.duration_s * self.rate)) and (
            self.segments == segment_key(cue.segments)
        )


def segment_key(
    segments: Sequence[Segment],
) -> tuple[tuple[int, int, str | None, float | None], ...]:
    return tuple(
        (
            int(s.start_frame),
            int(s.end_frame),
            s.track.id if s.track is not None and s.track.path else None,
            round(float(s.track.in_s), 6) if s.track is not None and s.track.path else None,
        )
        for s in segments
    )


def stored_plan(
    cue: CueSheet, *, rate: int | None = None, crossfade_s: float | None = None
) -> MusicPlan | None:
    """The plan the cue sheet carries ("placement"), when it still fits the cue sheet."""
    data = getattr(cue, "placement", None)
    if not isinstance(data, Mapping):
        return None
    try:
        found = MusicPlan.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None
    return found if found.fits(cue, rate=rate, crossfade_s=crossfade_s) else None


def _passes(q0: int, count: int, first: int, end: int) -> list[tuple[int, int, int]]:
    """(record offset, source in, length) of each pass reading `count` samples from `q0`:
    on to the body's end, then the body again from its first downbeat."""
    out: list[tuple[int, int, int]] = []
    off, q = 0, q0
    while off < count:
        take = min(count - off, end - q)
        out.append((off, q, take))
        off, q = off + take, first
    return out


def _downbeats(passes: list[tuple[int, int, int]], a: int, grid: BeatGrid, sr: int) -> list[int]:
    """Record samples where the played audio reaches a downbeat (a pass's wrap point too)."""
    found: list[int] = []
    bar, first = grid.bar_s * sr, grid.first_s * sr
    for off, src, take in passes:
        k = max(0, math.ceil((src - first) / bar - 1e-9))
        while first + k * bar <= src + take + 1:
            found.append(a + off + int(round(first + k * bar - src)))
            k += 1
    return sorted(set(found))


def music_plan(
    cue: CueSheet, facts: Mapping[str, TrackFacts], *, rate: int, crossfade_s: float
) -> MusicPlan:
    """The placement of every segment's track (see the module docstring), as pieces.

    `facts` maps each track path of the cue sheet to its `TrackFacts` at `rate`. Pure: reads
    no file. Segments without a track (or without a file) get no piece."""
    sr = int(rate)
    segs = cue.segments
    bounds, halves = _halves(segs, cue.video.duration_s, sr, crossfade_s)
    n, last = bounds[-1], len(segs) - 1
    join = int(_LOOP_JOIN_S * sr)
    pieces: list[Piece] = []
    for i, seg in enumerate(segs):
        tr = seg.track
        if tr is None or not tr.path:
            continue
        f = facts[tr.path]
        if f.frames is not None and f.frames < 1:
            continue  # an empty file: nothing to place
        first, end = loop_body(f.frames, sr, f.grid)
        s0, s1, h_in, h_out = bounds[i], bounds[i + 1], halves[i], halves[i + 1]
        p0 = int(round(_start_s(tr.in_s, f.grid, h_in / sr, end / sr, opening=i == 0) * sr))
        if p0 >= end:
            p0 = first
        a, q0 = s0 - h_in, p0 - h_in
        if q0 < 0:  # shorter than the fade-in's lead: the body's tail is the pre-roll
            q0 = first + (q0 - first) % (end - first)
        fade_in = 2 * h_in if h_in else (int(round(_START_FADE_S * sr)) if i == 0 else 0)
        # Where the track stops: on a downbeat, when the grid gives one in reach.
        if i < last:
            cut, reach = s1 + h_out, s1 + (bounds[i + 2] - s1) // 2
            fade_from = s1 - h_out
        else:
            cut = reach = n
            fade_from = n - int(min(n - a, max(_END_FADE_MIN_S * sr, crossfade_s * sr)))
        if f.grid is not None and (i == last or h_out > 0):
            beats = _downbeats(_passes(q0, reach - a, first, end), a, f.grid, sr)
            if i < last:  # the downbeat nearest the crossfade's end, not before the boundary
                near = [x for x in beats if s1 <= x <= reach]
                if near:
                    cut = min(near, key=lambda x: (abs(x - cut), x))
            else:  # the last downbeat that leaves room for the fade after the fade-in
                fade = n - fade_from
                room = [x for x in beats if s0 + h_in + fade <= x <= n]
                if room:
                    cut, fade_from = max(room), max(room) - fade
        passes = _passes(q0, cut - a, first, end)
        # A fade never crosses a wrap: the track stops at the wrap (a downbeat) instead, or,
        # when that would end it before the boundary, the fade is shortened to the last pass.
        while len(passes) > 1 and a + passes[-1][0] > fade_from:
            wrap = a + passes[-1][0]
            if i < last and wrap < s1:
                break
            if i == last:
                fade_from -= cut - wrap
            cut = wrap
            passes = passes[:-1]
        fade_out = cut - max(fade_from, a + passes[-1][0])
        if i < last and h_out == 0:
            fade_out = 0
        pieces.extend(
            _pass_pieces(i, tr.id, passes, a, fade_in, fade_out, join, f.frames, f.gain_db)
        )
    return MusicPlan(
        rate=sr,
        length=n,
        crossfade_s=float(crossfade_s),
        segments=segment_key(segs),
        pieces=tuple(pieces),
    )


def _pass_pieces(
    segment: int,
    track_id: str,
    passes: list[tuple[int, int, int]],
    a: int,
    fade_in: int,
    fade_out: int,
    join: int,
    frames: int | None,
    gain_db: float | None,
) -> list[Piece]:
    """A segment's passes as pieces: its fades at the ends, a loop join at each wrap."""
    out: list[Piece] = []
    last = len(passes) - 1
    enter = fade_in
    for k, (off, src, take) in enumerate(passes):
        fin, fout, tail = min(enter, take), 0, 0
        if k == last:
            fout = fade_out
        else:
            j = min(join, take, passes[k + 1][2])
            if frames is not None and src + take + j <= frames:
                tail = j  # the audio past the wrap fades out under the next pass
            else:
                fout = j  # nothing past it: a short fade out before the wrap
            enter = j
        fout = max(0, min(fout, take - fin))
        out.append(
            Piece(segment, track_id, k, a + off, a + off + take, src, fin, fout, tail, gain_db)
        )
    return out


# ----------------------------------------------------------------------------- cue sheets
def cue_facts(cue: CueSheet, cfg: MixConfig) -> dict[str, TrackFacts]:
    """Facts for every track of the cue sheet, decoded and measured (as the mixdown does)."""
    out: dict[str, TrackFacts] = {}
    for seg in cue.segments:
        tr = seg.track
        if tr is not None and tr.path and tr.path not in out:
            out[tr.path] = track_facts(
                tr.path, int(cfg.sample_rate), detect=cfg.beat_align, target_lufs=cfg.target_lufs
            )
    return out


def place_tracks(cue: CueSheet, cfg: MixConfig | None = None) -> CueSheet:
    """The cue with each track's `in_s` set to where the mixdown really starts it, and its
    "placement": the plan the mixdown, the OTIO exports and the Blender add-on all render.

    Calling it (or the mixers) on the result changes nothing: the positions are fixed points.
    """
    import dataclasses

    cfg = cfg or MixConfig()
    sr = int(cfg.sample_rate)
    _, halves = _halves(cue.segments, cue.video.duration_s, sr, cfg.crossfade_s)
    facts = cue_facts(cue, cfg)
    segs = []
    for i, seg in enumerate(cue.segments):
        tr = seg.track
        if tr is None or not tr.path:
            segs.append(seg)
            continue
        f = facts[tr.path]
        end = loop_body(f.frames, sr, f.grid)[1]
        start = round(_start_s(tr.in_s, f.grid, halves[i] / sr, end / sr, opening=i == 0), 6)
        segs.append(dataclasses.replace(seg, track=dataclasses.replace(tr, in_s=start)))
    placed = cue.with_segments(segs)
    plan = music_plan(placed, facts, rate=sr, crossfade_s=cfg.crossfade_s)
    return dataclasses.replace(placed, placement=plan.to_dict())

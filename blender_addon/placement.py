"""Placement: cue sheets + scene facts -> sound-strip, volume-keyframe and marker operations.

Pure Python (standard library only): it never imports bpy, so it runs and is tested outside
Blender. The add-on reads the scene into the frozen "facts" below, asks `plan()` what to
build, and a thin layer (`apply.py`) carries the operations out through bpy.

Time mapping. A cue sheet describes one source file: segment boundaries are source-video
frames (`start_frame`, at the cue sheet's rational fps). Blender shows movie frame i of a
strip at timeline frame `frame_start + i` (one source frame per timeline frame, whatever the
scene rate), and the strip shows only [frame_final_start, frame_final_end). So a boundary
lands at `frame_start + start_frame`, clipped to the visible range. Music itself plays in
real time, so crossfade lengths and track in-points use the scene rate fps / fps_base.

When several selected movie strips overlap in time, the one on the higher channel is the
one the viewer sees, so it decides the music there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .keys import _dips, _keys
from .music_plan import CuePlan, read_plan, replace_segment

CUE_SCHEMA = "moodsic.cue/1"
TAG = "moodsic"  # custom property on every strip Moodsic creates
MAX_NAME = 63  # Blender's limit for strip names (bytes; we keep ASCII-safe lengths short)


class PlacementError(Exception):
    """One-line, user-facing reason why nothing can be placed (the scene is left as it was)."""


# ----------------------------------------------------------------------------- facts in
@dataclass(frozen=True)
class MovieFacts:
    """A movie strip as the placement sees it (all frames are timeline frames)."""

    name: str
    source_path: str  # absolute path of the movie file
    frame_start: int  # timeline frame showing source frame 0
    final_start: int  # first visible frame
    final_end: int  # one past the last visible frame
    channel: int
    frame_duration: int  # untrimmed length in frames (= source frames)


@dataclass(frozen=True)
class SceneFacts:
    fps: Fraction  # scene rate, fps / fps_base as a rational
    frame_start: int
    frame_end: int  # inclusive, as in Blender
    user_channels: frozenset[int] = frozenset()  # channels holding any strip that is not Moodsic's
    max_channel: int = 128


# Without the engine's levels (an engine too old to report them, or its run failed): the
# music sits this much under the target when the clip has dialogue (the add-on's old rule).
FALLBACK_DIALOGUE_DB = -6.0


@dataclass(frozen=True)
class PlaceOptions:
    """What the panel sets. The music's level and the ducking follow the engine's levels
    (`Job.levels`, the mixdown's own numbers) when the engine reported them; `duck_db`,
    `duck_attack_s`, `duck_release_s` (MixConfig's defaults) apply only without them.
    `music_gain_db`: a user's override of the music's level (dB on the track at the target
    loudness, everywhere); None follows the engine."""

    crossfade_s: float = 2.0
    edge_fade_s: float = 0.5  # fade at the start/end of a run of music with no neighbour
    duck: bool = True
    duck_db: float = -10.0
    duck_attack_s: float = 0.15
    duck_release_s: float = 0.6
    target_lufs: float = -14.0
    music_gain_db: float | None = None
    min_span_s: float = 1.0  # a visible piece of a segment shorter than this joins its neighbour
    max_volume: float = 8.0


@dataclass(frozen=True)
class Job:
    """One movie strip and the cue sheet of its source file."""

    movie: MovieFacts
    cue: Mapping[str, Any]
    cue_path: str = ""
    speech: tuple[tuple[float, float], ...] = ()  # dialogue in source seconds (for ducking)
    # The mixdown's levels for this cue sheet (`moodsic blender speech --cue`): "music_db"
    # (on each piece's gain), "duck_db" (<= 0, under speech), "duck_attack_s"/"duck_release_s".
    levels: Mapping[str, Any] | None = None


# ----------------------------------------------------------------------------- operations out
@dataclass(frozen=True)
class SoundOp:
    name: str
    filepath: str
    channel: int
    start: int  # first audible timeline frame
    end: int  # one past the last audible frame
    in_frame: int  # frames into the sound file at `start` (scene rate)
    volume: float  # base volume (used when there are no keys)
    keys: tuple[tuple[int, float], ...] = ()  # volume keyframes (frame, volume), sorted
    tags: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MarkerOp:
    name: str
    frame: int


@dataclass(frozen=True)
class Plan:
    sounds: tuple[SoundOp, ...]
    markers: tuple[MarkerOp, ...]
    channels: tuple[int, int]

    def for_segment(self, cue_path: str, segment: int) -> Plan:
        """Only the operations of one segment of one cue sheet (for re-roll)."""
        sounds = tuple(
            s
            for s in self.sounds
            if s.tags.get("cue") == cue_path and s.tags.get("segment") == segment
        )
        return Plan(sounds=sounds, markers=(), channels=self.channels)


# ----------------------------------------------------------------------------- helpers
def scene_fps(fps: int, fps_base: float) -> Fraction:
    """Blender's fps / fps_base as an exact rational (30 / 1.001 -> 30000/1001)."""
    if fps <= 0 or fps_base <= 0:
        raise PlacementError(f"scene frame rate {fps}/{fps_base} is not usable")
    return (Fraction(fps) / Fraction(fps_base).limit_denominator(100000)).limit_denominator(100000)


def frames_for(seconds: float, fps: Fraction) -> int:
    return int(round(seconds * float(fps)))


def _same_file(a: str, b: str) -> bool:
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def cue_video_path(cue: Mapping[str, Any], cue_path: str = "") -> str:
    path = str(cue["video"]["path"])
    if not os.path.isabs(path) and cue_path:
        path = os.path.join(os.path.dirname(os.path.abspath(cue_path)), path)
    return path


def cue_track_path(track: Mapping[str, Any], cue_path: str = "") -> str:
    """A track's file: cue sheets record paths relative to their own folder."""
    path = str(track["path"])
    if not os.path.isabs(path) and cue_path:
        path = os.path.join(os.path.dirname(os.path.abspath(cue_path)), path)
    return path


def check_cue(cue: Mapping[str, Any], movie: MovieFacts, cue_path: str = "") -> None:
    """Refuse a cue sheet that is malformed or describes another video (path and length)."""
    where = os.path.basename(cue_path) or "cue sheet"
    if not isinstance(cue, Mapping) or cue.get("schema") != CUE_SCHEMA:
        raise PlacementError(f"{where} is not a {CUE_SCHEMA} cue sheet")
    try:
        video = cue["video"]
        frames = int(video["frames"])
        fps = Fraction(int(video["fps"][0]), int(video["fps"][1]))
        segments = list(cue["segments"])
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
        raise PlacementError(f"{where} lacks video facts or segments") from None
    if not segments:
        raise PlacementError(f"{where} has no segments")
    if not _same_file(cue_video_path(cue, cue_path), movie.source_path):
        raise PlacementError(
            f"{where} was made for {os.path.basename(str(video['path']))}, "
            f"not {os.path.basename(movie.source_path)} (strip {movie.name})"
        )
    # Containers round frame counts differently; a couple of frames is the same video.
    tolerance = max(2, int(math.ceil(float(fps) * 0.1)))
    if abs(frames - movie.frame_duration) > tolerance:
        raise PlacementError(
            f"{where} describes {frames} frames but strip {movie.name} has "
            f"{movie.frame_duration}: it is from another version of the video"
        )
    previous = 0
    for i, seg in enumerate(segments):
        try:
            a, b = int(seg["start_frame"]), int(seg["end_frame"])
        except (KeyError, TypeError, ValueError):
            raise PlacementError(f"{where}: segment {i} lacks frames") from None
        if a != previous or b <= a:
            raise PlacementError(f"{where}: segments do not tile the video at segment {i}")
        previous = b
    if previous != frames:
        raise PlacementError(f"{where}: segments end at frame {previous}, video has {frames}")


def visible_ranges(movies: Sequence[MovieFacts]) -> list[tuple[int, int, int]]:
    """(movie index, start, end) pieces where each movie is the topmost selected one, in time order."""
    pieces: list[tuple[int, int, int]] = []
    for i, m in enumerate(movies):
        ranges = [(m.final_start, m.final_end)]
        for j, other in enumerate(movies):
            if j == i or other.channel < m.channel or (other.channel == m.channel and j < i):
                continue
            if other.channel == m.channel:  # same channel cannot overlap in Blender; keep order
                continue
            ranges = _subtract(ranges, other.final_start, other.final_end)
        pieces.extend((i, a, b) for a, b in ranges if b > a)
    pieces.sort(key=lambda p: (p[1], p[2]))
    return pieces


def _subtract(ranges: list[tuple[int, int]], a: int, b: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in ranges:
        if b <= s or a >= e:
            out.append((s, e))
            continue
        if a > s:
            out.append((s, a))
        if b < e:
            out.append((b, e))
    return out


def choose_channels(scene: SceneFacts) -> tuple[int, int]:
    """The two lowest channels above every user strip; music alternates between them."""
    top = max(scene.user_channels, default=0)
    low = top + 1
    if low + 1 > scene.max_channel:
        raise PlacementError(
            f"no free channels: your strips reach channel {top} of {scene.max_channel}, "
            "Moodsic needs two channels above them"
        )
    return (low, low + 1)


# ----------------------------------------------------------------------------- planning
@dataclass
class _Span:
    job: int
    segment: int
    start: int
    end: int
    seg: Mapping[str, Any]
    ext_left: int = 0
    ext_right: int = 0
    neighbour_left: bool = False
    neighbour_right: bool = False


def _spans(jobs: Sequence[Job], scene: SceneFacts, opts: PlaceOptions) -> list[_Span]:
    min_len = max(1, frames_for(opts.min_span_s, scene.fps))
    spans: list[_Span] = []
    for mi, a, b in visible_ranges([j.movie for j in jobs]):
        job = jobs[mi]
        piece: list[_Span] = []
        for si, seg in enumerate(job.cue["segments"]):
            s = max(a, job.movie.frame_start + int(seg["start_frame"]))
            e = min(b, job.movie.frame_start + int(seg["end_frame"]))
            if e > s:
                piece.append(_Span(mi, si, s, e, seg))
        # A sliver of a segment left visible by a trim joins its neighbour in the same piece.
        merged: list[_Span] = []
        for sp in piece:
            if merged and sp.end - sp.start < min_len:
                merged[-1].end = sp.end
            elif merged and merged[-1].end - merged[-1].start < min_len:
                sp.start = merged[-1].start
                merged[-1] = sp
            else:
                merged.append(sp)
        spans.extend(merged)
    spans.sort(key=lambda s: s.start)
    return spans


def _level(key: str, levels: Mapping[str, Any] | None) -> float | None:
    x = (levels or {}).get(key)
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def music_db(job: Job, opts: PlaceOptions) -> float:
    """dB on a track at the target loudness where nobody speaks: the user's override, else
    the engine's (the mixdown's bed to the target plus its music gain), else the old rule."""
    if opts.music_gain_db is not None:
        return float(opts.music_gain_db)
    engine = _level("music_db", job.levels)
    if engine is not None:
        return engine
    return FALLBACK_DIALOGUE_DB if job.speech else 0.0


def duck_shape(job: Job, opts: PlaceOptions) -> tuple[float, float, float]:
    """(depth dB <= 0, attack s, release s) under speech: the mixdown's (`duck_db` of the
    engine's levels: the music under the dialogue against its level elsewhere) when the
    engine reported it, else the options'."""
    depth = _level("duck_db", job.levels)
    attack = _level("duck_attack_s", job.levels)
    release = _level("duck_release_s", job.levels)
    return (
        min(0.0, depth if depth is not None else opts.duck_db),
        attack if attack is not None else opts.duck_attack_s,
        release if release is not None else opts.duck_release_s,
    )


def merged_speech(speech: Sequence[tuple[float, float]], gap_s: float) -> list[tuple[float, float]]:
    """Speech with gaps shorter than `gap_s` (attack + release) closed, as the mixer merges
    them (`mix.ducking.merged_regions`): the music stays down between close lines."""
    out: list[list[float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in speech):
        if out and a - out[-1][1] < gap_s:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def original_volume(current: float) -> float:
    """The video's own sound strip: never raised (at most 0 dB, volume 1.0), as in the mix."""
    return max(0.0, min(1.0, float(current)))


def _volume(db: float, opts: PlaceOptions) -> float:
    return max(0.0, min(opts.max_volume, 10.0 ** (db / 20.0)))


def _gain(track_lufs: float | None, job: Job, opts: PlaceOptions) -> float:
    """Volume of a track placed without the engine's plan (an older cue sheet): to the
    target by the add-on's own loudness measure, then the music level."""
    db = music_db(job, opts)
    if track_lufs is not None and math.isfinite(track_lufs):
        db += opts.target_lufs - track_lufs
    return _volume(db, opts)


def _name(track: Mapping[str, Any]) -> str:
    title = str(track.get("title") or "").strip()
    if not title:
        title = os.path.splitext(os.path.basename(str(track.get("path", ""))))[0] or "music"
    return title[:MAX_NAME]


def _from_plan(
    cue_plan: CuePlan,
    sp: _Span,
    spans: Sequence[_Span],
    n: int,
    job: Job,
    fps: Fraction,
    edges: tuple[int, int, int, int],
    opts: PlaceOptions,
) -> tuple[list[tuple[int, int]], int, int, int, int, float]:
    """(pieces as (start frame, in frame), start, end, fade in, fade out, gain) of a span
    from the engine's plan. Samples map to scene frames from the segment's start frame
    (nearest frame). Where the span shows its segment's start (end) next to the same cue
    sheet's previous (next) segment, or the video's start (end), the plan's own edge and fade
    are kept; elsewhere (a trim, another strip) the span's edge and fade are used, the plan's
    passes cut there. `edges`: the span's own (start, end, fade in, fade out)."""
    seg = sp.seg
    rate = cue_plan.rate
    b0 = job.movie.frame_start + int(seg["start_frame"])
    b1 = job.movie.frame_start + int(seg["end_frame"])
    s0 = int(round(float(seg["start_s"]) * rate))

    def frame(sample: int) -> int:
        return b0 + int(round(Fraction(sample - s0) * fps / rate))

    pieces = cue_plan.for_segment(sp.segment)
    start, end, fade_in, fade_out = edges
    last_seg = len(job.cue["segments"]) - 1
    before = spans[n - 1] if n > 0 else None
    after = spans[n + 1] if n + 1 < len(spans) else None

    def same_cue(other: _Span | None, segment: int) -> bool:
        return other is not None and other.job == sp.job and other.segment == segment

    if sp.start == b0 and (
        (sp.segment == 0 and not sp.neighbour_left)
        or (same_cue(before, sp.segment - 1) and before is not None and before.end == b0)
    ):
        start = frame(pieces[0].rec_in)
        fade_in = frame(pieces[0].rec_in + pieces[0].fade_in) - start
    if sp.end == b1 and (
        (sp.segment == last_seg and not sp.neighbour_right)
        or (same_cue(after, sp.segment + 1) and after is not None and after.start == b1)
    ):
        end = frame(pieces[-1].rec_out)
        fade_out = end - frame(pieces[-1].rec_out - pieces[-1].fade_out)
    cuts: list[tuple[int, int]] = []
    for q in pieces:
        a, b = max(start, frame(q.rec_in)), min(end, frame(q.rec_out))
        if b > a:
            src = int(round(Fraction(q.src_in) * fps / rate)) + (a - frame(q.rec_in))
            cuts.append((a, src))
    if cuts:
        start = cuts[0][0]
        end = min(end, frame(pieces[-1].rec_out))
    fade_in, fade_out = max(0, min(fade_in, end - start)), max(0, min(fade_out, end - start))
    # The mixdown plays a piece at its gain (the track at the target) times the music level.
    gain_db = pieces[0].gain_db
    gain = _volume((gain_db or 0.0) + music_db(job, opts), opts)
    return cuts, start, end, fade_in, fade_out, gain


def plan(
    jobs: Sequence[Job],
    scene: SceneFacts,
    opts: PlaceOptions | None = None,
    *,
    track_lufs: Mapping[str, float] | None = None,
    track_duration_s: Mapping[str, float] | None = None,
    channels: tuple[int, int] | None = None,
) -> Plan:
    """Everything Auto-score will add to the scene, computed before the scene is touched."""
    opts = opts or PlaceOptions()
    if not jobs:
        raise PlacementError("no movie strip to score: select one or more movie strips")
    for job in jobs:
        check_cue(job.cue, job.movie, job.cue_path)
    chans = channels or choose_channels(scene)
    fps = scene.fps
    spans = _spans(jobs, scene, opts)
    if not spans:
        raise PlacementError("the selected movie strips show nothing on the timeline")

    xf = frames_for(opts.crossfade_s, fps)
    edge = frames_for(opts.edge_fade_s, fps)
    for left, right in zip(spans, spans[1:], strict=False):
        if left.end == right.start:
            ext = min(xf, left.end - left.start, right.end - right.start) // 2
            left.ext_right = right.ext_left = ext
            left.neighbour_right = right.neighbour_left = True

    markers: list[MarkerOp] = []
    sounds: list[SoundOp] = []
    prev_mood: str | None = None
    lufs = track_lufs or {}
    durations = track_duration_s or {}
    plans = [read_plan(j.cue, opts.crossfade_s) for j in jobs]
    for n, sp in enumerate(spans):
        job = jobs[sp.job]
        seg = sp.seg
        mood = str(seg.get("mood", ""))
        if mood != prev_mood:  # a marker at every mood change (and where music starts)
            markers.append(MarkerOp(str(seg.get("mood_label") or mood), sp.start))
        prev_mood = mood
        track = seg.get("track")
        if not track or not track.get("path"):
            continue
        path = cue_track_path(track, job.cue_path)
        start, end = sp.start - sp.ext_left, sp.end + sp.ext_right
        in_frame = max(0, frames_for(float(track.get("in_s") or 0.0), fps) - sp.ext_left)
        dur_s = durations.get(path, track.get("duration_s"))
        length = frames_for(float(dur_s), fps) if dur_s else None
        if length is not None and in_frame >= length:
            in_frame = 0
        fade_in = 2 * sp.ext_left if sp.neighbour_left else min(edge, (end - start) // 4)
        fade_out = 2 * sp.ext_right if sp.neighbour_right else min(edge, (end - start) // 4)
        mv = job.movie
        speech = []
        depth_db, attack_s, release_s = duck_shape(job, opts)
        if opts.duck:
            # Dialogue times are source seconds: source frames at the video's own rate.
            src_fps = float(
                Fraction(int(job.cue["video"]["fps"][0]), int(job.cue["video"]["fps"][1]))
            )
            for s_s, e_s in merged_speech(job.speech, attack_s + release_s):
                a = mv.frame_start + int(round(s_s * src_fps))
                b = mv.frame_start + int(round(e_s * src_fps))
                a, b = max(a, start), min(b, end)
                if b > a:
                    speech.append((a, b))
        dips = _dips(
            speech, 10.0 ** (depth_db / 20.0), frames_for(attack_s, fps), frames_for(release_s, fps)
        )
        gain = _gain(lufs.get(path), job, opts)
        cue_plan = plans[sp.job]
        if cue_plan is not None and cue_plan.for_segment(sp.segment):
            # The engine's plan: its passes, cut to the span where a trim or another strip
            # hides the rest, its own fades and gain at the edges it keeps.
            cuts, start, end, fade_in, fade_out, gain = _from_plan(
                cue_plan, sp, spans, n, job, fps, (start, end, fade_in, fade_out), opts
            )
        else:
            # No plan (an older cue sheet): a track shorter than its span loops from its start.
            cuts = [(start, in_frame)]
            if length:
                t, inn = start, in_frame
                while t + (length - inn) < end:
                    t += length - inn
                    inn = 0
                    cuts.append((t, 0))
        for k, (p_start, p_in) in enumerate(cuts):
            p_end = cuts[k + 1][0] if k + 1 < len(cuts) else end
            keys = _keys(
                p_start,
                p_end,
                gain,
                fade_in if k == 0 else 0,
                fade_out if k == len(cuts) - 1 else 0,
                dips,
            )
            sounds.append(
                SoundOp(
                    name=_name(track),
                    filepath=path,
                    channel=chans[n % 2],
                    start=p_start,
                    end=p_end,
                    in_frame=p_in,
                    volume=round(gain, 6),
                    keys=keys,
                    tags={
                        TAG: 1,
                        "segment": sp.segment,
                        "piece": k,
                        "mood": mood,
                        "track_id": str(track.get("id", "")),
                        "source": mv.name,
                        "cue": job.cue_path,
                        "span_start": sp.start,
                        "span_end": sp.end,
                    },
                )
            )
    return Plan(sounds=tuple(sounds), markers=tuple(markers), channels=chans)


def segment_at(plan_: Plan, frame: int) -> tuple[str, int] | None:
    """(cue path, segment index) of the music heard at `frame` by its nominal span (re-roll)."""
    for s in plan_.sounds:
        if s.tags["span_start"] <= frame < s.tags["span_end"]:
            return str(s.tags["cue"]), int(s.tags["segment"])
    return None


def replace_track(
    cue: Mapping[str, Any], segment: int, new_cue: Mapping[str, Any]
) -> dict[str, Any]:
    """`cue` with only segment `segment`'s track taken from `new_cue` (re-roll changes nothing else)."""
    segments = [dict(s) for s in cue["segments"]]
    new_segments = list(new_cue["segments"])
    if not 0 <= segment < len(segments) or segment >= len(new_segments):
        raise PlacementError(f"segment {segment} is not in the cue sheet")
    if int(new_segments[segment]["start_frame"]) != int(segments[segment]["start_frame"]) or int(
        new_segments[segment]["end_frame"]
    ) != int(segments[segment]["end_frame"]):
        raise PlacementError("the engine returned different segments; run Auto-score again")
    segments[segment]["track"] = new_segments[segment].get("track")
    out = dict(cue)
    out["segments"] = segments
    placement = replace_segment(cue, new_cue, segment)
    if placement is not None:
        out["placement"] = placement
    else:
        out.pop("placement", None)  # no plan for the new track: the span loops as before
    return out

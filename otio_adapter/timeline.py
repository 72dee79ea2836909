"""Cue sheet <-> OTIO Timeline.

A cue sheet becomes a Timeline with
- a "Video" track holding the source clip at the video's exact rate, with its available range;
- music: by default two alternating audio tracks ("Music A", "Music B") whose clips overlap by
  the crossfade and fade in/out with SMPTE_Dissolve transitions; or (``layout="single"``)
  one "Music" track whose clips butt at the segment boundaries with SMPTE_Dissolve
  transitions between them (the form EDL, FCPXML and MLT carry best);
- a marker at every mood change (on the timeline's stack, on the source clip and on the music clip that plays
  the segment), each with ``metadata["moodsic"]`` (mood, label, V, A, confidence, track id).

All times are integer frame counts at the video rate, so 23.976/29.97 material never drifts:
a boundary sits exactly on the frame the cue sheet names.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from moodsic_engine.cue import SCHEMA_ID, CueSheet, Segment, TrackChoice
from moodsic_engine.errors import CueSheetError
from moodsic_engine.mix.plan import MusicPlan

from .placement import (  # noqa: F401 - Placement, place_segments: this module's API too
    PieceFrames,
    Placement,
    piece_frames,
    place_segments,
    placements,
    plan_of,
    track_frames,
)

LAYOUTS = ("alternate", "single")
VIDEO_TRACK = "Video"
MUSIC_TRACKS = ("Music A", "Music B")
MUSIC_TRACK_SINGLE = "Music"
META = "moodsic"

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


# --------------------------------------------------------------------------- rates and frames
def rate_of(fps: Fraction) -> float:
    """OTIO stores rates as doubles; the nearest double to the exact rational."""
    return fps.numerator / fps.denominator


def fps_from_rate(rate: float) -> Fraction:
    """Recover the exact rational rate from OTIO's double (24000/1001, 30000/1001, 25, ...)."""
    for den in (1, 1001, 100, 1000):
        num = rate * den
        if abs(num - round(num)) < 1e-6 * den:
            return Fraction(round(num), den)
    return Fraction(rate).limit_denominator(10000)


def frames_at(seconds: float, fps: Fraction) -> int:
    """Nearest frame to a time in seconds (exact rational arithmetic, no float drift)."""
    return int(round(Fraction(seconds) * fps))


def seconds_of(frame: int, fps: Fraction) -> float:
    return float(Fraction(frame) / fps)


def to_frames(t: otio.opentime.RationalTime, rate: float) -> int:
    """A RationalTime as a whole frame count at `rate` (nearest frame)."""
    return int(round(t.value_rescaled_to(rate)))


# --------------------------------------------------------------------------- plain metadata
def plain(obj: Any) -> Any:
    """OTIO AnyDictionary/AnyVector -> plain dict/list (recursively)."""
    if isinstance(obj, str | bytes | int | float | bool) or obj is None:
        return obj
    if hasattr(obj, "items"):
        return {str(k): plain(v) for k, v in obj.items()}
    if hasattr(obj, "__iter__"):
        return [plain(v) for v in obj]
    return obj


def moodsic_meta(thing: Any) -> dict[str, Any]:
    meta = thing.metadata.get(META) if hasattr(thing, "metadata") else None
    return plain(meta) if meta is not None else {}


# --------------------------------------------------------------------------- placement
def crossfade_of(cue: CueSheet) -> float:
    mix = cue.engine.get("config", {}).get("mix", {}) if isinstance(cue.engine, dict) else {}
    value = mix.get("crossfade_s") if isinstance(mix, dict) else None
    if isinstance(value, int | float) and value >= 0:
        return float(value)
    from moodsic_engine.config import MixConfig

    return MixConfig().crossfade_s


# --------------------------------------------------------------------------- cue -> timeline
_COLOURS = {
    (True, True): otio.schema.MarkerColor.YELLOW,
    (True, False): otio.schema.MarkerColor.GREEN,
    (False, True): otio.schema.MarkerColor.RED,
    (False, False): otio.schema.MarkerColor.BLUE,
}


def mood_colour(valence: float, arousal: float) -> str:
    """The marker colour of a mood: its V/A quadrant, cyan near neutral."""
    if abs(valence) < 0.1 and abs(arousal) < 0.1:
        return otio.schema.MarkerColor.CYAN
    return _COLOURS[(valence >= 0, arousal >= 0)]


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    if base_dir is not None and not p.is_absolute():
        p = base_dir / p
    return p


def media_url(path: str, base_dir: Path | None) -> str:
    """The URL an OTIO media reference should carry for a cue sheet's path: a file:// URL
    (percent-encoded) for a path that resolves to an absolute one; a path that stays
    relative (no `base_dir`) is kept relative, percent-encoded as a relative URL."""
    from urllib.parse import quote

    if "://" in path:
        return path
    p = _resolve(path, base_dir)
    if p.is_absolute():
        return p.as_uri()
    return quote(p.as_posix())


def url_path(url: str) -> str:
    """The local path a media URL names: file:// URLs decoded (``file://localhost/`` too);
    a relative URL is percent-decoded; any other URL is returned as it is."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = unquote(parsed.path)
        if parsed.netloc not in ("", "localhost"):
            path = "//" + parsed.netloc + path  # a UNC share
        return path
    if parsed.scheme and len(parsed.scheme) > 1:
        return url
    return unquote(url)


def _track_dict(track: TrackChoice | None) -> dict[str, Any] | None:
    if track is None:
        return None
    return dataclasses.asdict(track)


def marker_meta(seg: Segment, index: int) -> dict[str, Any]:
    return {
        "segment": index,
        "mood": seg.mood,
        "label": seg.mood_label,
        "valence": float(seg.valence),
        "arousal": float(seg.arousal),
        "confidence": float(seg.confidence),
        "track_id": seg.track.id if seg.track is not None else None,
        "start_s": float(seg.start_s),
        "end_s": float(seg.end_s),
        "start_frame": int(seg.start_frame),
        "end_frame": int(seg.end_frame),
        "track": _track_dict(seg.track),
        "segment_json": json.dumps(dataclasses.asdict(seg), ensure_ascii=False, allow_nan=False),
    }


def make_marker(seg: Segment, index: int, at: otio.opentime.RationalTime) -> otio.schema.Marker:
    return otio.schema.Marker(
        name=seg.mood_label,
        marked_range=TR(at, RT(0, at.rate)),
        color=mood_colour(seg.valence, seg.arousal),
        metadata={META: marker_meta(seg, index)},
    )


def _music_clips(
    seg: Segment,
    p: Placement,
    plan: MusicPlan,
    fps: Fraction,
    base_dir: Path | None,
    *,
    extend: bool,
) -> list[otio.schema.Clip]:
    """The clip(s) playing a segment's track, one per pass of the plan (a track shorter than
    its segment loops as further clips, as the mixdown loops it; no clip reaches past the end
    of its media). `extend`: with the crossfade handles (else cut at the segment's bounds)."""
    track = seg.track
    assert track is not None
    rate = rate_of(fps)
    total = track_frames(track, fps, base_dir)
    shown: list[tuple[PieceFrames, int, int, int]] = []  # piece, record in/out, source in
    for pf in (piece_frames(plan, q, fps, total) for q in plan.for_segment(p.index)):
        a, b = pf.rec_in, pf.rec_out
        if not extend:
            a, b = max(a, p.rec_start), min(b, p.rec_end)
        if b > a:
            # The entering pass is anchored at the mood change (the frame heard there).
            src = (
                p.src_in + (a - p.rec_start) if pf.piece.loop == 0 else pf.src_in + (a - pf.rec_in)
            )
            shown.append((pf, a, b, max(0, src)))
    if not shown and not plan.for_segment(p.index):
        # No file to plan from (a metadata-only library, an empty file): the choice still
        # shows as one clip over the segment, as an editor placeholder to relink.
        lead, trail = (p.head, p.tail) if extend else (0, 0)
        return [_placeholder_clip(seg, p, track, url=media_url(track.path, base_dir),
                                  start=p.src_in - lead, frames=p.length + lead + trail,
                                  rate=rate)]  # fmt: skip
    url = media_url(track.path, base_dir)
    clips = []
    for loop, (pf, a, b, src) in enumerate(shown):
        ref = otio.schema.ExternalReference(
            target_url=url,
            available_range=TR(RT(0, rate), RT(total, rate)) if total is not None else None,
        )
        q = pf.piece
        meta = {"role": "music", "segment": p.index, "track": _track_dict(track), "url": url}
        if len(shown) > 1:
            meta["loop"] = loop
        # The plan's own numbers (samples at its rate): fades and gain for scripts and tools.
        meta["plan"] = {
            "rate": plan.rate,
            "rec_in": q.rec_in,
            "rec_out": q.rec_out,
            "src_in": q.src_in,
            "fade_in": q.fade_in,
            "fade_out": q.fade_out,
            "gain_db": q.gain_db,
        }
        clip = otio.schema.Clip(
            name=track.title or track.id,
            media_reference=ref,
            source_range=TR(RT(src, rate), RT(b - a, rate)),
            metadata={META: meta},
        )
        if loop == 0:
            # The mood change sits at src_in in the clip's media time, whatever the handles.
            clip.markers.append(make_marker(seg, p.index, RT(p.src_in, rate)))
        clips.append(clip)
    return clips


def _placeholder_clip(
    seg: Segment,
    p: Placement,
    track: TrackChoice,
    *,
    url: str,
    start: int,
    frames: int,
    rate: float,
) -> otio.schema.Clip:
    """A segment's track with no plan pieces: one clip with no known media length."""
    meta = {"role": "music", "segment": p.index, "track": _track_dict(track), "url": url}
    clip = otio.schema.Clip(
        name=track.title or track.id,
        media_reference=otio.schema.ExternalReference(target_url=url),
        source_range=TR(RT(max(0, start), rate), RT(frames, rate)),
        metadata={META: meta},
    )
    clip.markers.append(make_marker(seg, p.index, RT(p.src_in, rate)))
    return clip


def _dissolve(in_offset: int, out_offset: int, rate: float, name: str) -> otio.schema.Transition:
    return otio.schema.Transition(
        name=name,
        transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
        in_offset=RT(in_offset, rate),
        out_offset=RT(out_offset, rate),
    )


def _gap(frames: int, rate: float) -> otio.schema.Gap:
    return otio.schema.Gap(source_range=TR(RT(0, rate), RT(frames, rate)))


def cue_to_timeline(
    cue: CueSheet,
    *,
    layout: str = "alternate",
    crossfade_s: float | None = None,
    base_dir: str | Path | None = None,
    name: str | None = None,
) -> otio.schema.Timeline:
    """The cue sheet as an OTIO Timeline (see the module docstring for its shape).

    `base_dir` resolves relative media paths (the cue sheet's folder when read from a file).
    """
    if layout not in LAYOUTS:
        raise CueSheetError(f"unknown layout {layout!r} (choose {' or '.join(LAYOUTS)})")
    base = Path(base_dir) if base_dir is not None else None
    fps = cue.video.fps
    rate = rate_of(fps)
    xfade = crossfade_of(cue) if crossfade_s is None else float(crossfade_s)
    if not math.isfinite(xfade) or xfade < 0:
        raise CueSheetError(f"crossfade_s must be a number of seconds >= 0, got {crossfade_s!r}")
    video_path = _resolve(cue.video.path, base)

    timeline = otio.schema.Timeline(name=name or Path(cue.video.path).stem)
    timeline.global_start_time = RT(0, rate)
    meta = cue.to_dict()
    meta.pop("segments")
    # OTIO's JSON writer may change a double's last digit, so the exact cue sheet also
    # travels as JSON text (readable fields stay alongside for editors and scripts).
    exact = json.dumps(meta, ensure_ascii=False, allow_nan=False)
    meta = {
        "schema": meta["schema"],
        "video": meta["video"],
        "layout": layout,
        "crossfade_s": xfade,
        "cue_json": exact,
    }
    timeline.metadata[META] = meta

    vtrack = otio.schema.Track(name=VIDEO_TRACK, kind=otio.schema.TrackKind.Video)
    vref = otio.schema.ExternalReference(
        target_url=media_url(cue.video.path, base),
        available_range=TR(RT(0, rate), RT(cue.video.frames, rate)),
    )
    vclip = otio.schema.Clip(
        name=video_path.name,
        media_reference=vref,
        source_range=TR(RT(0, rate), RT(cue.video.frames, rate)),
        metadata={META: {"role": "video"}},
    )
    # The mood markers on the picture too (its media time is record time): a CMX 3600 EDL
    # keeps only the first track's clip markers (as LOC comments), never the timeline's.
    for i, seg in enumerate(cue.segments):
        vclip.markers.append(make_marker(seg, i, RT(seg.start_frame, rate)))
    vtrack.append(vclip)
    timeline.tracks.append(vtrack)

    plan = plan_of(cue, xfade, base)
    places = placements(cue.segments, plan, fps)
    if layout == "single":
        timeline.tracks.append(_single_track(cue.segments, places, plan, fps, base))
    else:
        for track in _alternate_tracks(cue.segments, places, plan, fps, base):
            timeline.tracks.append(track)

    for i, seg in enumerate(cue.segments):
        timeline.tracks.markers.append(make_marker(seg, i, RT(seg.start_frame, rate)))
    return timeline


def _single_track(segments, placements, plan, fps, base) -> otio.schema.Track:  # noqa: ANN001
    rate = rate_of(fps)
    track = otio.schema.Track(name=MUSIC_TRACK_SINGLE, kind=otio.schema.TrackKind.Audio)
    prev_clip = False
    for seg, p in zip(segments, placements, strict=True):
        if seg.track is None:
            track.append(_gap(p.length, rate))
            prev_clip = False
            continue
        if prev_clip and p.index > 0:
            before = placements[p.index - 1]
            # in_offset: before the cut (the incoming clip's head); out_offset: after it.
            if p.head or before.tail > 0:
                track.append(_dissolve(p.head, max(0, before.tail), rate, "crossfade"))
        clips = _music_clips(seg, p, plan, fps, base, extend=False)
        track.extend(clips)
        shown = sum(to_frames(c.source_range.duration, rate) for c in clips)
        if shown < p.length:  # the music stopped on a bar line before the segment's end
            track.append(_gap(p.length - shown, rate))
        prev_clip = shown == p.length
    return track


def _alternate_tracks(segments, placements, plan, fps, base) -> list[otio.schema.Track]:  # noqa: ANN001
    rate = rate_of(fps)
    tracks = [otio.schema.Track(name=n, kind=otio.schema.TrackKind.Audio) for n in MUSIC_TRACKS]
    cursor = [0, 0]  # record frame where each track currently ends
    for seg, p in zip(segments, placements, strict=True):
        if seg.track is None:
            continue
        k = p.index % 2
        track = tracks[k]
        start = p.rec_start - p.head
        if start > cursor[k]:
            track.append(_gap(start - cursor[k], rate))
        elif len(track) and isinstance(track[-1], otio.schema.Transition):
            track.pop()  # butts onto its predecessor on this track: no room to fade, hard join
        clips = _music_clips(seg, p, plan, fps, base, extend=True)
        pieces = [piece_frames(plan, q, fps) for q in plan.for_segment(p.index)]
        first_in = pieces[0].fade_in if pieces else 0  # no pieces: a placeholder, no fades
        fade_in = min(first_in, to_frames(clips[0].source_range.duration, rate))
        if fade_in and len(track) and isinstance(track[-1], otio.schema.Gap):
            # A fade from silence (the gap) over the plan's fade-in.
            track.append(_dissolve(0, fade_in, rate, "crossfade in"))
        track.extend(clips)
        cursor[k] = p.rec_end + p.tail
        nxt = placements[p.index + 1] if p.index + 1 < len(placements) else None
        last_out = pieces[-1].fade_out if pieces else 0
        fade_out = min(last_out, to_frames(clips[-1].source_range.duration, rate))
        followed = nxt is not None and segments[nxt.index].track is not None
        ends_early = nxt is None and cursor[k] < segments[-1].end_frame
        if fade_out and (followed or ends_early):
            track.append(_dissolve(fade_out, 0, rate, "crossfade out"))
    end = segments[-1].end_frame
    for k, track in enumerate(tracks):
        if cursor[k] < end:
            track.append(_gap(end - cursor[k], rate))
        elif len(track) and isinstance(track[-1], otio.schema.Transition):
            track.pop()  # nothing after it to fade into
    return tracks


def music_track_timeline(
    timeline: otio.schema.Timeline, index: int = 0, *, kind: str = otio.schema.TrackKind.Video
) -> otio.schema.Timeline:
    """A one-track Timeline holding a copy of music track `index` (for EDL export).

    CMX 3600 writes only the first track and wants it to be a video track, so the copy is
    relabelled `kind` (default Video); its clips still point at the audio files. The
    timeline's mood markers are copied to the new timeline's stack. Fades against silence
    (the alternate layout's transitions next to gaps) are left out: an EDL dissolves between
    two events only.
    """
    music = music_tracks(timeline)
    if not music:
        raise CueSheetError("timeline has no music track")
    if not 0 <= index < len(music):
        raise CueSheetError(f"timeline has {len(music)} music track(s); no track {index}")
    out = otio.schema.Timeline(name=f"{timeline.name} {music[index].name}".strip())
    out.global_start_time = copy.deepcopy(timeline.global_start_time)
    track = copy.deepcopy(music[index])
    track.kind = kind
    for i in reversed(range(len(track))):
        item = track[i]
        if isinstance(item, otio.schema.Transition):
            before = track[i - 1] if i > 0 else None
            after = track[i + 1] if i + 1 < len(track) else None
            if not isinstance(before, otio.schema.Clip) or not isinstance(after, otio.schema.Clip):
                del track[i]
    out.tracks.append(track)
    for marker in timeline.tracks.markers:
        out.tracks.markers.append(copy.deepcopy(marker))
    return out


def is_video(track: Any) -> bool:
    """A video track: kind "Video", as OTIO spells it, or "video"/"VIDEO" as hand-written
    and some tools' JSON has it."""
    return isinstance(track, otio.schema.Track) and str(track.kind).lower() == "video"


def is_moodsic_music(track: Any) -> bool:
    return isinstance(track, otio.schema.Track) and any(
        moodsic_meta(c).get("role") == "music" for c in track.find_clips(shallow_search=True)
    )


def music_tracks(timeline: otio.schema.Timeline) -> list[otio.schema.Track]:
    """Moodsic's music tracks (by clip metadata); else every audio track (metadata lost)."""
    ours = [t for t in timeline.tracks if is_moodsic_music(t)]
    if ours:
        return ours
    return [
        t
        for t in timeline.tracks
        if isinstance(t, otio.schema.Track) and t.kind == otio.schema.TrackKind.Audio
    ]


# --------------------------------------------------------------------------- timeline -> cue
def _video_track(timeline: otio.schema.Timeline) -> otio.schema.Track:
    for track in timeline.tracks:
        if is_video(track):
            return track
    raise CueSheetError(f"timeline {timeline.name!r} has no video track")


def _record_range(item: Any, rate: float) -> tuple[int, int]:
    rng = item.range_in_parent()
    start = to_frames(rng.start_time, rate)
    return start, start + to_frames(rng.duration, rate)


def _stack_markers(timeline: otio.schema.Timeline, rate: float) -> list[tuple[int, dict[str, Any]]]:
    found = [
        (to_frames(m.marked_range.start_time, rate), moodsic_meta(m))
        for m in timeline.tracks.markers
        if moodsic_meta(m)
    ]
    if found:
        return sorted(found, key=lambda x: x[0])
    # No timeline markers (e.g. read back from a format that keeps only clip markers):
    # take the music clips' markers, mapped to record time.
    for track in timeline.tracks:
        if not isinstance(track, otio.schema.Track):
            continue
        for clip in track.find_clips(shallow_search=True):
            rec_start, _ = _record_range(clip, rate)
            src_start = to_frames(clip.source_range.start_time, rate) if clip.source_range else 0
            for m in clip.markers:
                meta = moodsic_meta(m)
                if meta:
                    at = rec_start + to_frames(m.marked_range.start_time, rate) - src_start
                    found.append((at, meta))
    found.sort(key=lambda x: x[0])
    unique: list[tuple[int, dict[str, Any]]] = []
    for at, meta in found:
        if not unique or unique[-1][0] != at:
            unique.append((at, meta))
    return unique


def _music_at(
    timeline: otio.schema.Timeline, frame: int, rate: float, segment: int | None
) -> tuple[Any, int] | None:
    """The music clip that starts playing the segment beginning at record `frame`, and the
    media frame it plays there.

    Several clips can cover a boundary (a crossfade's outgoing clip, a loop's last pass):
    the one Moodsic made for this segment wins, else the one that started last.
    """
    best: tuple[tuple[int, int], Any, int] | None = None
    for track in music_tracks(timeline):
        for clip in track.find_clips(shallow_search=True):
            start, end = _record_range(clip, rate)
            if not (start <= frame < end) or clip.source_range is None:
                continue
            meta = moodsic_meta(clip)
            ours = int(meta.get("segment") == segment and meta.get("loop", 0) == 0)
            key = (ours, start)
            if best is None or key > best[0]:
                src = to_frames(clip.source_range.start_time, rate)
                best = (key, clip, src + (frame - start))
    return None if best is None else (best[1], best[2])


def _only_a_tail(clip: Any, segment: int | None, at: int, end: int, rate: float) -> bool:
    """A Moodsic clip made for another segment that stops in the first half of this one: the
    outgoing side of a crossfade, which tells nothing about this segment's music."""
    meta = moodsic_meta(clip)
    if meta.get("role") != "music" or meta.get("segment") in (None, segment):
        return False
    return _record_range(clip, rate)[1] <= (at + end) // 2


def _own_clip(
    timeline: otio.schema.Timeline, segment: int | None, at: int, end: int, rate: float
) -> tuple[Any, int] | None:
    """The clip Moodsic made for `segment`, when an editor slid it to start later inside the
    segment: it and its first media frame."""
    if segment is None:
        return None
    for track in music_tracks(timeline):
        for clip in track.find_clips(shallow_search=True):
            meta = moodsic_meta(clip)
            if meta.get("segment") != segment or meta.get("loop", 0) != 0:
                continue
            start, _ = _record_range(clip, rate)
            if at <= start < end and clip.source_range is not None:
                return clip, to_frames(clip.source_range.start_time, rate)
    return None


def _segment_fields(seg: dict[str, Any]) -> dict[str, Any]:
    """A serialised Segment in marker-metadata names (exact values)."""
    return {
        "mood": seg["mood"],
        "label": seg["mood_label"],
        "valence": seg["valence"],
        "arousal": seg["arousal"],
        "confidence": seg["confidence"],
        "start_s": seg["start_s"],
        "end_s": seg["end_s"],
        "start_frame": seg["start_frame"],
        "end_frame": seg["end_frame"],
        "track": seg["track"],
    }


def timeline_to_cue(timeline: otio.schema.Timeline, *, video_path: str | None = None) -> CueSheet:
    """Write a Timeline back as a cue sheet: segments from the mood markers (their record
    positions, so markers moved in an editor move the boundaries), tracks from the music
    clips playing in each segment (relinked paths and slipped in points are kept).

    Raises CueSheetError when the timeline carries no Moodsic markers.
    """
    meta = moodsic_meta(timeline)
    if meta.get("cue_json"):
        meta = json.loads(meta["cue_json"])
    vtrack = _video_track(timeline)
    video = dict(meta.get("video") or {})
    if video.get("fps"):
        fps = Fraction(int(video["fps"][0]), int(video["fps"][1]))
    else:
        clips = list(vtrack.find_clips(shallow_search=True))
        if not clips:
            raise CueSheetError(f"timeline {timeline.name!r}: the video track has no clip")
        fps = fps_from_rate(clips[0].trimmed_range().duration.rate)
    rate = rate_of(fps)
    frames = (
        to_frames(timeline.tracks.duration(), rate) if not video.get("frames") else video["frames"]
    )
    if not video:
        clips = list(vtrack.find_clips(shallow_search=True))
        if len(clips) != 1:
            raise CueSheetError(
                f"timeline {timeline.name!r} has {len(clips)} video clips and no Moodsic metadata: "
                "a cue sheet describes one video"
            )
        ref = clips[0].media_reference
        video = {
            "path": url_path(getattr(ref, "target_url", None) or "") or clips[0].name,
            "fps": [fps.numerator, fps.denominator],
            "frames": frames,
            "duration_s": seconds_of(frames, fps),
        }
    if video_path is not None:
        video["path"] = video_path
    markers = _stack_markers(timeline, rate)
    if not markers:
        raise CueSheetError(f"timeline {timeline.name!r} carries no Moodsic mood markers")
    if markers[0][0] != 0:
        raise CueSheetError(f"timeline {timeline.name!r}: the first mood marker is not at frame 0")
    segments = []
    relinked = False  # another file: the music plan made for the old one no longer applies
    for i, (at, m) in enumerate(markers):
        if m.get("segment_json"):
            m = {**m, **_segment_fields(json.loads(m["segment_json"]))}
        end = markers[i + 1][0] if i + 1 < len(markers) else int(video["frames"])
        start_s = m["start_s"] if m.get("start_frame") == at else seconds_of(at, fps)
        end_s = m["end_s"] if m.get("end_frame") == end else seconds_of(end, fps)
        track = dict(m["track"]) if m.get("track") else None
        found = _music_at(timeline, at, rate, m.get("segment"))
        if found is not None and _only_a_tail(found[0], m.get("segment"), at, end, rate):
            found = None  # the previous segment's crossfade tail: not this segment's music
        if found is None:
            found = _own_clip(timeline, m.get("segment"), at, end, rate)
            if found is None and music_tracks(timeline):
                track = None  # its music was deleted in an editor: the segment is silent
        if found is not None:
            clip, in_frame = found
            clip_meta = moodsic_meta(clip).get("track")
            if clip_meta and (track is None or clip_meta.get("id") != track.get("id")):
                track = dict(clip_meta)  # an editor put another Moodsic track here
            if track is not None:
                if frames_at(track.get("in_s", 0.0), fps) != in_frame:
                    track["in_s"] = max(0.0, seconds_of(in_frame, fps))  # slipped in an editor
                url = getattr(clip.media_reference, "target_url", None)
                if url and url != moodsic_meta(clip).get("url"):
                    track["path"] = url_path(url)  # relinked in an editor
                    relinked = True
        segments.append(
            {
                "start_s": start_s,
                "end_s": end_s,
                "start_frame": at,
                "end_frame": end,
                "mood": m.get("mood", "unknown"),
                "mood_label": m.get("label", m.get("mood", "")),
                "valence": m.get("valence", 0.0),
                "arousal": m.get("arousal", 0.0),
                "confidence": m.get("confidence", 0.0),
                "track": track,
            }
        )
    data = {
        "schema": meta.get("schema", SCHEMA_ID),
        "video": video,
        "engine": meta.get("engine") or {"version": "unknown", "experts": [], "config": {}},
        "samples": meta.get("samples") or [],
        "cuts": meta.get("cuts") or [],
        "segments": segments,
        "summary": meta.get("summary") or {},
    }
    if meta.get("placement") and not relinked:
        # Kept as it was: readers check it still fits (edited boundaries, tracks, in points).
        data["placement"] = meta["placement"]
    return CueSheet.from_dict(data, source=f"timeline {timeline.name!r}")

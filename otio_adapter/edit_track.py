"""The picture of an edit as Moodsic scores it: the main video track, its rate, and every clip
on it as an `EditClip` (record frames, the source seconds it shows, its media file, speed).
This is the timeline -> spans half of score-timeline; `otio_adapter.score` does the rest."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from moodsic_engine.errors import InputError

from .media import media_path, media_timecode
from .timeline import fps_from_rate, is_video, rate_of, to_frames


@dataclass(frozen=True)
class EditClip:
    """One clip of the main video track: where it sits in the edit and what it shows."""

    index: int  # position among the track's children
    name: str
    rec_start: int  # record frames at the edit rate
    rec_end: int
    src_start_s: float  # seconds inside the media file
    src_end_s: float
    path: Path | None  # None: no usable media reference
    problem: str = ""  # why it cannot be scored ("" when it can)
    speed: float = 1.0  # source seconds per record second (time warps); 0: a freeze frame


# ----------------------------------------------------------------------------- reading the edit
def _timecode(frames: int, rate: float) -> str:
    try:
        return otio.opentime.to_timecode(otio.opentime.RationalTime(frames, rate), rate)
    except Exception:  # rates without a timecode form
        return f"frame {frames}"


_MAX_VIDEO_FPS = 300  # a rate above this is an audio sample rate, not a picture's


def edit_rate(timeline: otio.schema.Timeline, track: otio.schema.Track) -> Fraction:
    """The edit's frame rate: its global start time's, else its first clip's. A rate that
    is no picture rate (a global start time at 48 kHz, as some tools write it) is passed over
    while another item tells a picture rate."""
    rates = []
    if timeline.global_start_time is not None and timeline.global_start_time.rate > 1:
        rates.append(timeline.global_start_time.rate)
    for item in track:
        if isinstance(item, otio.core.Item) and item.source_range is not None:
            rates.append(item.source_range.duration.rate)
        elif isinstance(item, otio.schema.Clip):
            rates.append(item.trimmed_range().duration.rate)
    for rate in rates:
        if 1 < rate <= _MAX_VIDEO_FPS:
            return fps_from_rate(rate)
    if rates:
        return fps_from_rate(rates[0])
    raise InputError(f"timeline {timeline.name!r}: cannot tell its frame rate (empty main track)")


def _shows(item: Any) -> bool:
    """An item that puts a picture on screen: not a gap, transition or disabled item."""
    return not isinstance(item, otio.schema.Gap | otio.schema.Transition) and item.enabled


def _fcpxml_spine(timeline: otio.schema.Timeline) -> otio.schema.Track | None:
    """FCPXML's primary storyline: the FCPXML reader names tracks by lane ("-1", "0", "1"),
    and connected clips below the spine (lane -1) come first in its track order."""
    tracks = [t for t in timeline.tracks if isinstance(t, otio.schema.Track)]
    names = [t.name for t in tracks]
    if len(tracks) < 2 or len(tracks) != len(timeline.tracks):
        return None
    if not all(n.lstrip("-").isdigit() for n in names):
        return None
    for track in tracks:
        if (
            track.name == "0"
            and is_video(track)
            and track.enabled
            and any(_shows(item) for item in track)
        ):
            return track
    return None


_NUMBERED = re.compile(r"^\s*(?:V|Video)\s*(\d+)\s*$", re.I)


def _bottom_up(timeline: otio.schema.Timeline) -> list[Any]:
    """The timeline's tracks from the bottom of the picture up. OTIO lists the bottom track
    first, but Kdenlive's OTIO export lists its tracks top first (V2, V1, A1, A2); where the
    video tracks are numbered by name (V1, V2 / Video 1, Video 2), the numbers tell the
    order: V1 is the bottom."""
    tracks = list(timeline.tracks)
    videos = [t for t in tracks if is_video(t)]
    numbers = [_NUMBERED.match(t.name or "") for t in videos]
    if len(videos) < 2 or not all(numbers):
        return tracks
    rank = {id(t): int(m.group(1)) for t, m in zip(videos, numbers, strict=True)}
    return sorted(tracks, key=lambda t: (0, rank[id(t)]) if id(t) in rank else (1, 0))


def main_video_track(timeline: otio.schema.Timeline) -> otio.schema.Track:
    """The edit's picture: the lowest enabled video track that holds an enabled clip (V1 by
    name where the tracks are numbered, whatever their order in the file);
    an empty V1 under the cut (a track of gaps, a disabled track) is passed over. In a
    timeline read from FCPXML (tracks named by lane) it is the primary storyline, lane 0.
    Only when no video track holds a clip is the first video track returned (its emptiness
    is reported by the caller)."""
    if not isinstance(timeline, otio.schema.Timeline):
        raise InputError(f"expected an OTIO Timeline, got {type(timeline).__name__}")
    spine = _fcpxml_spine(timeline)
    if spine is not None:
        return spine
    videos: list[otio.schema.Track] = []
    for track in _bottom_up(timeline):
        if is_video(track) and track.enabled:  # a hidden track is not the picture
            if any(_shows(item) for item in track):
                return track
            videos.append(track)
        elif isinstance(track, otio.schema.Stack):
            raise InputError(
                f"timeline {timeline.name!r}: a nested stack ({track.name or 'unnamed'}) sits "
                "among the tracks; flatten the edit first"
            )
    if videos:
        return videos[0]
    raise InputError(f"timeline {timeline.name!r} has no video track")


def edit_clips(
    timeline: otio.schema.Timeline,
    *,
    base_dir: Path | None = None,
    bundle_dir: Path | None = None,
) -> tuple[list[EditClip], Fraction, int]:
    """The main track's clips, its rate, and its duration in frames.

    Gaps stay silent gaps (no pictures to score); transitions are allowed (each clip is scored
    over its own trimmed range, the cut being the transition's centre); a nested stack or track
    is scored as the picture it shows (`_shown`).
    """
    track = main_video_track(timeline)
    for i, item in enumerate(track):
        if isinstance(item, otio.schema.Transition):
            continue
        try:
            item.trimmed_range()
        except Exception as exc:  # neither a source range nor an available range
            raise InputError(
                f"timeline {timeline.name!r}: item {item.name or i!r} on the main track has no "
                f"usable range ({' '.join(str(exc).split())[:120]})"
            ) from None
    if not any(_shows(item) for item in track):
        raise InputError(f"timeline {timeline.name!r}: the main video track has no clips")
    fps = edit_rate(timeline, track)
    rate = rate_of(fps)
    clips: list[EditClip] = []
    for i, item in enumerate(track):
        if isinstance(item, otio.schema.Transition | otio.schema.Gap) or not item.enabled:
            continue  # a disabled clip shows nothing: a gap to the viewer
        rng = item.range_in_parent()
        start = to_frames(rng.start_time, rate)
        end = to_frames(rng.end_time_exclusive(), rate)  # ends meet the next starts
        for shown, shown_start, shown_end in _shown(item, start, end, rate, timeline.name):
            clip = _edit_clip(
                i, shown, shown_start, shown_end, rate, timeline.name, base_dir, bundle_dir
            )
            if clip is not None:
                clips.append(clip)
    frames = to_frames(track.duration(), rate)
    for other in timeline.tracks:  # the edit runs as long as its longest track
        try:
            frames = max(frames, to_frames(other.duration(), rate))
        except Exception:  # a clip with no range on another track: that track has no length
            continue
    return clips, fps, frames


def _shown(
    item: Any, start: int, end: int, rate: float, where: str, depth: int = 0
) -> Iterator[tuple[Any, int, int]]:
    """What a main-track item puts on screen, as (item, record start, record end) frames: a
    clip itself; for a nested stack or track (a compound clip, an OTIO nest), the items of
    its flattened picture (the top-most enabled item at each moment) inside its used range."""
    if not isinstance(item, otio.schema.Stack | otio.schema.Track):
        yield item, start, end
        return
    if depth >= _MAX_NESTING:
        raise InputError(f"timeline {where!r}: nested more than {_MAX_NESTING} levels deep")
    flat = _flattened(item) if isinstance(item, otio.schema.Stack) else item
    if item.source_range is not None:
        flat = otio.algorithms.track_trimmed_to_range(flat, item.source_range)
    for child in flat:
        if isinstance(child, otio.schema.Transition | otio.schema.Gap) or not child.enabled:
            continue
        rng = child.range_in_parent()
        child_start = start + to_frames(rng.start_time, rate)
        child_end = min(end, start + to_frames(rng.end_time_exclusive(), rate))
        if child_end > child_start:
            yield from _shown(child, child_start, child_end, rate, where, depth + 1)


_MAX_NESTING = 32


def _flattened(stack: otio.schema.Stack) -> otio.schema.Track:
    """A stack's picture as one track: OTIO's flatten (the top-most enabled item at each
    moment) over its children, a child that is not a track (a clip laid straight into the
    stack) standing as a track of its own."""
    layers = []
    for child in stack:
        if isinstance(child, otio.schema.Track):
            layers.append(child.clone())
        else:
            layer = otio.schema.Track(kind=otio.schema.TrackKind.Video)
            layer.append(child.clone())
            layers.append(layer)
    return otio.algorithms.flatten_stack(layers)


def _edit_clip(
    i: int,
    item: Any,
    start: int,
    end: int,
    rate: float,
    where: str,
    base_dir: Path | None,
    bundle_dir: Path | None,
) -> EditClip | None:
    """One shown clip as an EditClip (None when it lasts no frame)."""
    if not isinstance(item, otio.schema.Clip):
        raise InputError(
            f"timeline {where!r}: unsupported item {type(item).__name__} at "
            f"{_timecode(start, rate)}"
        )
    name = item.name or f"clip {i}"
    ref = item.media_reference
    problem = ""
    path = None
    src = item.trimmed_range()
    offset = otio.opentime.RationalTime(0, src.start_time.rate)
    available = getattr(ref, "available_range", None)
    if available is not None:
        offset = available.start_time  # media with a start timecode
        if (
            offset.to_seconds() > 0
            and src.start_time < offset
            and src.start_time.to_seconds() >= 0
            and src.end_time_exclusive().to_seconds() <= available.duration.to_seconds() + 1e-9
        ):
            # a source range counted from the file's start although the reference
            # names a start timecode: it lies inside the media only read that way
            offset = otio.opentime.RationalTime(0, src.start_time.rate)
    src_start = (src.start_time - offset).to_seconds()
    speed = _speed(item)
    if speed > 0:
        src_end = src_start + src.duration.to_seconds() * speed
    else:  # a freeze frame shows one source frame for the clip's whole length
        src_end = src_start + 1.0 / src.duration.rate
    if isinstance(ref, otio.schema.GeneratorReference):
        problem = f"generator reference ({ref.generator_kind or 'unknown kind'}), no media to watch"
    elif ref is None or ref.is_missing_reference:
        problem = "missing media reference"
    elif isinstance(ref, otio.schema.ImageSequenceReference):
        problem = "image sequences are not supported"
    else:
        path = media_path(ref, base_dir, bundle_dir)
        if path is None:
            problem = f"not a local file: {getattr(ref, 'target_url', '')}"
        elif not path.is_file():
            problem = (
                f"media not found (not a file): {path}"
                if path.exists()
                else f"media not found: {path}"
            )
        elif available is None:
            # EDL-style source times are the media's own timecode (01:00:00:00 and on)
            found = _on_media_clock(path, src, speed)
            if found is not None:
                src_start, src_end = found
    if end <= start:
        return None
    return EditClip(i, name, start, end, src_start, src_end, path, problem, speed)


def _on_media_clock(
    path: Path, src: otio.opentime.TimeRange, speed: float
) -> tuple[float, float] | None:
    """Source seconds of a range given on the media's timecode clock (an EDL's source in/out),
    or None when the file carries no timecode the range lies on.

    Timecode labels frames, so where the edit's rate and the file's share a timecode base
    (24 and 23.976, 30 and 29.97) the file frame is the label difference: 19:00:00:00 read
    at 24 in an EDL is frame 0 of a 23.976 camera file starting at 19:00:00:00, not 68 s
    into it as a difference in seconds would say. Otherwise the seconds are compared.
    """
    found = media_timecode(path)
    if found is None or found[0] <= 0:
        return None
    label, fps = found
    edit_rate = src.start_time.rate
    if round(edit_rate) == round(fps):
        first = round(src.start_time.value) - label
        if first < 0:
            return None
        start = float(Fraction(first) / fps)
        length = float(Fraction(round(src.duration.value)) / fps)
    else:
        tc = float(Fraction(label) / fps)
        start = src.start_time.to_seconds()
        if start < tc - 1e-6:
            return None
        start -= tc
        length = src.duration.to_seconds()
    if speed > 0:
        return start, start + length * speed
    return start, start + float(1 / fps)  # a freeze frame: one source frame


def _speed(item: Any) -> float:
    """How fast a clip plays its source: the product of its linear time warps (an EDL's M2
    speed change, a freeze frame: 0); reverse play is taken at its speed."""
    speed = 1.0
    for effect in getattr(item, "effects", ()):
        if isinstance(effect, otio.schema.LinearTimeWarp):
            speed *= abs(effect.time_scalar)
    return speed

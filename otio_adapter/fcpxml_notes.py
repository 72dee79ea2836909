"""What Moodsic keeps in an FCPXML beyond clips and gaps, and how the reader gets it back.

The writer (``otio_adapter.fcpxml_write``) puts Moodsic's metadata where Apple's DTD allows
free text: a ``<note>`` holding ``{"moodsic": {...}}`` (compact JSON) on the sequence (the
cue sheet the edit was scored with) and on every clip Moodsic made (a music clip's role,
segment, track and URL), and each mood marker's segment in its ``<marker note>``.

The reader (``otio_adapter.fcpxml_read``) calls `restore` once the tracks are built: secondary
storylines give their tracks the ``<spine name>`` and their ``<transition>``\\ s (as OTIO
Transitions at the frames of the cut, in/out offsets either side of it, fades from and to
a gap included) and their trailing gap; ``<marker>``\\ s of the primary storyline's items,
of connected clips and of secondary storylines' items come back on the items that show
them, in their source time; a marker carrying Moodsic's JSON gets its ``metadata["moodsic"]``
back and goes on the timeline too, as every mood marker of a scored edit sits there.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import opentimelineio as otio

from .fcpxml_time import frames, rt_exact, rt_frames
from .fcpxml_walk import STORY, Resources, local_start, pick, story_children

META = "moodsic"  # otio_adapter.timeline.META (not imported: the reader loads lightly)


# ----------------------------------------------------------------------------- notes
def moodsic_note(meta: dict[str, Any]) -> str:
    """Moodsic's metadata as a note's text."""
    return json.dumps({META: meta}, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def read_note(text: str | None) -> dict[str, Any] | None:
    """The Moodsic metadata a note holds (None for an editor's own note)."""
    if not text or not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    found = data.get(META) if isinstance(data, dict) else None
    return found if isinstance(found, dict) else None


def add_note(element: ET.Element, thing: Any) -> None:
    """A `<note>` with `thing`'s Moodsic metadata as `element`'s first child (the DTD puts
    note before everything else a clip or sequence holds, except a video's params)."""
    from .timeline import moodsic_meta

    meta = moodsic_meta(thing)
    if not meta:
        return
    note = ET.Element("note")
    note.text = moodsic_note(meta)
    first = sum(1 for child in element if child.tag == "param")
    element.insert(first, note)


def marker_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A mood marker's full metadata (as ``otio_adapter.timeline.marker_meta`` makes it)
    from what its note keeps: the segment's index and its exact JSON."""
    text = meta.get("segment_json")
    if not isinstance(text, str) or set(meta) - {"segment", "segment_json"}:
        return meta
    try:
        seg = json.loads(text)
        track = seg["track"]
        return {
            "segment": meta.get("segment"),
            "mood": seg["mood"],
            "label": seg["mood_label"],
            "valence": float(seg["valence"]),
            "arousal": float(seg["arousal"]),
            "confidence": float(seg["confidence"]),
            "track_id": track.get("id") if isinstance(track, dict) else None,
            "start_s": float(seg["start_s"]),
            "end_s": float(seg["end_s"]),
            "start_frame": int(seg["start_frame"]),
            "end_frame": int(seg["end_frame"]),
            "track": track,
            "segment_json": text,
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return meta


def _colour(meta: dict[str, Any]) -> str:
    from .timeline import mood_colour

    try:
        return mood_colour(float(meta["valence"]), float(meta["arousal"]))
    except (KeyError, TypeError, ValueError):
        return otio.schema.MarkerColor.RED


# ----------------------------------------------------------------------------- reading
@dataclass
class Storyline:
    """A secondary storyline of the primary one: its lane, name and record time of its 0."""

    lane: int
    name: str
    at: Fraction  # sequence time (tcStart included) of the storyline's own time 0
    element: ET.Element


@dataclass
class Found:
    """What the primary storyline's items and their connections carry besides clips."""

    storylines: list[Storyline] = field(default_factory=list)
    # (lane or None for the primary storyline, sequence time, duration, name, note)
    markers: list[tuple[int | None, Fraction, Fraction, str, str]] = field(default_factory=list)


def collect(elements: list[ET.Element], res: Resources) -> Found:
    """Secondary storylines and markers of the primary storyline's `elements` and of what
    is connected to them (one level: what Final Cut Pro and Moodsic's writer put there)."""
    found = Found()
    for element in elements:
        at = res.time(element, "offset")
        _item_markers(found, None, element, at, res)
        base = pick(element) if element.tag == "audition" else element
        if base is None:
            continue
        origin = local_start(base, res)
        for child in story_children(base):
            lane = child.get("lane")
            if lane is None:
                continue
            try:
                number = int(lane)
            except ValueError:
                continue  # the walk refuses it with a message
            child_at = at + res.time(child, "offset") - origin
            if child.tag != "spine":
                _item_markers(found, number, child, child_at, res)
                continue
            found.storylines.append(Storyline(number, child.get("name", ""), child_at, child))
            for item in story_children(child):
                _item_markers(found, number, item, child_at + res.time(item, "offset"), res)
    return found


def _item_markers(
    found: Found, lane: int | None, element: ET.Element, at: Fraction, res: Resources
) -> None:
    """The markers of a story element at sequence time `at`: an audition's active pick's,
    a sync-clip's or clip's own and its components' (their connected ones in their lane)."""
    if element.tag == "audition":
        chosen = pick(element)
        if chosen is not None:
            _markers(found, lane, chosen, at, res)
        return
    _markers(found, lane, element, at, res)
    if element.tag not in ("sync-clip", "clip"):
        return
    origin = res.time(element, "start")
    for child in story_children(element):
        child_at = at + res.time(child, "offset") - origin
        inner = child.get("lane")
        if inner is None:
            _markers(found, lane, child, child_at, res)
        elif inner.lstrip("-").isdigit() and child.tag != "spine":
            _markers(found, (lane or 0) + int(inner), child, child_at, res)


def _markers(
    found: Found, lane: int | None, element: ET.Element, at: Fraction, res: Resources
) -> None:
    """`element`'s markers (in its local time, from its start) in sequence time."""
    start = res.time(element, "start")
    offset = res.time(element, "offset")
    duration = res.time(element, "duration")
    for marker in element.findall("marker"):
        local = res.time(marker, "start")
        when = at + local - start
        if element.get("duration") and not start <= local < start + duration:
            apart = abs(offset - start) >= duration  # no time would be read both ways
            if not (apart and offset <= local < offset + duration):
                continue  # outside what the clip shows: Final Cut Pro hides it too
            # Final Cut Pro times a title's markers in its parent's time, not the title's
            when = at + local - offset
        length = res.time(marker, "duration")
        found.markers.append((lane, when, length, marker.get("value", ""), marker.get("note", "")))


def restore(
    found: Found,
    tracks: dict[int, list[otio.schema.Track]],
    main: otio.schema.Track,
    timeline: otio.schema.Timeline,
    res: Resources,
    tc_start: Fraction,
    fps: Fraction,
    limit: int,
) -> None:
    """Names, trailing gaps and transitions of the lanes' tracks (`tracks` by lane) from
    their storylines, then every marker onto its item (and the timeline). `limit`: the
    sequence's length in frames (no track is padded past it)."""
    for line in found.storylines:
        lane_tracks = tracks.get(line.lane, [])
        for track in lane_tracks:
            if line.name and track.name == str(line.lane):
                track.name = line.name
        end = frames(line.at + _spine_length(line.element, res) - tc_start, fps)
        for track in lane_tracks:
            length = _length(track)
            if length < min(end, limit):
                track.append(_gap(min(end, limit) - length, fps))
        for cut, before, after, name in _transitions(line, res, tc_start, fps):
            for track in lane_tracks:
                if _insert_transition(track, cut, before, after, name, fps):
                    break
    _place_markers(found, tracks, main, timeline, tc_start, fps)
    markers = sorted(timeline.tracks.markers, key=lambda m: m.marked_range.start_time.value)
    timeline.tracks.markers[:] = markers


def _spine_length(spine: ET.Element, res: Resources) -> Fraction:
    ends = [
        res.time(c, "offset") + res.time(c, "duration")
        for c in story_children(spine)
        if c.get("lane") is None and c.get("duration")
    ]
    return max(ends, default=Fraction(0))


def _transitions(
    line: Storyline, res: Resources, tc_start: Fraction, fps: Fraction
) -> list[tuple[int, int, int, str]]:
    """(cut frame, frames before it, frames after it, name) of a storyline's transitions:
    the cut is where the next item starts (the previous one's end for a last transition)."""
    items = [c for c in line.element if (c.tag in STORY and c.get("lane") is None)]
    out = []
    previous: ET.Element | None = None
    for child in line.element:
        if child.tag in STORY and child.get("lane") is None:
            previous = child
            continue
        if child.tag != "transition":
            continue
        following = items[items.index(previous) + 1 :] if previous is not None else items
        if following:
            cut = res.time(following[0], "offset")
        elif previous is not None:
            cut = res.time(previous, "offset") + res.time(previous, "duration")
        else:
            continue
        begin = res.time(child, "offset")
        end = begin + res.time(child, "duration")
        cut_f = frames(line.at + cut - tc_start, fps)
        before = cut_f - frames(line.at + begin - tc_start, fps)
        after = frames(line.at + end - tc_start, fps) - cut_f
        if before >= 0 and after >= 0 and before + after > 0:
            out.append((cut_f, before, after, child.get("name", "")))
    return out


def _length(track: otio.schema.Track) -> int:
    return sum(
        round(i.source_range.duration.value)
        for i in track
        if not isinstance(i, otio.schema.Transition)
    )


def _gap(count: int, fps: Fraction) -> otio.schema.Gap:
    return otio.schema.Gap(
        source_range=otio.opentime.TimeRange(rt_frames(0, fps), rt_frames(count, fps))
    )


def _insert_transition(
    track: otio.schema.Track, cut: int, before: int, after: int, name: str, fps: Fraction
) -> bool:
    """Put a transition at the cut `cut` (a record frame) of `track`, if an item ends there
    and another starts there (a gap included: a fade from or to silence)."""
    pos = 0
    for index, item in enumerate(track):
        if isinstance(item, otio.schema.Transition):
            continue
        if pos == cut and index > 0:
            previous = track[index - 1]
            if isinstance(previous, otio.schema.Transition):
                return False
            before = min(before, round(previous.source_range.duration.value))
            after = min(after, round(item.source_range.duration.value))
            track.insert(index, _transition(name, before, after, fps))
            return True
        pos += round(item.source_range.duration.value)
        if pos > cut:
            return False
    return False


def _transition(name: str, before: int, after: int, fps: Fraction) -> otio.schema.Transition:
    return otio.schema.Transition(
        name=name,
        transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
        in_offset=rt_frames(before, fps),
        out_offset=rt_frames(after, fps),
    )


def _place_markers(
    found: Found,
    tracks: dict[int, list[otio.schema.Track]],
    main: otio.schema.Track,
    timeline: otio.schema.Timeline,
    tc_start: Fraction,
    fps: Fraction,
) -> None:
    on_stack: set[int] = set()
    for lane, when, length, name, note in found.markers:
        at = frames(when - tc_start, fps)
        meta = read_note(note)
        if meta is not None:
            meta = marker_meta(meta)
        if meta is not None and at not in on_stack:
            # every mood marker of a scored edit is a timeline marker; FCP has none, so
            # the writer hangs them on clips (the music's) or on the primary storyline
            on_stack.add(at)
            timeline.tracks.markers.append(_marker(name, rt_frames(at, fps), meta, "", fps))
        if meta is not None and lane is None:
            continue  # a timeline marker the writer put on the picture
        # a lane with no track: a clip's own sound split off under it, which the clip carries
        candidates = tracks.get(lane, []) if lane is not None else []
        placed = _item_at(candidates or [main], at)
        if placed is None:
            continue
        item, rec_start = placed
        speed = Fraction(1)
        for effect in getattr(item, "effects", ()):
            if isinstance(effect, otio.schema.LinearTimeWarp):
                speed *= Fraction(effect.time_scalar).limit_denominator(10**6)
        start = item.source_range.start_time + rt_exact(
            Fraction(at - rec_start, 1) * speed / fps, fps
        )
        duration = frames(length, fps)
        item.markers.append(_marker(name, start, meta, note, fps, 0 if meta else duration))


def _item_at(candidates: list[otio.schema.Track], at: int) -> tuple[otio.core.Item, int] | None:
    """The item showing record frame `at` (a clip before a gap), and its first frame."""
    best: tuple[otio.core.Item, int] | None = None
    for track in candidates:
        pos = 0
        for item in track:
            if isinstance(item, otio.schema.Transition):
                continue
            length = round(item.source_range.duration.value)
            if pos <= at < pos + length or (at == pos + length == _length(track)):
                if not isinstance(item, otio.schema.Gap):
                    return item, pos
                best = best or (item, pos)
            pos += length
    return best


def _marker(
    name: str,
    start: otio.opentime.RationalTime,
    meta: dict[str, Any] | None,
    note: str,
    fps: Fraction,
    duration: int = 0,
) -> otio.schema.Marker:
    marker = otio.schema.Marker(
        name=name,
        marked_range=otio.opentime.TimeRange(start, rt_frames(duration, fps)),
        color=_colour(meta) if meta else otio.schema.MarkerColor.RED,
        metadata={META: meta} if meta else {},
    )
    if note and not meta:
        marker.comment = note
    return marker


def apply_clip_note(clip: otio.core.Item, note: str) -> None:
    """A clip's note: Moodsic's metadata back in ``metadata["moodsic"]``, an editor's own
    note kept under ``metadata["fcpxml"]["note"]``."""
    if not note:
        return
    meta = read_note(note)
    if meta is not None:
        clip.metadata[META] = meta
    else:
        fcp = dict(clip.metadata.get("fcpxml", {}))
        fcp["note"] = note
        clip.metadata["fcpxml"] = fcp


def sequence_meta(seq: ET.Element) -> dict[str, Any] | None:
    """The cue sheet a scored edit carries in its sequence's note."""
    return read_note(seq.findtext("note"))

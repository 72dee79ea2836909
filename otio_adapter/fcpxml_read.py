"""Final Cut Pro's FCPXML (1.8 to 1.14, as FCP exports it) read into a plain OTIO Timeline.

- The project's primary storyline (its sequence's <spine>) is the video track named "0";
  compound clips (ref-clip), multicam clips (mc-clip, the active video angle), sync-clips,
  clips and auditions (the active pick) are flattened into it as the clips actually shown.
- Connected clips and secondary storylines go to tracks named by lane ("1", "-1", ...) or by
  the storyline's ``<spine name>``, at their record positions; audio-only ones to audio
  tracks. A storyline's transitions (fades from and to a gap too) are OTIO Transitions.
- Markers come back on the items that show them; Moodsic's notes (``otio_adapter.fcpxml_notes``)
  give back the metadata of a scored edit's music clips, mood markers and cue sheet.
- Titles and generators are clips with a GeneratorReference (no picture to watch); disabled
  clips stay as clips with ``enabled = False`` (black to the viewer); still images are
  clips referencing the image file; transitions between two clips are OTIO Transitions.
- The sequence's tcStart is the timeline's global_start_time; record times count from it.
- Every time is exact (FCPXML's rational seconds) until it becomes a whole frame at the
  sequence rate; the main track's length is checked against the sequence's own duration.

Hostile files are refused in one line: entity declarations, oversized files, deep nesting or
too many elements.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from moodsic_engine.errors import InputError

from .fcpxml_notes import apply_clip_note, collect, restore, sequence_meta
from .fcpxml_time import format_fps, frames, rate_float, rt_exact, rt_frames
from .fcpxml_walk import (
    STORY,
    Piece,
    Resources,
    connected,
    media_url,
    pieces,
    story_children,
)
from .formats import ReadOptions

META_KEY = "fcpxml"


# ----------------------------------------------------------------------------- parsing
def parse_fcpxml(path: Path) -> ET.Element:
    """The root <fcpxml> element of a file, refusing what no editor writes."""
    from .xml_input import read_xml

    return read_xml(path, "fcpxml", "FCPXML")[1]


def _projects(root: ET.Element) -> list[ET.Element]:
    return [p for p in root.iter("project") if p.find("sequence") is not None]


def _choose(root: ET.Element, options: ReadOptions, name: str) -> ET.Element:
    projects = _projects(root)
    names = [p.get("name", "") for p in projects]
    listed = ", ".join(repr(n) for n in names)
    if options.project is not None:
        for project in projects:
            if project.get("name", "") == options.project:
                return project
        # FCP keeps trailing spaces in names; a shell user rarely types them
        loose = [p for p in projects if _loose(p.get("name", "")) == _loose(options.project)]
        if len(loose) == 1:
            return loose[0]
        if not projects:
            raise InputError(
                f"{name}: holds no project, so --project {options.project!r} is unused"
            )
        raise InputError(f"{name}: no project named {options.project!r}; it holds {listed}")
    if len(projects) > 1:
        raise InputError(
            f"{name}: holds {len(projects)} projects ({listed}); pass --project NAME to pick one"
        )
    return projects[0]


def _loose(name: str) -> str:
    return " ".join(name.split()).casefold()


def _lone_clip(root: ET.Element) -> ET.Element | None:
    """An event clip to read when the file holds no project (a clip exported on its own)."""
    for tag in ("asset-clip", "ref-clip", "mc-clip", "sync-clip", "clip"):
        for element in root.iter(tag):
            if element.get("lane") is None and _outside_resources(root, element):
                return element
    return None


def _outside_resources(root: ET.Element, element: ET.Element) -> bool:
    resources = root.find("resources")
    return resources is None or all(element is not e for e in resources.iter(element.tag))


# ----------------------------------------------------------------------------- reading
def read_fcpxml(path: Path, options: ReadOptions) -> otio.schema.Timeline:
    """Registry reader for .fcpxml files and .fcpxmld bundles (their Info.fcpxml)."""
    if path.is_dir():  # FCP 10.6+ exports an .fcpxmld bundle folder
        if not (path / "Info.fcpxml").is_file():
            raise InputError(f"{path.name}: an .fcpxmld bundle without Info.fcpxml")
        path = path / "Info.fcpxml"
    root = parse_fcpxml(path)
    res = Resources(root, path.name)
    if _projects(root):
        project = _choose(root, options, path.name)
        return _read_sequence(project.find("sequence"), project.get("name", ""), res)
    clip = _lone_clip(root)
    if clip is None:
        raise InputError(f"{path.name}: this FCPXML holds no project, sequence or clip")
    return _read_lone_clip(clip, res)


def _sequence_fps(fmt_id: str, res: Resources) -> Fraction:
    fmt = res.formats.get(fmt_id)
    if fmt is None:
        raise res.fail(f"the sequence's format {fmt_id!r} is not among the resources")
    try:
        fps = format_fps(fmt)
    except ValueError as exc:
        raise res.fail(str(exc)) from None
    if fps is None:
        raise res.fail(f"format {fmt_id!r} has no frameDuration, so its frame rate is unknown")
    return fps


def _read_sequence(seq: ET.Element, project: str, res: Resources) -> otio.schema.Timeline:
    fps = _sequence_fps(seq.get("format", ""), res)
    tc_start = res.time(seq, "tcStart")
    spine = seq.find("spine")
    kids = story_children(spine) if spine is not None else []
    transitions: dict[int, ET.Element] = {}  # index of the element a transition leads into
    elements: list[ET.Element] = []
    for child in spine if spine is not None else ():
        if child.tag == "transition":
            transitions[len(elements)] = child
        elif child.tag in STORY:
            elements.append(child)
    if not kids:
        raise res.fail(f"project {project!r} is empty (nothing in its primary storyline)")
    main = _main_track(elements, transitions, tc_start, fps, res)
    main.name = spine.get("name") or main.name if spine is not None else main.name
    timeline = otio.schema.Timeline(name=project)
    timeline.global_start_time = rt_frames(frames(tc_start, fps), fps)
    lanes: list[tuple[int, list[Piece]]] = []
    for element in elements:
        lanes.extend(connected(element, res.time(element, "offset"), res))
    videos, audios = _lane_tracks(lanes, tc_start, fps)
    for track in [*[t for n, t in videos if n < 0], main, *[t for n, t in videos if n > 0]]:
        timeline.tracks.append(track)
    for _, track in audios:
        timeline.tracks.append(track)
    expected = frames(res.time(seq, "duration"), fps)
    by_lane: dict[int, list[otio.schema.Track]] = {}
    for lane, track in [*videos, *audios]:
        by_lane.setdefault(lane, []).append(track)
    # storyline names, transitions and trailing gaps; markers; Moodsic's notes
    restore(collect(elements, res), by_lane, main, timeline, res, tc_start, fps, expected)
    # FCP's sequence runs to the end of its storyline, or of a connected clip hanging over it
    length = max(_frames_of(t) for t in timeline.tracks)
    if length != expected:
        raise res.fail(
            f"project {project!r} reads as {length} frames (storyline {_frames_of(main)}) but "
            f"its sequence says {expected}; refusing a timeline that would be wrong"
        )
    timeline.metadata[META_KEY] = {"project": project, "rate": str(fps)}
    cue = sequence_meta(seq)
    if cue is not None:
        timeline.metadata["moodsic"] = cue
    return timeline


def _frames_of(track: otio.schema.Track) -> int:
    return round(
        sum(
            i.source_range.duration.value
            for i in track
            if not isinstance(i, otio.schema.Transition)
        )
    )


def _read_lone_clip(clip: ET.Element, res: Resources) -> otio.schema.Timeline:
    """A file with event clips and no project: its first clip as a one-clip timeline."""
    fmt_id = clip.get("format", "")
    if not fmt_id and clip.tag == "asset-clip":
        fmt_id = res.assets.get(clip.get("ref", ""), ET.Element("a")).get("format", "")
    if not fmt_id and clip.tag == "ref-clip":
        media = res.media.get(clip.get("ref", ""))
        seq = media.find("sequence") if media is not None else None
        fmt_id = seq.get("format", "") if seq is not None else ""
    fps = _sequence_fps(fmt_id, res)
    main = _main_track([clip], {}, Fraction(0), fps, res, first_at=Fraction(0))
    timeline = otio.schema.Timeline(name=clip.get("name", ""))
    timeline.tracks.append(main)
    timeline.metadata[META_KEY] = {"clip": clip.get("name", ""), "rate": str(fps)}
    return timeline


def _main_track(
    elements: list[ET.Element],
    transitions: dict[int, ET.Element],
    tc_start: Fraction,
    fps: Fraction,
    res: Resources,
    first_at: Fraction | None = None,
) -> otio.schema.Track:
    track = otio.schema.Track(name="0", kind=otio.schema.TrackKind.Video)
    cursor = 0  # frames from tcStart
    for index, element in enumerate(elements):
        at = first_at if first_at is not None else None
        found = pieces(element, res, offset=at)
        lead = transitions.get(index)
        for k, piece in enumerate(found):
            start, end = frames(piece.start - tc_start, fps), frames(piece.end - tc_start, fps)
            if start > cursor:
                track.append(_gap(start - cursor, fps))
            elif start < cursor:  # overlaps what is there already: keep the earlier
                piece = _advanced(piece, Fraction(cursor - start) / fps)
                start = cursor
            if end <= start:
                continue
            if k == 0 and lead is not None and len(track):
                transition = _transition(lead, element, track, end - start, fps, res)
                if transition is not None:
                    track.append(transition)
            track.append(_item(piece, end - start, fps))
            cursor = end
    return track


def _advanced(piece: Piece, by: Fraction) -> Piece:
    from dataclasses import replace

    return replace(piece, start=piece.start + by, src=piece.src + by * piece.speed)


def _gap(count: int, fps: Fraction) -> otio.schema.Gap:
    return otio.schema.Gap(
        source_range=otio.opentime.TimeRange(rt_frames(0, fps), rt_frames(count, fps))
    )


def _transition(
    lead: ET.Element,
    element: ET.Element,
    track: otio.schema.Track,
    next_frames: int,
    fps: Fraction,
    res: Resources,
) -> otio.schema.Transition | None:
    """A transition into `element`: in/out offsets around the cut (the element's offset)."""
    previous = track[-1]
    if isinstance(previous, otio.schema.Transition):
        return None
    cut = res.time(element, "offset")
    begin = res.time(lead, "offset")
    end = begin + res.time(lead, "duration")
    before = max(0, min(frames(cut - begin, fps), round(previous.source_range.duration.value)))
    after = max(0, min(frames(end - cut, fps), next_frames))
    if before + after == 0:
        return None
    return otio.schema.Transition(
        name=lead.get("name", ""),
        transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
        in_offset=rt_frames(before, fps),
        out_offset=rt_frames(after, fps),
    )


def _item(piece: Piece, count: int, fps: Fraction) -> otio.core.Item:
    """One piece as an OTIO item `count` frames long."""
    if piece.kind == "gap":
        return _gap(count, fps)
    duration = rt_frames(count, fps)
    meta: dict[str, object] = {}
    if piece.kind == "generator":
        ref: otio.core.MediaReference = otio.schema.GeneratorReference(
            name=piece.effect, generator_kind=piece.effect or "title"
        )
        source = otio.opentime.TimeRange(rt_frames(0, fps), duration)
        meta["generator"] = piece.effect
        meta["element"] = piece.element
        if piece.effect_uid:
            meta["effect_uid"] = piece.effect_uid
    else:
        asset = piece.asset
        assert asset is not None
        url = media_url(asset)
        available = None
        src = piece.src
        if piece.still:  # a still shows the same picture at any time: its file from 0
            src = Fraction(0)
            meta["still"] = True
        else:
            a_start = _time(asset, "start")
            a_duration = _time(asset, "duration")
            if a_duration > 0:
                available = otio.opentime.TimeRange(
                    rt_exact(a_start, fps), rt_exact(a_duration, fps)
                )
        if url:
            ref = otio.schema.ExternalReference(target_url=url, available_range=available)
        else:
            ref = otio.schema.MissingReference(name=asset.get("name", ""))
        ref.name = asset.get("name", "")
        source = otio.opentime.TimeRange(rt_exact(src, fps), duration)
        if piece.audio:
            meta["audio_only"] = True
    clip = otio.schema.Clip(name=piece.name, media_reference=ref, source_range=source)
    clip.enabled = piece.enabled
    if piece.speed != 1:
        clip.effects.append(otio.schema.LinearTimeWarp(time_scalar=float(piece.speed)))
    if meta:
        clip.metadata[META_KEY] = meta
    apply_clip_note(clip, piece.note)
    return clip


def _time(element: ET.Element, attr: str) -> Fraction:
    from .fcpxml_time import parse_time

    try:
        return parse_time(element.get(attr), Fraction(0))
    except ValueError:
        return Fraction(0)


def _lane_tracks(
    lanes: list[tuple[int, list[Piece]]], tc_start: Fraction, fps: Fraction
) -> tuple[list[tuple[int, otio.schema.Track]], list[tuple[int, otio.schema.Track]]]:
    """Tracks for connected clips: one per lane and kind (more when clips overlap in a lane),
    video lanes in lane order, audio lanes from -1 downwards."""
    rows: dict[tuple[int, bool], list[list[tuple[int, int, Piece]]]] = {}
    for lane, found in lanes:
        for piece in found:
            if piece.kind == "gap":
                continue
            start, end = frames(piece.start - tc_start, fps), frames(piece.end - tc_start, fps)
            if end <= start:
                continue
            bands = rows.setdefault((lane, piece.audio), [])
            for band in bands:  # the first band of this lane where it does not overlap
                if all(end <= s or start >= e for s, e, _ in band):
                    band.append((start, end, piece))
                    break
            else:
                bands.append([(start, end, piece)])
    videos: list[tuple[int, otio.schema.Track]] = []
    audios: list[tuple[int, otio.schema.Track]] = []
    for (lane, audio), bands in sorted(rows.items(), key=lambda kv: (kv[0][1], _order(kv[0]))):
        kind = otio.schema.TrackKind.Audio if audio else otio.schema.TrackKind.Video
        for band in bands:
            track = otio.schema.Track(name=str(lane), kind=kind)
            cursor = 0
            for start, end, piece in sorted(band, key=lambda b: b[0]):
                if start > cursor:
                    track.append(_gap(start - cursor, fps))
                track.append(_item(piece, end - start, fps))
                cursor = end
            (audios if audio else videos).append((lane, track))
    return videos, audios


def _order(key: tuple[int, bool]) -> int:
    lane, audio = key
    return -lane if audio else lane  # audio: -1, -2, ... (nearest the picture first)


__all__ = ["parse_fcpxml", "read_fcpxml", "rate_float"]

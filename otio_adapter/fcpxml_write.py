"""Moodsic's FCPXML writer: a scored edit as a Final Cut Pro project (FCPXML 1.8 by default).

The edit's picture (the main video track, as scoring sees it) is the project's primary
storyline; every other track -- the editor's other video tracks above it, audio tracks and
Moodsic's music tracks below it -- is a secondary storyline (``<spine lane="±n">``) anchored
to the first item of the primary storyline at record frame 0, so its items keep their
record frames. OTIO transitions become ``<transition>`` elements (Cross Dissolve with an
Audio Crossfade, as Final Cut Pro writes them) in the storyline they sit in: the music's
crossfades, and its fades from and to silence in the two-track layout (a transition
between a gap and a clip), sit where the OTIO timeline has them, to the frame. Moodsic's
metadata travels in notes (``otio_adapter.fcpxml_notes``), so a scored edit reads back.

Every time is an exact rational number of seconds; record times are whole frames of the
edit rate (24000/1001 and 30000/1001 included), and the timeline's ``global_start_time``
is the sequence's ``tcStart``. Assets carry ``hasVideo``/``hasAudio`` (and the audio's
sources, channels and sample rate, read with soundfile or ffprobe when the file is at
hand), the source's start timecode and a duration covering every frame the edit uses,
transition handles included, and an absolute ``file://`` URL when the media is found.

Version 1.8 (Final Cut Pro 10.4.1 and later; DaVinci Resolve) keeps the media path in
``<asset src>``, which every FCPXML reader takes; ``version="1.10"`` writes ``<media-rep>``
as Final Cut Pro 10.6 and later export it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from moodsic_engine.errors import InputError

from .fcpxml_media import (
    Asset,
    AssetTable,
    carried_markers,
    fcp_time,
    fine,
    format_name,
    frames_of,
    marker_text,
    probe,
    seconds_of,
    speed_of,
    src_url,
    time_map,
)
from .fcpxml_notes import add_note

VERSIONS = ("1.8", "1.10")
DEFAULT_VERSION = "1.8"
# Final Cut Pro's own effect identifiers for its default transition pair.
CROSS_DISSOLVE_UID = "FxPlug:4731E73A-8DAC-4113-9A30-AE85B1761265"
AUDIO_CROSSFADE_UID = "FFAudioTransition"
BASIC_TITLE_UID = (
    ".../Titles.localized/Bumper:Opener.localized/Basic Title.localized/Basic Title.moti"
)


# ----------------------------------------------------------------------------- the writer
@dataclass
class _Writer:
    fps: Fraction
    base: Path | None
    version: str
    resources: ET.Element = field(default_factory=lambda: ET.Element("resources"))
    formats: dict[tuple[Any, ...], str] = field(default_factory=dict)
    effects: dict[str, str] = field(default_factory=dict)
    next_id: int = 1
    seq_format: str = ""
    assets: AssetTable = field(init=False)

    def __post_init__(self) -> None:
        self.assets = AssetTable(self.base, self._id)

    # -- ids and resources
    def _id(self) -> str:
        rid = f"r{self.next_id}"
        self.next_id += 1
        return rid

    def t(self, frames: int) -> str:
        return fcp_time(Fraction(frames) / self.fps)

    def format_id(self, fps: Fraction | None, width: int | None, height: int | None) -> str:
        key = (fps, width, height)
        if key not in self.formats:
            rid = self._id()
            attrs = {"id": rid}
            name = format_name(fps, width, height) if fps and width and height else None
            if fps is None:  # a photo's
                name = "FFVideoFormatRateUndefined"
            if name:
                attrs["name"] = name
            if fps:
                attrs["frameDuration"] = fcp_time(1 / fps)
            if width and height:
                attrs["width"], attrs["height"] = str(width), str(height)
            self.formats[key] = rid
            self.resources.append(ET.Element("format", attrs))
        return self.formats[key]

    def effect_id(self, name: str, uid: str) -> str:
        if uid not in self.effects:
            self.effects[uid] = self._id()
            ET.SubElement(self.resources, "effect", id=self.effects[uid], name=name, uid=uid)
        return self.effects[uid]


def _is_music(track: otio.schema.Track) -> bool:
    from .timeline import is_moodsic_music

    return is_moodsic_music(track)


def _is_audio(track: Any) -> bool:
    return isinstance(track, otio.schema.Track) and str(track.kind).lower() == "audio"


@dataclass
class _Placed:
    """A written spine element and the record frames it covers."""

    element: ET.Element
    rec_start: int
    rec_end: int
    local_start: Fraction  # its own time at rec_start (a clip's source in; a gap's start)


class _Spine:
    """Writes one OTIO track as a storyline: items butt, a transition overlaps its neighbours."""

    def __init__(self, w: _Writer, base_frames: int, *, audio: bool, music: bool) -> None:
        self.w = w
        self.base = base_frames  # the spine's time at record frame 0 (tcStart, or 0)
        self.audio = audio
        self.music = music
        self.placed: list[_Placed] = []

    def write(self, spine: ET.Element, track: otio.schema.Track, total: int) -> int:
        """Append `track`'s items to `spine` (a lone gap of `total` frames when it has none:
        connected storylines may run past the primary one's end, as FCP exports them)."""
        pos = 0
        for item in track:
            if isinstance(item, otio.schema.Transition):
                spine.append(self.transition(item, pos))
                continue
            try:
                frames = frames_of(item.trimmed_range().duration, self.w.fps)
            except Exception:  # a clip with neither a source nor an available range
                raise InputError(
                    f"{getattr(item, 'name', '') or 'an item'} on track {track.name!r} has no "
                    "length (no source range and no available range); trim it in the edit first"
                ) from None
            if frames <= 0:
                continue
            element, local = self.item(item, pos, frames)
            spine.append(element)
            self.placed.append(_Placed(element, pos, pos + frames, local))
            pos += frames
        if not self.placed:  # an empty storyline still needs an item to anchor to
            element = self.gap(0, max(total, 1))
            spine.append(element)
            self.placed.append(_Placed(element, 0, max(total, 1), Fraction(0)))
        return pos

    def gap(self, pos: int, frames: int, name: str = "Gap") -> ET.Element:
        return ET.Element(
            "gap", {"name": name, "offset": self.w.t(self.base + pos), "duration": self.w.t(frames)}
        )

    def transition(self, item: otio.schema.Transition, pos: int) -> ET.Element:
        before = frames_of(item.in_offset, self.w.fps)
        after = frames_of(item.out_offset, self.w.fps)
        element = ET.Element(
            "transition",
            {
                "name": "Cross Dissolve",
                "offset": self.w.t(self.base + pos - before),
                "duration": self.w.t(before + after),
            },
        )
        ET.SubElement(
            element,
            "filter-video",
            ref=self.w.effect_id("Cross Dissolve", CROSS_DISSOLVE_UID),
            name="Cross Dissolve",
        )
        ET.SubElement(
            element,
            "filter-audio",
            ref=self.w.effect_id("Audio Crossfade", AUDIO_CROSSFADE_UID),
            name="Audio Crossfade",
        )
        return element

    def item(self, item: Any, pos: int, frames: int) -> tuple[ET.Element, Fraction]:
        if isinstance(item, otio.schema.Clip):
            if isinstance(item.media_reference, otio.schema.GeneratorReference):
                found = self.generator(item, pos, frames)
                if found is not None:
                    return found, Fraction(0)
            asset = self.w.assets.add(item, self.audio)
            if asset is not None:
                return self.clip(item, asset, pos, frames)
        elif isinstance(item, otio.schema.Stack):
            return self.compound(item, pos, frames)
        element = self.gap(pos, frames, name=getattr(item, "name", "") or "Gap")
        return element, Fraction(0)

    def generator(self, item: otio.schema.Clip, pos: int, frames: int) -> ET.Element | None:
        """A title or generator read from FCPXML (its Motion template's uid kept by the
        reader) as that element again; its text is not known, so FCP shows the template's."""
        meta = item.metadata.get("fcpxml")
        meta = meta if hasattr(meta, "get") else {}
        tag = "title" if meta.get("element", "title") == "title" else "video"
        kind = str(item.media_reference.generator_kind or "")
        uid = meta.get("effect_uid")
        if not uid and tag == "title" and kind.lower() in ("title", "basic title"):
            uid = BASIC_TITLE_UID  # a title whose template is not known: FCP's default one
        if not uid:
            return None  # written as a gap: nothing else says what it was
        name = str(meta.get("generator") or kind or "Title")
        if uid == BASIC_TITLE_UID and name.lower() == "title":
            name = "Basic Title"
        attrs = {
            "ref": self.w.effect_id(name, str(uid)),
            "offset": self.w.t(self.base + pos),
            "name": item.name or name,
            "start": "0s",
            "duration": self.w.t(frames),
        }
        if not item.enabled:
            attrs["enabled"] = "0"
        element = ET.Element(tag, attrs)
        self.markers(element, item)
        return element

    def clip(
        self, item: otio.schema.Clip, asset: Asset, pos: int, frames: int
    ) -> tuple[ET.Element, Fraction]:
        source = seconds_of(item.trimmed_range().start_time)
        speed = speed_of(item)
        start = source if speed == 1 else (fine(source / speed) if speed > 0 else Fraction(0))
        attrs = {
            "ref": asset.id,
            "offset": self.w.t(self.base + pos),
            "name": item.name or Path(asset.name).stem,
            "start": fcp_time(start),
            "duration": self.w.t(frames),
        }
        if not item.enabled:
            attrs["enabled"] = "0"
        if self.music:
            attrs["audioRole"] = "music"
        element = ET.Element("video" if asset.still else "asset-clip", attrs)
        add_note(element, item)  # a music clip's role, segment and track
        if speed != 1 and not asset.still:
            element.append(time_map(source, start, Fraction(frames) / self.w.fps, speed))
        self.markers(element, item, speed)
        return element, start

    def compound(
        self, item: otio.schema.Stack, pos: int, frames: int
    ) -> tuple[ET.Element, Fraction]:
        """A nested stack as a compound clip: a <media> resource holding its own sequence."""
        rid = self.w._id()
        media = ET.Element("media", id=rid, name=item.name or "Compound Clip")
        tracks = [t for t in item if isinstance(t, otio.schema.Track)]
        inner_total = max((frames_of(t.duration(), self.w.fps) for t in tracks), default=frames)
        sequence = ET.SubElement(
            media,
            "sequence",
            format=self.w.seq_format,
            duration=self.w.t(inner_total),
            tcStart="0s",
            tcFormat="NDF",
        )
        write_stack(self.w, sequence, tracks, inner_total, tc_start=0)
        self.w.resources.append(media)
        start = seconds_of(item.trimmed_range().start_time)
        attrs = {
            "ref": rid,
            "offset": self.w.t(self.base + pos),
            "name": item.name or "Compound Clip",
            "start": fcp_time(start),
            "duration": self.w.t(frames),
        }
        if not item.enabled:
            attrs["enabled"] = "0"
        element = ET.Element("ref-clip", attrs)
        self.markers(element, item)
        return element, start

    def markers(self, element: ET.Element, item: Any, speed: Fraction = Fraction(1)) -> None:
        """The item's markers, in its own (source) time, as Final Cut Pro keeps them (a
        retimed clip's own time runs at `speed` against its source's)."""
        one = Fraction(1) / self.w.fps
        for marker in item.markers:
            rng = marker.marked_range
            at = seconds_of(rng.start_time)
            ET.SubElement(
                element,
                "marker",
                start=fcp_time(at / speed if speed > 0 else at),
                duration=fcp_time(max(one, seconds_of(rng.duration))),
                **marker_text(marker),
            )


def write_stack(
    w: _Writer,
    sequence: ET.Element,
    tracks: list[otio.schema.Track],
    total: int,
    *,
    tc_start: int,
    main: otio.schema.Track | None = None,
    stack_markers: list[otio.schema.Marker] | None = None,
) -> None:
    """A sequence's primary storyline (`main`, else the first video track, else a gap) and
    every other track as a secondary storyline anchored at record frame 0."""
    if main is None:
        videos = [t for t in tracks if not _is_audio(t)]
        main = videos[0] if videos else None
    spine = ET.SubElement(sequence, "spine")
    if main is not None and main.name:  # the track's name, for a reader that keeps it
        spine.set("name", main.name)
    primary = _Spine(w, tc_start, audio=main is not None and _is_audio(main), music=False)
    if main is not None:
        primary.write(spine, main, total)
    else:
        primary.write(spine, otio.schema.Track(), total)
    anchor = primary.placed[0] if primary.placed else None
    lanes_up, lanes_down = 0, 0
    storylines: list[ET.Element] = []
    for track in tracks:
        if track is main or not isinstance(track, otio.schema.Track):
            continue
        if not any(not isinstance(i, otio.schema.Gap) for i in track):
            continue  # a track of gaps holds nothing a storyline would show
        audio = _is_audio(track)
        if audio:
            lanes_down -= 1
            lane = lanes_down
        else:
            lanes_up += 1
            lane = lanes_up
        assert anchor is not None
        storyline = ET.Element(
            "spine",
            {"lane": str(lane), "offset": fcp_time(anchor.local_start), "name": track.name or ""},
        )
        if not storyline.get("name"):
            del storyline.attrib["name"]
        _Spine(w, 0, audio=audio, music=audio and _is_music(track)).write(storyline, track, 0)
        storylines.append(storyline)
    if anchor is not None:
        # anchored items come after a timeMap and before the anchor's markers (DTD order)
        first = sum(1 for c in anchor.element if c.tag in ("note", "conform-rate", "timeMap"))
        for k, storyline in enumerate(storylines):
            anchor.element.insert(first + k, storyline)
    for marker in stack_markers or []:
        at = frames_of(marker.marked_range.start_time, w.fps)
        for placed in primary.placed:
            if placed.rec_start <= at < placed.rec_end:
                local = placed.local_start + Fraction(at - placed.rec_start) / w.fps
                ET.SubElement(
                    placed.element,
                    "marker",
                    start=fcp_time(local),
                    duration=w.t(1),
                    **marker_text(marker),
                )
                break


def fcpxml_string(
    timeline: otio.schema.Timeline, *, base_dir: Path | None = None, version: str = DEFAULT_VERSION
) -> str:
    """`timeline` as an FCPXML document (see the module docstring). `base_dir` resolves
    relative media paths (the output's folder)."""
    from .edit_track import edit_rate, main_video_track

    if version not in VERSIONS:
        raise InputError(f"FCPXML version {version} is not written; use {' or '.join(VERSIONS)}")
    if isinstance(timeline, otio.schema.SerializableCollection):
        found = list(timeline.find_children(descended_from_type=otio.schema.Timeline))
        if len(found) != 1:  # otioconvert of a whole FCPXML event or library
            raise InputError(f"FCPXML is written from one timeline; this holds {len(found)}")
        timeline = found[0]
    if not isinstance(timeline, otio.schema.Timeline):
        raise InputError(f"FCPXML holds a timeline, not a {type(timeline).__name__}")
    tracks = list(timeline.tracks)
    for t in tracks:
        if not isinstance(t, otio.schema.Track):
            raise InputError(
                f"timeline {timeline.name!r}: a nested stack ({t.name or 'unnamed'}) sits among "
                "the tracks; flatten the edit first"
            )
    try:
        main = main_video_track(timeline)
    except InputError:
        main = None
    rate_track = main if main is not None else (tracks[0] if tracks else otio.schema.Track())
    try:
        fps = edit_rate(timeline, rate_track)
    except InputError:
        fps = Fraction(25)
    w = _Writer(fps=fps, base=base_dir, version=version)
    w.assets.bundle = _bundle_folder(timeline)
    seq_format = w.seq_format = w.format_id(fps, *_sequence_size(w, main))
    tc_start = 0
    if timeline.global_start_time is not None:
        tc_start = max(0, frames_of(timeline.global_start_time, fps))
    total = max((frames_of(t.duration(), fps) for t in tracks), default=0)

    root = ET.Element("fcpxml", version=version)
    root.append(w.resources)
    # A bare project, as Apple documents it: Final Cut Pro asks which library and event to
    # put it in, and an OTIO reader gives back a Timeline, not a collection of one.
    project = ET.SubElement(root, "project", name=timeline.name or "Moodsic")
    sequence = ET.SubElement(
        project,
        "sequence",
        format=seq_format,
        duration=w.t(total),
        tcStart=w.t(tc_start),
        tcFormat="NDF",
        audioLayout="stereo",
        audioRate="48k",
    )
    carried = carried_markers(timeline, fps)
    markers = [
        m
        for m in timeline.tracks.markers
        if (frames_of(m.marked_range.start_time, fps), m.name) not in carried
    ]
    write_stack(w, sequence, tracks, total, tc_start=tc_start, main=main, stack_markers=markers)
    add_note(sequence, timeline)  # the cue sheet a scored edit was made from
    w.assets.emit(w.resources, version, fps, seq_format, w.format_id)
    _sort_resources(w)
    ET.indent(root, space="    ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n\n' + body + "\n"


def _sequence_size(w: _Writer, main: otio.schema.Track | None) -> tuple[int, int]:
    """The project takes the picture size of its first video clip's media (1080p when no
    media is at hand), as Final Cut Pro sets up a new project from its first clip."""
    if main is not None:
        for clip in main.find_clips(shallow_search=True):
            url = getattr(clip.media_reference, "target_url", None)
            if not url:
                continue
            src, path = src_url(str(url), w.base, w.assets.bundle)
            media = w.assets.media_info.setdefault(src, probe(path))
            if media.width and media.height:
                return int(media.width), int(media.height)
    return 1920, 1080


def _bundle_folder(timeline: otio.schema.Timeline) -> Path | None:
    """The .otiod folder a timeline was read from (its media paths are relative to it)."""
    from .edit_io import bundle_of

    bundle = bundle_of(timeline)
    return bundle if bundle is not None and bundle.is_dir() else None


def _sort_resources(w: _Writer) -> None:
    """Formats and effects first, then assets, then compound clips (as FCP writes them)."""
    order = {"format": 0, "effect": 1, "asset": 2, "media": 3}
    children = sorted(w.resources, key=lambda e: order.get(e.tag, 4))
    for child in list(w.resources):
        w.resources.remove(child)
    w.resources.extend(children)


def check_fcpxml(target: Path) -> None:
    """Refuse, before any analysis, an .fcpxmld target: the writer writes one .fcpxml file,
    which every Final Cut Pro since 10.4.1 imports (an .fcpxmld is a bundle folder)."""
    if Path(target).suffix.lower() == ".fcpxmld":
        raise InputError(
            f"{Path(target).name}: Moodsic writes FCPXML as one .fcpxml file, not an .fcpxmld "
            "bundle; name the output .fcpxml (Final Cut Pro: File > Import > XML)"
        )


def write_fcpxml(timeline: otio.schema.Timeline, tmp: Path, version: str = DEFAULT_VERSION) -> None:
    """The registry's FCPXML writer: the whole document at `tmp` (media paths resolved
    against its folder, which is the target's)."""
    check_fcpxml(tmp)
    text = fcpxml_string(timeline, base_dir=Path(tmp).resolve().parent, version=version)
    Path(tmp).write_text(text, encoding="utf-8")

"""Moodsic's FCPXML writer: a scored edit as a Final Cut Pro project (FCPXML 1.8 by default).

The edit's picture (the main video track, as scoring sees it) is the project's primary
storyline; every other track -- the editor's other video tracks above it, audio tracks and
Moodsic's music tracks below it -- is a secondary storyline (``<spine lane="±n">``) anchored
to the first item of the primary storyline at record frame 0, so its items keep their
record frames. OTIO transitions become ``<transition>`` elements (Cross Dissolve with an
Audio Crossfade, as Final Cut Pro writes them) in the storyline they sit in: the music's
crossfades, and its fades from and to silence in the two-track layout (a transition
between a gap and a clip), sit where the OTIO timeline has them, to the frame.

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

import hashlib
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PureWindowsPath
from typing import Any
from urllib.parse import quote, urlparse

import opentimelineio as otio

from moodsic_engine.errors import InputError

VERSIONS = ("1.8", "1.10")
DEFAULT_VERSION = "1.8"
AUDIO_SUFFIXES = {".wav", ".aif", ".aiff", ".mp3", ".m4a", ".aac", ".flac", ".caf", ".ogg"}
STILL_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".psd", ".bmp", ".heic", ".gif"}
# Final Cut Pro's own effect identifiers for its default transition pair.
CROSS_DISSOLVE_UID = "FxPlug:4731E73A-8DAC-4113-9A30-AE85B1761265"
AUDIO_CROSSFADE_UID = "FFAudioTransition"
_NAMED_SIZES = {(1920, 1080): "1080", (1280, 720): "720", (3840, 2160): "2160"}


# ----------------------------------------------------------------------------- time helpers
def fcp_time(seconds: Fraction) -> str:
    """An exact FCPXML time: ``"1001/24000s"`` reduced, ``"3600s"`` when whole."""
    seconds = Fraction(seconds)
    if seconds.denominator == 1:
        return f"{seconds.numerator}s"
    return f"{seconds.numerator}/{seconds.denominator}s"


def _exact_rate(rate: float) -> Fraction:
    from .timeline import fps_from_rate

    return fps_from_rate(float(rate))


def _seconds(t: otio.opentime.RationalTime) -> Fraction:
    """A RationalTime as exact seconds (24000/1001 read as the rational, not the double)."""
    value = Fraction(t.value)
    if value.denominator != 1:
        value = value.limit_denominator(10**6)
    return value / _exact_rate(t.rate)


def _frames(t: otio.opentime.RationalTime, fps: Fraction) -> int:
    return round(_seconds(t) * fps)


def _format_name(fps: Fraction, width: int, height: int) -> str | None:
    """Final Cut Pro's name for a standard format ("FFVideoFormat1080p2398"); None otherwise
    (FCP itself leaves custom formats unnamed)."""
    size = _NAMED_SIZES.get((width, height))
    if size is None:
        return None
    if fps.denominator == 1:
        code = str(fps.numerator)
    elif fps.denominator == 1001:
        code = f"{fps.numerator * 100 // 1001:04d}"[:4]  # 2398, 2997, 5994
    else:
        return None
    return f"FFVideoFormat{size}p{code}"


# ----------------------------------------------------------------------------- media
@dataclass
class _Media:
    """What the file tells about itself (all None when it is not at hand)."""

    width: int | None = None
    height: int | None = None
    has_video: bool | None = None
    has_audio: bool | None = None
    channels: int | None = None
    sample_rate: int | None = None
    duration: Fraction | None = None  # exact for audio read with soundfile


def _probe(path: Path | None) -> _Media:
    if path is None or not path.is_file():
        return _Media()
    if path.suffix.lower() in AUDIO_SUFFIXES:
        try:
            import soundfile

            info = soundfile.info(str(path))
            return _Media(
                has_video=False,
                has_audio=True,
                channels=int(info.channels),
                sample_rate=int(info.samplerate),
                duration=Fraction(int(info.frames), int(info.samplerate)),
            )
        except Exception:  # a format libsndfile does not read (m4a, aac): ask ffprobe
            pass
    exe = shutil.which("ffprobe")
    if exe is None:
        return _Media()
    try:
        out = subprocess.run(
            [exe, "-v", "error", "-show_entries",
             "stream=codec_type,width,height,channels,sample_rate:stream_disposition=attached_pic",
             "-of", "json", str(path)],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout  # fmt: skip
        streams = json.loads(out).get("streams", [])
    except (OSError, subprocess.SubprocessError, ValueError):
        return _Media()
    video = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    media = _Media(has_video=bool(video), has_audio=bool(audio))
    if video:
        media.width, media.height = video[0].get("width"), video[0].get("height")
    if audio:
        media.channels = int(audio[0].get("channels") or 0) or None
        media.sample_rate = int(audio[0].get("sample_rate") or 0) or None
    return media


def _local_path(url: str, base: Path | None) -> Path | None:
    """The local file a target URL names, if it exists (else None)."""
    from .score import media_path

    class _Ref:
        target_url = url

    path = media_path(_Ref(), base)
    if path is not None and path.is_file():
        return path.resolve()
    return None


def _src_url(url: str, base: Path | None) -> tuple[str, Path | None]:
    """The asset's ``src``: an absolute, percent-encoded file:// URL when the file is found
    (beside the output, or from the working folder), other URLs as they are, and a path
    that resolves nowhere percent-encoded as the input had it."""
    path = _local_path(url, base)
    if path is not None:
        return path.as_uri(), path
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from .score import _url_candidates

        return Path(_url_candidates(url)[0]).as_uri() if url else url, None
    if len(parsed.scheme) == 1:  # C:\media\a.mov
        return PureWindowsPath(url).as_uri(), None
    if parsed.scheme:
        return url, None
    if url.startswith("/"):
        return Path(url).as_uri(), None
    return quote(url, safe="/%"), None


@dataclass
class _Asset:
    id: str
    src: str
    name: str
    path: Path | None
    start: Fraction | None = None  # the source's first time (its start timecode)
    end: Fraction | None = None
    audio_only: bool = False
    rate: Fraction | None = None  # the media's frame rate, when the edit tells one
    description: str | None = None  # a Moodsic track's title and artist


# ----------------------------------------------------------------------------- the writer
@dataclass
class _Writer:
    fps: Fraction
    base: Path | None
    version: str
    resources: ET.Element = field(default_factory=lambda: ET.Element("resources"))
    assets: dict[str, _Asset] = field(default_factory=dict)
    formats: dict[tuple[Any, ...], str] = field(default_factory=dict)
    effects: dict[str, str] = field(default_factory=dict)
    media_info: dict[str, _Media] = field(default_factory=dict)
    next_id: int = 1
    seq_format: str = ""

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
            name = _format_name(fps, width, height) if fps and width and height else None
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

    def media(self, asset: _Asset) -> _Media:
        if asset.src not in self.media_info:
            self.media_info[asset.src] = _probe(asset.path)
        return self.media_info[asset.src]

    # -- assets: collected while the spines are written, emitted at the end
    def asset_for(self, clip: otio.schema.Clip, audio_track: bool) -> _Asset | None:
        ref = clip.media_reference
        url = getattr(ref, "target_url", None)
        if not url and isinstance(ref, otio.schema.MissingReference):
            url = ref.metadata.get("original_target_url") or clip.name
        if isinstance(ref, otio.schema.GeneratorReference) or not url:
            return None
        src, path = _src_url(str(url), self.base)
        asset = self.assets.get(src)
        if asset is None:
            asset = _Asset(self._id(), src, _asset_name(src, clip), path)
            asset.audio_only = audio_track
            self.assets[src] = asset
        asset.audio_only = asset.audio_only and audio_track
        track = _moodsic_track(clip)
        if track and asset.description is None:
            title, artist = track.get("title") or track.get("id"), track.get("artist")
            asset.description = f"{title} - {artist}" if artist else str(title)
        available = getattr(ref, "available_range", None)
        if available is not None:
            first = _seconds(available.start_time)
            asset.start = first if asset.start is None else min(asset.start, first)
            last = first + _seconds(available.duration)
            asset.end = last if asset.end is None else max(asset.end, last)
            if 1 < available.duration.rate <= 300 and asset.rate is None:
                asset.rate = _exact_rate(available.duration.rate)
        try:  # the media a clip plays, with the handles its transitions take
            used = clip.visible_range() if clip.parent() is not None else clip.trimmed_range()
        except Exception:  # no source range and no available range: nothing to extend by
            used = None
        if used is not None:
            first = _seconds(used.start_time)
            last = first + _seconds(used.duration)
            asset.start = first if asset.start is None else min(asset.start, first)
            asset.end = last if asset.end is None else max(asset.end, last)
        return asset

    def emit_assets(self) -> None:
        for asset in self.assets.values():
            media = self.media(asset)
            audio_only = (
                media.has_video is False
                if media.has_video is not None
                else asset.audio_only or Path(asset.name).suffix.lower() in AUDIO_SUFFIXES
            )
            start = asset.start or Fraction(0)
            if audio_only and media.duration is not None:
                start = min(start, Fraction(0))
            end = asset.end if asset.end is not None else start
            if media.duration is not None:
                end = max(end, media.duration)
            attrs = {"id": asset.id, "name": Path(asset.name).stem or asset.name}
            attrs["uid"] = hashlib.md5(asset.src.encode()).hexdigest().upper()
            if self.version == "1.8":
                attrs["src"] = asset.src
            attrs["start"] = fcp_time(start)
            attrs["duration"] = fcp_time(end - start)
            if audio_only:
                attrs["hasVideo"] = "0"
            else:
                attrs["hasVideo"] = "1"
                rate = asset.rate or self.fps
                if media.width is None and rate == self.fps:
                    attrs["format"] = self.seq_format  # size unknown: the project's
                else:
                    attrs["format"] = self.format_id(rate, media.width, media.height)
                if self.version != "1.8":  # not in the 1.8 DTD
                    attrs["videoSources"] = "1"
            # unknown (media not at hand): camera files carry sound, so keep it importable
            has_audio = media.has_audio if media.has_audio is not None else True
            attrs["hasAudio"] = "1" if has_audio else "0"
            if has_audio:
                attrs["audioSources"] = "1"
                if media.channels:
                    attrs["audioChannels"] = str(media.channels)
                if media.sample_rate:
                    attrs["audioRate"] = str(media.sample_rate)
            element = ET.SubElement(self.resources, "asset", attrs)
            if self.version != "1.8":
                ET.SubElement(element, "media-rep", kind="original-media", src=asset.src)
            if audio_only or asset.description:
                # also keeps the element non-empty: otio-fcpx-xml-adapter tests an asset's
                # truth value, so an asset without children reads as a video track
                metadata = ET.SubElement(element, "metadata")
                if asset.description:
                    ET.SubElement(
                        metadata,
                        "md",
                        key="com.apple.proapps.spotlight.kMDItemDescription",
                        value=f"{asset.description} (Moodsic)",
                    )


def _asset_name(src: str, clip: otio.schema.Clip) -> str:
    from urllib.parse import unquote

    tail = unquote(urlparse(src).path if "://" in src else src).rsplit("/", 1)[-1]
    return tail or clip.name or "media"


def _moodsic_track(clip: otio.schema.Clip) -> dict[str, Any] | None:
    from .timeline import moodsic_meta

    meta = moodsic_meta(clip)
    track = meta.get("track") if meta.get("role") == "music" else None
    return track if isinstance(track, dict) else None


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
        """Append `track`'s items to `spine`; a trailing gap pads it to `total` frames."""
        pos = 0
        for item in track:
            if isinstance(item, otio.schema.Transition):
                spine.append(self.transition(item, pos))
                continue
            frames = _frames(item.trimmed_range().duration, self.w.fps)
            if frames <= 0:
                continue
            element, local = self.item(item, pos, frames)
            spine.append(element)
            self.placed.append(_Placed(element, pos, pos + frames, local))
            pos += frames
        if pos < total:
            element = self.gap(pos, total - pos)
            spine.append(element)
            self.placed.append(_Placed(element, pos, total, Fraction(0)))
            pos = total
        return pos

    def gap(self, pos: int, frames: int, name: str = "Gap") -> ET.Element:
        return ET.Element(
            "gap", {"name": name, "offset": self.w.t(self.base + pos), "duration": self.w.t(frames)}
        )

    def transition(self, item: otio.schema.Transition, pos: int) -> ET.Element:
        before = _frames(item.in_offset, self.w.fps)
        after = _frames(item.out_offset, self.w.fps)
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
            asset = self.w.asset_for(item, self.audio)
            if asset is not None:
                return self.clip(item, asset, pos, frames)
        elif isinstance(item, otio.schema.Stack):
            return self.compound(item, pos, frames)
        element = self.gap(pos, frames, name=getattr(item, "name", "") or "Gap")
        return element, Fraction(0)

    def clip(
        self, item: otio.schema.Clip, asset: _Asset, pos: int, frames: int
    ) -> tuple[ET.Element, Fraction]:
        start = _seconds(item.trimmed_range().start_time)
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
        element = ET.Element("asset-clip", attrs)
        self.markers(element, item)
        return element, start

    def compound(
        self, item: otio.schema.Stack, pos: int, frames: int
    ) -> tuple[ET.Element, Fraction]:
        """A nested stack as a compound clip: a <media> resource holding its own sequence."""
        rid = self.w._id()
        media = ET.Element("media", id=rid, name=item.name or "Compound Clip")
        tracks = [t for t in item if isinstance(t, otio.schema.Track)]
        inner_total = max((_frames(t.duration(), self.w.fps) for t in tracks), default=frames)
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
        start = _seconds(item.trimmed_range().start_time)
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

    def markers(self, element: ET.Element, item: Any) -> None:
        """The item's markers, in its own (source) time, as Final Cut Pro keeps them."""
        one = Fraction(1) / self.w.fps
        for marker in item.markers:
            rng = marker.marked_range
            ET.SubElement(
                element,
                "marker",
                start=fcp_time(_seconds(rng.start_time)),
                duration=fcp_time(max(one, _seconds(rng.duration))),
                value=marker.name or "Marker",
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
        # anchored items come before the anchor's markers (the DTD's order)
        for k, storyline in enumerate(storylines):
            anchor.element.insert(k, storyline)
    for marker in stack_markers or []:
        at = _frames(marker.marked_range.start_time, w.fps)
        for placed in primary.placed:
            if placed.rec_start <= at < placed.rec_end:
                local = placed.local_start + Fraction(at - placed.rec_start) / w.fps
                ET.SubElement(
                    placed.element,
                    "marker",
                    start=fcp_time(local),
                    duration=w.t(1),
                    value=marker.name or "Marker",
                )
                break


def _carried(timeline: otio.schema.Timeline, fps: Fraction) -> set[tuple[int, str]]:
    """(record frame, name) of every clip marker: a timeline marker already shown on a clip
    (Moodsic puts each mood marker on its music clip too) is not written twice."""
    found = set()
    for clip in timeline.find_clips():
        try:
            rec = _frames(clip.range_in_parent().start_time, fps)
            src = _frames(clip.trimmed_range().start_time, fps)
        except Exception:
            continue
        for m in clip.markers:
            found.add((rec + _frames(m.marked_range.start_time, fps) - src, m.name))
    return found


def fcpxml_string(
    timeline: otio.schema.Timeline, *, base_dir: Path | None = None, version: str = DEFAULT_VERSION
) -> str:
    """`timeline` as an FCPXML document (see the module docstring). `base_dir` resolves
    relative media paths (the output's folder)."""
    from .score import edit_rate, main_video_track

    if version not in VERSIONS:
        raise InputError(f"FCPXML version {version} is not written; use {' or '.join(VERSIONS)}")
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
    seq_format = w.seq_format = w.format_id(fps, *_sequence_size(w, main))
    tc_start = 0
    if timeline.global_start_time is not None:
        tc_start = max(0, _frames(timeline.global_start_time, fps))
    total = max((_frames(t.duration(), fps) for t in tracks), default=0)

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
    carried = _carried(timeline, fps)
    markers = [
        m
        for m in timeline.tracks.markers
        if (_frames(m.marked_range.start_time, fps), m.name) not in carried
    ]
    write_stack(w, sequence, tracks, total, tc_start=tc_start, main=main, stack_markers=markers)
    w.emit_assets()
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
            src, path = _src_url(str(url), w.base)
            media = w.media_info.setdefault(src, _probe(path))
            if media.width and media.height:
                return int(media.width), int(media.height)
    return 1920, 1080


def _sort_resources(w: _Writer) -> None:
    """Formats and effects first, then assets, then compound clips (as FCP writes them)."""
    order = {"format": 0, "effect": 1, "asset": 2, "media": 3}
    children = sorted(w.resources, key=lambda e: order.get(e.tag, 4))
    for child in list(w.resources):
        w.resources.remove(child)
    w.resources.extend(children)


def write_fcpxml(timeline: otio.schema.Timeline, tmp: Path, version: str = DEFAULT_VERSION) -> None:
    """The registry's FCPXML writer: the whole document at `tmp` (media paths resolved
    against its folder, which is the target's)."""
    text = fcpxml_string(timeline, base_dir=Path(tmp).resolve().parent, version=version)
    Path(tmp).write_text(text, encoding="utf-8")

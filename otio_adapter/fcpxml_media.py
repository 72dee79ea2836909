"""Times, media, assets and markers for Moodsic's FCPXML writer (``otio_adapter.fcpxml_write``).

Every time is an exact rational number of seconds. An asset is one media file, whatever
number of clips play it: its ``src`` is an absolute, percent-encoded file:// URL when the
file is found (beside the output, or from the working folder), its start and duration cover
every frame the edit plays from it (transition handles included), and what the file itself
tells -- picture size, audio channels and sample rate, an audio file's exact length -- comes
from soundfile or ffprobe when it is at hand.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PureWindowsPath
from typing import Any
from urllib.parse import quote, unquote, urlparse

import opentimelineio as otio

from moodsic_engine.ffmpeg import probe_json

AUDIO_SUFFIXES = {".wav", ".aif", ".aiff", ".mp3", ".m4a", ".aac", ".flac", ".caf", ".ogg"}
STILL_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".psd", ".bmp", ".heic", ".gif"}


# ----------------------------------------------------------------------------- time helpers
_NAMED_SIZES = {(1920, 1080): "1080", (1280, 720): "720", (3840, 2160): "2160"}
_MAX_DEN = 2**31 - 1  # FCPXML times have a 32-bit denominator


def fcp_time(seconds: Fraction) -> str:
    """An exact FCPXML time: ``"1001/24000s"`` reduced, ``"3600s"`` when whole (a time
    derived from a speed change is rounded to a denominator FCPXML can hold)."""
    seconds = Fraction(seconds)
    if seconds.denominator > _MAX_DEN:
        seconds = seconds.limit_denominator(_MAX_DEN)
    if seconds.denominator == 1:
        return f"{seconds.numerator}s"
    return f"{seconds.numerator}/{seconds.denominator}s"


def exact_rate(rate: float) -> Fraction:
    from .timeline import fps_from_rate

    return fps_from_rate(float(rate))


def seconds_of(t: otio.opentime.RationalTime) -> Fraction:
    """A RationalTime as exact seconds (24000/1001 read as the rational, not the double)."""
    value = Fraction(t.value)
    if value.denominator != 1:
        value = value.limit_denominator(10**6)
    return value / exact_rate(t.rate)


def speed_of(item: Any) -> Fraction:
    """How fast a clip plays its source: the product of its linear time warps (0 for a
    freeze frame, negative in reverse)."""
    speed = Fraction(1)
    for effect in getattr(item, "effects", ()):
        if isinstance(effect, otio.schema.LinearTimeWarp):
            speed *= Fraction(effect.time_scalar).limit_denominator(10**6)
    return speed


def frames_of(t: otio.opentime.RationalTime, fps: Fraction) -> int:
    return round(seconds_of(t) * fps)


# ----------------------------------------------------------------------------- media
@dataclass
class Media:
    """What the file tells about itself (all None when it is not at hand)."""

    width: int | None = None
    height: int | None = None
    has_video: bool | None = None
    has_audio: bool | None = None
    channels: int | None = None
    sample_rate: int | None = None
    duration: Fraction | None = None  # exact for audio read with soundfile


def probe(path: Path | None) -> Media:
    if path is None or not path.is_file():
        return Media()
    if path.suffix.lower() in AUDIO_SUFFIXES:
        try:
            import soundfile

            info = soundfile.info(str(path))
            return Media(
                has_video=False,
                has_audio=True,
                channels=int(info.channels),
                sample_rate=int(info.samplerate),
                duration=Fraction(int(info.frames), int(info.samplerate)),
            )
        except Exception:  # a format libsndfile does not read (m4a, aac): ask ffprobe
            pass
    info = probe_json(
        path,
        "stream=codec_type,width,height,channels,sample_rate:stream_disposition=attached_pic",
        timeout=20,
    )
    if info is None:  # no ffprobe, or it cannot read the file
        return Media()
    streams = info.get("streams", [])
    if not isinstance(streams, list):
        return Media()
    video = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    media = Media(has_video=bool(video), has_audio=bool(audio))
    if video:
        media.width, media.height = video[0].get("width"), video[0].get("height")
    if audio:
        media.channels = int(audio[0].get("channels") or 0) or None
        media.sample_rate = int(audio[0].get("sample_rate") or 0) or None
    return media


def local_path(url: str, base: Path | None, bundle: Path | None = None) -> Path | None:
    """The local file a target URL names, if it exists (else None); relative paths look in
    `bundle` (an .otiod the edit was read from), then `base`, then the working folder."""
    from .media import media_path

    class _Ref:
        target_url = url

    path = media_path(_Ref(), base, bundle)
    if path is not None and path.is_file():
        return path.resolve()
    return None


def src_url(url: str, base: Path | None, bundle: Path | None = None) -> tuple[str, Path | None]:
    """The asset's ``src``: an absolute, percent-encoded file:// URL when the file is found
    (beside the output, or from the working folder), other URLs as they are, and a path
    that resolves nowhere percent-encoded as the input had it."""
    path = local_path(url, base, bundle)
    if path is not None:
        return path.as_uri(), path
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from .media import url_candidates

        local = Path(url_candidates(url)[0])
        return (local.as_uri() if local.is_absolute() else quote(str(local), safe="/")), None
    if len(parsed.scheme) == 1:  # C:\media\a.mov
        return PureWindowsPath(url).as_uri(), None
    if parsed.scheme:
        return url, None
    if url.startswith("/"):
        return Path(url).as_uri(), None
    return quote(url, safe="/%"), None


@dataclass
class Asset:
    id: str
    src: str
    name: str
    path: Path | None
    start: Fraction | None = None  # the source's first time (its start timecode)
    end: Fraction | None = None
    audio_only: bool = False
    rate: Fraction | None = None  # the media's frame rate, when the edit tells one
    description: str | None = None  # a Moodsic track's title and artist
    still: bool = False  # a photo: FCP gives it no duration and plays it as a <video>


@dataclass
class AssetTable:
    """The assets of one document, collected while its storylines are written."""

    base: Path | None  # where relative media paths resolve (the output's folder)
    new_id: Callable[[], str]
    bundle: Path | None = None  # the .otiod folder the edit was read from, if any
    assets: dict[str, Asset] = field(default_factory=dict)
    media_info: dict[str, Media] = field(default_factory=dict)

    def media(self, asset: Asset) -> Media:
        """What the asset's file tells (probed once)."""
        if asset.src not in self.media_info:
            self.media_info[asset.src] = probe(asset.path)
        return self.media_info[asset.src]

    def add(self, clip: otio.schema.Clip, audio_track: bool) -> Asset | None:
        """The asset `clip` plays (None for generators and clips naming no media)."""
        ref = clip.media_reference
        url = getattr(ref, "target_url", None)
        if not url and isinstance(ref, otio.schema.MissingReference):
            url = ref.metadata.get("original_target_url") or clip.name
        if isinstance(ref, otio.schema.GeneratorReference) or not url:
            return None
        src, path = src_url(str(url), self.base, self.bundle)
        asset = self.assets.get(src)
        if asset is None:
            asset = Asset(self.new_id(), src, _asset_name(src, clip), path)
            asset.audio_only = audio_track
            meta = clip.metadata.get("fcpxml")
            asset.still = Path(asset.name).suffix.lower() in STILL_SUFFIXES or bool(
                hasattr(meta, "get") and meta.get("still")
            )
            self.assets[src] = asset
        asset.audio_only = asset.audio_only and audio_track
        track = _moodsic_track(clip)
        if track and asset.description is None:
            title, artist = track.get("title") or track.get("id"), track.get("artist")
            asset.description = f"{title} - {artist}" if artist else str(title)
        available = getattr(ref, "available_range", None)
        if available is not None:
            first = seconds_of(available.start_time)
            asset.start = first if asset.start is None else min(asset.start, first)
            last = first + seconds_of(available.duration)
            asset.end = last if asset.end is None else max(asset.end, last)
            if 1 < available.duration.rate <= 300 and asset.rate is None:
                asset.rate = exact_rate(available.duration.rate)
        try:  # the media a clip plays, with the handles its transitions take
            used = clip.visible_range() if clip.parent() is not None else clip.trimmed_range()
        except Exception:  # no source range and no available range: nothing to extend by
            used = None
        if used is not None:
            first = seconds_of(used.start_time)
            last = first + seconds_of(used.duration) * speed_of(clip)  # media it plays
            first, last = min(first, last), max(first, last)
            asset.start = first if asset.start is None else min(asset.start, first)
            asset.end = last if asset.end is None else max(asset.end, last)
        return asset

    def emit(
        self,
        resources: ET.Element,
        version: str,
        fps: Fraction,
        seq_format: str,
        format_id: Callable[[Fraction, int | None, int | None], str],
    ) -> None:
        """Append an <asset> for every media file to `resources`."""
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
            if version == "1.8":
                attrs["src"] = asset.src
            attrs["start"] = fcp_time(start)
            attrs["duration"] = fcp_time(end - start)
            if asset.still:  # as FCP writes a photo: no length, a format without a rate
                attrs["start"] = attrs["duration"] = "0s"
                attrs["hasVideo"] = "1"
                attrs["format"] = format_id(None, media.width, media.height)
                ET.SubElement(resources, "asset", attrs)
                continue
            if audio_only:
                attrs["hasVideo"] = "0"
            else:
                attrs["hasVideo"] = "1"
                rate = asset.rate or fps
                if media.width is None and rate == fps:
                    attrs["format"] = seq_format  # size unknown: the project's
                else:
                    attrs["format"] = format_id(rate, media.width, media.height)
                if version != "1.8":  # not in the 1.8 DTD
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
            element = ET.SubElement(resources, "asset", attrs)
            if version != "1.8":
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
    tail = unquote(urlparse(src).path if "://" in src else src).rsplit("/", 1)[-1]
    return tail or clip.name or "media"


def _moodsic_track(clip: otio.schema.Clip) -> dict[str, Any] | None:
    from .timeline import moodsic_meta

    meta = moodsic_meta(clip)
    track = meta.get("track") if meta.get("role") == "music" else None
    return track if isinstance(track, dict) else None


def format_name(fps: Fraction, width: int, height: int) -> str | None:
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


def marker_text(marker: otio.schema.Marker) -> dict[str, str]:
    """A marker's name, and as its note its comment or Moodsic's mood data (JSON: the
    segment and its track, so a reader can rebuild the cue sheet from FCP's markers)."""
    from .timeline import moodsic_meta

    text = {"value": marker.name or "Marker"}
    meta = moodsic_meta(marker)
    if meta:  # the exact segment (timeline_to_cue reads segment_json) and its index
        keep = {k: meta[k] for k in ("segment", "segment_json") if k in meta} or meta
        text["note"] = json.dumps({"moodsic": keep}, ensure_ascii=False, separators=(",", ":"))
    elif getattr(marker, "comment", ""):
        text["note"] = marker.comment
    return text


def fine(seconds: Fraction) -> Fraction:
    """A time derived from a speed change, to 1/720000 s (FCP's own fine grid): well under
    a frame, and a denominator FCPXML holds."""
    return Fraction(round(seconds * 720000), 720000)


def time_map(source: Fraction, start: Fraction, length: Fraction, speed: Fraction) -> ET.Element:
    """A constant speed change as Final Cut Pro writes one: the clip's own time mapped
    linearly onto its source's (from 0 for forward play; a freeze or reverse play from the
    clip's first source time)."""
    element = ET.Element("timeMap")
    if speed > 0:
        points = [(Fraction(0), Fraction(0)), (start + length, (start + length) * speed)]
    else:
        points = [(Fraction(0), source), (length, source + length * speed)]
    for time, value in points:
        ET.SubElement(
            element,
            "timept",
            time=fcp_time(fine(time)),
            value=fcp_time(fine(value)),
            interp="linear",
        )
    return element


def carried_markers(timeline: otio.schema.Timeline, fps: Fraction) -> set[tuple[int, str]]:
    """(record frame, name) of every clip marker: a timeline marker already shown on a clip
    (Moodsic puts each mood marker on its music clip too) is not written twice."""
    found = set()
    for clip in timeline.find_clips():
        try:
            rec = frames_of(clip.range_in_parent().start_time, fps)
            src = frames_of(clip.trimmed_range().start_time, fps)
        except Exception:
            continue
        for m in clip.markers:
            found.add((rec + frames_of(m.marked_range.start_time, fps) - src, m.name))
    return found

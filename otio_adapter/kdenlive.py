"""Kdenlive: its project files (``.kdenlive``, MLT XML) in, and its OTIO exports made usable.

Projects are read through otio-kdenlive-adapter 0.0.3 (checked against Kdenlive 19.11, 22.11,
24.07 projects and one with same-track mixes), with what it gets wrong fixed here:
- times: it turns MLT clock strings (``00:01:02.360``) into frames with truncating sums that
  are exact only at whole-number rates; `_exact_time` does what MLT does (nearest frame of
  the seconds at the profile's exact rate), so 29.97 and 23.976 projects land on their frames;
- media paths are stored relative to the project's ``root`` folder: they are made absolute
  (against ``root``, else the project file's own folder when the project was moved);
- clips have no names (the bin's clip name is usually empty): the media file's name is used;
- tracks hidden (``hide="video"``) or muted (``hide="audio"``) in Kdenlive are disabled;
- it prints a deprecation banner on stdout on every call: silenced.
Kdenlive lists audio tracks first and then V1, V2, ...: the lowest video track, V1, is the
first video track, which is the one score-timeline scores.

Kdenlive's own OTIO export (File > Export > OTIO, Kdenlive 25.04+) writes the available range
of media without a frame rate (images, colour clips) at rate 0.0; `fix_zero_rates` (called by
``edit_io.read_otio``) restates such times at the edit's rate, the rate Kdenlive counted them in.
"""

from __future__ import annotations

import contextlib
import io
import math
import threading
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

from moodsic_engine.errors import InputError

from .formats import ReadOptions

ADAPTER = "kdenlive"
_LOCK = threading.RLock()


# ----------------------------------------------------------------------------- rate 0 (OTIO)
def _bad_rate(t: otio.opentime.RationalTime | None) -> bool:
    return t is not None and not (math.isfinite(t.rate) and t.rate > 0)


def _edit_rate_of(timeline: otio.schema.Timeline) -> float | None:
    """The first usable rate among the tracks' and items' own ranges (Kdenlive writes those
    at the project rate)."""
    for thing in [*timeline.tracks, *timeline.find_children()]:
        rng = getattr(thing, "source_range", None)
        if rng is not None and not _bad_rate(rng.duration) and rng.duration.rate > 0:
            return rng.duration.rate
    gst = timeline.global_start_time
    if gst is not None and not _bad_rate(gst):
        return gst.rate
    return None


def _fixed_range(rng: otio.opentime.TimeRange | None, rate: float) -> Any:
    if rng is None or not (_bad_rate(rng.start_time) or _bad_rate(rng.duration)):
        return None
    start, duration = rng.start_time, rng.duration
    if _bad_rate(start):
        start = otio.opentime.RationalTime(start.value, rate)
    if _bad_rate(duration):
        duration = otio.opentime.RationalTime(duration.value, rate)
    return otio.opentime.TimeRange(start, duration)


def fix_zero_rates(result: otio.core.SerializableObject) -> int:
    """Restate every time written at rate 0 (or a rate that is no number) at its timeline's
    edit rate; returns how many ranges were fixed. Timelines without any usable rate are
    left alone (scoring refuses them with one line)."""
    if isinstance(result, otio.schema.Timeline):
        timelines = [result]
    elif isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
    else:
        return 0
    fixed = 0
    for timeline in timelines:
        rate = _edit_rate_of(timeline)
        if rate is None:
            continue
        if _bad_rate(timeline.global_start_time):
            timeline.global_start_time = otio.opentime.RationalTime(
                timeline.global_start_time.value, rate
            )
            fixed += 1
        things = [*timeline.tracks, *timeline.find_children()]
        for thing in things:
            new = _fixed_range(getattr(thing, "source_range", None), rate)
            if new is not None:
                thing.source_range = new
                fixed += 1
            if isinstance(thing, otio.schema.Transition):
                for name in ("in_offset", "out_offset"):
                    t = getattr(thing, name)
                    if _bad_rate(t):
                        setattr(thing, name, otio.opentime.RationalTime(t.value, rate))
                        fixed += 1
            for marker in getattr(thing, "markers", ()):
                new = _fixed_range(marker.marked_range, rate)
                if new is not None:
                    marker.marked_range = new
                    fixed += 1
            if isinstance(thing, otio.schema.Clip):
                for ref in thing.media_references().values():
                    new = _fixed_range(getattr(ref, "available_range", None), rate)
                    if new is not None:
                        ref.available_range = new
                        fixed += 1
        for marker in timeline.tracks.markers:
            new = _fixed_range(marker.marked_range, rate)
            if new is not None:
                marker.marked_range = new
                fixed += 1
    return fixed


# ----------------------------------------------------------------------------- .kdenlive
def mlt_frames(clock: str, fps: Fraction) -> int:
    """An MLT time (a frame count, or ``[[hh:]mm:]ss.mmm``) in frames at `fps`, as MLT counts
    it: the nearest frame to the clock's seconds."""
    parts = clock.strip().replace(",", ".").split(":")
    if len(parts) == 1:
        return int(round(Fraction(parts[0])))
    seconds = Fraction(0)
    for part in parts:
        seconds = seconds * 60 + Fraction(part)
    return int(round(seconds * fps))


def _exact_time(clock: str, rate: float) -> otio.opentime.RationalTime:
    from .timeline import fps_from_rate

    return otio.opentime.RationalTime(mlt_frames(clock, fps_from_rate(rate)), rate)


def _parse(p: Path) -> tuple[str, ET.Element]:
    from .xml_input import read_xml

    text, root = read_xml(p, "mlt", "a Kdenlive project")
    if root.find("./playlist[@id='main_bin']") is None:
        raise InputError(
            f"{p.name}: an MLT file without Kdenlive's bin (main_bin); open it in Kdenlive and "
            "save it as a project, or export the timeline as OTIO"
        )
    if root.find("./profile") is None or not root.find("./profile").get("frame_rate_num"):
        raise InputError(f"{p.name}: the project names no frame rate (no <profile>)")
    return text, root


def _main_tracks(module: Any, root: ET.Element) -> list[ET.Element]:
    """The main tractor's <track> elements the adapter turns into tracks, in its order."""
    byid = {el.get("id"): el for el in root.iter() if el.get("id") is not None}
    main_bin = root.find("./playlist[@id='main_bin']")
    version = module.read_property(main_bin, "kdenlive:docproperties.version") or "0"
    tractor = module.get_maintracktor(root, byid, version)
    out = []
    for track in tractor.findall("track") if tractor is not None else ():
        producer = track.get("producer")
        sub = byid.get(producer)
        if producer == "black_track" or sub is None:
            continue
        if module.read_property(sub, "kdenlive:playlistid") == "black_track":
            continue
        out.append(track)
    return out


def _media_path(url: str, root_dir: str | None, project_dir: Path) -> str:
    """A relative media path made absolute: against the project's root folder when the file
    is there, else against the project file's folder (a moved project)."""
    from urllib.parse import unquote, urlparse

    if not url or "://" in url and urlparse(url).scheme != "file":
        return url
    path = Path(unquote(urlparse(url).path) if url.startswith("file:") else url)
    if path.is_absolute():
        return str(path)
    bases = [Path(root_dir)] if root_dir and Path(root_dir).is_absolute() else []
    bases.append(project_dir)
    for base in bases:
        if (base / path).is_file():
            return str(base / path)
    return str(bases[0] / path)


def read_kdenlive(p: Path, options: ReadOptions) -> otio.schema.Timeline:
    """A Kdenlive project's timeline with exact frames, absolute media paths and Kdenlive's
    hidden/muted tracks disabled."""
    text, root = _parse(p)
    adapter = otio.adapters.from_name(ADAPTER)
    module = adapter.module()
    with _LOCK:
        saved = module.time
        module.time = _exact_time
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # its deprecation banner
                timeline = adapter.read_from_string(text)
        finally:
            module.time = saved
    profile = root.find("./profile")
    fps = Fraction(int(profile.get("frame_rate_num")), int(profile.get("frame_rate_den", "1")))
    rate = fps.numerator / fps.denominator
    timeline.global_start_time = otio.opentime.RationalTime(0, rate)
    if not timeline.name or timeline.name == "Kdenlive imported timeline":
        timeline.name = p.stem
    for element, track in zip(_main_tracks(module, root), timeline.tracks, strict=False):
        hide = element.get("hide") or ""
        muted = "audio" if track.kind == otio.schema.TrackKind.Audio else "video"
        if hide in (muted, "both"):
            track.enabled = False
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference):
            ref.target_url = _media_path(ref.target_url, root.get("root"), p.parent)
            if not clip.name:
                clip.name = Path(ref.target_url).name
    if not any(t.find_clips() for t in timeline.tracks):
        raise InputError(f"{p.name}: the project's timeline has no clips")
    return timeline

"""Final Cut Pro 7 XML (``xmeml``, ``.xml``): what Premiere Pro and DaVinci Resolve export and
import, through OTIO's otio-fcp-adapter (1.0), with what real files need on top.

The adapter (checked against Premiere, Resolve and Hiero exports)
- reads ``<ntsc>TRUE</ntsc>`` with timebase 24/30/60 as 24000/1001, 30000/1001, 60000/1001
  exactly (``timebase * 1000.0 / 1001`` is the nearest double), and keeps ``<pathurl>``
  (``file://localhost/D%3a/media/a.mov``) as the target URL, which scoring and relinking read;
- returns several sequences as a collection: `read_fcp7` picks one by ``--project`` (the
  sequence name) and otherwise refuses, naming them;
- ignores ``<enabled>FALSE</enabled>`` on clips and tracks (it lands in metadata only):
  `read_fcp7` disables those items, so a disabled clip on V1 is a gap to scoring;
- writes every transition as a video "Cross Dissolve" with ``mediatype video``, audio clips
  without the ``<sourcetrack>`` Premiere links them by, ``file:///`` URLs where Premiere
  writes ``file://localhost/``, and needs a global start time: `write_fcp7` fixes those, so
  music crossfades import as audio "Cross Fade (+3dB)" transitions.

Tracks keep the file's order, V1 (the lowest video track) first, which is the track
score-timeline scores.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path

import opentimelineio as otio

from moodsic_engine.errors import InputError

from .formats import ReadOptions

ADAPTER = "fcp_xml"
_NS = "fcp_xml"  # the adapter's metadata namespace
AUDIO_FADE = ("Cross Fade (+3dB)", "KGAudioTransCrossFade3dB")  # Premiere's "Constant Power"


def _sequence_names(root: ET.Element) -> list[str]:
    """The names of the sequences the adapter reads (top level and inside projects/bins)."""
    found = list(root.findall("./sequence")) + list(root.findall(".//children/sequence"))
    names = []
    seen: set[str] = set()
    for seq in found:
        ident = seq.get("id")
        if ident is not None and ident in seen:
            continue  # a back-reference to a sequence listed already
        if ident is not None:
            seen.add(ident)
        names.append((seq.findtext("./name") or "").strip())
    return names


def _parse(p: Path) -> tuple[str, ET.Element]:
    from .xml_input import read_xml

    return read_xml(
        p, "xmeml", "a Final Cut Pro 7 XML file",
        "export it from Premiere with File > Export > Final Cut Pro XML",
    )  # fmt: skip


def _bool_text(value: object) -> bool | None:
    if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE"):
        return value.strip().upper() == "TRUE"
    return None


def apply_enabled(timeline: otio.schema.Timeline) -> None:
    """Honour ``<enabled>`` on tracks and clips (the adapter keeps it in metadata only)."""
    for track in timeline.tracks:
        flag = _bool_text(track.metadata.get(_NS, {}).get("enabled"))
        if flag is not None:
            track.enabled = flag
        for item in track.find_children():
            if isinstance(item, otio.schema.Transition):
                continue
            flag = _bool_text(item.metadata.get(_NS, {}).get("enabled"))
            if flag is not None:
                item.enabled = flag


def _pick(
    result: otio.core.SerializableObject, p: Path, project: str | None
) -> otio.schema.Timeline:
    if isinstance(result, otio.schema.Timeline):
        timelines = [result]
    else:
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
    names = [t.name or "(unnamed)" for t in timelines]
    if project is not None:
        chosen = [t for t in timelines if t.name == project]
        if not chosen:
            raise InputError(
                f"{p.name}: no sequence named {project!r}; it holds {', '.join(map(repr, names))}"
            )
        return chosen[0]
    if len(timelines) != 1:
        raise InputError(
            f"{p.name} holds {len(timelines)} sequences ({', '.join(map(repr, names))}); "
            "choose one with --project NAME"
        )
    return timelines[0]


def read_fcp7(p: Path, options: ReadOptions) -> otio.schema.Timeline:
    """One sequence of an FCP7 XML file (``options.project`` names it when there are several),
    disabled clips and tracks disabled."""
    text, root = _parse(p)
    if not _sequence_names(root):
        raise InputError(f"{p.name}: this FCP7 XML holds no sequence; export a sequence")
    result = otio.adapters.from_name(ADAPTER).read_from_string(text)
    timeline = _pick(result, p, options.project)
    if timeline.tracks is None or not any(len(t) for t in timeline.tracks):
        raise InputError(f"{p.name}: sequence {timeline.name!r} has no clips on any track")
    apply_enabled(timeline)
    for track in timeline.tracks:  # Premiere names tracks in an attribute
        named = track.metadata.get(_NS, {}).get("@MZ.TrackName")
        if not track.name and isinstance(named, str):
            track.name = named
    return timeline


# ----------------------------------------------------------------------------- writing
def _edit_rate(timeline: otio.schema.Timeline) -> float:
    from .edit_track import edit_rate, main_video_track
    from .timeline import rate_of

    try:
        return rate_of(edit_rate(timeline, main_video_track(timeline)))
    except InputError:
        for clip in timeline.find_clips():
            return clip.trimmed_range().duration.rate
    raise InputError("the timeline has no clips to write")


def _prepared(timeline: otio.schema.Timeline) -> otio.schema.Timeline:
    """A copy the adapter can write: a global start time, ``<enabled>`` from the items."""
    out = copy.deepcopy(timeline)
    rate = _edit_rate(out)
    if out.global_start_time is None:
        out.global_start_time = otio.opentime.RationalTime(0, rate)
    for thing in [*out.tracks, *out.find_children()]:
        if isinstance(thing, otio.schema.Transition):
            continue
        meta = thing.metadata.get(_NS)
        if not thing.enabled:
            thing.metadata.setdefault(_NS, {})["enabled"] = "FALSE"
        elif isinstance(meta, dict) and "enabled" in meta:
            meta["enabled"] = "TRUE"
    for clip in out.find_clips():
        if clip.source_range is None:  # the writer reads source_range directly
            clip.source_range = clip.trimmed_range()
        _timecode_rate(clip.media_reference, rate)
    return out


def _smpte(rate: float) -> bool:
    try:
        otio.opentime.to_timecode(otio.opentime.RationalTime(0, rate), rate)
    except (ValueError, TypeError):
        return False
    return True


def _timecode_rate(ref: otio.core.SerializableObject, rate: float) -> None:
    """Media at a rate SMPTE timecode has no form for (Premiere writes phone footage as
    timebase 29, 59 or 14, ntsc FALSE): the adapter's writer fails on its timecode, so the
    media's range is restated at the edit rate (same instants; Premiere and Resolve read the
    media's own rate from the file)."""
    available = getattr(ref, "available_range", None)
    meta = ref.metadata.get(_NS, {}) if ref is not None else {}
    timecode = meta.get("timecode") if isinstance(meta, dict) else None
    tc_rate = None
    if isinstance(timecode, dict):
        try:
            found = timecode if "timebase" in timecode else timecode["rate"]
            base = float(found["timebase"])
            ntsc = str(found.get("ntsc", "FALSE")).upper() == "TRUE"
            tc_rate = base * 1000.0 / 1001 if ntsc else base
        except (KeyError, TypeError, ValueError):
            tc_rate = None
    bad = (tc_rate is not None and not _smpte(tc_rate)) or (
        available is not None and not _smpte(available.start_time.rate)
    )
    if not bad:
        return
    meta.pop("timecode", None)
    meta.pop("rate", None)
    if available is not None:
        ref.available_range = otio.opentime.TimeRange(
            available.start_time.rescaled_to(rate), available.duration.rescaled_to(rate)
        )


def _localhost(url: str | None) -> str | None:
    """``file:///x`` as Premiere writes it (``file://localhost/x``)."""
    if url and url.startswith("file:///"):
        return "file://localhost/" + url[len("file:///") :]
    return url


def _name_tracks(root: ET.Element, timeline: otio.schema.Timeline) -> None:
    """Track names as Premiere keeps them (``MZ.TrackName``; the adapter writes none)."""
    media = root.find("./project/children/sequence/media")
    if media is None:
        return
    for kind, tag in (
        (otio.schema.TrackKind.Video, "video"),
        (otio.schema.TrackKind.Audio, "audio"),
    ):
        tracks = [t for t in timeline.tracks if t.kind == kind]
        for track, element in zip(tracks, media.findall(f"./{tag}/track"), strict=False):
            if track.name and "MZ.TrackName" not in element.attrib:
                element.set("MZ.TrackName", track.name)


def _fix_audio(root: ET.Element) -> None:
    """Audio tracks as Premiere and Resolve import them: transitions are audio cross fades,
    clips name the source channel they play."""
    for audio in root.iter("audio"):
        for track in audio.findall("./track"):
            for trans in track.findall("./transitionitem"):
                effect = trans.find("./effect")
                if effect is None:
                    effect = ET.SubElement(trans, "effect")
                for tag in ("name", "effectid", "effectcategory", "effecttype", "mediatype"):
                    for old in effect.findall(tag):
                        effect.remove(old)
                for tag, value in zip(
                    ("name", "effectid", "effectcategory", "effecttype", "mediatype"),
                    (*AUDIO_FADE, "audio", "transition", "audio"),
                    strict=True,
                ):
                    ET.SubElement(effect, tag).text = value
            for clip in track.findall("./clipitem"):
                if clip.find("./sourcetrack") is None and clip.find("./file") is not None:
                    source = ET.SubElement(clip, "sourcetrack")
                    ET.SubElement(source, "mediatype").text = "audio"
                    ET.SubElement(source, "trackindex").text = "1"
    for path in root.iter("pathurl"):
        path.text = _localhost(path.text)


def fcp7_string(timeline: otio.schema.Timeline) -> str:
    """The timeline as FCP7 XML text (see the module docstring for what is fixed)."""
    prepared = _prepared(timeline)
    xml = otio.adapters.from_name(ADAPTER).write_to_string(prepared)
    root = ET.fromstring(xml.encode("utf-8"))
    _name_tracks(root, prepared)
    _fix_audio(root)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n{body}\n'


def write_fcp7(timeline: otio.schema.Timeline, tmp: Path) -> None:
    """FCP7 XML for Premiere Pro (File > Import) and DaVinci Resolve (File > Import >
    Timeline): the picture tracks as they were, music on audio tracks with cross fades."""
    tmp.write_text(fcp7_string(timeline), encoding="utf-8")

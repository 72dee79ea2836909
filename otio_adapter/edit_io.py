"""Reading an edit in any format OTIO reads, and writing a timeline atomically."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import opentimelineio as otio

from moodsic_engine.errors import InputError
from moodsic_engine.fileio import atomic_path


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


_MAX_JSON_BYTES = 256 * 2**20  # an edit's JSON this large is an attack, not a timeline


def _otio_json(p: Path, adapter: str) -> bytes:
    """The JSON an .otio, .otiod or .otioz holds (size-capped: an .otioz may be a zip bomb)."""
    import zipfile

    if adapter == "otioz":
        with zipfile.ZipFile(p) as z:
            info = z.getinfo("content.otio")
            if info.file_size > _MAX_JSON_BYTES:
                raise InputError(f"{p.name}: its timeline is too large ({info.file_size} bytes)")
            return z.read(info)
    f = p / "content.otio" if adapter == "otiod" else p
    if f.stat().st_size > _MAX_JSON_BYTES:
        raise InputError(f"{p.name}: too large to be an edit ({f.stat().st_size} bytes)")
    return f.read_bytes()


def _check_nesting(p: Path, adapter: str) -> None:
    """OTIO's C++ JSON reader overflows its stack (segfault) on input nested some 10^4 deep;
    Python's parser stops at its recursion limit instead, so let it look first."""
    import json
    import zipfile

    try:
        json.loads(_otio_json(p, adapter))
    except RecursionError:
        raise InputError(f"{p.name}: JSON nested too deeply to be an edit") from None
    except (ValueError, OSError, KeyError, zipfile.BadZipFile):
        pass  # OTIO's own reader reports malformed files


BUNDLE_ATTR = "_moodsic_bundle"  # set on a Timeline read from an .otioz/.otiod: its path


def bundle_of(timeline: otio.schema.Timeline) -> Path | None:
    """The .otioz file or .otiod folder `timeline` was read from by `read_edit`, if any:
    its media references are relative to the bundle (``media/clip.mov``)."""
    found = getattr(timeline, BUNDLE_ATTR, None)
    return Path(found) if found is not None else None


_DF_LOC = re.compile(r"^(\*\s*LOC:\s*)(\d\d:\d\d:\d\d;\d\d)", re.M)


_FCM_DROP = re.compile(r"^\s*FCM:\s*DROP\s+FRAME\s*$", re.M | re.I)


def _read_edl(p: Path, adapter: otio.adapters.Adapter, kwargs: dict) -> otio.schema.Timeline:
    """The CMX 3600 reader, with drop-frame locators kept: it matches ``* LOC:`` timecodes
    only in the ``HH:MM:SS:FF`` form and silently drops the ``HH:MM:SS;FF`` its own writer
    uses at 29.97, so they are rewritten as the same frame in non-drop form first. Without
    a rate, an EDL whose header says ``FCM: DROP FRAME`` is read at 30000/1001 (the reader
    would assume 24 and refuse its timecodes)."""
    if p.stat().st_size > _MAX_JSON_BYTES:
        raise InputError(f"{p.name}: too large to be an edit ({p.stat().st_size} bytes)")
    text = p.read_bytes().decode("utf-8", errors="replace")
    if "rate" not in kwargs and _FCM_DROP.search(text):
        kwargs = {**kwargs, "rate": 30000 / 1001}  # drop-frame timecode exists at 29.97 only
    rate = kwargs.get("rate", 24)  # the reader's own default

    def non_drop(m: re.Match[str]) -> str:
        try:
            at = otio.opentime.from_timecode(m.group(2), rate)
            return m.group(1) + otio.opentime.to_timecode(at, rate, drop_frame=False)
        except Exception:  # not a drop-frame rate: the reader skips it as before
            return m.group(0)

    return adapter.read_from_string(_DF_LOC.sub(non_drop, text), **kwargs)


def _fcpxml_has_timeline(text: str) -> bool:
    """False for well-formed FCPXML with nothing to read (the adapter dies on a None)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return True  # the adapter reports the XML error itself
    tags = ("sequence", "asset-clip", "clip", "ref-clip")
    return any(root.find(f".//{tag}") is not None for tag in tags)


def _read_fcpxml(p: Path, adapter: otio.adapters.Adapter) -> otio.core.SerializableObject:
    """The FCPXML adapter with exact rates and frames and the sequence's tcStart honoured
    (see otio_adapter.fcpxml)."""
    from .fcpxml import apply_tc_start, exact_fcpxml

    if p.stat().st_size > _MAX_JSON_BYTES:
        raise InputError(f"{p.name}: too large to be an edit ({p.stat().st_size} bytes)")
    text = p.read_text(encoding="utf-8", errors="replace")
    if not _fcpxml_has_timeline(text):
        raise InputError(f"{p.name}: this FCPXML holds no project, sequence or clip")
    with exact_fcpxml():
        result = adapter.read_from_string(text)
    for timeline in (
        [result]
        if isinstance(result, otio.schema.Timeline)
        else list(result.find_children(descended_from_type=otio.schema.Timeline))
    ):
        apply_tc_start(timeline, text)
    return result


_MAX_LEAD_S = 600  # black before the first event: more than this is no hour-based program


def _exact_rate(rate: float) -> float:
    """29.97, 23.976, 23.98 or 59.94 as typed mean 30000/1001, 24000/1001 or 60000/1001
    (OTIO's timecode functions refuse the rounded values)."""
    if not math.isfinite(rate) or rate <= 0:
        raise InputError(f"frame rate must be a positive number, got {rate}")
    nominal = round(rate * 1001 / 1000)
    if rate != round(rate) and abs(rate - nominal * 1000 / 1001) < 0.006:
        return nominal * 1000 / 1001
    return rate


def _edl_record_start(timeline: otio.schema.Timeline) -> None:
    """The CMX 3600 reader keeps where each track's first event sits on the record side only
    as a negative ``source_range`` start on the track (a window that, taken as OTIO means it,
    hides the clips or shifts them against any track added later). Make it plain OTIO: the
    program starts on the hour at or below the first record in (01:00:00:00 as NLEs do),
    which becomes the global start time, and black before a track's first event becomes a
    leading gap."""
    firsts = {}
    for i, track in enumerate(timeline.tracks):
        rng = track.source_range if isinstance(track, otio.schema.Track) else None
        if rng is not None and rng.start_time.value < 0:
            firsts[i] = -rng.start_time
    if not firsts:
        return
    first = min(firsts.values(), key=lambda t: t.to_seconds())
    rate = first.rate
    try:
        tc = otio.opentime.to_timecode(first, rate)  # "01:00:02;00" when drop-frame
        hour = tc[:2] + "".join("0" if c.isdigit() else c for c in tc[2:])
        start = otio.opentime.from_timecode(hour, rate)
    except Exception:  # a rate without a timecode form: the program starts at its first event
        start = first
    if (first - start).to_seconds() > _MAX_LEAD_S:
        start = first
    for i, rec_in in firsts.items():
        track = timeline.tracks[i]
        lead = round((rec_in - start).value_rescaled_to(rate))
        track.source_range = None
        if lead > 0:
            track.insert(
                0,
                otio.schema.Gap(
                    source_range=otio.opentime.TimeRange(
                        otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(lead, rate)
                    )
                ),
            )
    if start.value > 0:
        timeline.global_start_time = otio.opentime.RationalTime(
            round(start.value_rescaled_to(rate)), rate
        )


def read_edit(path: str | os.PathLike[str], *, rate: float | None = None) -> otio.schema.Timeline:
    """Read an edit (.otio, .otioz, .otiod, .fcpxml, .fcpxmld, .edl, .moodsic.json, ...) as
    one Timeline.

    `rate` is passed to readers that need it (CMX 3600 EDLs carry no frame rate).
    A timeline read from an .otioz/.otiod remembers the bundle (`bundle_of`), so scoring
    finds the media inside it. Raises InputError with one line when the file cannot be read.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"edit not found: {p}")
    if p.is_dir() and p.suffix.lower() == ".fcpxmld":  # FCP 10.6+ exports a bundle folder
        if not (p / "Info.fcpxml").is_file():
            raise InputError(f"{p.name}: an .fcpxmld bundle without Info.fcpxml")
        p = p / "Info.fcpxml"
    if p.is_dir() and p.suffix != ".otiod":
        raise InputError(f"edit path is a folder: {p}")
    try:
        adapter = otio.adapters.from_filepath(str(p))
    except Exception as exc:
        raise InputError(
            f"{p.name}: no OTIO adapter reads this format ({_one_line(exc)})"
        ) from None
    if adapter.name in ("otio_json", "otiod", "otioz", "moodsic"):
        _check_nesting(p, adapter.name)  # moodsic: a .json file may hold OTIO JSON
    kwargs = {}
    if rate is not None and adapter.name == "cmx_3600":
        kwargs["rate"] = _exact_rate(rate)
    try:
        if adapter.name == "fcpx_xml":
            result = _read_fcpxml(p, adapter)
        elif adapter.name == "cmx_3600":
            result = _read_edl(p, adapter, kwargs)
        else:
            result = adapter.read_from_file(str(p), **kwargs)
    except InputError:
        raise
    except Exception as exc:  # adapters raise anything from ValueError to OTIOError
        raise InputError(f"{p.name}: cannot be read as {adapter.name}: {_one_line(exc)}") from None
    if adapter.name == "cmx_3600" and isinstance(result, otio.schema.Timeline):
        _edl_record_start(result)
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
        if len(timelines) != 1:
            raise InputError(f"{p.name} holds {len(timelines)} timelines; expected one")
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise InputError(f"{p.name} is not a timeline (found {type(result).__name__})")
    if adapter.name in ("otioz", "otiod"):
        setattr(result, BUNDLE_ATTR, str(p.resolve()))
    return result


def _check_edl_keeps_everything(timeline: otio.schema.Timeline, target: Path) -> None:
    """The CMX 3600 writer keeps only the first track and drops the rest without a word:
    refuse a timeline whose other tracks hold clips (a scored edit's music, say)."""
    lost = [
        track.name or f"{track.kind} track {i + 1}"
        for i, track in enumerate(timeline.tracks)
        if i > 0 and any(True for _ in track.find_clips())
    ]
    if lost:
        raise InputError(
            f"{target.name}: a CMX 3600 EDL holds one track, so {', '.join(lost)} would be "
            "lost; write .otio, .otioz or .fcpxml instead"
        )


def write_timeline(timeline: otio.schema.Timeline, path: str | os.PathLike[str]) -> Path:
    """Write in the format the suffix names; complete or absent, never half-written."""
    target = Path(path)
    try:
        adapter = otio.adapters.from_filepath(str(target))
    except Exception as exc:
        raise InputError(
            f"{target.name}: no OTIO adapter writes this format ({_one_line(exc)})"
        ) from None
    if adapter.name == "cmx_3600":
        _check_edl_keeps_everything(timeline, target)
    if adapter.name in ("otioz", "otiod"):
        _write_bundle(timeline, target, adapter)
        return target
    with atomic_path(target) as tmp:
        tmp.unlink()  # bundle writers (otioz) refuse to overwrite the placeholder
        try:
            if adapter.name == "fcpx_xml":
                from .fcpxml import exact_fcpxml

                with exact_fcpxml():
                    adapter.write_to_file(timeline, str(tmp))
            else:
                adapter.write_to_file(timeline, str(tmp))
        except Exception as exc:
            raise InputError(
                f"{target.name}: cannot be written as {adapter.name}: {_one_line(exc)}"
            ) from None
    return target


def _bundler_url(path: Path) -> str:
    """A file URL OTIO's bundler maps back to `path`: it percent-decodes a URL twice
    (unquote, then url2pathname), so a name holding '%' needs its URL encoded twice."""
    from urllib.parse import quote

    from opentimelineio import url_utils

    uri = path.as_uri()
    twice = "file://" + quote(uri[len("file://") :], safe="/")
    for url in (uri, twice):
        if url_utils.filepath_from_url(url) == str(path):
            return url
    return uri


def _write_bundle(
    timeline: otio.schema.Timeline, target: Path, adapter: otio.adapters.Adapter
) -> None:
    """An .otioz/.otiod holding the media: every reference that names a local file (a plain
    path with '%' in it, a file:// URL, a path inside the bundle the timeline was read from)
    is bundled; a clip whose media is missing keeps a MissingReference (its URL in metadata),
    as scoring went on without it, instead of failing the whole write."""
    import copy

    from .score import bundle_media, media_path

    bundled = copy.deepcopy(timeline)
    with bundle_media(bundle_of(timeline), bundled) as bundle_dir:
        for clip in bundled.find_clips():
            ref = clip.media_reference
            if not isinstance(ref, otio.schema.ExternalReference):
                continue
            path = media_path(ref, None, bundle_dir)
            if path is not None and path.is_file():
                ref.target_url = _bundler_url(path.resolve())
                continue
            # OTIO's own stand-in drops the available range (and with it the timing of a
            # clip without a source range): make one that keeps it
            meta = copy.deepcopy(ref.metadata)
            meta["missing_reference_because"] = "target_url target is not a file or does not exist"
            meta["original_target_url"] = ref.target_url
            clip.media_reference = otio.schema.MissingReference(
                name=ref.name, available_range=ref.available_range, metadata=meta
            )
        with atomic_path(target) as tmp:
            tmp.unlink()  # bundle writers refuse to overwrite the placeholder
            try:
                adapter.write_to_file(bundled, str(tmp), media_policy="MissingIfNotFile")
            except Exception as exc:
                raise InputError(
                    f"{target.name}: cannot be written as {adapter.name}: {_one_line(exc)}"
                ) from None

"""CMX 3600 EDLs (Avid, Pro Tools, Premiere, Resolve): reading with the record start, drop-frame
locators and rates honoured, and writing."""

from __future__ import annotations

import math
import re
from pathlib import Path

import opentimelineio as otio

from moodsic_engine.errors import InputError

from .edit_io import ensure_small
from .formats import ReadOptions

_DF_LOC = re.compile(r"^(\*\s*LOC:\s*)(\d\d:\d\d:\d\d;\d\d)", re.M)


_FCM_DROP = re.compile(r"^\s*FCM:\s*DROP\s+FRAME\s*$", re.M | re.I)


def _read_edl_text(p: Path, adapter: otio.adapters.Adapter, kwargs: dict) -> otio.schema.Timeline:
    """The CMX 3600 reader, with drop-frame locators kept: it matches ``* LOC:`` timecodes
    only in the ``HH:MM:SS:FF`` form and silently drops the ``HH:MM:SS;FF`` its own writer
    uses at 29.97, so they are rewritten as the same frame in non-drop form first. Without
    a rate, an EDL whose header says ``FCM: DROP FRAME`` is read at 30000/1001 (the reader
    would assume 24 and refuse its timecodes)."""
    ensure_small(p)
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


_MAX_LEAD_S = 600  # black before the first event: more than this is no hour-based program


def exact_rate(rate: float) -> float:
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


def read_edl(p: Path, options: ReadOptions) -> otio.schema.Timeline:
    """An EDL as a Timeline whose first record sits at its global start time."""
    adapter = otio.adapters.from_name("cmx_3600")
    kwargs = {}
    if options.rate is not None:
        kwargs["rate"] = exact_rate(options.rate)
    result = _read_edl_text(p, adapter, kwargs)
    if isinstance(result, otio.schema.Timeline):
        _edl_record_start(result)
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


def write_edl(timeline: otio.schema.Timeline, tmp: Path) -> None:
    _check_edl_keeps_everything(timeline, tmp)
    otio.adapters.from_name("cmx_3600").write_to_file(timeline, str(tmp))

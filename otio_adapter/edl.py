"""CMX 3600 EDLs (Avid, Pro Tools, Premiere, Resolve): reading with the record start, drop-frame
locators and rates honoured, and writing."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import opentimelineio as otio

from moodsic_engine.errors import InputError

from .edl_text import (
    STANDARD_RATES,
    EdlText,
    Event,
    channel_tracks,
    frame_field,
    frames_to_tc,
    is_timecode,
    split_edl,
    tc_to_frames,
    track_channel,
)
from .formats import ReadOptions

_DF_LOC = re.compile(r"^(\*\s*LOC:\s*)(\d\d:\d\d:\d\d;\d\d)", re.M)


_M2 = re.compile(r"^\s*\*?\s*M2\b")
_M2_TC = re.compile(r"\d\d:\d\d:\d\d[:;]\d\d\s*$")


def _m2_line(line: str, source_in: str) -> str:
    """An M2 line as OTIO's pattern wants it: ending in a timecode with ':' only (some lists
    write ';' at 29.97, some leave the timecode out; its value is not used)."""
    if not _M2.match(line):
        return line
    if not _M2_TC.search(line):
        line = f"{line.rstrip()} {source_in if is_timecode(source_in) else '00:00:00:00'}"
    return line[:-3] + line[-3:].replace(";", ":") if line[-3:-2] == ";" else line


def _otio_text(edl: EdlText) -> str:
    """The tidied list as OTIO's reader takes it: its header, then each event's lines with
    their comments (M2 lines made readable for its pattern)."""
    out = [f"TITLE: {edl.title}"] if edl.title else []
    for event in edl.events:
        for line in event.lines():
            out.append(_m2_line(line, event.line.tcs[0].replace(";", ":")))
    return "\n".join(out) + "\n"


def _read_tidied(edl: EdlText, rate: float) -> otio.schema.Timeline:
    """OTIO's CMX 3600 reader, with drop-frame locators kept: it matches ``* LOC:`` timecodes
    only in the ``HH:MM:SS:FF`` form and silently drops the ``HH:MM:SS;FF`` its own writer
    uses at 29.97, so they are rewritten as the same frame in non-drop form first."""
    adapter = otio.adapters.from_name("cmx_3600")

    def non_drop(m: re.Match[str]) -> str:
        try:
            at = otio.opentime.from_timecode(m.group(2), rate)
            return m.group(1) + otio.opentime.to_timecode(at, rate, drop_frame=False)
        except Exception:  # not a drop-frame rate: the reader skips it as before
            return m.group(0)

    return adapter.read_from_string(_DF_LOC.sub(non_drop, _otio_text(edl)), rate=rate)


MAX_EDL_BYTES = 32 * 2**20
MAX_EVENTS = 20_000  # CMX 3600 numbers events to 999, extended lists to 9999

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


def _timecodes(edl: EdlText) -> list[tuple[str, str]]:
    """(event number, timecode) of every source and record timecode on the event lines."""
    out = []
    for event in edl.events:
        for line in (event.before, event.line):
            if line is not None:
                out.extend((line.number, tc) for tc in line.tcs if is_timecode(tc))
    return out


def _fps_label(rate: float) -> str:
    return f"{rate:g}" if rate == round(rate) else f"{rate:.3f}"


def edl_rate(edl: EdlText, name: str, rate: float | None) -> tuple[float, int, bool]:
    """The rate to read an EDL at: (exact rate, nominal timecode base, drop-frame).

    A given rate (``--rate``) wins; it must hold every timecode's frame field. Without one,
    ``FCM: DROP FRAME`` or ';' before the frames means 29.97 (59.94 when frames past 29
    occur); otherwise the largest frame field F bounds the rate from below: the smallest
    standard rate above F (24, 25, 30, 50, 60), unless an M2 line playing at normal speed
    names one of them. The assumed rate is reported in one warning.
    """
    tcs = _timecodes(edl)
    fields = [(number, tc, frame_field(tc) or 0) for number, tc in tcs]
    top = max(fields, key=lambda f: f[2], default=("", "", 0))
    drop_fcm = any("DROP" in f and "NON" not in f for f in edl.fcm)
    semicolon = any(re.search(r"[;.]\d\d$", tc) for _, tc in tcs)
    if rate is not None:
        exact = exact_rate(rate)
        fps = round(exact)
        if top[2] >= fps:
            raise InputError(
                f"{name}: timecode {top[1]} (event {top[0]}) has frame {top[2]}, impossible at "
                f"{_fps_label(exact)} fps; pass the EDL's frame rate with --rate"
            )
        drop = exact != round(exact) and fps in (30, 60) and (drop_fcm or semicolon)
        return exact, fps, drop
    if drop_fcm or semicolon:
        fps = 60 if top[2] >= 30 else 30
        return fps * 1000 / 1001, fps, True
    above = [r for r in STANDARD_RATES if r > top[2]]
    if not above:
        raise InputError(
            f"{name}: timecode {top[1]} (event {top[0]}) has frame {top[2]}, past any "
            "standard rate; pass the EDL's frame rate with --rate"
        )
    chosen = above[0]
    for event in edl.events:  # an M2 at normal speed names the rate itself
        speed = event.m2_fps()
        line = event.line
        if speed and abs(speed) in above and all(t.count(":") == 3 for t in line.tcs):
            src = tc_to_frames(line.tcs[1], 100, False) - tc_to_frames(line.tcs[0], 100, False)
            rec = tc_to_frames(line.tcs[3], 100, False) - tc_to_frames(line.tcs[2], 100, False)
            if src == rec > 0:
                chosen = int(abs(speed))
                break
    seen = f"frame numbers up to {top[2]}" if tcs else "no timecodes"
    warnings.warn(
        f"{name}: no --rate given and an EDL names no frame rate; assumed {chosen} fps from "
        f"its timecodes ({seen}); pass --rate to override",
        UserWarning,
        stacklevel=3,
    )
    return float(chosen), chosen, False


def _numbers(events: list[Event]) -> str:
    nums = [e.number for e in events]
    shown = ", ".join(nums[:8])
    return shown + (f" and {len(nums) - 8} more" if len(nums) > 8 else "")


def _fit_lengths(edl: EdlText, fps: int, drop: bool, name: str) -> None:
    """Source and record lengths that differ without a speed change: the record length
    plays (an NLE's list may carry a retime's source range without its M2 line)."""
    fixed: list[Event] = []
    for event in edl.events:
        if event.has_speed():
            continue
        changed = False
        for line in (event.before, event.line):
            if line is None or not all(is_timecode(t) or t.isdigit() for t in line.tcs):
                continue
            s_in, s_out, r_in, r_out = (tc_to_frames(t, fps, drop) for t in line.tcs)
            if r_out >= r_in and s_out - s_in != r_out - r_in:
                line.tcs[1] = frames_to_tc(s_in + r_out - r_in, fps, drop)
                changed = True
        if changed:
            fixed.append(event)
    if fixed:
        warnings.warn(
            f"{name}: event(s) {_numbers(fixed)} have source and record lengths that differ "
            "without an M2 speed line; their record lengths were kept",
            UserWarning,
            stacklevel=4,
        )


def _span(event: Event, fps: int, drop: bool) -> tuple[int, int]:
    return (
        tc_to_frames(event.line.tcs[2], fps, drop),
        tc_to_frames(event.line.tcs[3], fps, drop),
    )


def _trimmed(event: Event, start: int, end: int, fps: int, drop: bool) -> Event:
    """The part of `event` recorded over [start, end): source moved by the same frames
    (times the speed of an M2 line), a transition kept only while its start stays."""
    r_in, _ = _span(event, fps, drop)
    speed = event.m2_fps()
    factor = abs(speed) / fps if speed is not None else 1.0
    s_in = tc_to_frames(event.line.tcs[0], fps, drop)
    new = event.copy()
    tcs = new.line.tcs
    src_in = s_in + round((start - r_in) * factor)
    tcs[0] = frames_to_tc(src_in, fps, drop)
    tcs[1] = frames_to_tc(
        src_in + max(1 if speed == 0 else 0, round((end - start) * factor)), fps, drop
    )
    tcs[2] = frames_to_tc(start, fps, drop)
    tcs[3] = frames_to_tc(end, fps, drop)
    if start != r_in and new.before is not None:
        new.before = None
        new.line.transition, new.line.duration = "C", None
    return new


def _paint(edl: EdlText, fps: int, drop: bool, name: str) -> None:
    """Events recorded over by later ones, as a tape edit would: the later event wins, the
    earlier keeps what is still visible on each of its tracks (split per channel when the
    tracks differ)."""
    spans = [_span(e, fps, drop) for e in edl.events]
    out: list[Event] = []
    hidden: list[Event] = []
    for i, event in enumerate(edl.events):
        start, end = spans[i]
        per_track = {}
        for track in channel_tracks(event.line.channel):
            pieces = [(start, end)]
            for j in range(i + 1, len(edl.events)):
                later = edl.events[j]
                if track not in channel_tracks(later.line.channel):
                    continue
                lo, hi = spans[j]
                if hi <= lo:
                    continue
                pieces = [
                    part
                    for a, b in pieces
                    for part in ((a, min(b, lo)), (max(a, hi), b))
                    if part[1] > part[0]
                ]
            per_track[track] = pieces
        if all(p == [(start, end)] for p in per_track.values()) or end <= start:
            out.append(event)
            continue
        hidden.append(event)
        shapes = {tuple(p) for p in per_track.values()}
        groups = (
            [(event.line.channel, next(iter(per_track.values())))]
            if len(shapes) == 1
            else [(track_channel(t), p) for t, p in per_track.items()]
        )
        for channel, pieces in groups:
            for a, b in pieces:
                part = _trimmed(event, a, b, fps, drop)
                part.line.channel = channel
                if part.before is not None:
                    part.before.channel = channel
                out.append(part)
    if hidden:
        warnings.warn(
            f"{name}: event(s) {_numbers(hidden)} are recorded over by later events; "
            "the later events were kept, as on tape",
            UserWarning,
            stacklevel=4,
        )
    edl.events = out


def tidy_events(edl: EdlText, fps: int, drop: bool, name: str) -> None:
    """Make a real editor's list one that OTIO's reader times exactly (see `read_edl`)."""
    for event in edl.events:
        for line in (event.before, event.line):
            if line is not None and not all(is_timecode(t) or t.isdigit() for t in line.tcs):
                raise InputError(f"{name}: event {line.number} has an unreadable timecode")
    keys = [e for e in edl.events if e.line.transition.startswith("K")]
    for event in keys:  # OTIO reads no keys: the keyed-in picture shows, as a cut
        event.before = None
        event.line.transition, event.line.duration = "C", None
    if keys:
        warnings.warn(
            f"{name}: event(s) {_numbers(keys)} are keys (K, KB, KO), read as cuts to the "
            "keyed picture",
            UserWarning,
            stacklevel=4,
        )
    _fit_lengths(edl, fps, drop, name)
    _paint(edl, fps, drop, name)
    spans = [_span(e, fps, drop) for e in edl.events]
    if any(b < a for a, b in spans):
        bad = [e for e, (a, b) in zip(edl.events, spans, strict=True) if b < a]
        raise InputError(f"{name}: event(s) {_numbers(bad)} end before they start")
    order = sorted(range(len(edl.events)), key=lambda k: spans[k][0])
    if order != list(range(len(order))):
        edl.events = [edl.events[k] for k in order]
    started: set[str] = set()
    for event in edl.events:  # OTIO's reader cannot start a track with a transition
        tracks = set(channel_tracks(event.line.channel))
        if event.before is not None and not tracks & started:
            event.before = None
            event.line.transition, event.line.duration = "C", None
        started |= tracks
    used = {e.number for e in edl.events}
    spare = max((int(n) for n in used), default=0) + 1
    previous = None
    for event in edl.events:  # OTIO's reader takes a repeated number for a transition
        if event.number == previous:
            width = len(event.number)
            event.line.number = f"{spare:0{width}d}"
            if event.before is not None:
                event.before.number = event.line.number
            spare += 1
        previous = event.number


def read_edl(p: Path, options: ReadOptions) -> otio.schema.Timeline:
    """An EDL as a Timeline whose first record sits at its global start time.

    Before OTIO's reader sees the list: the rate is taken or inferred (`edl_rate`); an event
    whose source and record lengths differ without an M2 speed change or freeze frame plays
    its record length (one warning names them); events a later event records over are
    trimmed or dropped, as on tape; events out of record order are put in order.
    """
    size = p.stat().st_size
    if size > MAX_EDL_BYTES:  # ~100 bytes an event: 10,000 events are about 1 MB
        raise InputError(f"{p.name}: too large to be an EDL ({size} bytes)")
    text = p.read_bytes().decode("utf-8", errors="replace")
    edl = split_edl(text)
    if not edl.events:
        raise InputError(f"{p.name}: no events found; is this a CMX 3600 EDL?")
    if len(edl.events) > MAX_EVENTS:
        raise InputError(
            f"{p.name}: {len(edl.events)} events; an EDL holds at most {MAX_EVENTS} (split it)"
        )
    rate, fps, drop = edl_rate(edl, p.name, options.rate)
    tidy_events(edl, fps, drop, p.name)
    result = _read_tidied(edl, rate)
    if isinstance(result, otio.schema.Timeline):
        _edl_record_start(result)
        if options.media_dir is None and not _names_files(result, p.parent):
            warnings.warn(
                f"{p.name}: its events name no media file that is here; pass --media-dir "
                "FOLDER to find them by clip name, source file or reel",
                UserWarning,
                stacklevel=2,
            )
    return result


def _names_files(timeline: otio.schema.Timeline, base: Path) -> bool:
    """Whether any clip's reference points at a file that exists."""
    from .media import media_path

    for clip in timeline.find_clips():
        ref = clip.media_reference
        if isinstance(ref, otio.schema.ExternalReference):
            path = media_path(ref, base)
            if path is not None and path.is_file():
                return True
    return False


def write_edl(timeline: otio.schema.Timeline, tmp: Path) -> None:
    """The scored edit as one CMX 3600 EDL: picture, the edit's own audio and the music
    (``otio_adapter.edl_writer``)."""
    from .edl_writer import edl_text

    tmp.write_text(edl_text(timeline), encoding="utf-8")

"""Writing a scored edit as one CMX 3600 EDL: the picture (V), the edit's own audio and
Moodsic's music as audio events, crossfades as dissolves.

OTIO's CMX 3600 writer keeps only the first track; this one writes every event itself:
- the main video track as V events, exactly as timed (cuts, dissolves and wipes with the
  outgoing event first, M2 speed changes, freeze frames, black), its comments, locators and
  CDLs carried;
- other audio tracks on their own channels (A1 is "A", two identical channels one "AA");
- the music on the first free pair of channels ("AA" when the edit has no audio of its own):
  the music tracks' clips as one lane, where two clips overlap (the crossfade) the incoming
  one a dissolve as long as the overlap, the outgoing one playing on inside its own range;
  each with ``* FROM CLIP NAME:`` / ``* SOURCE FILE:`` so an NLE relinks the music files.
Record timecodes count from the timeline's global start time at the edit rate, with drop
frame (';', ``FCM: DROP FRAME``) at 29.97 and 59.94.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import unquote, urlparse

import opentimelineio as otio

from .edit_track import edit_rate, main_video_track
from .edl_text import EventLine, frames_to_tc, track_channel
from .timeline import is_moodsic_music, is_video, moodsic_meta, rate_of


@dataclass
class _Out:
    """One event to write (frames at the edit rate; record frames absolute)."""

    reel: str
    channel: str
    src_in: int
    src_out: int
    rec_in: int
    rec_out: int
    comments: list[str] = field(default_factory=list)
    dissolve: int = 0  # frames; > 0: a transition from the event before
    transition: str = "D"
    from_reel: str = "BL"
    from_src: int = 0  # the outgoing event's source out
    name: str = ""

    def key(self) -> tuple[Any, ...]:
        return (self.reel, self.src_in, self.src_out, self.rec_in, self.rec_out, self.dissolve,
                self.transition, self.from_reel, self.from_src, tuple(self.comments))  # fmt: skip


@dataclass(frozen=True)
class _Clock:
    rate: float
    fps: int  # timecode base
    drop: bool
    start: int  # the record frame of the timeline's start

    def frames(self, t: otio.opentime.RationalTime) -> int:
        return round(t.value_rescaled_to(self.rate))

    def tc(self, frames: int) -> str:
        return frames_to_tc(frames, self.fps, self.drop)


def _basename(url: str) -> str:
    path = unquote(urlparse(url).path) if "://" in url else url
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1]


def _reel(clip: otio.schema.Clip) -> str:
    """The clip's reel as read from an EDL, BL for black, else AX (the "auxiliary source"
    NLEs relink by clip name and source file); music gets a reel from its file name."""
    if isinstance(clip.media_reference, otio.schema.GeneratorReference):
        return "BL"
    reel = str((clip.metadata.get("cmx_3600") or {}).get("reel") or "")
    if reel and not re.search(r"\s", reel):
        return reel
    if moodsic_meta(clip).get("role") == "music":
        stem = _basename(getattr(clip.media_reference, "target_url", "") or "").rsplit(".", 1)[0]
        return re.sub(r"[^A-Za-z0-9_]", "", stem)[:8] or "AX"
    return "AX"


def _speed(clip: otio.schema.Clip) -> tuple[float, bool]:
    """(source frames per record frame, freeze frame)."""
    scalar = 1.0
    for effect in clip.effects:
        if isinstance(effect, otio.schema.FreezeFrame):
            return 0.0, True
        if isinstance(effect, otio.schema.LinearTimeWarp):
            scalar *= effect.time_scalar
    return scalar, False


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _comments(clip: otio.schema.Clip, clock: _Clock, src_in: int, *, to: str | None) -> list[str]:
    """The clip's comment lines: M2 / freeze, its name (FROM, or TO after a dissolve from
    `to`), its source file, CDL, locators and the comments it was read with."""
    lines = []
    scalar, freeze = _speed(clip)
    reel = _reel(clip)
    if freeze or scalar != 1.0:
        speed = 0.0 if freeze else scalar * clock.fps
        lines.append(f"M2   {reel:<8}  {speed:05.1f}  {clock.tc(src_in)}")
    carried = [_one_line(c) for c in (clip.metadata.get("cmx_3600") or {}).get("comments", [])]
    if to is not None:
        lines.append(f"* FROM CLIP NAME:  {_one_line(to)}")
        if clip.name:
            lines.append(f"* TO CLIP NAME:  {_one_line(clip.name)}")
    elif clip.name:
        lines.append(f"* FROM CLIP NAME:  {_one_line(clip.name)}")
    if freeze:
        lines.append("* * FREEZE FRAME")
    url = getattr(clip.media_reference, "target_url", None)
    if url and not any(c.upper().startswith("SOURCE FILE") for c in carried):
        lines.append(f"* SOURCE FILE: {_basename(url)}")
    cdl = clip.metadata.get("cdl") or {}
    sop = cdl.get("asc_sop") or {}
    if sop:
        groups = " ".join(
            "(" + " ".join(f"{float(v):g}" for v in sop.get(k, ())) + ")"
            for k in ("slope", "offset", "power")
        )
        lines.append(f"*ASC_SOP {groups}")
    if cdl.get("asc_sat") is not None:
        lines.append(f"*ASC_SAT {float(cdl['asc_sat']):g}")
    for marker in clip.markers:
        at = clock.tc(clock.frames(marker.marked_range.start_time))
        colour = str(marker.color or "RED").upper()
        lines.append(f"* LOC: {at} {colour:<7} {_one_line(marker.name or '')}".rstrip())
    lines.extend(f"* {c}" for c in carried if c)
    return lines


def _src_span(clip: otio.schema.Clip, clock: _Clock, src_in: int, length: int) -> int:
    scalar, freeze = _speed(clip)
    if freeze:
        return src_in + 1
    return src_in + round(length * abs(scalar))


def _offsets(item: Any, clock: _Clock) -> tuple[int, int]:
    return clock.frames(item.in_offset), clock.frames(item.out_offset)


def _transition_code(item: Any) -> str:
    code = str((item.metadata.get("cmx_3600") or {}).get("transition") or "")
    return code if re.fullmatch(r"D|W\d{3}", code) else "D"


def track_events(track: otio.schema.Track, channel: str, clock: _Clock) -> list[_Out]:
    """A track's clips as events: cuts, and transitions written the CMX way (the outgoing
    event ends where the transition starts; the incoming event starts there, its source
    moved back by as much, the dissolve as long as the transition)."""
    items = list(track)
    out: list[_Out] = []
    last: dict[int, _Out] = {}  # item index -> its event

    def shows(i: int) -> bool:
        return 0 <= i < len(items) and isinstance(items[i], otio.schema.Clip) and items[i].enabled

    for i, item in enumerate(items):
        if not shows(i):
            if isinstance(item, otio.schema.Stack | otio.schema.Track):
                warnings.warn(
                    f"EDL: a nested {type(item).__name__.lower()} ({item.name or 'unnamed'}) "
                    f"on {track.name or 'a track'} cannot be written; it is left out",
                    UserWarning,
                    stacklevel=2,
                )
            continue
        rng = item.range_in_parent()
        rec_in = clock.start + clock.frames(rng.start_time)
        rec_out = clock.start + clock.frames(rng.end_time_exclusive())
        src_in = clock.frames(item.trimmed_range().start_time)
        scalar, freeze = _speed(item)
        before = items[i - 1] if i > 0 else None
        after = items[i + 1] if i + 1 < len(items) else None
        dissolve, code, from_reel, from_src, to = 0, "D", "BL", 0, None
        if isinstance(before, otio.schema.Transition):
            x, y = _offsets(before, clock)
            rec_in -= x
            src_in -= 0 if freeze else round(x * abs(scalar))
            dissolve, code = x + y, _transition_code(before)
            prev = last.get(i - 2)
            if prev is not None:
                from_reel, from_src, to = prev.reel, prev.src_out, items[i - 2].name or ""
        if isinstance(after, otio.schema.Transition):
            rec_out -= _offsets(after, clock)[0]
        if rec_out <= rec_in and not dissolve:
            continue
        event = _Out(
            _reel(item),
            channel,
            src_in,
            _src_span(item, clock, src_in, rec_out - rec_in),
            rec_in,
            rec_out,
            _comments(item, clock, src_in, to=to if dissolve else None),
            dissolve,
            code,
            from_reel,
            from_src,
        )
        out.append(event)
        last[i] = event
        if isinstance(after, otio.schema.Transition) and not shows(i + 2):
            x, y = _offsets(after, clock)  # a fade to black
            if x + y > 0:
                out.append(
                    _Out(
                        "BL",
                        channel,
                        0,
                        x + y,
                        rec_out,
                        rec_out + x + y,
                        [],
                        x + y,
                        _transition_code(after),
                        event.reel,
                        event.src_out,
                    )  # fmt: skip
                )
    return out


# --------------------------------------------------------------------------- music
@dataclass
class _Piece:
    clip: otio.schema.Clip
    rec_in: int
    rec_out: int
    src_in: int


def _available(clip: otio.schema.Clip, clock: _Clock) -> tuple[int, int | None]:
    """The frames of the clip's media (start, end or None when unknown)."""
    rng = getattr(clip.media_reference, "available_range", None)
    if rng is None:
        return 0, None
    start = clock.frames(rng.start_time)
    return start, start + clock.frames(rng.duration)


def _music_pieces(tracks: list[otio.schema.Track], clock: _Clock) -> list[_Piece]:
    """Every music clip in record time; a transition between two clips of one track (the
    single layout) becomes the overlap it plays, as far as the media reaches."""
    pieces = []
    for track in tracks:
        items = list(track)
        for i, item in enumerate(items):
            if not isinstance(item, otio.schema.Clip) or not item.enabled:
                continue
            rng = item.range_in_parent()
            rec_in = clock.start + clock.frames(rng.start_time)
            rec_out = clock.start + clock.frames(rng.end_time_exclusive())
            src_in = clock.frames(item.trimmed_range().start_time)
            first, last = _available(item, clock)
            before = items[i - 1] if i > 0 else None
            after = items[i + 1] if i + 1 < len(items) else None
            if isinstance(before, otio.schema.Transition) and i > 1:
                if isinstance(items[i - 2], otio.schema.Clip):
                    head = min(_offsets(before, clock)[0], max(0, src_in - first))
                    rec_in, src_in = rec_in - head, src_in - head
            if isinstance(after, otio.schema.Transition) and i + 2 < len(items):
                if isinstance(items[i + 2], otio.schema.Clip):
                    tail = _offsets(after, clock)[1]
                    if last is not None:
                        tail = min(tail, max(0, last - (src_in + rec_out - rec_in)))
                    rec_out += tail
            if rec_in < clock.start:  # music cannot start before the program
                src_in += clock.start - rec_in
                rec_in = clock.start
            if rec_out > rec_in:
                pieces.append(_Piece(item, rec_in, rec_out, src_in))
    pieces.sort(key=lambda p: (p.rec_in, p.rec_out))
    return pieces


def music_events(tracks: list[otio.schema.Track], channel: str, clock: _Clock) -> list[_Out]:
    """The music as one lane of events: where a clip overlaps the one before, a dissolve as
    long as the overlap; the outgoing event ends where the incoming one starts."""
    out: list[_Out] = []
    for piece in _music_pieces(tracks, clock):
        clip = piece.clip
        prev = out[-1] if out else None
        dissolve, from_reel, from_src, to = 0, "BL", 0, None
        rec_in, src_in = piece.rec_in, piece.src_in
        if prev is not None and rec_in < prev.rec_out:
            if piece.rec_out <= prev.rec_out or rec_in <= prev.rec_in:
                continue  # inside the one before: nothing of it would be heard
            dissolve = prev.rec_out - rec_in
            prev.rec_out = rec_in
            prev.src_out = prev.src_in + (prev.rec_out - prev.rec_in)
            from_reel, from_src, to = prev.reel, prev.src_out, prev.name
        event = _Out(
            _reel(clip),
            channel,
            src_in,
            src_in + piece.rec_out - rec_in,
            rec_in,
            piece.rec_out,
            _comments(clip, clock, src_in, to=to),
            dissolve,
            "D",
            from_reel,
            from_src,
            clip.name or "",
        )
        out.append(event)
    return out


# --------------------------------------------------------------------------- the list
def _channel_number(track: otio.schema.Track) -> int | None:
    m = re.fullmatch(r"A(\d+)", (track.name or "").strip(), re.I)
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def _clock(timeline: otio.schema.Timeline) -> tuple[_Clock, otio.schema.Track]:
    track = main_video_track(timeline)
    fps = edit_rate(timeline, track)
    rate = rate_of(fps)
    nominal = max(1, round(rate))
    drop = fps in (Fraction(30000, 1001), Fraction(60000, 1001))
    start = timeline.global_start_time
    first = round(start.value_rescaled_to(rate)) if start is not None else 0
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"unusable frame rate {rate}")
    return _Clock(rate, nominal, drop, max(0, first)), track


def _with_channel(events: list[_Out], channel: str) -> list[_Out]:
    return [
        _Out(
            e.reel,
            channel,
            e.src_in,
            e.src_out,
            e.rec_in,
            e.rec_out,
            list(e.comments),
            e.dissolve,
            e.transition,
            e.from_reel,
            e.from_src,
        )  # fmt: skip
        for e in events
    ]


def _paired(events: dict[int, list[_Out]]) -> list[_Out]:
    """Audio channels as events; channels 1 and 2 holding the same events become "AA"."""
    out: list[_Out] = []
    one, two = events.get(1), events.get(2)
    if one is not None and two is not None and [e.key() for e in one] == [e.key() for e in two]:
        out.extend(_with_channel(one, "AA"))
        events = {k: v for k, v in events.items() if k not in (1, 2)}
    for n, evs in sorted(events.items()):
        out.extend(_with_channel(evs, track_channel(f"A{n}")))
    return out


def edl_text(timeline: otio.schema.Timeline) -> str:
    """The whole EDL (see the module docstring)."""
    clock, main = _clock(timeline)
    video = track_events(main, "V", clock)
    left_out = [
        t.name or f"video track {i + 1}"
        for i, t in enumerate(timeline.tracks)
        if is_video(t) and t is not main and any(True for _ in t.find_clips())
    ]
    if left_out:
        warnings.warn(
            f"EDL: a CMX 3600 EDL holds one picture track; {', '.join(left_out)} left out "
            "(write .otio or .fcpxml to keep them)",
            UserWarning,
            stacklevel=3,
        )
    audio: dict[int, list[_Out]] = {}
    music = []
    others = []
    for track in timeline.tracks:
        if not isinstance(track, otio.schema.Track) or is_video(track):
            continue
        if is_moodsic_music(track):
            music.append(track)
        elif any(True for _ in track.find_clips()):
            others.append(track)
    for track in others:
        n = _channel_number(track)
        if n is None or n in audio:
            n = next(k for k in range(1, 1000) if k not in audio and not _named(others, k))
        audio[n] = track_events(track, "A", clock)
    if music:
        pair = next(k for k in range(1, 1000, 2) if k not in audio and k + 1 not in audio)
        lane = music_events(music, "A", clock)
        audio[pair] = lane
        audio[pair + 1] = list(lane)
    events = video + _paired(audio)
    order = {"V": 0}
    events.sort(key=lambda e: (e.rec_in, order.get(e.channel, 1)))
    return _render(timeline, clock, events)


def _named(tracks: list[otio.schema.Track], n: int) -> bool:
    return any(_channel_number(t) == n for t in tracks)


def _render(timeline: otio.schema.Timeline, clock: _Clock, events: list[_Out]) -> str:
    width = max(3, len(str(len(events))))
    title = _one_line(timeline.name or "") or "Moodsic"
    lines = [f"TITLE: {title}", "FCM: DROP FRAME" if clock.drop else "FCM: NON-DROP FRAME", ""]
    tc = clock.tc
    for k, e in enumerate(events, start=1):
        num = f"{k:0{width}d}"
        if e.dissolve > 0:
            at = [tc(e.from_src), tc(e.from_src), tc(e.rec_in), tc(e.rec_in)]
            lines.append(EventLine(num, e.from_reel, e.channel, "C", None, at).text())
            spans = [tc(e.src_in), tc(e.src_out), tc(e.rec_in), tc(e.rec_out)]
            dur = f"{e.dissolve:03d}"
            lines.append(EventLine(num, e.reel, e.channel, e.transition, dur, spans).text())
        else:
            spans = [tc(e.src_in), tc(e.src_out), tc(e.rec_in), tc(e.rec_out)]
            lines.append(EventLine(num, e.reel, e.channel, "C", None, spans).text())
        lines.extend(e.comments)
        lines.append("")
    return "\n".join(lines)

"""CMX 3600 EDL text: timecodes, event lines and the events they group into.

Shared by the reader (``otio_adapter.edl``), which tidies a real editor's list before OTIO's
CMX 3600 reader builds the timeline, and the writer (``otio_adapter.edl_writer``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

STANDARD_RATES = (24, 25, 30, 50, 60)  # timecode bases an EDL's frame fields can point to

_TC = re.compile(r"^(\d{1,2})[:;.](\d\d)[:;.](\d\d)([:;.])(\d\d)$")
_TRANSITION = re.compile(r"^(C|D|W\d{3}|KB|KO|K)$")

# OTIO's reader expands these channel codes into tracks; others name a track as written
CHANNEL_TRACKS = {
    "A": ("A1",),
    "AA": ("A1", "A2"),
    "B": ("V", "A1"),
    "A2/V": ("V", "A2"),
    "AA/V": ("V", "A1", "A2"),
}


def channel_tracks(channel: str) -> tuple[str, ...]:
    return CHANNEL_TRACKS.get(channel, (channel,))


def track_channel(track: str) -> str:
    """The channel code one track is written with (A1 is "A" in CMX 3600)."""
    return "A" if track == "A1" else track


# --------------------------------------------------------------------------- timecodes
def is_timecode(text: str) -> bool:
    return _TC.match(text) is not None


def frame_field(text: str) -> int | None:
    m = _TC.match(text)
    return int(m.group(5)) if m else None


def tc_to_frames(text: str, fps: int, drop: bool) -> int:
    """Frames since 00:00:00:00 of a timecode (or a plain frame count) at nominal `fps`.
    Drop-frame counting applies when `drop` and the separator before the frames is ';'."""
    if text.isdigit():
        return int(text)
    m = _TC.match(text)
    if m is None:
        raise ValueError(f"not a timecode: {text!r}")
    h, mi, s, sep, f = (
        int(m.group(1)),
        int(m.group(2)),
        int(m.group(3)),
        m.group(4),
        int(m.group(5)),
    )
    frames = ((h * 60 + mi) * 60 + s) * fps + f
    if drop and sep in ";.":
        dropped = 2 * fps // 30  # 2 frame numbers a minute at 29.97, 4 at 59.94
        minutes = h * 60 + mi
        frames -= dropped * (minutes - minutes // 10)
    return frames


def frames_to_tc(frames: int, fps: int, drop: bool) -> str:
    """The timecode of a frame count at nominal `fps` (';' before the frames when `drop`)."""
    if frames < 0:
        frames = 0
    if drop:
        dropped = 2 * fps // 30
        per_10min = fps * 600 - dropped * 9
        per_min = fps * 60 - dropped
        tens, rest = divmod(frames, per_10min)
        extra = 0 if rest < dropped else dropped * ((rest - dropped) // per_min)
        frames += dropped * 9 * tens + extra
    f = frames % fps
    s = frames // fps
    sep = ";" if drop else ":"
    return f"{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}{sep}{f:02d}"


# --------------------------------------------------------------------------- event lines
@dataclass
class EventLine:
    """One event line: ``NNN REEL CHANNEL TRANSITION [DURATION] SRC_IN SRC_OUT REC_IN REC_OUT``."""

    number: str
    reel: str
    channel: str
    transition: str  # "C", "D", "W001", "K", ...
    duration: str | None  # the transition's length in frames, as written
    tcs: list[str]  # source in, source out, record in, record out, as written

    @property
    def is_cut(self) -> bool:
        return self.transition == "C"

    def text(self) -> str:
        dur = self.duration or ""
        return (
            f"{self.number}  {self.reel:<8} {self.channel:<5} {self.transition:<4} {dur:>3} "
            + " ".join(self.tcs)
        )


def parse_event_line(line: str) -> EventLine | None:
    """An event line, or None when `line` is no event line (a comment, a note, a header)."""
    fields = line.split()
    if not fields or not fields[0].isdigit() or len(fields) not in (8, 9):
        return None
    tcs = fields[-4:]
    if not all(is_timecode(t) or t.isdigit() for t in tcs):
        return None
    if not _TRANSITION.match(fields[3]):
        return None
    duration = fields[4] if len(fields) == 9 else None
    if duration is not None and not duration.isdigit():
        return None
    return EventLine(fields[0], fields[1], fields[2], fields[3], duration, list(tcs))


@dataclass
class Event:
    """An event: its line (a cut), or a transition's two lines (the outgoing "from" line, a
    zero-length cut, then the incoming line), and the comment lines after them."""

    line: EventLine  # the line whose record range the event fills (the incoming one)
    before: EventLine | None = None  # the "from" line of a transition
    comments: list[str] = field(default_factory=list)
    order: int = 0  # position in the file

    @property
    def number(self) -> str:
        return self.line.number

    def has_speed(self) -> bool:
        """An M2 speed change or a freeze frame: source and record lengths differ on purpose."""
        return any(_is_speed(c) for c in self.comments)

    def m2_fps(self) -> float | None:
        for c in self.comments:
            if re.match(r"^\s*\*?\s*M2\b", c):
                for token in c.split()[1:]:
                    try:
                        return float(token)
                    except ValueError:
                        continue
        return None

    def lines(self) -> list[str]:
        out = [self.before.text()] if self.before is not None else []
        return [*out, self.line.text(), *self.comments]

    def copy(self, **changes: object) -> Event:
        new = replace(self, **changes)
        new.line = replace(new.line, tcs=list(new.line.tcs))
        if new.before is not None:
            new.before = replace(new.before, tcs=list(new.before.tcs))
        new.comments = list(new.comments)
        return new


def _is_speed(comment: str) -> bool:
    return bool(re.match(r"^\s*\*?\s*M2\b", comment)) or "FREEZE FRAME" in comment.upper()


@dataclass
class EdlText:
    """An EDL split into its header and events."""

    title: str | None
    fcm: list[str]  # the FCM lines' values ("NON-DROP FRAME", "DROP FRAME")
    events: list[Event]
    dropped_lines: int = 0  # lines before the first event that are neither TITLE nor FCM


def split_edl(text: str) -> EdlText:
    """Group an EDL's lines into events. A zero-length cut followed by a transition line is
    that transition's "from" line even when it carries another event number (as some lists
    have it); a transition line without one gets one (OTIO's reader needs the pair)."""
    title = None
    fcm: list[str] = []
    events: list[Event] = []
    dropped = 0
    for raw in text.lstrip("\ufeff").splitlines():
        line = raw.strip()
        if not line:
            continue
        upper = line.upper()
        if upper.startswith("TITLE:") and title is None and not events:
            title = line[len("TITLE:") :].strip()
            continue
        if upper.startswith("FCM:"):
            fcm.append(upper[len("FCM:") :].strip())
            if not events:
                continue
        ev = parse_event_line(line)
        if ev is None:
            if events:
                events[-1].comments.append(line)
            else:
                dropped += 1
            continue
        if ev.is_cut:
            events.append(Event(ev, order=len(events)))
            continue
        last = events[-1] if events else None
        if last is not None and last.before is None and _zero_length(last.line):
            events.pop()  # the "from" line, read as an event of its own: take it back
            before, comments = last.line, last.comments
        else:
            rec_in = ev.tcs[2]
            before = EventLine(
                ev.number, "BL", ev.channel, "C", None, [ev.tcs[0]] * 2 + [rec_in] * 2
            )
            comments = []
        before.number = ev.number
        events.append(Event(ev, before, comments, order=len(events)))
    return EdlText(title, fcm, events, dropped)


def _zero_length(line: EventLine) -> bool:
    return line.tcs[0] == line.tcs[1] and line.tcs[2] == line.tcs[3]

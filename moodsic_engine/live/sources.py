"""Live sources: a camera (/dev/videoN through PyAV's v4l2 input), a network stream (RTSP, HTTP,
...), or a file played as if it were a camera (paced at its own frame rate, optionally looped).

A source yields `LiveFrame`s at the live sample rate: one RGB frame at working resolution,
with the motion and shot cuts measured on every decoded frame in between (as the batch
sampler measures them). Frames are handed on in memory and never written anywhere; once
the analysis has used one, nothing refers to it any more.

When a camera or stream drops (an error, a stall past the read timeout, or the stream
ending), the source reconnects with exponential backoff; the music is played by another
thread and does not stop. Opening the source the first time must succeed: a wrong device
path or URL is one clear error at start-up, not an endless retry.
"""

from __future__ import annotations

import math
import os
import statistics
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import SampleConfig
from ..errors import InputError
from .clock import SessionClock

STREAM_SCHEMES = (
    "rtsp://",
    "rtsps://",
    "rtmp://",
    "http://",
    "https://",
    "udp://",
    "srt://",
    "tcp://",
)


class SourceError(InputError):
    """The live source cannot be opened (wrong device, unreachable URL, not a video)."""


class SourceLost(Exception):
    """An open source stopped delivering frames (reconnect)."""


@dataclass(frozen=True)
class LiveFrame:
    """One sample of the room.

    Attributes
    ----------
    t
        Session seconds at which the frame was seen.
    source_t
        The source's own time of the frame (position in the file, stream timestamp).
    frame
        [H, W, 3] uint8 RGB at working resolution (memory only).
    motion
        Mean absolute luma change per decoded frame since the previous sample (0..1).
    cuts
        Session times of the shot cuts seen since the previous sample.
    """

    t: float
    source_t: float
    frame: np.ndarray
    motion: float
    cuts: tuple[float, ...] = ()


@dataclass(frozen=True)
class SourceSpec:
    """Where frames come from, and how to read them.

    `kind` is "device", "stream" or "file"; `loop` replays a file from the start when it ends.
    """

    location: str
    kind: str
    loop: bool = False

    @property
    def name(self) -> str:
        """A short name for messages (a URL without its credentials)."""
        if self.kind == "stream" and "@" in self.location:
            scheme, rest = self.location.split("://", 1)
            return f"{scheme}://{rest.split('@', 1)[1]}"
        return self.location if self.kind != "file" else Path(self.location).name


def source_spec(location: str, *, loop: bool = False) -> SourceSpec:
    """Classify a SOURCE argument: /dev/videoN (or v4l2:PATH) is a camera, a URL a stream,
    anything else a file. Raises SourceError for a camera or file that is not there."""
    text = str(location)
    if text.startswith(("v4l2:", "/dev/")):
        path = text.removeprefix("v4l2:")
        if not os.path.exists(path):
            raise SourceError(f"camera {path} not found (is it plugged in?)")
        return SourceSpec(path, "device")
    if text.lower().startswith(STREAM_SCHEMES):
        return SourceSpec(text, "stream")
    p = Path(text)
    if not p.is_file():
        raise SourceError(f"live source not found: {text} (a file, /dev/videoN or a stream URL)")
    return SourceSpec(str(p), "file", loop=loop)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def open_container(spec: SourceSpec, read_timeout_s: float = 5.0):  # noqa: ANN201 - av container
    """Open the source with PyAV; SourceError with one line when it cannot be opened."""
    import av

    from ..video import open_media

    if spec.kind == "file":
        try:
            return open_media(spec.location)
        except InputError as exc:
            raise SourceError(str(exc)) from None
    try:
        if spec.kind == "device":
            if not os.path.exists(spec.location):
                raise SourceError(f"camera {spec.location} not found (is it plugged in?)")
            return av.open(spec.location, format="v4l2", timeout=(10.0, read_timeout_s))
        options = {"rtsp_transport": "tcp"} if spec.location.lower().startswith("rtsp") else {}
        return av.open(spec.location, options=options, timeout=(10.0, read_timeout_s))
    except SourceError:
        raise
    except (av.FFmpegError, OSError, ValueError, UnicodeError) as exc:
        what = "camera" if spec.kind == "device" else "stream"
        why = _first_line(exc).replace(spec.location, spec.name)  # no password in the log
        raise SourceError(f"cannot open {what} {spec.name}: {why}") from None


class FrameReader:
    """Frames of one source at the live sample rate, reconnecting when it drops.

    Parameters
    ----------
    spec
        The source.
    clock
        The session clock; files and streams are paced by their timestamps against it.
    sample_fps
        Live samples per second (default 1).
    sample_cfg
        Working resolution and the shot-cut detector's settings (as in batch sampling).
    on_event
        Called with (kind, message) for "connected", "lost" and "ended" (one line each).
    backoff_s
        First reconnection delay in session seconds; it doubles up to `max_backoff_s`.
    """

    def __init__(
        self,
        spec: SourceSpec,
        clock: SessionClock,
        *,
        sample_fps: float = 1.0,
        sample_cfg: SampleConfig | None = None,
        on_event: Callable[[str, str], None] | None = None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        read_timeout_s: float = 5.0,
        opener: Callable[[SourceSpec], object] | None = None,
    ) -> None:
        if not (sample_fps > 0 and math.isfinite(sample_fps)):
            raise InputError("the live sample rate must be a positive number")
        self.spec = spec
        self.clock = clock
        self.step = 1.0 / sample_fps
        self.cfg = sample_cfg or SampleConfig()
        self.on_event = on_event or (lambda kind, msg: None)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.read_timeout_s = read_timeout_s
        self._open = opener or (lambda s: open_container(s, self.read_timeout_s))
        self.connects = 0
        self.losses = 0
        self._next_t = -math.inf  # session time of the next sample

    def open_first(self) -> object:
        """Open the source once (start-up check); SourceError when it cannot be opened."""
        return self._open(self.spec)

    def frames(self, stop: threading.Event, first: object | None = None) -> Iterator[LiveFrame]:
        """LiveFrames until `stop` is set, a file ends (without loop) or the reader gives up."""
        base: float | None = None  # session time of source time 0 on the current pass
        self._next_t = -math.inf
        delay = self.backoff_s
        container = first
        while not stop.is_set():
            if container is None:
                try:
                    container = self._open(self.spec)
                except SourceError as exc:
                    self.on_event("lost", f"{exc}; retrying in {delay:.0f} s")
                    if not self.clock.sleep(delay, stop):
                        return
                    delay = min(self.max_backoff_s, delay * 2)
                    continue
            self.connects += 1
            self.on_event("connected", f"source {self.spec.name} connected")
            start = self.clock.now()
            base = start if base is None or self.spec.kind != "file" else base
            ended_at: float | None = None
            current, container = container, None
            try:
                for lf, end in self._one_pass(current, base, stop):
                    if lf is not None:
                        delay = self.backoff_s  # frames flow again: back to the short delay
                        yield lf
                    ended_at = end
            except SourceLost as exc:
                self.losses += 1
                self.on_event(
                    "lost", f"source {self.spec.name} lost: {exc}; retrying in {delay:.0f} s"
                )
                if not self.clock.sleep(delay, stop):
                    return
                delay = min(self.max_backoff_s, delay * 2)
                continue
            finally:
                _close(current)
            if stop.is_set():
                return
            if self.spec.kind == "file":
                if not self.spec.loop:
                    self.on_event("ended", f"file {self.spec.name} ended")
                    return
                base = ended_at if ended_at is not None else self.clock.now()
                continue
            # A camera or stream that ends has dropped: reconnect after the delay.
            self.losses += 1
            self.on_event("lost", f"source {self.spec.name} ended; retrying in {delay:.0f} s")
            if not self.clock.sleep(delay, stop):
                return
            delay = min(self.max_backoff_s, delay * 2)

    def _one_pass(
        self,
        container,
        base: float,
        stop: threading.Event,  # noqa: ANN001
    ) -> Iterator[tuple[LiveFrame | None, float]]:
        """(frame or None, session end of the last frame) for one connection."""
        import av

        from ..frame_change import frame_change, thumb_stats
        from ..video_probe import video_stream, working_size

        cfg = self.cfg
        try:
            stream = video_stream(container, self.spec.name)
        except InputError as exc:
            raise SourceError(str(exc)) from None
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        frame_dur = float(1 / rate) if rate else 1 / 25
        paced = self.spec.kind != "device"  # a camera delivers in real time by itself
        reformatter = av.video.reformatter.VideoReformatter()
        origin: float | None = None
        prev = None  # (luma, hist)
        recent: list[float] = []
        motions: list[float] = []
        cuts: list[float] = []
        last_cut = -math.inf
        decoded = 0
        end = base
        it = container.decode(stream)
        while not stop.is_set():
            try:
                frame = next(it)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as exc:
                if self.spec.kind == "file" and decoded > 0:
                    return  # a damaged tail: the file has ended
                raise SourceLost(_first_line(exc)) from None
            decoded += 1
            p = float(frame.time) if frame.time is not None else decoded * frame_dur
            if origin is None:
                origin = p
            src_t = p - origin
            if paced:
                t = base + src_t
                if self.spec.kind == "stream" and t < self.clock.now() - 2.0:
                    # the stream fell behind its own timestamps (a stall): re-anchor on now
                    base = self.clock.now() - src_t
                    t = base + src_t
                if not self.clock.sleep_until(t, stop):
                    return
            else:
                t = self.clock.now()
            end = t + frame_dur
            luma, hist = thumb_stats(frame)
            if prev is not None:
                score, change = frame_change(prev[0], prev[1], luma, hist)
                baseline = statistics.median(recent) if recent else 0.0
                if score >= cfg.cut_threshold and score >= 2.5 * baseline:
                    if t - last_cut >= cfg.cut_min_gap_s:
                        cuts.append(t)
                        last_cut = t
                    recent.clear()
                else:
                    motions.append(change)
                    recent.append(score)
                    del recent[:-15]
            prev = (luma, hist)
            # A live source does not queue up: a paced frame already two samples late (the
            # analysis is slower than the source) is skipped, as a camera drops frames. The
            # slack also covers a thread's wake-up delay (a few ms), multiplied by the speed.
            late = paced and t < self.clock.now() - 2 * self.step - 0.05 * self.clock.speed
            if t + 1e-9 < self._next_t or decoded < 2 or late:  # motion needs a frame before
                yield None, end
                continue
            w, h = working_size(frame.width, frame.height, cfg.short_side)
            rgb = reformatter.reformat(
                frame, width=w, height=h, format="rgb24", interpolation="AREA", threads=1
            ).to_ndarray()
            yield (
                LiveFrame(
                    t=t,
                    source_t=src_t,
                    frame=rgb,
                    motion=float(np.mean(motions)) if motions else 0.0,
                    cuts=tuple(cuts),
                ),
                end,
            )
            motions.clear()
            cuts.clear()
            # on the sample grid; behind by more than a sample (a slow machine, a stall): skip
            # ahead instead of catching up with a burst
            nxt = self._next_t + self.step
            self._next_t = nxt if nxt > t else t + self.step


def _close(container) -> None:  # noqa: ANN001
    try:
        container.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone anyway
        pass

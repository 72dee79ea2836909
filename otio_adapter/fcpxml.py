"""Exact frame rates and times for the FCPXML adapter (otio-fcpx-xml-adapter 1.0).

That adapter
- reads every rate as ``int(fps)``: a 1001/24000 s format becomes 23 fps, 30000/1001 becomes
  29, so a 23.976 edit read back is 0.1 % short and every source time in seconds is 4 % off;
- truncates times to frames (``int(207/25 * 25)`` is 206), losing a frame at random;
- writes an empty ``frameDuration`` for 24000/1001 and 30000/1001 timelines (its table has
  only the keys 23.98 and 29.97), a file it cannot read back;
- ignores a sequence's ``tcStart``: an FCP project starting at 01:00:00:00 reads as an hour
  of gap before the first clip.

`exact_fcpxml()` patches those few functions of OTIO's loaded adapter module for the duration
of one read (under a lock, restored afterwards); `install_exact_fcpxml` keeps them for the
rest of the process (a ``.fcpxml`` OTIO's own tools read). Moodsic reads and writes FCPXML
itself (``otio_adapter.fcpxml_read``, ``otio_adapter.fcpxml_write``): the adapter's writer
also drops every transition, so `install_fcpxml_writer` puts ours in its place for OTIO's own writes (``otioconvert``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio

_LOCK = threading.RLock()


def _seconds(text: str) -> Fraction:
    """An FCPXML time ("1001/24000s", "3600s", "12.5s") as an exact number of seconds."""
    body = text.strip().removesuffix("s")
    num, _, den = body.partition("/")
    return Fraction(num) / Fraction(den or 1)


def _rate(frame_duration: str) -> float:
    """The exact frame rate (as OTIO's double) of a format's frameDuration."""
    fps = 1 / _seconds(frame_duration)
    for den in (1, 1001):  # nearest broadcast rate when a file rounds its frameDuration
        num = fps * den
        if abs(num - round(num)) < Fraction(1, 10**6):
            fps = Fraction(round(num), den)
            break
    return fps.numerator / fps.denominator


_NAMED_RATE = re.compile(r"p(\d+(?:\.\d+)?)$")


def _format_rate(element: Any) -> float:
    """A <format>'s rate: its frameDuration, else the rate in its name. The adapter's writer
    leaves frameDuration empty at 24000/1001 and 30000/1001 (without our patch) but names
    the format ``FFVideoFormat1920x1080p23.976023976023978``."""
    if element is None:
        raise ValueError("a clip names a <format> that is not among the resources")
    text = (element.get("frameDuration") or "").strip()
    if text:
        return _rate(text)
    found = _NAMED_RATE.search(element.get("name") or "")
    if found:
        fps = _exact_fps(float(found.group(1)))
        return fps.numerator / fps.denominator
    raise ValueError(
        f"format {element.get('id')!r} has no frameDuration, so its frame rate is unknown"
    )


def _exact_fps(fps: float) -> Fraction:
    from .timeline import fps_from_rate

    return fps_from_rate(float(fps))


_NTSC = {
    Fraction(24000, 1001): "1001/24000s",
    Fraction(30000, 1001): "1001/30000s",
    Fraction(48000, 1001): "1001/48000s",
    Fraction(60000, 1001): "1001/60000s",
}


def _patches(module: Any) -> dict[tuple[Any, str], Any]:
    cls_in, cls_out = module.FcpxXml, module.FcpxOtio
    rt = otio.opentime.RationalTime

    def to_rational_time(rational_number: str | None, fps: float) -> otio.opentime.RationalTime:
        if rational_number is None or rational_number == "0s":
            return rt(0, float(fps))
        return rt(round(_seconds(rational_number) * _exact_fps(fps)), float(fps))

    def _format_frame_rate(self: Any, format_id: str) -> float:
        return _format_rate(self._format_by_id(format_id))

    def _number_of_frames(self: Any, time_value: str | None, format_id: str) -> int:
        if time_value is None or time_value == "0s":
            return 0
        fps = _exact_fps(self._format_frame_rate(format_id))
        return round(_seconds(time_value) * fps)

    def _frame_rate_from_element(self: Any, element: Any, default_format_id: str) -> float:
        format_id = default_format_id
        if element.tag == "ref-clip":
            format_id = self._media_by_id(element.get("ref")).find("./sequence").get("format")
        elif element.tag == "clip":
            inner = element.find("./gap")
            ref = (
                inner.find("./audio").get("ref")
                if inner is not None
                else element.find("./video").get("ref")
            )
            format_id = self._asset_by_id(ref).get("format")
        elif element.tag == "asset-clip":
            format_id = self._asset_by_id(element.get("ref")).get("format")
        found = self.resource_element.find(f"./format[@id='{format_id}']")
        return _format_rate(found)

    frame_durations = dict(module.FRAMERATE_FRAMEDURATION)
    for fps, text in _NTSC.items():
        frame_durations[fps.numerator / fps.denominator] = text

    return {
        (module, "to_rational_time"): to_rational_time,
        (module, "FRAMERATE_FRAMEDURATION"): frame_durations,
        (cls_in, "_format_frame_rate"): _format_frame_rate,
        (cls_in, "_number_of_frames"): _number_of_frames,
        (cls_out, "_frame_rate_from_element"): _frame_rate_from_element,
    }


@contextmanager
def exact_fcpxml() -> Iterator[None]:
    """While the block runs, OTIO's fcpx_xml adapter reads and writes exact rates and frames."""
    module = otio.adapters.from_name("fcpx_xml").module()
    with _LOCK:
        patches = _patches(module)
        saved = {key: getattr(*key) for key in patches}
        try:
            for (owner, name), value in patches.items():
                setattr(owner, name, value)
            yield
        finally:
            for (owner, name), value in saved.items():
                setattr(owner, name, value)


_INSTALLED = False


def install_exact_fcpxml() -> None:
    """Patch OTIO's fcpx_xml adapter for the rest of the process (``otioconvert`` writes
    FCPXML after our adapter read a cue sheet, outside any ``with`` block)."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED:
            return
        try:
            module = otio.adapters.from_name("fcpx_xml").module()
        except Exception:  # the FCPXML adapter is not installed: nothing to fix
            return
        for (owner, name), value in _patches(module).items():
            setattr(owner, name, value)
        _INSTALLED = True


# ----------------------------------------------------------------------------- writing
def write_fcpxml(timeline: otio.schema.Timeline, tmp: Path) -> None:
    """Moodsic's own FCPXML writer (``otio_adapter.fcpxml_write``; kept here for callers
    of the old name)."""
    from .fcpxml_write import write_fcpxml as write

    write(timeline, tmp)


def install_fcpxml_writer(target: Path | None = None) -> None:
    """Make OTIO's fcpx_xml adapter write with Moodsic's writer for the rest of the process
    (the ``pre_adapter_write`` hook in ``otio_adapter.hooks`` calls this before every
    ``.fcpxml`` write, so ``otioconvert`` writes exact NTSC rates and the music's
    transitions). Relative media paths resolve against `target`'s folder."""
    from .fcpxml_write import fcpxml_string

    try:
        module = otio.adapters.from_name("fcpx_xml").module()
    except Exception:  # the FCPXML adapter is not installed: OTIO writes no .fcpxml at all
        return
    base = target.resolve().parent if target is not None else None

    def write_to_string(input_otio: otio.schema.Timeline, **_: Any) -> str:
        return fcpxml_string(input_otio, base_dir=base if base is not None else Path.cwd())

    with _LOCK:
        module.write_to_string = write_to_string

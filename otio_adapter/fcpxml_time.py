"""FCPXML times and frame rates, exact.

FCPXML writes every time as a rational number of seconds ("1001/24000s", "3600s", "0s") and
a format's frame duration the same way; Final Cut Pro keeps them exact, so do we: times are
`Fraction` seconds until they become whole frames at the sequence rate (nearest frame).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from fractions import Fraction

import opentimelineio as otio

_TIME = re.compile(r"\s*([+-]?\d+(?:\.\d+)?)(?:/(\d+))?s?\s*")
_NAMED_RATE = re.compile(r"p(\d+(?:\.\d+)?)$")


class TimeError(ValueError):
    """A time or rate that is not FCPXML's rational form (the reader names the file)."""


def parse_time(text: str | None, default: Fraction | None = None) -> Fraction:
    """An FCPXML time ("1001/24000s", "3600s", "12.5s") as exact seconds.

    A missing attribute gives `default` (an error when there is none)."""
    if text is None or not text.strip():
        if default is None:
            raise TimeError("a time is missing")
        return default
    found = _TIME.fullmatch(text)
    if found is None or len(text) > 64:
        raise TimeError(f"{text[:40]!r} is not an FCPXML time")
    num, den = found.group(1), found.group(2)
    if den is not None and int(den) == 0:
        raise TimeError(f"{text!r} divides by zero")
    return Fraction(num) / Fraction(den or 1)


def _broadcast(fps: Fraction) -> Fraction:
    """The broadcast rate (N or N*1000/1001) a slightly rounded frame duration means."""
    for den in (1, 1001):
        num = fps * den
        if abs(num - round(num)) < Fraction(1, 10**6):
            return Fraction(round(num), den)
    return fps


def format_fps(fmt: ET.Element | None) -> Fraction | None:
    """A <format>'s exact frame rate: 1 / frameDuration, else the rate in its name
    ("FFVideoFormat1920x1080p23.976023976023978", as otio-fcpx-xml-adapter writes it with an
    empty frameDuration); None when it tells neither (stills: "FFVideoFormatRateUndefined")."""
    if fmt is None:
        return None
    text = (fmt.get("frameDuration") or "").strip()
    if text:
        duration = parse_time(text)
        if duration <= 0:
            raise TimeError(f"format {fmt.get('id')!r} has frameDuration {text!r}")
        return _broadcast(1 / duration)
    found = _NAMED_RATE.search(fmt.get("name") or "")
    if found:
        from .timeline import fps_from_rate

        return fps_from_rate(float(found.group(1)))
    return None


def rate_float(fps: Fraction) -> float:
    """OTIO's double for an exact rate."""
    return fps.numerator / fps.denominator


def frames(seconds: Fraction, fps: Fraction) -> int:
    """Nearest whole frame (never truncated)."""
    return round(seconds * fps)


def rt_frames(count: int, fps: Fraction) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(count, rate_float(fps))


def rt_exact(seconds: Fraction, fps: Fraction) -> otio.opentime.RationalTime:
    """A source time at the sequence rate, keeping a fraction of a frame (media at another
    rate, timecodes that are not on the sequence's frame grid)."""
    value = seconds * fps
    number = int(value) if value.denominator == 1 else float(value)
    return otio.opentime.RationalTime(number, rate_float(fps))

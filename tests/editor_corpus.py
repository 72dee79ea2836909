"""Helpers for the tests that score real editors' files (tests/data/*): stand-in media for
every file an edit references, the picture track as score-timeline sees it, and scoring with
the cheap film-grammar expert.

Real edits point at media on someone else's disks. `stand_in_media` writes a small file
for each of them into one folder, named as the edit names it, so that ``read_edit(...,
media_dir=folder)`` (``--media-dir``) relinks them the way a user's own media would be.
"""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import opentimelineio as otio

STILL_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".psd", ".bmp", ".heic", ".gif"}
AUDIO_SUFFIXES = {".wav", ".aif", ".aiff", ".mp3", ".m4a", ".aac", ".flac", ".caf"}
_STAND_IN_FPS = 25  # a timecode rate every reader knows; cheap at 64x36
_MAX_STAND_IN_S = 4 * 3600  # an edit naming media longer than this is not a test edit


def media_name(clip: Any) -> str | None:
    """The file name a clip's media goes by: its URL's last part, else the clip's name
    (EDL events carry only a name or reel). None for generators and for a URL that names a
    folder."""
    ref = clip.media_reference
    if isinstance(ref, otio.schema.GeneratorReference):
        return None
    url = getattr(ref, "target_url", None) or ""
    if url:
        path = unquote(urlparse(url).path) if "://" in url else url
        name = re.split(r"[\\/]", path)[-1]
        # a URL naming a folder ("/", as Hiero writes for a clip without media) names no
        # file: such a clip stays missing, as it would for its editor
        return name or None
    name = (clip.name or "").strip()
    if not name:
        return None
    return re.sub(r"[\\/:*?\"<>|\x00-\x1f]", "_", name)


@dataclass
class _Need:
    start_s: float = math.inf  # earliest source second used, on the media's own clock
    end_s: float = 0.0
    clock_start_s: float | None = None  # the media's start timecode when the edit tells it


def _needs(clips: Iterable[Any]) -> dict[str, _Need]:
    needs: dict[str, _Need] = {}
    for clip in clips:
        name = media_name(clip)
        if name is None:
            continue
        need = needs.setdefault(name, _Need())
        ref = clip.media_reference
        available = getattr(ref, "available_range", None)
        try:
            used = clip.trimmed_range()
        except Exception:  # no range at all: the media's own length, if it tells
            used = available
        if available is not None:
            start = available.start_time.to_seconds()
            need.clock_start_s = start
            need.start_s = min(need.start_s, start)
            need.end_s = max(need.end_s, available.end_time_exclusive().to_seconds())
        if used is not None:
            need.start_s = min(need.start_s, used.start_time.to_seconds())
            need.end_s = max(need.end_s, used.end_time_exclusive().to_seconds())
    return needs


def _colour(name: str) -> str:
    """A different flat colour per media file, so the grammar expert sees different moods."""
    digest = hashlib.sha1(name.encode()).digest()
    return "0x" + digest[:3].hex()


def _timecode(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:00"


def stand_in_media(timeline: otio.schema.Timeline, folder: str | Path) -> Path:
    """Write a stand-in for every media file `timeline`'s clips reference into `folder`.

    Videos are flat-coloured H.264 at 25 frames/s and 64x36 with a quiet sine on their
    audio track, covering every used range. When the edit names the media's start timecode
    (an available range) the file starts there on the edit's clock; EDL-style media (no
    available range) get a start timecode tag at the whole second at or before the first
    source frame used, as camera files carry. Stills become a PNG, audio a WAV.
    Returns `folder`, for ``read_edit(..., media_dir=folder)``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clips = list(timeline.find_clips())
    for name, need in _needs(clips).items():
        suffix = Path(name).suffix.lower()
        # a name without an extension (an EDL's clip or reel) gets one; any other extension
        # (.mov, .mxf, .r3d) is kept, as decoders look at the content, not the name
        target = folder / (name if suffix else f"{name}.mp4")
        if target.exists():
            continue
        if suffix in STILL_SUFFIXES:
            _ffmpeg(["-f", "lavfi", "-i", f"color=c={_colour(name)}:s=64x36", "-frames:v", "1",
                     "-f", "image2", "-c:v", "png", str(target)])  # fmt: skip
            continue
        clock = need.clock_start_s
        if clock is None:  # media timecode implied by the first source frame used
            clock = math.floor(need.start_s) if math.isfinite(need.start_s) else 0.0
            tc_start = int(clock)
        else:
            tc_start = None  # the edit's available range names the start already
        seconds = max(need.end_s - clock, 0.0) + 1.0
        if seconds > _MAX_STAND_IN_S:
            raise ValueError(f"{name}: would need a {seconds:.0f} s stand-in")
        if suffix in AUDIO_SUFFIXES:
            _ffmpeg(["-f", "lavfi", "-i", f"sine=f=330:d={seconds:.3f}:r=48000",
                     "-c:a", "pcm_s16le", "-f", "wav", str(target)])  # fmt: skip
            continue
        args = ["-f", "lavfi", "-i", f"color=c={_colour(name)}:s=64x36:r={_STAND_IN_FPS}:d={seconds:.3f}",
                "-f", "lavfi", "-i", f"sine=f=220:d={seconds:.3f}:r=48000",
                "-c:v", "libx264", "-preset", "ultrafast", "-g", "250", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-b:a", "32k", "-shortest"]  # fmt: skip
        if tc_start:
            args += ["-timecode", _timecode(tc_start)]
        fmt = "mov" if target.suffix.lower() in (".mov", ".mxf") else "mp4"
        _ffmpeg([*args, "-f", fmt, str(target)])
    return folder


def _ffmpeg(args: list[str]) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True, timeout=300
    )


# --------------------------------------------------------------------------- the picture track
def picture_items(timeline: otio.schema.Timeline) -> list[tuple[str, int, int]]:
    """The main video track as score-timeline sees it: (clip name, or "gap" for gaps and
    disabled items, record start frame, record end frame) at the edit rate, relative to the
    timeline's start. Transitions are left out (the cut sits at their centre)."""
    from otio_adapter.score import edit_rate, main_video_track
    from otio_adapter.timeline import rate_of, to_frames

    track = main_video_track(timeline)
    rate = rate_of(edit_rate(timeline, track))
    items = []
    for item in track:
        if isinstance(item, otio.schema.Transition):
            continue
        rng = item.range_in_parent()
        shows = not isinstance(item, otio.schema.Gap) and item.enabled
        items.append(
            (
                (item.name or "") if shows else "gap",
                to_frames(rng.start_time, rate),
                to_frames(rng.end_time_exclusive(), rate),
            )
        )
    return items


def music_clips(timeline: otio.schema.Timeline) -> list[otio.schema.Clip]:
    """Moodsic's music clips in a scored timeline."""
    from otio_adapter.timeline import is_moodsic_music

    return [c for t in timeline.tracks if is_moodsic_music(t) for c in t.find_clips()]


# --------------------------------------------------------------------------- scoring
def corpus_library(folder: str | Path) -> Any:
    """A small library of sine tracks (one per V/A quadrant) written to `folder`."""
    from otio_adapter.testing import small_library

    return small_library(folder, per_quadrant=1, seconds=20.0)


def grammar_config() -> Any:
    from moodsic_engine.config import Config

    return Config().replace(experts=("grammar",), **{"segment.min_segment_s": 1.0})


def score_with_grammar(
    timeline: otio.schema.Timeline, library: Any, **kwargs: Any
) -> tuple[otio.schema.Timeline, Any]:
    """`score_timeline_report` with the film-grammar expert only (no model weights)."""
    from otio_adapter.score import score_timeline_report

    return score_timeline_report(timeline, library, grammar_config(), **kwargs)


def seconds_to_frames(seconds: Fraction | float, rate: float) -> int:
    """Nearest frame, for expectations computed from a file's own numbers."""
    from otio_adapter.timeline import fps_from_rate

    return int(round(Fraction(seconds) * fps_from_rate(rate)))


__all__ = [
    "corpus_library",
    "grammar_config",
    "media_name",
    "music_clips",
    "picture_items",
    "score_with_grammar",
    "seconds_to_frames",
    "stand_in_media",
]

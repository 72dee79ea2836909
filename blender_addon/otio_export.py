"""Write the scored sequencer timeline as OpenTimelineIO JSON (`.otio`), without the otio package.

Blender's Python has no opentimelineio, so this writes the documented otio_json schema
directly (Timeline.1, Stack.1, Track.1, Clip.2, Gap.1, ExternalReference.1, Marker.2).
Pure Python; the tests read the result back with opentimelineio itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any


@dataclass(frozen=True)
class ClipFacts:
    name: str
    path: str
    kind: str  # "Video" or "Audio"
    track: str  # track name; clips of one track must not overlap
    start: int  # first timeline frame
    end: int  # one past the last
    in_frame: int  # source frame (scene rate) shown at `start`
    metadata: Mapping[str, Any] = field(default_factory=dict)


def _rt(value: float, rate: float) -> dict[str, Any]:
    return {"OTIO_SCHEMA": "RationalTime.1", "rate": rate, "value": float(value)}


def _range(start: float, duration: float, rate: float) -> dict[str, Any]:
    return {
        "OTIO_SCHEMA": "TimeRange.1",
        "duration": _rt(duration, rate),
        "start_time": _rt(start, rate),
    }


def _file_url(path: str) -> str:
    """A file:// URL for an absolute path (what OTIO readers and NLEs expect); a relative
    path stays a relative, percent-encoded URL."""
    from pathlib import PurePath
    from urllib.parse import quote

    if "://" in path:
        return path
    if os.path.isabs(path):
        return PurePath(os.path.abspath(path)).as_uri()
    return quote(PurePath(path).as_posix())


def _clip(c: ClipFacts, rate: float) -> dict[str, Any]:
    return {
        "OTIO_SCHEMA": "Clip.2",
        "metadata": dict(c.metadata),
        "name": c.name,
        "source_range": _range(c.in_frame, c.end - c.start, rate),
        "effects": [],
        "markers": [],
        "enabled": True,
        "media_references": {
            "DEFAULT_MEDIA": {
                "OTIO_SCHEMA": "ExternalReference.1",
                "metadata": {},
                "name": os.path.basename(c.path),
                "available_range": None,
                "available_image_bounds": None,
                "target_url": _file_url(c.path),
            }
        },
        "active_media_reference_key": "DEFAULT_MEDIA",
    }


def _gap(frames: int, rate: float) -> dict[str, Any]:
    return {
        "OTIO_SCHEMA": "Gap.1",
        "metadata": {},
        "name": "",
        "source_range": _range(0, frames, rate),
        "effects": [],
        "markers": [],
        "enabled": True,
    }


def timeline_dict(
    name: str,
    fps: Fraction,
    frame_start: int,
    clips: Sequence[ClipFacts],
    markers: Sequence[tuple[str, int]] = (),
) -> dict[str, Any]:
    """An otio_json Timeline; time zero of every track is the scene's first frame."""
    rate = float(fps)
    tracks: dict[str, list[ClipFacts]] = {}
    kinds: dict[str, str] = {}
    for c in sorted(clips, key=lambda c: (c.kind != "Video", c.track, c.start)):
        tracks.setdefault(c.track, []).append(c)
        kinds[c.track] = c.kind
    children = []
    for track_name, items in tracks.items():
        cursor = frame_start
        children_items = []
        for c in items:
            start = max(c.start, cursor)
            if start > c.start:  # overlap inside one track (should not happen): trim the head
                c = ClipFacts(
                    c.name,
                    c.path,
                    c.kind,
                    c.track,
                    start,
                    c.end,
                    c.in_frame + start - c.start,
                    c.metadata,
                )
            if c.end <= c.start:
                continue
            if c.start > cursor:
                children_items.append(_gap(c.start - cursor, rate))
            children_items.append(_clip(c, rate))
            cursor = c.end
        children.append(
            {
                "OTIO_SCHEMA": "Track.1",
                "metadata": {},
                "name": track_name,
                "source_range": None,
                "effects": [],
                "markers": [],
                "enabled": True,
                "children": children_items,
                "kind": kinds[track_name],
            }
        )
    marker_items = [
        {
            "OTIO_SCHEMA": "Marker.2",
            "metadata": {"moodsic": {"mood_label": label}},
            "name": label,
            "color": "GREEN",
            "comment": "",
            "marked_range": _range(frame - frame_start, 0, rate),
        }
        for label, frame in markers
    ]
    return {
        "OTIO_SCHEMA": "Timeline.1",
        "metadata": {"moodsic": {"fps": [fps.numerator, fps.denominator]}},
        "name": name,
        "global_start_time": _rt(frame_start, rate),
        "tracks": {
            "OTIO_SCHEMA": "Stack.1",
            "metadata": {},
            "name": "tracks",
            "source_range": None,
            "effects": [],
            "markers": marker_items,
            "enabled": True,
            "children": children,
        },
    }


def write_otio(path: str, timeline: Mapping[str, Any]) -> str:
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(timeline, fh, indent=2)
    os.replace(tmp, path)
    return path

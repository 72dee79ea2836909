"""Moodsic for OpenTimelineIO: cue sheets as Timelines, and scoring an existing edit.

This package is an OTIO plugin (entry point ``opentimelineio.plugins`` -> ``moodsic``,
manifest ``plugin_manifest.json``): after installing Moodsic,
``otio.adapters.available_adapter_names()`` lists ``moodsic`` and
``otioconvert -i clip.moodsic.json -o clip.otio`` works.

Python API::

    from otio_adapter import cue_to_timeline, timeline_to_cue, score_timeline

    timeline = cue_to_timeline(CueSheet.from_json("clip.moodsic.json"))
    scored = score_timeline(otio.adapters.read_from_file("edit.otio"), library, config)

OTIO imports this package while it loads its plugin manifest, so nothing heavy is imported
here: the functions below import their modules on first call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "ScoreReport",
    "add_score",
    "read_edit",
    "write_timeline",
    "cue_to_timeline",
    "music_track_timeline",
    "score_timeline",
    "score_timeline_report",
    "timeline_to_cue",
]

_LAZY = {
    "cue_to_timeline": ("otio_adapter.timeline", "cue_to_timeline"),
    "timeline_to_cue": ("otio_adapter.timeline", "timeline_to_cue"),
    "music_track_timeline": ("otio_adapter.timeline", "music_track_timeline"),
    "score_timeline": ("otio_adapter.score", "score_timeline"),
    "score_timeline_report": ("otio_adapter.score", "score_timeline_report"),
    "ScoreReport": ("otio_adapter.score", "ScoreReport"),
    "add_score": ("otio_adapter.score", "add_score"),
    "read_edit": ("otio_adapter.edit_io", "read_edit"),
    "write_timeline": ("otio_adapter.edit_io", "write_timeline"),
}

if TYPE_CHECKING:
    from .edit_io import read_edit, write_timeline
    from .score import ScoreReport, add_score, score_timeline, score_timeline_report
    from .timeline import cue_to_timeline, music_track_timeline, timeline_to_cue


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(name)

"""OTIO adapter ``moodsic``: reads a Moodsic cue sheet (``*.moodsic.json``) as a Timeline and
writes a Timeline carrying Moodsic mood markers back as a cue sheet.

Adapter arguments (``otioconvert -a layout=single``):
- ``layout``: ``alternate`` (two overlapping music tracks, default) or ``single`` (one music
  track with dissolves: best for EDL, FCPXML and MLT export);
- ``crossfade_s``: crossfade length; default: the cue sheet's ``mix.crossfade_s``.
"""

from __future__ import annotations

import json
from pathlib import Path

import opentimelineio as otio

from moodsic_engine.cue import CueSheet
from moodsic_engine.errors import CueSheetError
from moodsic_engine.fileio import write_text_atomic

# Absolute import: OTIO loads this file by path as opentimelineio.adapters.moodsic.
from otio_adapter.timeline import cue_to_timeline, timeline_to_cue


def _crossfade(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)  # otioconvert passes adapter arguments as strings
    except (TypeError, ValueError):
        raise CueSheetError(f"crossfade_s must be a number, got {value!r}") from None


def read_from_file(
    filepath: str, layout: str = "alternate", crossfade_s: object = None
) -> otio.schema.Timeline:
    """Read a cue sheet file; relative media paths resolve against its folder."""
    cue = CueSheet.from_json(filepath)
    return cue_to_timeline(
        cue,
        layout=layout,
        crossfade_s=_crossfade(crossfade_s),
        base_dir=Path(filepath).resolve().parent,
    )


def read_from_string(
    input_str: str, layout: str = "alternate", crossfade_s: object = None
) -> otio.schema.Timeline:
    try:
        data = json.loads(input_str)
    except json.JSONDecodeError as exc:
        raise CueSheetError(f"cue sheet is not valid JSON: {exc}") from None
    cue = CueSheet.from_dict(data)
    return cue_to_timeline(cue, layout=layout, crossfade_s=_crossfade(crossfade_s))


def write_to_string(input_otio: otio.schema.Timeline) -> str:
    if not isinstance(input_otio, otio.schema.Timeline):
        raise CueSheetError(
            f"a cue sheet is written from a Timeline, not {type(input_otio).__name__}"
        )
    return timeline_to_cue(input_otio).to_json_text() + "\n"


def write_to_file(input_otio: otio.schema.Timeline, filepath: str) -> str:
    """Atomic: the cue sheet is complete or absent, never half-written."""
    write_text_atomic(filepath, write_to_string(input_otio))
    return filepath

"""OTIO adapter ``moodsic``: reads a Moodsic cue sheet (``*.moodsic.json``) as a Timeline and
writes a Timeline carrying Moodsic mood markers back as a cue sheet.

Adapter arguments (``otioconvert -a layout=single``):
- ``layout``: ``alternate`` (two overlapping music tracks, default) or ``single`` (one music
  track with dissolves: best for EDL, FCPXML and MLT export);
- ``crossfade_s``: crossfade length; default: the cue sheet's ``mix.crossfade_s``;
- ``music_edl``: ``1``/``true`` gives a timeline holding only one music track (``layout``
  applies; with ``alternate``, ``music_track=0`` or ``1`` picks which) as the single video
  track CMX 3600 writes: ``otioconvert -i clip.moodsic.json -a layout=single -a music_edl=1
  -o music.edl``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import opentimelineio as otio

from moodsic_engine.cue import CueSheet
from moodsic_engine.errors import CueSheetError
from moodsic_engine.fileio import write_text_atomic

# Absolute import: OTIO loads this file by path as opentimelineio.adapters.moodsic.
from otio_adapter.fcpxml import install_exact_fcpxml
from otio_adapter.timeline import cue_to_timeline, music_track_timeline, timeline_to_cue


def _crossfade(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)  # otioconvert passes adapter arguments as strings
    except (TypeError, ValueError):
        raise CueSheetError(f"crossfade_s must be a number, got {value!r}") from None


def _flag(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _track_index(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise CueSheetError(f"music_track must be 0 or 1, got {value!r}") from None


def _timeline(
    cue: CueSheet,
    layout: str,
    crossfade_s: object,
    music_edl: object,
    music_track: object,
    base_dir: Path | None,
) -> otio.schema.Timeline:
    # otioconvert writes the timeline with another adapter next; the FCPXML one cannot write
    # 24000/1001 or 30000/1001 on its own (see otio_adapter.fcpxml).
    install_exact_fcpxml()
    timeline = cue_to_timeline(
        cue, layout=layout, crossfade_s=_crossfade(crossfade_s), base_dir=base_dir
    )
    if _flag(music_edl):
        return music_track_timeline(timeline, _track_index(music_track))
    return timeline


_OTIO_HEAD = re.compile(rb'\s*\{\s*"OTIO_SCHEMA"\s*:')


def _is_otio_json(filepath: str) -> bool:
    """True for OTIO's own JSON (its writer puts OTIO_SCHEMA first in every object)."""
    try:
        with open(filepath, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False  # the cue sheet reader reports it
    return _OTIO_HEAD.match(head.removeprefix(b"\xef\xbb\xbf")) is not None


def _otio_json(text: str) -> otio.core.SerializableObject:
    # OTIO's C++ reader overflows its stack on JSON nested ~10^4 deep; Python's stops first.
    try:
        json.loads(text)
    except RecursionError:
        raise CueSheetError("JSON nested too deeply to be a timeline") from None
    except ValueError:
        pass  # OTIO's reader reports malformed JSON
    return otio.adapters.read_from_string(text, adapter_name="otio_json")


def read_from_file(
    filepath: str,
    layout: str = "alternate",
    crossfade_s: object = None,
    music_edl: object = False,
    music_track: object = 0,
) -> otio.schema.Timeline:
    """Read a cue sheet file; relative media paths resolve against its folder.

    This adapter owns the ``.json`` suffix, so an OTIO JSON timeline saved as ``.json`` is
    handed to ``otio_json`` instead of failing as a cue sheet without a schema.
    """
    if _is_otio_json(filepath):
        return _otio_json(Path(filepath).read_bytes().decode("utf-8-sig"))
    cue = CueSheet.from_json(filepath)
    base = Path(filepath).resolve().parent
    return _timeline(cue, layout, crossfade_s, music_edl, music_track, base)


def read_from_string(
    input_str: str,
    layout: str = "alternate",
    crossfade_s: object = None,
    music_edl: object = False,
    music_track: object = 0,
) -> otio.schema.Timeline:
    try:
        data = json.loads(input_str)
    except (ValueError, RecursionError) as exc:  # also: absurd nesting, 5000-digit ints
        raise CueSheetError(f"cue sheet is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "OTIO_SCHEMA" in data:
        return _otio_json(input_str)
    cue = CueSheet.from_dict(data)
    return _timeline(cue, layout, crossfade_s, music_edl, music_track, None)


def _cue_text(input_otio: otio.schema.Timeline, base_dir: Path | None) -> str:
    if not isinstance(input_otio, otio.schema.Timeline):
        raise CueSheetError(
            f"a cue sheet is written from a Timeline, not {type(input_otio).__name__}"
        )
    return timeline_to_cue(input_otio).to_json_text(base_dir) + "\n"


def write_to_string(input_otio: otio.schema.Timeline) -> str:
    return _cue_text(input_otio, None)


def write_to_file(input_otio: otio.schema.Timeline, filepath: str) -> str:
    """Atomic: the cue sheet is complete or absent, never half-written; media paths are
    written relative to its folder."""
    write_text_atomic(filepath, _cue_text(input_otio, Path(filepath).parent))
    return filepath

"""The thin bpy layer: read scene facts for the placement, carry out its operations.

Everything that can fail is checked before the scene changes; if creating a strip still
fails half-way, what was added is removed and what was removed is put back, so a failed
Auto-score leaves the scene as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from . import compat
from .placement import (
    TAG,
    MarkerOp,
    MovieFacts,
    PlacementError,
    Plan,
    SceneFacts,
    SoundOp,
    original_volume,
    scene_fps,
)

STATE_KEY = "moodsic_state"  # scene custom property: JSON bookkeeping (jobs, markers, re-rolls)


# ----------------------------------------------------------------------------- reading
def is_ours(strip: Any) -> bool:
    return bool(strip.get(TAG, 0))


def movie_facts(strip: Any) -> MovieFacts:
    return MovieFacts(
        name=strip.name,
        source_path=compat.abspath(strip.filepath),
        frame_start=int(round(strip.frame_start)),
        final_start=int(strip.frame_final_start),
        final_end=int(strip.frame_final_end),
        channel=int(strip.channel),
        frame_duration=int(strip.frame_duration),
    )


def scene_facts(scene: Any) -> SceneFacts:
    fps, base = compat.scene_fps_parts(scene)
    users = frozenset(int(s.channel) for s in compat.all_strips(scene) if not is_ours(s))
    return SceneFacts(
        fps=scene_fps(fps, base),
        frame_start=int(scene.frame_start),
        frame_end=int(scene.frame_end),
        user_channels=users,
    )


def selected_movies(scene: Any) -> list[Any]:
    return [
        s for s in compat.all_strips(scene) if compat.is_movie(s) and s.select and not is_ours(s)
    ]


def movie_by_name(scene: Any, name: str) -> Any | None:
    for s in compat.all_strips(scene):
        if s.name == name and compat.is_movie(s):
            return s
    return None


def check_movies(strips: Iterable[Any]) -> None:
    for s in strips:
        path = compat.abspath(s.filepath)
        if not os.path.isfile(path):
            raise PlacementError(f"movie strip {s.name}: file is missing ({path})")
        keys = getattr(s, "retiming_keys", None)
        if keys is not None and len(keys) > 2:
            raise PlacementError(f"movie strip {s.name} is retimed; Moodsic needs normal speed")


def our_strips(scene: Any) -> list[Any]:
    return [s for s in compat.all_strips(scene) if is_ours(s)]


# ----------------------------------------------------------------------------- state
def load_state(scene: Any) -> dict[str, Any]:
    raw = scene.get(STATE_KEY)
    if not raw:
        return {}
    try:
        data = json.loads(str(raw))
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def save_state(scene: Any, state: dict[str, Any]) -> None:
    if state:
        scene[STATE_KEY] = json.dumps(state)
    elif STATE_KEY in scene:
        del scene[STATE_KEY]


# ----------------------------------------------------------------------------- snapshot
def _snapshot(scene: Any, strip: Any) -> SoundOp:
    tags = {k: strip[k] for k in strip.keys() if k == TAG or k in _TAG_KEYS}
    return SoundOp(
        name=strip.name,
        filepath=compat.abspath(strip.sound.filepath) if strip.sound else "",
        channel=int(strip.channel),
        start=int(strip.frame_final_start),
        end=int(strip.frame_final_end),
        in_frame=int(strip.frame_final_start - strip.frame_start),
        volume=float(strip.volume),
        keys=tuple((int(round(f)), v) for f, v in compat.volume_keys(scene, strip)),
        tags=tags,
    )


_TAG_KEYS = ("segment", "piece", "mood", "track_id", "source", "cue", "span_start", "span_end")


# ----------------------------------------------------------------------------- writing
def _add_sound(scene: Any, op: SoundOp) -> Any:
    if not os.path.isfile(op.filepath):
        raise PlacementError(f"music file is missing: {op.filepath}")
    strip = compat.new_sound(scene, op.name, op.filepath, op.channel, op.start - op.in_frame)
    for key, value in op.tags.items():
        strip[key] = value
    # Trim the head first, then the tail: strips are added in time order, so neither step
    # overlaps a strip already on this channel (an overlap would make Blender move it).
    if op.in_frame:
        strip.frame_offset_start = op.in_frame
    if strip.frame_final_end > op.end:
        strip.frame_final_duration = op.end - op.start
    if strip.channel != op.channel:
        strip.channel = op.channel
    strip.volume = op.volume
    if op.keys:
        compat.set_volume_keys(scene, strip, list(op.keys))
        strip.volume = op.keys[0][1]
    return strip


def _check_ops(ops: Iterable[SoundOp]) -> None:
    for op in ops:
        if not os.path.isfile(op.filepath):
            raise PlacementError(f"music file is missing: {op.filepath}")


def replace_strips(scene: Any, remove: list[Any], add: Iterable[SoundOp]) -> list[Any]:
    """Remove `remove`, add `add`; on failure restore the previous strips and re-raise."""
    add = sorted(add, key=lambda o: (o.start, o.channel))
    _check_ops(add)
    saved = [_snapshot(scene, s) for s in remove]
    for s in remove:
        compat.remove_strip(scene, s)
    created: list[Any] = []
    try:
        for op in add:
            created.append(_add_sound(scene, op))
    except Exception:
        for s in created:
            compat.remove_strip(scene, s)
        for op in sorted(saved, key=lambda o: o.start):
            if os.path.isfile(op.filepath):
                _add_sound(scene, op)
        raise
    return created


def remove_markers(scene: Any, recorded: Iterable[Iterable[Any]]) -> None:
    wanted = {(str(n), int(f)) for n, f in recorded}
    for m in list(scene.timeline_markers):
        if (m.name, int(m.frame)) in wanted:
            scene.timeline_markers.remove(m)


def add_markers(scene: Any, markers: Iterable[MarkerOp]) -> list[list[Any]]:
    out = []
    for mk in markers:
        m = scene.timeline_markers.new(mk.name, frame=mk.frame)
        out.append([m.name, int(m.frame)])
    return out


def apply_plan(scene: Any, plan: Plan, state: dict[str, Any]) -> list[Any]:
    """Replace every Moodsic strip and marker by the plan's; record the new state."""
    old_markers = state.get("markers", [])
    created = replace_strips(scene, our_strips(scene), plan.sounds)
    remove_markers(scene, old_markers)
    state = dict(state)
    state["markers"] = add_markers(scene, plan.markers)
    state["channels"] = list(plan.channels)
    save_state(scene, state)
    return created


def cap_original_sound(scene: Any, movies: Iterable[MovieFacts]) -> int:
    """Bring the scored videos' own sound strips (not Moodsic's) to at most volume 1.0 (0 dB):
    the levels the music follows assume the original is never raised. Returns how many."""
    paths = {os.path.normcase(os.path.abspath(m.source_path)) for m in movies}
    changed = 0
    for strip in compat.all_strips(scene):
        if strip.type != "SOUND" or is_ours(strip) or getattr(strip, "sound", None) is None:
            continue
        path = os.path.normcase(os.path.abspath(compat.abspath(strip.sound.filepath)))
        if path in paths and float(strip.volume) > 1.0:
            strip.volume = original_volume(float(strip.volume))
            changed += 1
    return changed


def clear(scene: Any) -> int:
    strips = our_strips(scene)
    for s in strips:
        compat.remove_strip(scene, s)
    state = load_state(scene)
    remove_markers(scene, state.get("markers", []))
    save_state(scene, {})
    return len(strips)

"""The one place that knows how the strip API differs between Blender 4.2 LTS and 5.x.

- 4.2-4.4: `sequence_editor.sequences` / `sequences_all`; 4.5 has both names; 5.0 only
  `strips` / `strips_all`.
- 5.0: `context.sequencer_scene` (None in background mode; then `context.scene`).
- 5.0: `Action.fcurves` is gone; F-curves live in the channelbag of the action slot
  (`bpy_extras.anim_utils.action_get_channelbag_for_slot`, 4.4+).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bpy


def sequencer_scene(context: Any) -> Any:
    return getattr(context, "sequencer_scene", None) or context.scene


def editor(scene: Any, *, create: bool = False) -> Any:
    ed = scene.sequence_editor
    if ed is None and create:
        ed = scene.sequence_editor_create()
    return ed


def top_strips(scene: Any) -> Any:
    """The collection with new_sound/new_movie/remove (top level, not inside metas)."""
    ed = editor(scene, create=True)
    return ed.strips if hasattr(ed, "strips") else ed.sequences


def all_strips(scene: Any) -> list[Any]:
    ed = editor(scene)
    if ed is None:
        return []
    coll = ed.strips_all if hasattr(ed, "strips_all") else ed.sequences_all
    return list(coll)


def is_movie(strip: Any) -> bool:
    return strip.type == "MOVIE"


def new_sound(scene: Any, name: str, filepath: str, channel: int, frame_start: int) -> Any:
    return top_strips(scene).new_sound(name, filepath, channel, frame_start)


def remove_strip(scene: Any, strip: Any) -> None:
    remove_volume_fcurve(scene, strip)
    top_strips(scene).remove(strip)


def abspath(path: str) -> str:
    import os

    return os.path.abspath(bpy.path.abspath(path))


def _fcurves(scene: Any) -> Any | None:
    ad = scene.animation_data
    if ad is None or ad.action is None:
        return None
    action = ad.action
    if hasattr(action, "fcurves"):  # before 5.0
        return action.fcurves
    from bpy_extras import anim_utils

    slot = getattr(ad, "action_slot", None)
    if slot is None:
        return None
    bag = anim_utils.action_get_channelbag_for_slot(action, slot)
    return None if bag is None else bag.fcurves


def iter_fcurves(scene: Any) -> Iterator[Any]:
    curves = _fcurves(scene)
    if curves is not None:
        yield from list(curves)


def volume_fcurve(scene: Any, strip: Any) -> Any | None:
    path = strip.path_from_id("volume")
    for fc in iter_fcurves(scene):
        if fc.data_path == path:
            return fc
    return None


def remove_volume_fcurve(scene: Any, strip: Any) -> None:
    fc = volume_fcurve(scene, strip)
    curves = _fcurves(scene)
    if fc is not None and curves is not None:
        curves.remove(fc)


def set_volume_keys(scene: Any, strip: Any, keys: list[tuple[int, float]]) -> None:
    """Volume keyframes with linear interpolation (a fade is a straight ramp, as in the mix)."""
    for frame, value in keys:
        strip.volume = value
        strip.keyframe_insert("volume", frame=frame)
    fc = volume_fcurve(scene, strip)
    if fc is not None:
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"
        fc.update()


def volume_keys(scene: Any, strip: Any) -> list[tuple[float, float]]:
    fc = volume_fcurve(scene, strip)
    if fc is None:
        return []
    return [(float(k.co[0]), float(k.co[1])) for k in fc.keyframe_points]


def scene_fps_parts(scene: Any) -> tuple[int, float]:
    return int(scene.render.fps), float(scene.render.fps_base)


def sound_info(path: str) -> tuple[float | None, Any | None, int | None]:
    """(duration in seconds, samples [n, channels] float32, sample rate) via Blender's aud."""
    try:
        import aud
    except ImportError:
        return None, None, None
    try:
        sound = aud.Sound(path)
        rate, _channels = sound.specs
        data = sound.data()
    except Exception:  # noqa: BLE001 - aud raises plain errors for unreadable files
        return None, None, None
    if rate <= 0 or data is None or len(data) == 0:
        return None, None, None
    return len(data) / float(rate), data, int(rate)

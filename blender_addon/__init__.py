"""Moodsic for Blender's Video Sequence Editor: "Auto-score" places mood-matched music.

The engine runs outside Blender (`moodsic` CLI in a subprocess, see runner.py); this
add-on places its cue sheet as sound strips, volume keyframes and mood markers.

In the UI the operators are modal: a timer reads the engine's JSON progress into the
progress indicator and the status bar, and Esc ends the engine run. In background mode
(`bpy.app.background`, scripts, render farms) timers never fire, so they run to completion
before returning; scripts calling `bpy.ops.sequencer.moodsic_auto_score()` get the same.
"""

from __future__ import annotations

import json

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    PointerProperty,
    StringProperty,
)

from . import apply, compat, core, otio_export
from .placement import PlacementError, scene_fps
from .runner import EngineError, ScoreBatch, experts_status

ENGINE_TIMEOUT_S = 6 * 3600.0  # background runs: a safety net, not a speed target


def _prefs_id() -> str:
    return __package__ or __name__


# ----------------------------------------------------------------------------- settings
class MoodsicPreferences(bpy.types.AddonPreferences):
    bl_idname = _prefs_id()

    engine_path: StringProperty(
        name="Engine",
        description="Path of the moodsic command (empty: find it on PATH)",
        subtype="FILE_PATH",
        default="",
    )

    def draw(self, context):
        self.layout.prop(self, "engine_path")


class MoodsicSettings(bpy.types.PropertyGroup):
    library_kind: EnumProperty(
        name="Library",
        items=[
            ("BUILTIN", "Built-in", "The small library that ships with Moodsic"),
            (
                "PATH",
                "Folder / DEAM / manifest",
                "A DEAM folder, a CSV/JSON manifest or audio files",
            ),
        ],
        default="BUILTIN",
    )
    library_path: StringProperty(name="Path", subtype="FILE_PATH", default="")
    sample_fps: FloatProperty(name="Samples/s", default=2.0, min=0.1, max=30.0)
    min_segment_s: FloatProperty(name="Min segment (s)", default=8.0, min=1.0, max=600.0)
    target_lufs: FloatProperty(name="Loudness (LUFS)", default=-14.0, min=-40.0, max=0.0)
    duck: BoolProperty(name="Duck under dialogue", default=True)
    music_follow_engine: BoolProperty(
        name="Music level from the engine",
        description="Set the music's level and ducking as the engine's mixdown does (off: use "
        "the gain below)",
        default=True,
    )
    music_gain_db: FloatProperty(
        name="Music gain (dB)",
        description="The music's level against the target loudness, when not from the engine",
        default=-6.0,
        min=-60.0,
        max=12.0,
    )
    crossfade_s: FloatProperty(name="Crossfade (s)", default=2.0, min=0.0, max=20.0)
    experts: StringProperty(
        name="Experts", description="Comma list (scene,face,grammar); empty: every available one"
    )
    source: EnumProperty(
        name="Score",
        items=[
            ("SELECTED", "Selected strips", "Score each selected movie strip's source"),
            ("EDIT", "The edit", "Render the scene range and score the edit as seen"),
        ],
        default="SELECTED",
    )
    experts_info: StringProperty(default="")  # JSON from `moodsic weights status --json`


# ----------------------------------------------------------------------------- operators
class _EngineOperator:
    """Shared modal/synchronous driver: prepare (checks) -> engine runs -> finish (placement)."""

    bl_options = {"REGISTER", "UNDO"}

    _batch: ScoreBatch | None = None
    _prepared: core.Prepared | None = None
    _timer = None

    @classmethod
    def poll(cls, context):
        return compat.sequencer_scene(context) is not None

    def prepare(self, context) -> core.Prepared:
        raise NotImplementedError

    def finish(self, context, prepared: core.Prepared, batch: ScoreBatch) -> str:
        raise NotImplementedError

    def _fail(self, message: str) -> set[str]:
        self.report({"ERROR"}, f"Moodsic: {message}")
        return {"CANCELLED"}

    def execute(self, context):
        try:
            prepared = self.prepare(context)
            batch = ScoreBatch(
                prepared.engine,
                prepared.requests,
                speech=prepared.want_speech,
                levels=prepared.want_levels,
            )
            batch.wait(timeout=ENGINE_TIMEOUT_S)
            if batch.error:
                raise EngineError(batch.error)
            message = self.finish(context, prepared, batch)
        except (PlacementError, EngineError) as exc:
            return self._fail(str(exc))
        self.report({"INFO"}, message)
        return {"FINISHED"}

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        try:
            self._prepared = self.prepare(context)
            self._batch = ScoreBatch(
                self._prepared.engine,
                self._prepared.requests,
                speech=self._prepared.want_speech,
                levels=self._prepared.want_levels,
            )
        except (PlacementError, EngineError) as exc:
            return self._fail(str(exc))
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        context.workspace.status_text_set(self._batch.status)
        return {"RUNNING_MODAL"}

    def _end(self, context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)

    def modal(self, context, event):
        batch = self._batch
        if event.type == "ESC" and event.value == "PRESS":
            batch.cancel()
            self._end(context)
            self.report({"WARNING"}, "Moodsic: cancelled; the scene is unchanged")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        done = batch.poll()
        context.window_manager.progress_update(int(1000 * batch.fraction))
        context.workspace.status_text_set(batch.status)
        if not done:
            return {"PASS_THROUGH"}
        self._end(context)
        if batch.error:
            return self._fail(batch.error)
        try:
            message = self.finish(context, self._prepared, batch)
        except (PlacementError, EngineError) as exc:
            return self._fail(str(exc))
        self.report({"INFO"}, message)
        return {"FINISHED"}


class SEQUENCER_OT_moodsic_auto_score(_EngineOperator, bpy.types.Operator):
    """Score the selected movie strips (or the edit) and place mood-matched music"""

    bl_idname = "sequencer.moodsic_auto_score"
    bl_label = "Auto-score"
    bl_options = {"REGISTER", "UNDO"}

    source: EnumProperty(
        name="Score",
        items=[
            ("SETTINGS", "From panel", "Use the panel's choice"),
            ("SELECTED", "Selected strips", ""),
            ("EDIT", "The edit", ""),
        ],
        default="SETTINGS",
    )

    def prepare(self, context):
        scene = compat.sequencer_scene(context)
        mode = scene.moodsic.source if self.source == "SETTINGS" else self.source
        return core.prepare_auto(context, mode)

    def finish(self, context, prepared, batch):
        prepared.cue_paths.update(batch.cues)
        prepared.speech.update(batch.speech)
        prepared.levels.update(batch.levels)
        message = core.finish_auto(context, prepared)
        for warning in batch.warnings:
            self.report({"WARNING"}, f"Moodsic: {warning}")
        return message


class SEQUENCER_OT_moodsic_reroll(_EngineOperator, bpy.types.Operator):
    """Give the segment at the playhead its next best track; nothing else changes"""

    bl_idname = "sequencer.moodsic_reroll"
    bl_label = "Re-roll segment"
    bl_options = {"REGISTER", "UNDO"}

    def prepare(self, context):
        return core.prepare_reroll(context)

    def finish(self, context, prepared, batch):
        new_cue = batch.cues[prepared.requests[0].video]
        return core.finish_reroll(context, prepared, new_cue)


class SEQUENCER_OT_moodsic_clear(bpy.types.Operator):
    """Remove Moodsic's music strips and mood markers (your own strips are not touched)"""

    bl_idname = "sequencer.moodsic_clear"
    bl_label = "Clear score"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return compat.sequencer_scene(context) is not None

    def execute(self, context):
        n = apply.clear(compat.sequencer_scene(context))
        self.report({"INFO"}, f"Moodsic: removed {n} music strips")
        return {"FINISHED"}


class SEQUENCER_OT_moodsic_export_otio(bpy.types.Operator):
    """Write the scored timeline (your movie strips and Moodsic's music) as an .otio file"""

    bl_idname = "sequencer.moodsic_export_otio"
    bl_label = "Export OTIO"

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.otio", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return compat.sequencer_scene(context) is not None

    def invoke(self, context, event):
        if not self.filepath:
            name = bpy.path.display_name_from_filepath(bpy.data.filepath) or "moodsic"
            self.filepath = f"{name}.otio"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        scene = compat.sequencer_scene(context)
        if not self.filepath:
            return self._error("choose a file to write")
        path = bpy.path.ensure_ext(compat.abspath(self.filepath), ".otio")
        clips = scene_clips(scene)
        if not clips:
            return self._error("the scene has no movie or Moodsic strips to export")
        fps = scene_fps(*compat.scene_fps_parts(scene))
        markers = [(m[0], m[1]) for m in apply.load_state(scene).get("markers", [])]
        timeline = otio_export.timeline_dict(
            scene.name, fps, int(scene.frame_start), clips, markers
        )
        try:
            otio_export.write_otio(path, timeline)
        except OSError as exc:
            return self._error(f"cannot write {path}: {exc.strerror}")
        self.report({"INFO"}, f"Moodsic: wrote {path}")
        return {"FINISHED"}

    def _error(self, message):
        self.report({"ERROR"}, f"Moodsic: {message}")
        return {"CANCELLED"}


def scene_clips(scene) -> list[otio_export.ClipFacts]:
    clips = []
    for s in compat.all_strips(scene):
        if compat.is_movie(s) and not apply.is_ours(s):
            clips.append(
                otio_export.ClipFacts(
                    name=s.name,
                    path=compat.abspath(s.filepath),
                    kind="Video",
                    track=f"V{s.channel}",
                    start=int(s.frame_final_start),
                    end=int(s.frame_final_end),
                    in_frame=int(s.frame_final_start - s.frame_start),
                )
            )
        elif s.type == "SOUND" and apply.is_ours(s) and s.sound is not None:
            meta = {k: s[k] for k in ("segment", "mood", "track_id") if k in s}
            clips.append(
                otio_export.ClipFacts(
                    name=s.name,
                    path=compat.abspath(s.sound.filepath),
                    kind="Audio",
                    track=f"Moodsic A{s.channel}",
                    start=int(s.frame_final_start),
                    end=int(s.frame_final_end),
                    in_frame=int(s.frame_final_start - s.frame_start),
                    metadata={"moodsic": meta},
                )
            )
    return clips


class SEQUENCER_OT_moodsic_check_engine(bpy.types.Operator):
    """Ask the Moodsic engine which experts it can run"""

    bl_idname = "sequencer.moodsic_check_engine"
    bl_label = "Check engine"

    def execute(self, context):
        scene = compat.sequencer_scene(context)
        try:
            rows = experts_status(core.engine_path(context))
        except EngineError as exc:
            scene.moodsic.experts_info = json.dumps({"error": str(exc)})
            self.report({"ERROR"}, f"Moodsic: {exc}")
            return {"CANCELLED"}
        scene.moodsic.experts_info = json.dumps({"experts": rows})
        return {"FINISHED"}


# ----------------------------------------------------------------------------- panel
class SEQUENCER_PT_moodsic(bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Moodsic"
    bl_label = "Moodsic"

    def draw(self, context):
        layout = self.layout
        scene = compat.sequencer_scene(context)
        if scene is None:
            layout.label(text="No sequencer scene")
            return
        st = scene.moodsic
        col = layout.column(align=True)
        col.prop(st, "library_kind")
        if st.library_kind == "PATH":
            col.prop(st, "library_path")
        col = layout.column(align=True)
        col.prop(st, "sample_fps")
        col.prop(st, "min_segment_s")
        col.prop(st, "target_lufs")
        col.prop(st, "crossfade_s")
        col.prop(st, "duck")
        col.prop(st, "music_follow_engine")
        if not st.music_follow_engine:
            col.prop(st, "music_gain_db")
        layout.prop(st, "experts")
        box = layout.box()
        row = box.row()
        row.label(text="Experts")
        row.operator("sequencer.moodsic_check_engine", text="", icon="FILE_REFRESH")
        _draw_experts(box, st.experts_info)
        layout.prop(st, "source", expand=True)
        layout.operator("sequencer.moodsic_auto_score", icon="SOUND")
        layout.operator("sequencer.moodsic_reroll", icon="FILE_REFRESH")
        row = layout.row(align=True)
        row.operator("sequencer.moodsic_clear", icon="TRASH")
        row.operator("sequencer.moodsic_export_otio", icon="EXPORT")


def _draw_experts(layout, info: str) -> None:
    if not info:
        layout.label(text="Press refresh to ask the engine")
        return
    try:
        data = json.loads(info)
    except json.JSONDecodeError:
        return
    if "error" in data:
        layout.label(text=str(data["error"]), icon="ERROR")
        return
    for row in data.get("experts", []):
        ready = bool(row.get("ready"))
        text = f"{row.get('name', '?')}: {'ready' if ready else 'unavailable'}"
        layout.label(text=text, icon="CHECKMARK" if ready else "X")


CLASSES = (
    MoodsicPreferences,
    MoodsicSettings,
    SEQUENCER_OT_moodsic_auto_score,
    SEQUENCER_OT_moodsic_reroll,
    SEQUENCER_OT_moodsic_clear,
    SEQUENCER_OT_moodsic_export_otio,
    SEQUENCER_OT_moodsic_check_engine,
    SEQUENCER_PT_moodsic,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.moodsic = PointerProperty(type=MoodsicSettings)


def unregister():
    del bpy.types.Scene.moodsic
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)

"""Runs INSIDE Blender's Python (bpy from PyPI) for tests/test_blender_addon.py.

argv: payload.json result.json. Installs the built extension into a fresh user folder
(BLENDER_USER_RESOURCES), builds a scene, drives the operators exactly as the buttons do
(in background mode they run synchronously) and writes what it saw as JSON; the test
makes the assertions.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import bpy

payload = json.loads(open(sys.argv[1]).read())
out_path = sys.argv[2]
result: dict = {"version": bpy.app.version_string, "errors": {}}


def strips_all(scene):
    ed = scene.sequence_editor
    coll = ed.strips_all if hasattr(ed, "strips_all") else ed.sequences_all
    return list(coll)


def top(scene):
    ed = scene.sequence_editor
    return ed.strips if hasattr(ed, "strips") else ed.sequences


def fcurves(scene):
    ad = scene.animation_data
    if ad is None or ad.action is None:
        return []
    if hasattr(ad.action, "fcurves"):
        return list(ad.action.fcurves)
    from bpy_extras import anim_utils

    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
    return [] if bag is None else list(bag.fcurves)


def describe(scene):
    curves = {fc.data_path: fc for fc in fcurves(scene)}
    rows = []
    for s in sorted(strips_all(scene), key=lambda s: (s.channel, s.frame_final_start)):
        row = {
            "name": s.name,
            "type": s.type,
            "channel": s.channel,
            "frame_start": s.frame_start,
            "final_start": s.frame_final_start,
            "final_end": s.frame_final_end,
            "moodsic": bool(s.get("moodsic", 0)),
            "segment": s.get("segment"),
            "track_id": s.get("track_id"),
            "mute": s.mute,
        }
        if s.type == "SOUND":
            row["path"] = bpy.path.abspath(s.sound.filepath)
            fc = curves.get(s.path_from_id("volume"))
            if fc is None:  # with keys, `volume` is whatever the current frame evaluates to
                row["volume"] = s.volume
            row["keys"] = (
                []
                if fc is None
                else [[k.co[0], k.co[1], k.interpolation] for k in fc.keyframe_points]
            )
        rows.append(row)
    markers = sorted([m.name, m.frame] for m in scene.timeline_markers)
    return {
        "strips": rows,
        "markers": markers,
        "state": scene.get("moodsic_state"),
        "fcurves": sorted(curves),
    }


def attempt(name, fn):
    """Run an operator that must fail; record its message and whether the scene changed."""
    scene = bpy.context.scene
    before = describe(scene)
    try:
        fn()
    except RuntimeError as exc:
        result["errors"][name] = {"message": str(exc), "unchanged": describe(scene) == before}
        return
    result["errors"][name] = {"message": None, "unchanged": describe(scene) == before}


try:
    # --- install the extension like a user would (Install from Disk), then enable it
    bpy.ops.extensions.package_install_files(
        filepath=payload["zip"], repo="user_default", enable_on_install=True
    )
    module = "bl_ext.user_default.moodsic"
    result["enabled"] = module in bpy.context.preferences.addons
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.engine_path = payload["engine"]
    result["operators"] = [
        hasattr(bpy.ops.sequencer, n)
        for n in ("moodsic_auto_score", "moodsic_reroll", "moodsic_clear", "moodsic_export_otio")
    ]
    result["undo"] = "UNDO" in bpy.types.SEQUENCER_OT_moodsic_auto_score.bl_options

    # --- the user's edit: a movie strip offset in the timeline with its start trimmed
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = payload["fps"], payload["fps_base"]
    scene.frame_start, scene.frame_end = 1, payload["frame_end"]
    ed = scene.sequence_editor_create()
    movie = top(scene).new_movie("clip", payload["video"], 2, payload["movie_start"])
    movie.frame_offset_start = payload["trim"]
    user_sound = top(scene).new_sound("user voice", payload["user_sound"], 1, 1)
    user_sound.volume = 0.0  # the user's own strip, silent so the mixdown measures the music
    settings = scene.moodsic
    settings.experts = "grammar"
    if payload.get("real"):
        # The real engine: built-in library, grammar expert; just score and describe.
        settings.library_kind = "BUILTIN"
        movie.select = True
        result["auto"] = sorted(bpy.ops.sequencer.moodsic_auto_score())
        result["after_auto"] = describe(scene)
        bpy.ops.sound.mixdown(
            filepath=payload["mixdown"], container="WAV", codec="PCM", format="S16", mixrate=48000
        )
        raise SystemExit
    settings.library_kind = "PATH"
    settings.library_path = payload["library"]

    # --- bad input: nothing changes, and the report says why in one line
    for s in strips_all(scene):
        s.select = False
    attempt("no_selection", lambda: bpy.ops.sequencer.moodsic_auto_score())
    movie.select = True
    prefs.engine_path = "/nonexistent/moodsic"
    attempt("no_engine", lambda: bpy.ops.sequencer.moodsic_auto_score())
    prefs.engine_path = payload["engine"]
    os.environ["FAKE_ENGINE_FAIL"] = "the library has no tracks"
    attempt("engine_fails", lambda: bpy.ops.sequencer.moodsic_auto_score())
    del os.environ["FAKE_ENGINE_FAIL"]
    os.environ["FAKE_ENGINE_VIDEO"] = payload["other_video"]
    attempt("foreign_cue", lambda: bpy.ops.sequencer.moodsic_auto_score())
    del os.environ["FAKE_ENGINE_VIDEO"]
    blocker = top(scene).new_sound("blocker", payload["user_sound"], 128, 2000)
    attempt("channels_full", lambda: bpy.ops.sequencer.moodsic_auto_score())
    top(scene).remove(blocker)
    os.environ["FAKE_ENGINE_TRACK"] = "/nonexistent/music.wav"
    attempt("music_missing", lambda: bpy.ops.sequencer.moodsic_auto_score())
    del os.environ["FAKE_ENGINE_TRACK"]
    result["check_engine"] = sorted(bpy.ops.sequencer.moodsic_check_engine())
    result["experts_info"] = json.loads(scene.moodsic.experts_info)
    missing = top(scene).new_movie("gone", payload["doomed_video"], 5, 900)
    missing.select = True
    os.remove(payload["doomed_video"])
    attempt("missing_file", lambda: bpy.ops.sequencer.moodsic_auto_score())
    top(scene).remove(missing)
    movie.select = True
    result["user_before"] = [s for s in describe(scene)["strips"] if not s["moodsic"]]

    # --- Auto-score: the same operator the button runs (synchronous in background mode)
    os.environ["FAKE_ENGINE_SPEECH"] = payload["speech"]
    result["auto"] = sorted(bpy.ops.sequencer.moodsic_auto_score())
    result["after_auto"] = describe(scene)
    # Running it again replaces Moodsic's strips, never the user's
    bpy.ops.sequencer.moodsic_auto_score()
    result["after_auto2"] = describe(scene)

    # A failure half-way through placing strips puts the previous score back exactly.
    apply_mod = sys.modules["bl_ext.user_default.moodsic.apply"]
    real_new_sound = apply_mod.compat.new_sound
    calls = []

    def failing_new_sound(*args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("simulated failure")
        return real_new_sound(*args)

    ours = apply_mod.our_strips(scene)
    ops = [apply_mod._snapshot(scene, s) for s in ours]
    apply_mod.compat.new_sound = failing_new_sound
    try:
        apply_mod.replace_strips(scene, ours, ops)
        result["rollback"] = "no error"
    except RuntimeError as exc:
        result["rollback"] = str(exc)
    finally:
        apply_mod.compat.new_sound = real_new_sound
    result["after_rollback"] = describe(scene)

    bpy.ops.sound.mixdown(
        filepath=payload["mixdown"], container="WAV", codec="PCM", format="S16", mixrate=48000
    )

    # --- Re-roll the segment under the playhead
    scene.frame_current = payload["reroll_frame"]
    result["reroll"] = sorted(bpy.ops.sequencer.moodsic_reroll())
    result["after_reroll"] = describe(scene)

    # --- Export OTIO
    result["otio"] = sorted(bpy.ops.sequencer.moodsic_export_otio(filepath=payload["otio"]))

    # --- save, reload: still there
    bpy.ops.wm.save_as_mainfile(filepath=payload["blend"])
    bpy.ops.wm.open_mainfile(filepath=payload["blend"])
    scene = bpy.context.scene
    result["after_reload"] = describe(scene)

    # --- Clear removes only Moodsic's strips and markers
    import hashlib

    saved = hashlib.sha256(open(payload["blend"], "rb").read()).hexdigest()  # noqa: SIM115
    result["clear"] = sorted(bpy.ops.sequencer.moodsic_clear())
    result["after_clear"] = describe(scene)
    # Moodsic's operators never write the user's .blend (scoring a saved file puts its cue
    # sheets beside it): the file on disk is exactly what the user saved.
    result["auto_saved"] = sorted(bpy.ops.sequencer.moodsic_auto_score())
    bpy.ops.sequencer.moodsic_clear()
    result["blend_unchanged"] = (
        hashlib.sha256(open(payload["blend"], "rb").read()).hexdigest() == saved  # noqa: SIM115
    )

    # --- The UI path: the modal operator driven by TIMER events (Blender's event loop does
    # not run in background mode, so the events and the window manager are stand-ins).
    import types

    addon = sys.modules["bl_ext.user_default.moodsic"]
    Op = addon.SEQUENCER_OT_moodsic_auto_score
    wm_log = {"progress": [], "status": [], "ended": 0, "timer_removed": 0}
    wm = types.SimpleNamespace(
        progress_update=lambda v: wm_log["progress"].append(v),
        progress_end=lambda: wm_log.__setitem__("ended", wm_log["ended"] + 1),
        event_timer_remove=lambda t: wm_log.__setitem__("timer_removed", 1),
    )
    ws = types.SimpleNamespace(status_text_set=lambda t: wm_log["status"].append(t))
    ui = types.SimpleNamespace(window_manager=wm, workspace=ws)

    def fake_operator():
        op = types.SimpleNamespace(reports=[], _timer="timer")
        op.report = lambda kind, msg: op.reports.append([sorted(kind), msg])
        for name in ("_fail", "_end", "finish"):
            setattr(op, name, getattr(Op, name).__get__(op))
        op._prepared = addon.core.prepare_auto(bpy.context, "SELECTED")
        op._batch = addon.ScoreBatch(
            op._prepared.engine,
            op._prepared.requests,
            speech=op._prepared.want_speech,
            levels=op._prepared.want_levels,
        )
        return op

    def drive(op, events):
        for ev in events:
            r = Op.modal(op, ui, types.SimpleNamespace(type=ev, value="PRESS"))
            if r != {"PASS_THROUGH"}:
                return sorted(r)
        return None

    op = fake_operator()
    import itertools
    import time as _time

    def ticking():
        for _ in itertools.count():
            _time.sleep(0.05)
            yield "TIMER"

    result["modal"] = drive(op, itertools.islice(ticking(), 2000))
    result["modal_reports"] = op.reports
    result["modal_wm"] = json.loads(json.dumps(wm_log))
    result["after_modal"] = describe(scene)
    # Esc while the engine runs: the run ends, the scene stays as it was.
    pidfile = os.path.join(os.path.dirname(out_path), "engine-child.pid")
    os.environ["FAKE_ENGINE_SLEEP"] = pidfile
    before = describe(scene)
    op = fake_operator()
    engine_pid = op._batch.run.proc.pid
    for _ in range(200):
        if os.path.exists(pidfile) and open(pidfile).read():
            break
        _time.sleep(0.05)
        drive(op, ["TIMER"])
    result["esc"] = drive(op, ["TIMER", "ESC"])
    del os.environ["FAKE_ENGINE_SLEEP"]
    result["esc_reports"] = op.reports
    result["esc_unchanged"] = describe(scene) == before
    result["esc_engine_alive"] = op._batch.run is not None or os.path.exists(f"/proc/{engine_pid}")

    # --- "The edit": render the scene range and score what the viewer sees
    r = scene.render
    r.resolution_x, r.resolution_y = 320, 176
    render_before = [r.filepath, r.image_settings.file_format, r.resolution_percentage]
    result["edit"] = sorted(bpy.ops.sequencer.moodsic_auto_score(source="EDIT"))
    result["after_edit"] = describe(scene)
    result["render_restored"] = render_before == [
        r.filepath,
        r.image_settings.file_format,
        r.resolution_percentage,
    ]
    scene.frame_current = payload["edit_reroll_frame"]
    result["edit_reroll"] = sorted(bpy.ops.sequencer.moodsic_reroll())
    result["after_edit_reroll"] = describe(scene)
except SystemExit:
    pass
except Exception:
    result["exception"] = traceback.format_exc()

with open(out_path, "w") as fh:
    json.dump(result, fh, default=str)

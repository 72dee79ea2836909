"""The add-on inside Blender (bpy from PyPI, headless): install, Auto-score, re-roll, clear."""

from __future__ import annotations

import json
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from blender_support import (
    REPO,
    blender_python,
    fake_engine,
    make_library,
    make_video,
    run_blender_script,
    write_tone,
)

pytestmark = pytest.mark.slow

FPS = Fraction(30000, 1001)
MOVIE_START, TRIM = 100, 45


@pytest.fixture(scope="module")
def blender_py():
    py = blender_python(create=True)
    if py is None:
        pytest.fail("no Blender Python: run tests/blender_env.sh or set MOODSIC_BLENDER_PYTHON")
    return py


@pytest.fixture(scope="module")
def run(blender_py, tmp_path_factory):
    from moodsic_engine.blender_build import build_addon

    tmp = tmp_path_factory.mktemp("blender")
    video = make_video(tmp / "clip.mp4", seconds=20.0)  # 600 frames at 29.97
    other = make_video(tmp / "other.mp4", seconds=12.0)
    doomed = make_video(tmp / "doomed.mp4", seconds=2.0)
    lib = make_library(tmp / "lib", n=4, seconds=30.0)
    voice = write_tone(tmp / "voice.wav", 150.0, 5.0)
    payload = {
        "zip": str(build_addon(tmp / "dist")),
        "engine": str(fake_engine(tmp / "engine")),
        "video": str(video),
        "other_video": str(other),
        "doomed_video": str(doomed),
        "library": str(tmp / "lib"),
        "user_sound": str(voice),
        "fps": 30,
        "fps_base": 1.001,
        "frame_end": 760,
        "movie_start": MOVIE_START,
        "trim": TRIM,
        "reroll_frame": 400,
        "edit_reroll_frame": 100,
        "speech": "8-9",  # dialogue at source 8..9 s -> timeline 340..370 (inside segment 1)
        "mixdown": str(tmp / "mix.wav"),
        "otio": str(tmp / "scored.otio"),
        "blend": str(tmp / "scored.blend"),
    }
    result = run_blender_script(
        blender_py, (REPO / "tests" / "blender_scenario.py").read_text(), payload, tmp
    )
    assert "exception" not in result, result.get("exception")
    result["_payload"] = payload
    result["_lib"] = [str(p) for p in lib]
    return result


def music(desc):
    return [s for s in desc["strips"] if s["moodsic"]]


def expected_spans():
    # The fake engine cuts 600 frames into thirds: boundaries at source frames 200 and 400.
    start = MOVIE_START + TRIM
    return [
        (start, MOVIE_START + 200),
        (MOVIE_START + 200, MOVIE_START + 400),
        (MOVIE_START + 400, MOVIE_START + 600),
    ]


def test_extension_installs_and_registers(run):
    assert run["enabled"] is True
    assert run["operators"] == [True, True, True, True]
    assert run["undo"] is True


def test_panel_lists_the_engines_experts(run):
    assert run["check_engine"] == ["FINISHED"]
    rows = run["experts_info"]["experts"]
    assert [(r["name"], r["ready"]) for r in rows] == [("grammar", True), ("face", False)]


def test_auto_score_places_strips_at_the_expected_frames_and_channels(run):
    assert run["auto"] == ["FINISHED"]
    strips = sorted(music(run["after_auto"]), key=lambda s: s["final_start"])
    assert len(strips) == 3
    half = 30  # a 2 s crossfade is 60 frames at 29.97: 30 on each side of a boundary
    (a0, a1), (b0, b1), (c0, c1) = expected_spans()
    got = [(s["final_start"], s["final_end"]) for s in strips]
    want = [(a0, a1 + half), (b0 - half, b1 + half), (c0 - half, c1)]
    for (g0, g1), (w0, w1) in zip(got, want, strict=True):
        assert abs(g0 - w0) <= 1 and abs(g1 - w1) <= 1, (got, want)
    # Lowest free channels above the user's strips (1: voice, 2: movie), alternating.
    assert [s["channel"] for s in strips] == [3, 4, 3]
    assert [s["segment"] for s in strips] == [0, 1, 2]
    assert [Path(s["path"]).name for s in strips] == ["track0.wav", "track1.wav", "track2.wav"]
    assert [s["name"] for s in strips] == ["track0", "track1", "track2"]


def test_fade_keyframes(run):
    strips = sorted(music(run["after_auto"]), key=lambda s: s["final_start"])
    for s in strips:
        keys = s["keys"]
        assert len(keys) >= 4
        assert keys[0][1] == pytest.approx(0.0) and keys[-1][1] == pytest.approx(0.0)
        assert keys[0][0] == s["final_start"] and keys[-1][0] == s["final_end"]
        assert max(k[1] for k in keys) > 0.1
        assert {k[2] for k in keys} == {"LINEAR"}
    # Crossfade: the second strip reaches full level exactly where the first is silent.
    first, second = strips[0], strips[1]
    assert second["keys"][1][0] == first["keys"][-1][0]


def test_music_ducks_under_dialogue(run):
    middle = sorted(music(run["after_auto"]), key=lambda s: s["final_start"])[1]
    keys = {int(round(f)): v for f, v, _ in middle["keys"]}
    full = keys[330]
    duck = 10 ** (-10 / 20)
    assert keys[340] == pytest.approx(full * duck, rel=1e-3)
    assert keys[370] == pytest.approx(full * duck, rel=1e-3)
    assert keys[470] == pytest.approx(full, rel=1e-3)


def test_markers_with_mood_labels(run):
    start = MOVIE_START + TRIM
    assert run["after_auto"]["markers"] == sorted(
        [
            ["Calm & Neutral", start],
            ["Bright & Engaging", MOVIE_START + 200],
            ["Tense & Intense", MOVIE_START + 400],
        ]
    )


def test_users_strips_untouched_and_second_run_replaces_only_moodsic(run):
    user_before = run["user_before"]
    for key in ("after_auto", "after_auto2", "after_reroll", "after_clear"):
        assert [s for s in run[key]["strips"] if not s["moodsic"]] == user_before, key
    assert run["after_auto2"]["strips"] == run["after_auto"]["strips"]
    assert run["after_auto2"]["markers"] == run["after_auto"]["markers"]


def test_failure_while_placing_restores_the_previous_score(run):
    assert run["rollback"] == "simulated failure"
    assert run["after_rollback"] == run["after_auto2"]


def test_bad_input_reports_and_leaves_the_scene_unchanged(run):
    errors = run["errors"]
    expect = {
        "no_selection": "no movie strip selected",
        "no_engine": "engine not found",
        "engine_fails": "the library has no tracks",
        "foreign_cue": "was made for other.mp4",
        "channels_full": "no free channels",
        "missing_file": "file is missing",
        "music_missing": "music file is missing: /nonexistent/music.wav",
    }
    for name, text in expect.items():
        assert errors[name]["message"] is not None, name
        assert text in errors[name]["message"], (name, errors[name]["message"])
        assert errors[name]["unchanged"], name


def test_mixdown_is_audible_during_each_music_strip(run):
    with wave.open(run["_payload"]["mixdown"]) as w:
        rate = w.getframerate()
        x = (
            np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
            / 32768.0
        )
    fps = float(FPS)

    def rms(f0, f1):  # timeline frames (scene starts at frame 1)
        a, b = int((f0 - 1) / fps * rate), int((f1 - 1) / fps * rate)
        return float(np.sqrt(np.mean(x[a:b] ** 2)))

    assert rms(2, MOVIE_START + TRIM - 2) < 1e-3  # no music before the picture
    for s in music(run["after_auto"]):
        assert rms(s["final_start"] + 20, s["final_end"] - 20) > 0.02, s["name"]
    # Under the dialogue (timeline 340..370) the music is 10 dB down.
    ratio = rms(345, 368) / rms(400, 460)
    assert ratio == pytest.approx(10 ** (-10 / 20), rel=0.15)


def test_reroll_changes_exactly_one_strip(run):
    before = {json.dumps(s, sort_keys=True) for s in music(run["after_auto"])}
    after = {json.dumps(s, sort_keys=True) for s in music(run["after_reroll"])}
    assert len(before - after) == 1 and len(after - before) == 1
    old, new = json.loads((before - after).pop()), json.loads((after - before).pop())
    assert old["segment"] == new["segment"] == 1  # frame 400 lies in the middle third
    assert (old["final_start"], old["final_end"], old["channel"]) == (
        new["final_start"],
        new["final_end"],
        new["channel"],
    )
    assert Path(new["path"]).name == "track2.wav" and Path(old["path"]).name == "track1.wav"
    assert run["after_reroll"]["markers"] == run["after_auto"]["markers"]
    assert [k[:2] for k in new["keys"]] != [] and len(new["keys"]) == len(old["keys"])  # ducked too


def test_otio_export_of_the_scene(run):
    otio = pytest.importorskip("opentimelineio")
    t = otio.adapters.read_from_file(run["_payload"]["otio"])
    audio = [c for tr in t.audio_tracks() for c in tr.find_clips()]
    video = [c for tr in t.video_tracks() for c in tr.find_clips()]
    assert len(audio) == 3 and len(video) == 1
    assert video[0].source_range.start_time.to_frames() == TRIM
    assert sorted(m.name for m in t.tracks.markers) == sorted(
        m[0] for m in run["after_auto"]["markers"]
    )


def test_save_and_reload_keeps_the_score(run):
    assert run["after_reload"]["strips"] == run["after_reroll"]["strips"]
    assert run["after_reload"]["markers"] == run["after_reroll"]["markers"]


def test_clear_removes_only_moodsic(run):
    assert run["auto_saved"] == ["FINISHED"]
    assert run["blend_unchanged"] is True  # the user's saved .blend is never written
    after = run["after_clear"]
    assert music(after) == []
    assert after["markers"] == []
    assert after["state"] is None
    assert not any("strips_all" in p or "sequences_all" in p for p in after["fcurves"])


def test_scoring_the_rendered_edit_maps_onto_the_scene_range(run):
    assert run["edit"] == ["FINISHED"]
    assert run["render_restored"] is True
    strips = sorted(music(run["after_edit"]), key=lambda s: s["final_start"])
    # 760 rendered frames (scene 1..760) cut in thirds by the fake engine: 253 and 506.
    got = [(s["final_start"], s["final_end"], s["channel"]) for s in strips]
    assert got == [(1, 254 + 30, 3), (254 - 30, 507 + 30, 4), (507 - 30, 761, 3)]
    assert [m[1] for m in sorted(run["after_edit"]["markers"], key=lambda m: m[1])] == [1, 254, 507]
    assert [s for s in run["after_edit"]["strips"] if not s["moodsic"]] == run["user_before"]
    assert not any(s["mute"] for s in run["after_edit"]["strips"])  # muted only while rendering
    # Re-roll works on the rendered edit too: only the first segment's strip changes.
    assert run["edit_reroll"] == ["FINISHED"]
    before = {json.dumps(s, sort_keys=True) for s in music(run["after_edit"])}
    after = {json.dumps(s, sort_keys=True) for s in music(run["after_edit_reroll"])}
    assert len(before - after) == 1 and len(after - before) == 1
    assert json.loads((after - before).pop())["segment"] == 0


def test_real_engine_in_blender(blender_py, tmp_path):
    """The add-on driving the real `moodsic score` (grammar expert, built-in library)."""
    import shutil

    from moodsic_engine.blender_build import build_addon

    engine = shutil.which("moodsic")
    assert engine, "the moodsic command is not installed"
    video = make_video(tmp_path / "clip.mp4", seconds=30.0)
    payload = {
        "real": True,
        "zip": str(build_addon(tmp_path / "dist")),
        "engine": engine,
        "video": str(video),
        "user_sound": str(write_tone(tmp_path / "voice.wav", 150.0, 2.0)),
        "fps": 30,
        "fps_base": 1.001,
        "frame_end": 1000,
        "movie_start": MOVIE_START,
        "trim": TRIM,
        "mixdown": str(tmp_path / "mix.wav"),
    }
    result = run_blender_script(
        blender_py, (REPO / "tests" / "blender_scenario.py").read_text(), payload, tmp_path
    )
    assert "exception" not in result, result.get("exception")
    assert result["auto"] == ["FINISHED"]
    strips = sorted(music(result["after_auto"]), key=lambda s: s["final_start"])
    assert strips, "no music placed"
    assert strips[0]["final_start"] == MOVIE_START + TRIM
    # 30 s at 29.97 = 900 frames; the engine's plan stops the music on the last track's last
    # downbeat before the video's end: within a bar (under 4 s) of it.
    assert MOVIE_START + 900 - 120 <= strips[-1]["final_end"] <= MOVIE_START + 900
    assert all(Path(s["path"]).is_file() for s in strips)
    assert {s["channel"] for s in strips} <= {3, 4}
    labels = [m[0] for m in result["after_auto"]["markers"]]
    assert labels and all(label.strip() for label in labels)
    # Levels (issue 16): the engine reported the mixdown's levels, and every strip's full
    # volume is its plan piece's gain + the engine's music level (the mixdown's gain).
    state = json.loads(result["after_auto"]["state"])
    levels = state["jobs"][0]["levels"]
    assert levels and levels["dialogue_lufs"] is None and levels["music_db"] is not None
    cue = json.loads(Path(state["jobs"][0]["cue"]).read_text())
    want = {round(p["gain_db"] + levels["music_db"], 2) for p in cue["placement"]["pieces"]}
    for s in strips:
        full = max((k[1] for k in s["keys"]), default=s.get("volume", 0.0))
        assert min(abs(20 * np.log10(full) - w) for w in want) < 0.05, (s, want)
    with wave.open(payload["mixdown"]) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0
        rate = w.getframerate() * w.getnchannels()
    a, b = (
        int((MOVIE_START + TRIM + 30) / float(FPS) * rate),
        int((MOVIE_START + 770) / float(FPS) * rate),
    )
    assert float(np.sqrt(np.mean(x[a:b] ** 2))) > 0.01


def test_modal_ui_path_reports_progress_and_places_the_score(run):
    assert run["modal"] == ["FINISHED"]
    assert [r[0] for r in run["modal_reports"]] == [["INFO"]]
    wm = run["modal_wm"]
    assert wm["progress"] == sorted(wm["progress"]) and wm["progress"][-1] == 1000
    assert any("Esc to cancel" in str(t) for t in wm["status"]) and wm["status"][-1] is None
    assert wm["ended"] == 1 and wm["timer_removed"] == 1
    assert [(s["final_start"], s["final_end"]) for s in music(run["after_modal"])] == [
        (s["final_start"], s["final_end"]) for s in music(run["after_auto"])
    ]


def test_esc_ends_the_engine_and_leaves_the_scene(run):
    assert run["esc"] == ["CANCELLED"]
    assert run["esc_reports"] == [[["WARNING"], "Moodsic: cancelled; the scene is unchanged"]]
    assert run["esc_unchanged"] is True
    assert run["esc_engine_alive"] is False

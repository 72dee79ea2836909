"""Add-on parts that run without Blender: engine subprocess, loudness, OTIO export, zip build."""

from __future__ import annotations

import json
import os
import time
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from blender_support import ADDON, addon_module, fake_engine, make_library, make_video

R = addon_module("runner")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    video = make_video(d / "clip.mp4", seconds=6.0)
    make_library(d / "lib", n=3, seconds=4.0)
    return d, video


def test_score_args_are_a_list_without_shell(tmp_path):
    req = R.ScoreRequest(
        video="/v/my clip; rm -rf x.mp4",
        cue="/c/a.json",
        library="/lib dir",
        sample_fps=2.0,
        experts="grammar",
        config="/c/x.toml",
        reroll=(1, 1),
        reuse="/c/a b.json",
    )
    args = R.score_args("/bin/moodsic", req)
    assert args == [
        "/bin/moodsic",
        "score",
        "/v/my clip; rm -rf x.mp4",
        "-o",
        "/c/a.json",
        "--progress",
        "json",
        "--library",
        "/lib dir",
        "--sample-fps",
        "2",
        "--experts",
        "grammar",
        "--config",
        "/c/x.toml",
        "--reroll",
        "1",
        "--reroll",
        "1",
        "--reuse",
        "/c/a b.json",
    ]


def test_find_engine_prefers_the_preference_then_path(tmp_path, monkeypatch):
    exe = fake_engine(tmp_path / "bin")
    assert R.find_engine(str(exe)) == str(exe)
    with pytest.raises(R.EngineError, match="not found at"):
        R.find_engine(str(tmp_path / "nope"))
    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(R.EngineError, match="not executable"):
        R.find_engine(str(plain))
    (tmp_path / "bin" / "moodsic").symlink_to(exe)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert R.find_engine("") == str(tmp_path / "bin" / "moodsic")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(R.EngineError, match="not found on PATH"):
        R.find_engine("")


def test_engine_run_reports_progress_and_the_cue(media, tmp_path):
    d, video = media
    exe = fake_engine(tmp_path)
    req = R.ScoreRequest(video=str(video), cue=str(tmp_path / "a.json"), library=str(d / "lib"))
    run = R.EngineRun(R.score_args(str(exe), req), env=R.engine_env())
    seen = []
    run.wait(timeout=60, on_progress=lambda p: seen.append((p.stage, p.done)))
    assert run.error is None
    assert run.cue_path() == str(tmp_path / "a.json")
    assert run.progress.stages_seen == ["sample", "perceive"]
    assert (run.progress.stage, run.progress.done, run.progress.total) == ("perceive", 3, 3)
    cue = json.loads((tmp_path / "a.json").read_text())
    assert cue["video"]["frames"] == 180 and cue["video"]["fps"] == [30000, 1001]


def test_engine_error_event_and_plain_failure_become_one_line(media, tmp_path, monkeypatch):
    d, video = media
    exe = fake_engine(tmp_path)
    req = R.ScoreRequest(video=str(video), cue=str(tmp_path / "a.json"), library=str(d / "lib"))
    monkeypatch.setenv("FAKE_ENGINE_FAIL", "library is empty")
    run = R.EngineRun(R.score_args(str(exe), req), env=R.engine_env())
    run.wait(timeout=60)
    assert run.error == "library is empty"
    with pytest.raises(R.EngineError, match="library is empty"):
        run.cue_path()
    monkeypatch.delenv("FAKE_ENGINE_FAIL")
    monkeypatch.setenv("FAKE_ENGINE_CRASH", "no such expert: scenes")
    run = R.EngineRun(R.score_args(str(exe), req), env=R.engine_env())
    run.wait(timeout=60)
    assert (
        run.error == "no such expert: scenes"
    )  # from stderr, without the "moodsic: error:" prefix


def test_unstartable_engine_is_an_engine_error(tmp_path):
    with pytest.raises(R.EngineError, match="cannot start"):
        R.EngineRun([str(tmp_path / "missing-engine")])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_cancel_ends_the_engine_and_its_children_only(media, tmp_path, monkeypatch):
    d, video = media
    exe = fake_engine(tmp_path)
    pidfile = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_ENGINE_SLEEP", str(pidfile))
    req = R.ScoreRequest(video=str(video), cue=str(tmp_path / "a.json"), library=str(d / "lib"))
    batch = R.ScoreBatch(str(exe), [req])
    deadline = time.monotonic() + 30
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline
        batch.poll()
        time.sleep(0.05)
    child = int(pidfile.read_text())
    engine_pid = batch.run.proc.pid
    assert _alive(child) and _alive(engine_pid)
    t0 = time.monotonic()
    batch.cancel()
    assert time.monotonic() - t0 < 6
    assert batch.error == "cancelled" and batch.poll()
    time.sleep(0.2)
    assert not _alive(engine_pid)
    assert not _alive(child)
    assert _alive(os.getpid())
    assert not (tmp_path / "a.json").exists()


def test_batch_runs_each_video_and_progress_only_grows(media, tmp_path):
    d, video = media
    other = make_video(tmp_path / "other.mp4", seconds=3.0)
    exe = fake_engine(tmp_path)
    reqs = [
        R.ScoreRequest(video=str(v), cue=str(tmp_path / f"{v.stem}.json"), library=str(d / "lib"))
        for v in (video, other)
    ]
    batch = R.ScoreBatch(str(exe), reqs)
    fractions = []
    deadline = time.monotonic() + 60
    while not batch.poll():
        fractions.append(batch.fraction)
        assert "Esc to cancel" in batch.status
        assert time.monotonic() < deadline
        time.sleep(0.02)
    fractions.append(batch.fraction)
    assert batch.error is None
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert set(batch.cues) == {str(video), str(other)}
    assert json.loads(Path(batch.cues[str(other)]).read_text())["video"]["frames"] == 90


def test_experts_status_from_the_engine(tmp_path):
    rows = R.experts_status(str(fake_engine(tmp_path)))
    assert [(r["name"], r["ready"]) for r in rows] == [("grammar", True), ("face", False)]


# ----------------------------------------------------------------------------- loudness
def test_loudness_matches_pyloudnorm():
    pyln = pytest.importorskip("pyloudnorm")
    L = addon_module("loudness")
    rng = np.random.default_rng(1)
    for rate in (44100, 48000):
        t = np.arange(rate * 12) / rate
        x = 0.2 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.4 * t))
        x = x + 0.05 * rng.standard_normal(len(t)) + 0.1 * np.sin(2 * np.pi * 2500 * t) * (t > 6)
        x[: rate * 2] *= 0.01  # a quiet intro exercises the gates
        stereo = np.stack([x, 0.8 * x], 1)
        ours = L.integrated_loudness(stereo, rate)
        ref = pyln.Meter(rate).integrated_loudness(stereo)
        assert ours == pytest.approx(ref, abs=0.15)
    assert L.integrated_loudness(np.zeros((48000, 2)), 48000) == float("-inf")
    assert L.integrated_loudness(np.zeros(100), 48000) == float("-inf")


# ----------------------------------------------------------------------------- OTIO
def test_otio_export_reads_back_with_opentimelineio(tmp_path):
    otio = pytest.importorskip("opentimelineio")
    ox = addon_module("otio_export")
    fps = Fraction(30000, 1001)
    clips = [
        ox.ClipFacts("clip", "/m/clip.mp4", "Video", "V2", 145, 700, 45),
        ox.ClipFacts(
            "Track 0", "/a/t0.wav", "Audio", "Moodsic A3", 145, 330, 0, {"moodsic": {"segment": 0}}
        ),
        ox.ClipFacts("Track 2", "/a/t2.wav", "Audio", "Moodsic A3", 470, 700, 12),
        ox.ClipFacts("Track 1", "/a/t1.wav", "Audio", "Moodsic A4", 270, 530, 0),
    ]
    tl = ox.timeline_dict("Scene", fps, 1, clips, [("Calm & Neutral", 145), ("Tense", 500)])
    path = ox.write_otio(str(tmp_path / "s.otio"), tl)
    t = otio.adapters.read_from_file(path)
    assert t.global_start_time.to_frames() == 1
    by_name = {tr.name: tr for tr in t.tracks}
    assert by_name["V2"].kind == otio.schema.TrackKind.Video
    assert by_name["Moodsic A3"].kind == otio.schema.TrackKind.Audio
    # Positions inside tracks count from the scene's first frame (1).
    a3 = by_name["Moodsic A3"]
    ranges = [
        (
            type(i).__name__,
            a3.range_of_child_at_index(k).start_time.to_frames(),
            i.duration().to_frames(),
        )
        for k, i in enumerate(a3)
    ]
    assert ranges == [("Gap", 0, 144), ("Clip", 144, 185), ("Gap", 329, 140), ("Clip", 469, 230)]
    clip = a3[3]
    assert clip.source_range.start_time.to_frames() == 12
    assert clip.media_reference.target_url == "file:///a/t2.wav"
    assert a3[1].metadata["moodsic"]["segment"] == 0
    assert abs(clip.source_range.start_time.rate - 30000 / 1001) < 1e-9
    assert [(m.name, m.marked_range.start_time.to_frames()) for m in t.tracks.markers] == [
        ("Calm & Neutral", 144),
        ("Tense", 499),
    ]
    assert by_name["V2"][1].source_range.start_time.to_frames() == 45


# ----------------------------------------------------------------------------- extension zip
def test_build_addon_zip_is_complete_and_reproducible(tmp_path):
    from moodsic_engine.blender_build import build_addon, read_manifest

    manifest = read_manifest(ADDON)
    assert manifest["id"] == "moodsic" and manifest["blender_version_min"] == "4.2.0"
    (ADDON / "__pycache__").mkdir(exist_ok=True)
    a = build_addon(tmp_path / "a")
    b = build_addon(tmp_path / "b")
    assert a.name == f"moodsic-{manifest['version']}.zip"
    assert a.read_bytes() == b.read_bytes()
    names = zipfile.ZipFile(a).namelist()
    for required in (
        "blender_manifest.toml",
        "__init__.py",
        "placement.py",
        "compat.py",
        "runner.py",
    ):
        assert required in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_build_addon_refuses_a_broken_manifest(tmp_path):
    from moodsic_engine.blender_build import build_addon
    from moodsic_engine.errors import InputError

    src = tmp_path / "src"
    src.mkdir()
    (src / "__init__.py").write_text("")
    (src / "blender_manifest.toml").write_text('id = "moodsic"\nversion = "1"\n')
    with pytest.raises(InputError, match="lacks schema_version"):
        build_addon(tmp_path / "out", source=src)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_build_addon(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "moodsic_engine.cli", "blender", "build-addon", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    zip_path = Path(done.stdout.strip())
    assert zip_path.parent == tmp_path and zipfile.is_zipfile(zip_path)


def test_batch_asks_for_dialogue_after_scoring(media, tmp_path, monkeypatch):
    d, video = media
    exe = fake_engine(tmp_path)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_ENGINE_LOG", str(log))
    monkeypatch.setenv("FAKE_ENGINE_SPEECH", "1.5-2.5")
    req = R.ScoreRequest(video=str(video), cue=str(tmp_path / "a.json"), library=str(d / "lib"))
    batch = R.ScoreBatch(str(exe), [req], speech=True)
    fractions = [batch.fraction]
    deadline = time.monotonic() + 60
    while not batch.poll():
        fractions.append(batch.fraction)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    fractions.append(batch.fraction)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert batch.error is None and batch.warnings == []
    assert batch.speech == {str(video): [(1.5, 2.5)]}
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c[:2] for c in calls] == [["score", str(video)], ["blender", "speech"]]
    # Without ducking, no second run.
    log.unlink()
    R.ScoreBatch(str(exe), [req], speech=False).wait(timeout=60)
    assert len(log.read_text().splitlines()) == 1


def test_failed_dialogue_search_is_a_warning_not_a_failure(media, tmp_path):
    d, video = media
    engine = tmp_path / "old-moodsic"
    real = fake_engine(tmp_path / "real")
    # An engine without `blender speech` (exit 2, usage) still scores.
    engine.write_text(
        f"#!/bin/sh\nif [ \"$1\" = blender ]; then echo 'Usage: no such command' >&2; exit 2; fi\n"
        f'exec "{real}" "$@"\n'
    )
    engine.chmod(0o755)
    req = R.ScoreRequest(video=str(video), cue=str(tmp_path / "a.json"), library=str(d / "lib"))
    batch = R.ScoreBatch(str(engine), [req], speech=True)
    batch.wait(timeout=60)
    assert batch.error is None
    assert str(video) in batch.cues and batch.speech == {}
    assert len(batch.warnings) == 1 and "no dialogue ducking" in batch.warnings[0]


@pytest.mark.slow
def test_real_engine_cue_places_through_the_add_on_planner(tmp_path):
    """`moodsic score` end to end (grammar expert, built-in library) -> placement plan."""
    import shutil

    P = addon_module("placement")
    moodsic = shutil.which("moodsic")
    assert moodsic, "the moodsic command is not installed"
    video = make_video(tmp_path / "clip.mp4", seconds=24.0)
    req = R.ScoreRequest(
        video=str(video), cue=str(tmp_path / "clip.json"), experts="grammar", sample_fps=2.0
    )
    batch = R.ScoreBatch(moodsic, [req], speech=True)
    batch.wait(timeout=600)
    assert batch.error is None, batch.error
    assert batch.speech == {}  # no audio track: not even asked
    cue = json.loads(Path(batch.cues[str(video)]).read_text())
    assert cue["video"]["frames"] == 720 and cue["video"]["fps"] == [30000, 1001]
    movie = P.MovieFacts("clip", str(video), 50, 60, 770, 1, 720)
    scene = P.SceneFacts(Fraction(30000, 1001), 1, 800, frozenset({1}))
    plan = P.plan([P.Job(movie, cue, str(tmp_path / "clip.json"))], scene)
    assert plan.sounds and all(Path(s.filepath).is_file() for s in plan.sounds)
    # The strips play the engine's plan: the music stops on the last track's last downbeat
    # before the video's end (the movie strip's end, 770), counted from its segment's start.
    last = cue["placement"]["pieces"][-1]
    seg = cue["segments"][last["segment"]]
    s0 = round(seg["start_s"] * cue["placement"]["rate"])
    end = (
        50
        + seg["start_frame"]
        + round(Fraction(last["rec_out"] - s0) * Fraction(30000, 1001) / cue["placement"]["rate"])
    )
    assert plan.sounds[0].start == 60 and plan.sounds[-1].end == end
    assert 770 - 4 * 30 <= end <= 770  # within a bar (under 4 s) of the end
    assert len(plan.markers) >= 1 and plan.markers[0].frame == 60


@pytest.mark.slow
def test_real_engine_finds_dialogue(tmp_path):
    import shutil
    import subprocess

    speech = tmp_path / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(speech), "This is a test of the dialogue detector, speaking now."],
        check=True,
    )
    video = tmp_path / "talk.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=25:duration=8",
         "-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono:d=2", "-i", str(speech),
         "-filter_complex", "[1][2]concat=n=2:v=0:a=1[a]", "-map", "0:v", "-map", "[a]",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", "8", str(video)],
        check=True,
    )  # fmt: skip
    run = R.EngineRun(R.speech_args(shutil.which("moodsic"), str(video)), env=R.engine_env())
    run.wait(timeout=300)
    assert run.error is None, run.error
    spans = run.result["speech"]
    assert spans and 1.7 < spans[0][0] < 2.6  # speech starts after the 2 s of silence
    assert spans[-1][1] <= 8.0

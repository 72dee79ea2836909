import json
import subprocess
import sys

import numpy as np
import pytest
from media import lavfi_video, media_duration, stream_types
from test_video import make_bad_inputs

from moodsic_engine.cue import CueSheet

MOODSIC = [sys.executable, "-m", "moodsic_engine.cli"]


def moodsic(*args, timeout=300, cwd=None):
    return subprocess.run(
        [*MOODSIC, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    return lavfi_video(
        d / "clip one.mp4", seconds=12, size="320x180", audio=True, extra=["-bf", "2"]
    )


def test_version():
    r = moodsic("--version")
    assert r.returncode == 0 and r.stdout.strip() == "moodsic 0.1.0"


def test_score_grammar_only_writes_valid_cue_without_torch(tmp_path, clip):
    out = tmp_path / "out.moodsic.json"
    code = (
        "import sys\nfrom moodsic_engine import cli\n"
        f"try:\n    cli.main(['score', {str(clip)!r}, '-o', {str(out)!r}, '--experts', 'grammar', '--progress', 'none'])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("NO-TORCH")
    cue = CueSheet.from_json(out)  # schema-validated, tiling checked
    assert cue.engine["experts"] == ["grammar"]
    assert cue.video.fps.numerator == 25 and cue.video.frames == 300
    assert cue.segments[-1].end_s == pytest.approx(12.0)
    assert len(cue.samples) == 24
    assert all(s.track is not None and s.track.path for s in cue.segments)
    assert cue.engine["config"]["sample"]["sample_fps"] == 2.0


def test_progress_json_lines_only_on_stdout(tmp_path, clip):
    out = tmp_path / "c.json"
    r = moodsic("score", clip, "-o", out, "--experts", "grammar", "--progress", "json")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[-1] == {"event": "done", "cue": str(out)}
    progress = [e for e in events if e["event"] == "progress"]
    perceive = [e for e in progress if e["stage"] == "perceive"]
    assert perceive and perceive[-1]["done"] == perceive[-1]["total"] == 24
    assert all(set(e) == {"event", "stage", "done", "total"} for e in progress)


def test_default_output_name_in_cwd(tmp_path, clip):
    r = moodsic("score", clip, "--experts", "grammar", "--progress", "none", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "clip one.moodsic.json").is_file()


def test_config_and_seed_are_echoed(tmp_path, clip):
    cfg = tmp_path / "m.toml"
    cfg.write_text("[segment]\nmin_segment_s = 4.0\n[sample]\nsample_fps = 4.0\n")
    out = tmp_path / "c.json"
    r = moodsic(
        "score",
        clip,
        "-o",
        out,
        "--experts",
        "grammar",
        "--config",
        cfg,
        "--seed",
        "5",
        "--progress",
        "none",
    )
    assert r.returncode == 0, r.stderr
    cue = CueSheet.from_json(out)
    assert cue.engine["config"]["segment"]["min_segment_s"] == 4.0
    assert cue.engine["config"]["seed"] == 5
    assert len(cue.samples) == 48


@pytest.mark.parametrize(
    "name", ["missing", "directory", "text", "empty", "truncated", "audio-only", "zero-fps"]
)
def test_bad_input_one_line_exit_1_no_output(tmp_path, name):
    path, fragment = make_bad_inputs(tmp_path)[name]
    out = tmp_path / "out" / "cue.json"
    r = moodsic("score", path, "-o", out, "--experts", "grammar", "--progress", "none", timeout=120)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("moodsic: error:") and fragment in lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists()
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_bad_input_in_json_mode_reports_error_event(tmp_path):
    path, _ = make_bad_inputs(tmp_path)["empty"]
    r = moodsic(
        "score", path, "-o", tmp_path / "c.json", "--experts", "grammar", "--progress", "json"
    )
    assert r.returncode == 1
    last = json.loads(r.stdout.splitlines()[-1])
    assert last["event"] == "error" and "empty" in last["message"]


def test_unavailable_expert_named_is_an_error_saying_why(tmp_path, clip):
    r = moodsic(
        "score",
        clip,
        "-o",
        tmp_path / "c.json",
        "--experts",
        "scene",
        "--weights-dir",
        tmp_path,
        "--progress",
        "none",
    )
    assert r.returncode == 1
    assert "scene" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c.json").exists()


def test_unknown_expert_and_usage_errors(tmp_path, clip):
    r = moodsic("score", clip, "--experts", "smell", "--progress", "none", cwd=tmp_path)
    assert r.returncode == 2 and "unknown expert" in r.stderr  # a usage error
    r = moodsic("score")
    assert r.returncode == 2


def test_refuses_to_overwrite_the_input(tmp_path, clip):
    before = clip.read_bytes()
    r = moodsic(
        "score",
        clip,
        "-o",
        tmp_path / "c.json",
        "--experts",
        "grammar",
        "--mux",
        clip,
        "--progress",
        "none",
    )
    assert r.returncode == 1 and "overwrite" in r.stderr
    assert clip.read_bytes() == before


@pytest.mark.slow
def test_score_with_mix_mux_and_plot(tmp_path, clip):
    out = tmp_path / "c.json"
    r = moodsic(
        "score", clip, "-o", out, "--experts", "grammar", "--mix", tmp_path / "mix.wav",
        "--mux", tmp_path / "scored.mp4", "--plot", tmp_path / "p.png", "--progress", "none",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(stream_types(tmp_path / "scored.mp4")) == ["audio", "video"]
    assert media_duration(tmp_path / "mix.wav") == pytest.approx(12.0, abs=1 / 25)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*part*"))


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    import soundfile as sf

    out = tmp_path / "demo"
    r = moodsic("demo", "-o", out, "--progress", "none", timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in [
        "demo.mp4",
        "demo.moodsic.json",
        "demo-plot.png",
        "demo-mix.wav",
        "demo-scored.mp4",
    ]:
        assert (out / name).is_file(), name
        assert str(out / name) in r.stdout
    cue = CueSheet.from_json(out / "demo.moodsic.json")
    assert cue.video.duration_s == pytest.approx(60.0, abs=1 / 25)
    assert len(cue.segments) >= 3 and len({s.mood for s in cue.segments}) >= 3
    assert len(cue.cuts) >= 4
    audio, sr = sf.read(str(out / "demo-mix.wav"))
    assert abs(len(audio) / sr - cue.video.duration_s) <= 1 / 25
    rms = np.sqrt(np.mean(np.asarray(audio, dtype=np.float64) ** 2))
    assert rms > 0.01
    assert sorted(stream_types(out / "demo-scored.mp4")) == ["audio", "video"]
    assert "experts:" in r.stdout and "grammar" in r.stdout
    assert "scene" in r.stdout  # says why the scene expert did not run (no weights here)


def test_warnings_are_one_line_each_on_stderr(tmp_path, clip):
    # A library with a missing audio file still scores; the skipped track is reported as
    # one "moodsic: warning:" line, not Python's file:line UserWarning with source under it,
    # and never on stdout, which holds only JSON events in this mode.
    import soundfile as sf

    lib = tmp_path / "lib"
    lib.mkdir()
    t = np.arange(22050 * 4) / 22050
    for name, freq in (("a.wav", 220.0), ("b.wav", 330.0)):
        sf.write(lib / name, 0.2 * np.sin(2 * np.pi * freq * t), 22050)
    (lib / "library.csv").write_text(
        "path,valence,arousal\na.wav,0.6,0.5\nb.wav,-0.6,-0.5\ngone.wav,0.1,-0.4\n"
    )
    for _ in range(2):  # the second run loads the cached index: the file is still missing
        r = moodsic("score", clip, "-o", tmp_path / "c.json", "--experts", "grammar",
                    "--library", lib / "library.csv", "--progress", "json")  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert [json.loads(line)["event"] for line in r.stdout.splitlines()][-1] == "done"
        warning_lines = [line for line in r.stderr.splitlines() if "warning" in line.lower()]
        assert len(warning_lines) == 1, r.stderr
        assert warning_lines[0].startswith("moodsic: warning: skipped 1 track(s)")
        assert "gone.wav" in warning_lines[0] and "UserWarning" not in r.stderr
    assert list(lib.glob(".*index*"))  # the second load came from the cache

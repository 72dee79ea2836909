"""Every entry point meets the bad-input corpus (tests/badinputs.py) with a clear one-line
error or correct handling, in bounded time and memory, leaving no partial output and never
touching the input.

Entry points: `moodsic score` and `moodsic batch` (real subprocesses), `moodsic score-timeline`
(a timeline whose clips point at the bad media), and the Blender add-on's engine runner
(imported without bpy) driving the real engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from badinputs import BadInput, good_video, make_corpus, va_manifest

from moodsic_engine.config import Config
from moodsic_engine.cue import CueSheet

CORPUS_NAMES = [
    "zero-byte", "truncated-moov-at-end", "truncated-faststart", "text-named-mp4",
    "png-named-mov", "video-named-txt", "huge-y4m-header", "huge-frames-in-small-mkv",
    "absurd-declared-duration", "timestamp-gap", "zero-fps", "nan-fps-y4m", "no-video-stream",
    "audio-with-cover-art",
    "corrupt-audio", "non-ascii-spaces-name", "dash-name", "directory-named-mp4", "missing",
    "symlink-loop-file", "extreme-aspect", "colon-name", "protocol-name",
]  # fmt: skip
CLI_TIMEOUT_S = 120  # generous for 2 shared cores; a hang (busy loop, deadlock) still fails
MAX_RSS_MB = 1500  # grammar-only scoring of 160x90 clips needs a few hundred MB


# ----------------------------------------------------------------------------- helpers
@dataclass
class CliResult:
    rc: int
    stdout: str
    stderr: str
    wall_s: float
    max_rss_mb: float


def run_cli(
    args: list[str], *, cwd: Path, timeout: float = CLI_TIMEOUT_S, env: dict | None = None
) -> CliResult:
    """Run `moodsic ARGS` in a subprocess; measure its wall time and peak memory.

    Peak memory is the child's VmHWM, polled: wait4's ru_maxrss would also count the pytest
    process's own peak, which a forked child inherits until it execs."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moodsic_engine.cli", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    chunks: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:  # noqa: ANN001
        chunks[name] = stream.read()

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for r in readers:
        r.start()
    deadline = start + timeout
    peak_kb = 0
    while True:
        peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            pytest.fail(f"moodsic {' '.join(args)} did not finish within {timeout} s")
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join()
    return CliResult(
        rc=proc.returncode,
        stdout=chunks.get("out", b"").decode("utf-8", "replace"),
        stderr=chunks.get("err", b"").decode("utf-8", "replace"),
        wall_s=time.monotonic() - start,
        max_rss_mb=peak_kb / 1024,
    )


def _vm_hwm_kb(pid: int) -> int:
    """Peak resident memory of a live process since its exec (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def sha256_tree(path: Path) -> dict[str, str]:
    """Content hashes of a file, or of every regular file under a folder (links not followed)."""
    if path.is_symlink() or not path.exists():
        return {str(path): f"link:{os.readlink(path)}" if path.is_symlink() else "absent"}
    if path.is_file():
        return {str(path): hashlib.sha256(path.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(path.rglob("*")):
        out.update(sha256_tree(p) if not p.is_dir() or p.is_symlink() else {})
    return out


def leftovers(folder: Path) -> list[str]:
    """Every file under `folder` (temp files included)."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def assert_one_line_error(res: CliResult, fragment: str = "") -> str:
    assert res.rc == 1, (res.rc, res.stderr[-2000:])
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("moodsic: error: "), lines[0]
    assert fragment in lines[0].lower(), (fragment, lines[0])
    return lines[0]


def assert_valid_cue(path: Path) -> CueSheet:
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    cue = CueSheet.from_json(path)  # validates the schema and the exact tiling
    assert cue.segments[0].start_frame == 0 and cue.segments[-1].end_frame == cue.video.frames
    assert all(s.track is not None for s in cue.segments)
    return cue


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BadInput]:
    c = make_corpus(tmp_path_factory.mktemp("corpus"))
    assert sorted(c) == sorted(CORPUS_NAMES)
    return c


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return va_manifest(tmp_path_factory.mktemp("lib"))


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The test's environment with a private TMPDIR, so leftover temp files can be counted."""
    tmp = tmp_path / "sys-tmp"
    tmp.mkdir()
    env = dict(os.environ)
    env["TMPDIR"] = str(tmp)
    env["HF_HUB_OFFLINE"] = "1"
    return env


# ----------------------------------------------------------------------------- moodsic score
@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_score_cli_meets_corpus(
    name: str, corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    entry = corpus[name]
    before = sha256_tree(entry.path)
    out = tmp_path / "out"
    cue = out / "cue.moodsic.json"
    args = ["score", "-o", str(cue), "--experts", "grammar", "--library", str(library)]
    # names FFmpeg could take for an option or a protocol are passed relative, as a user would
    relative = name in ("dash-name", "colon-name", "protocol-name")
    cwd, arg = (entry.path.parent, entry.path.name) if relative else (tmp_path, str(entry.path))
    res = run_cli([*args, "--progress", "none", "--", arg], cwd=cwd, env=cli_env)
    assert res.max_rss_mb < MAX_RSS_MB, res.max_rss_mb
    if entry.expect == "error":
        assert_one_line_error(res, entry.fragment)
        assert res.stdout == ""
        assert leftovers(out) == []
    else:
        assert res.rc == 0, res.stderr[-2000:]
        assert res.stderr == ""
        assert leftovers(out) == ["cue.moodsic.json"]
        sheet = assert_valid_cue(cue)
        # odd names survive exactly: read back, the path names the very file (the cue sheet
        # stores it relative to its own folder)
        assert sheet.video.path == str(cwd / arg)
        stored = json.loads(cue.read_text())["video"]["path"]
        assert (out / stored).resolve() == (cwd / arg).resolve()
    assert leftovers(Path(cli_env["TMPDIR"])) == []
    assert sha256_tree(entry.path) == before  # the input is never modified


@pytest.mark.parametrize("name", ["missing", "zero-byte", "zero-fps", "huge-y4m-header"])
def test_score_bad_video_fails_before_loading_models(
    name: str, corpus: dict[str, BadInput], tmp_path: Path, cli_env: dict
) -> None:
    """With the defaults (every expert, the built-in library) a bad video is reported at once,
    without loading models or building a library first."""
    entry = corpus[name]
    res = run_cli(["score", str(entry.path), "--progress", "none"], cwd=tmp_path, env=cli_env)
    assert_one_line_error(res, entry.fragment)
    assert 20 < res.max_rss_mb < 300, res.max_rss_mb  # torch alone would be far more
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["zero-byte", "truncated-faststart", "no-video-stream"])
def test_score_json_progress_reports_the_error(
    name: str, corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    """--progress json: stdout stays JSON lines and ends with an error event (the add-on reads it)."""
    entry = corpus[name]
    out = tmp_path / "cue.json"
    res = run_cli(
        ["score", str(entry.path), "-o", str(out), "--experts", "grammar", "--library",
         str(library), "--progress", "json"],
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    line = assert_one_line_error(res, entry.fragment)
    events = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    assert events and events[-1]["event"] == "error"
    assert events[-1]["message"] == line.removeprefix("moodsic: error: ")
    assert not out.exists()


def test_score_refuses_to_overwrite_its_input(
    corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    video = tmp_path / "in.mp4"
    video.write_bytes(corpus["corrupt-audio"].path.read_bytes())
    before = sha256_tree(video)
    for opt in ("-o", "--plot", "--mix"):
        args = ["score", str(video), "--experts", "grammar", "--library", str(library)]
        if opt != "-o":
            args += ["-o", str(tmp_path / "c.json")]
        res = run_cli([*args, opt, str(video), "--progress", "none"], cwd=tmp_path, env=cli_env)
        assert_one_line_error(res, "overwrite")
        assert sha256_tree(video) == before
    assert leftovers(tmp_path) == ["in.mp4"]


def test_score_interrupted_leaves_nothing(library: Path, tmp_path: Path, cli_env: dict) -> None:
    """SIGINT mid-run (Ctrl-C): exit 130, one line, no cue sheet, no temp files anywhere."""
    video = good_video(tmp_path / "long.mp4", seconds=60, audio=False)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moodsic_engine.cli", "score", str(video), "-o",
         str(out / "c.json"), "--experts", "grammar", "--library", str(library),
         "--sample-fps", "8", "--progress", "json"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("stage") == "perceive" and event.get("done", 0) > 0:
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=CLI_TIMEOUT_S)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.strip()] == ["moodsic: error: interrupted"]
    assert json.loads(rest.splitlines()[-1]) == {"event": "error", "message": "interrupted"}
    assert leftovers(out) == []
    assert leftovers(Path(cli_env["TMPDIR"])) == []


@pytest.fixture(scope="module")
def audio_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of three short tones (real audio, so mixes can be rendered)."""
    import numpy as np
    import soundfile as sf

    folder = tmp_path_factory.mktemp("audio-lib")
    rows = []
    for i, (freq, v, a) in enumerate([(220, -0.5, -0.5), (330, 0.5, 0.5), (440, 0.6, -0.4)]):
        t = np.arange(48000 * 6) / 48000
        sf.write(folder / f"t{i}.wav", 0.2 * np.sin(2 * np.pi * freq * t), 48000)
        rows.append({"id": f"t{i}", "path": f"t{i}.wav", "valence": v, "arousal": a})
    (folder / "lib.json").write_text(json.dumps({"tracks": rows}), encoding="utf-8")
    return folder / "lib.json"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["colon-name", "dash-name"])
def test_score_mix_and_mux_with_odd_relative_names(
    name: str, corpus: dict[str, BadInput], audio_library: Path, tmp_path: Path, cli_env: dict
) -> None:
    """Relative names FFmpeg could read as a protocol ("a: b.mp4") or an option ("-o.mp4"),
    for the video and every output: the mix keeps the video's own audio, the mux has both."""
    import numpy as np
    import soundfile as sf
    from media import stream_types

    work = tmp_path / "w"
    work.mkdir()
    video = work / corpus[name].path.name
    video.write_bytes(corpus[name].path.read_bytes())
    stem = video.stem
    res = run_cli(
        ["score", "-o", f"{stem}.json", "--experts", "grammar", "--library", str(audio_library),
         "--mix", f"{stem} mix: 1.wav", "--bed", f"{stem} bed: 1.wav", "--mux",
         f"{stem} out: 1.mp4", "--progress", "none", "--", video.name],
        cwd=work, env=cli_env, timeout=300,
    )  # fmt: skip
    assert res.rc == 0, res.stderr[-2000:]
    mix, _ = sf.read(work / f"{stem} mix: 1.wav")
    bed, _ = sf.read(work / f"{stem} bed: 1.wav")
    assert mix.shape == bed.shape and not np.allclose(mix, bed, atol=1e-3)  # dialogue is in
    assert sorted(stream_types(Path(f"file:{work / (stem + ' out: 1.mp4')}"))) == ["audio", "video"]


HOSTILE_CONFIGS = {
    "not-toml": ("garbage = = =\n", "not valid toml"),
    "nan-sample-fps": ("[sample]\nsample_fps = nan\n", "finite"),
    "inf-segment": ("[segment]\nmin_segment_s = inf\n", "finite"),
    "nan-fusion": ("[fusion]\nvar_ceiling = nan\n", "finite"),
    "string-number": ('[sample]\nsample_fps = "fast"\n', "must be a number"),
    "huge-working-size": ("[sample]\nshort_side = 100000\n", "short_side"),
    "unknown-key": ("[nosuch]\nx = 1\n", "unknown config key"),
    "nested-100000-deep": ("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    "too-large": ("# " + "x" * (2 << 20) + "\n", "too large"),
    "section-not-table": ("sample = 3\n", "must be a table"),
    "unknown-expert": ('experts = ["grammar", "nosuch"]\n', "unknown expert"),
    "experts-not-names": ("experts = [[1]]\n", "list of names"),
}


@pytest.mark.parametrize("name", list(HOSTILE_CONFIGS))
def test_score_hostile_config(
    name: str, corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    text, fragment = HOSTILE_CONFIGS[name]
    cfg = tmp_path / "moodsic.toml"
    cfg.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    res = run_cli(
        ["score", str(corpus["corrupt-audio"].path), "-o", str(out / "c.json"), "--experts",
         "grammar", "--library", str(library), "--config", str(cfg), "--progress", "none"],
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert_one_line_error(res, fragment)
    assert leftovers(out) == []


@pytest.mark.parametrize("kind", ["folder", "fifo", "device", "not-utf8"])
def test_score_config_that_is_not_a_text_file(
    kind: str, corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    """--config naming a folder, a FIFO (would block forever), a device or binary data: one
    line at once, nothing written."""
    cfg = tmp_path / "moodsic.toml"
    fragment = {"folder": "directory", "fifo": "fifo", "device": "device", "not-utf8": "utf-8"}
    if kind == "folder":
        cfg.mkdir()
    elif kind == "fifo":
        os.mkfifo(cfg)
    elif kind == "device":
        cfg = Path("/dev/zero")
    else:
        cfg.write_bytes(bytes(range(128, 256)))
    out = tmp_path / "out"
    res = run_cli(
        ["score", str(corpus["corrupt-audio"].path), "-o", str(out / "c.json"), "--experts",
         "grammar", "--library", str(library), "--config", str(cfg), "--progress", "none"],
        cwd=tmp_path, env=cli_env, timeout=60,
    )  # fmt: skip
    assert_one_line_error(res, fragment[kind])
    assert leftovers(out) == [] and os.listdir(cli_env["TMPDIR"]) == []


@pytest.mark.parametrize("fps", ["0", "-2", "nan", "inf"])
def test_score_bad_sample_fps(
    fps: str, corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    res = run_cli(
        ["score", str(corpus["corrupt-audio"].path), "-o", str(tmp_path / "c.json"),
         "--experts", "grammar", "--library", str(library), "--sample-fps", fps,
         "--progress", "none"],
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert_one_line_error(res, "sample_fps")
    assert not (tmp_path / "c.json").exists()


def test_score_output_path_problems(
    corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    """Outputs that cannot be written: a FIFO (a rename would replace it with a plain file,
    as it would /dev/null), a folder, a path under a file: one line each, before any work."""
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    (tmp_path / "dir.json").mkdir()
    video = str(corpus["corrupt-audio"].path)
    cases = {
        "pipe.json": "not a regular file",
        "dir.json": "directory",
        "plain.txt/c.json": "cannot",
    }
    for out, fragment in cases.items():
        res = run_cli(
            ["score", video, "-o", str(tmp_path / out), "--experts", "grammar", "--library",
             str(library), "--progress", "none"],
            cwd=tmp_path, env=cli_env,
        )  # fmt: skip
        assert_one_line_error(res, fragment)
    assert fifo.is_fifo() and a_file.read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["dir.json", "pipe.json", "plain.txt", "sys-tmp"]


def test_score_memory_is_flat_in_video_length(library: Path, tmp_path: Path, cli_env: dict) -> None:
    """Frames are streamed: 12x the length (and 8 samples/s) adds little to peak memory."""
    peaks = {}
    for seconds in (10, 10, 120):  # the first run also builds the library index: a warm-up
        video = good_video(tmp_path / f"v{seconds}.mp4", seconds=seconds, audio=False)
        res = run_cli(
            ["score", str(video), "-o", str(tmp_path / f"v{seconds}.json"), "--experts",
             "grammar", "--library", str(library), "--sample-fps", "8", "--progress", "none"],
            cwd=tmp_path, env=cli_env,
        )  # fmt: skip
        assert res.rc == 0, res.stderr
        peaks[seconds] = res.max_rss_mb
    # holding the 960 extra working frames (398x224 RGB) would cost about 250 MB
    assert peaks[10] > 50, peaks  # the measurement works
    assert peaks[120] - peaks[10] < 60, peaks


@pytest.mark.parametrize(
    "extra",
    [["--experts", "grammar,grammar"], ["--reroll", "-5"], ["--reroll", "99999"],
     ["--seed", "-1"], ["--seed", "9" * 30], ["--experts", "grammar", "--experts", "nosuch"]],
    ids=["duplicate-expert", "reroll-negative", "reroll-huge", "seed-negative", "seed-huge",
         "unknown-expert"],
)  # fmt: skip
def test_score_odd_arguments(
    extra: list[str], corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    out = tmp_path / "c.json"
    res = run_cli(
        ["score", str(corpus["corrupt-audio"].path), "-o", str(out), "--experts", "grammar",
         "--library", str(library), "--progress", "none", *extra],
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    if "nosuch" in extra:  # a usage error: exit 2, one line naming the valid experts
        assert res.rc == 2, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "unknown expert" in lines[0], res.stderr
        assert "'nosuch'" in lines[0] and "scene, face, grammar" in lines[0]
        assert not out.exists()
    else:
        assert res.rc == 0, res.stderr[-2000:]
        cue = assert_valid_cue(out)
        assert cue.engine["experts"] == ["grammar"]


# ----------------------------------------------------------------------------- moodsic batch
def test_batch_cli_meets_corpus(
    corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    """Bad clips are reported with their one-line reason, the others scored, exit code 3;
    symlink loops neither hang discovery nor score a clip twice; a folder named like a video
    is not a clip."""
    from moodsic_engine.batch import VIDEO_EXTENSIONS

    src = tmp_path / "in"
    src.mkdir()
    expected: dict[str, BadInput] = {}
    for e in corpus.values():
        if e.path.is_file() and not e.path.is_symlink() and e.path.suffix in VIDEO_EXTENSIONS:
            os.link(e.path, src / e.path.name)
            expected[Path(e.path.name).stem] = e
    (src / "folder.mp4").mkdir()  # a directory named like a video
    (src / "folder.mp4" / "notes.txt").write_text("x")
    os.symlink("..", src / "folder.mp4" / "up")  # a directory cycle
    os.symlink("self.mp4", src / "self.mp4")  # a file symlink loop
    os.symlink("nowhere/x.mp4", src / "dangling.mp4")
    before = sha256_tree(src)
    out = tmp_path / "out"
    res = run_cli(
        ["batch", str(src), "-o", str(out), "--experts", "grammar", "--library", str(library),
         "--workers", "1", "--timeout", "60", "--no-contact-sheet", "--progress", "none"],
        cwd=tmp_path, env=cli_env, timeout=300,
    )  # fmt: skip
    assert res.rc == 3, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    records = [json.loads(x) for x in (out / "batch.jsonl").read_text().splitlines()]
    by_rel = {r["rel"]: r for r in records}
    assert set(by_rel) == set(expected) | {"self", "dangling"}, sorted(by_rel)
    for rel, e in expected.items():
        rec = by_rel[rel]
        if e.expect == "ok":
            assert rec["status"] == "ok", rec
            assert_valid_cue(out / f"{rel}.moodsic.json")
        else:
            assert rec["status"] == "failed", rec
            assert "\n" not in rec["error"] and e.fragment in rec["error"].lower(), rec
            assert not (out / f"{rel}.moodsic.json").exists()
    assert by_rel["self"]["status"] == by_rel["dangling"]["status"] == "failed"
    assert not [p for p in leftovers(out) if ".part" in p]
    assert leftovers(Path(cli_env["TMPDIR"])) == []
    assert sha256_tree(src) == before


def test_batch_interrupted_leaves_no_partials_or_workers(
    library: Path, tmp_path: Path, cli_env: dict
) -> None:
    """Ctrl-C in a batch: exit 130 with one line, finished clips kept and summarised, no
    half-written files, and no worker process left behind."""
    import psutil

    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        good_video(src / f"c{i}.mp4", seconds=20, audio=False)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moodsic_engine.cli", "batch", str(src), "-o", str(out),
         "--experts", "grammar", "--library", str(library), "--workers", "2",
         "--sample-fps", "8", "--progress", "json"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    children: list = []
    for line in proc.stdout:
        if json.loads(line).get("event") == "clip":
            children = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=CLI_TIMEOUT_S)
    assert proc.returncode == 130, err
    assert [ln for ln in err.splitlines() if ln.strip()] == ["moodsic: error: interrupted"]
    assert children, "the batch had no workers running when interrupted"
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
    records = [json.loads(x) for x in (out / "batch.jsonl").read_text().splitlines()]
    assert len(records) == 4 and {r["status"] for r in records} <= {"ok", "interrupted"}
    assert any(r["status"] == "ok" for r in records)
    for r in records:
        cue = out / f"{r['rel']}.moodsic.json"
        if r["status"] == "ok":
            assert cue.exists()
        elif cue.exists():
            # a worker may finish its (atomic) write just as Ctrl-C lands, before it reports:
            # the file must then be complete, and the clip is redone on resume
            CueSheet.from_json(cue)
    assert not [f for f in leftovers(out) if ".part" in f]
    assert leftovers(Path(cli_env["TMPDIR"])) == []


# ----------------------------------------------------------------------------- score-timeline
def _timeline(clips: list[tuple[str, Path]], rate: float = 25.0):  # noqa: ANN202
    import opentimelineio as otio

    tl = otio.schema.Timeline(name="edit")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for name, path in clips:
        track.append(
            otio.schema.Clip(
                name=name,
                media_reference=otio.schema.ExternalReference(target_url=path.as_uri()),
                source_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(75, rate)
                ),
            )
        )
    tl.tracks.append(track)
    return tl


SCORE_TIMELINE_BAD = ["zero-byte", "truncated-faststart", "zero-fps", "no-video-stream",
                      "directory-named-mp4", "missing", "huge-y4m-header"]  # fmt: skip


@pytest.mark.parametrize("name", SCORE_TIMELINE_BAD)
def test_score_timeline_with_bad_media(
    name: str, corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    """One bad clip among good ones: reported as not scored, the rest scored; with --strict,
    or when every clip is bad: a one-line error and no output timeline."""
    import opentimelineio as otio

    bad = corpus[name].path
    good = corpus["corrupt-audio"].path
    edit = tmp_path / "edit.otio"
    otio.adapters.write_to_file(_timeline([("good", good), ("bad", bad)]), str(edit))
    before = sha256_tree(edit)
    out = tmp_path / "scored.otio"
    common = ["--experts", "grammar", "--library", str(library), "--progress", "none"]
    res = run_cli(["score-timeline", str(edit), "-o", str(out), *common], cwd=tmp_path, env=cli_env)
    assert res.rc == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert "not scored: bad" in res.stdout
    scored = otio.adapters.read_from_file(str(out))
    assert len(scored.tracks) > 1  # music added
    assert scored.metadata["moodsic"]

    strict = tmp_path / "strict.otio"
    res = run_cli(
        ["score-timeline", str(edit), "-o", str(strict), "--strict", *common],
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert_one_line_error(res, "bad")
    assert not strict.exists()

    only_bad = tmp_path / "only_bad.otio"
    otio.adapters.write_to_file(_timeline([("bad", bad)]), str(only_bad))
    none = tmp_path / "none.otio"
    res = run_cli(
        ["score-timeline", str(only_bad), "-o", str(none), *common], cwd=tmp_path, env=cli_env
    )
    assert_one_line_error(res, "no clip could be scored")
    assert not none.exists()
    assert sha256_tree(edit) == before
    assert not [p for p in leftovers(tmp_path) if ".part" in p]


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\xff\xfe garbage", b'{"OTIO_SCHEMA": "Timeline.1", "tracks": 5}', b"[" * 100000],
    ids=["empty", "binary", "wrong-types", "deep-nesting"],
)
def test_score_timeline_with_broken_edit_file(
    content: bytes, library: Path, tmp_path: Path, cli_env: dict
) -> None:
    edit = tmp_path / "edit.otio"
    edit.write_bytes(content)
    out = tmp_path / "scored.otio"
    res = run_cli(
        ["score-timeline", str(edit), "-o", str(out), "--experts", "grammar", "--library",
         str(library), "--progress", "none"],
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert_one_line_error(res)
    assert not out.exists()
    assert edit.read_bytes() == content


HOSTILE_TIMELINES = {
    # name: (rate, start frame, duration frames, media url or None for a good clip, fragment)
    "rate-zero": (0.0, 0, 75, None, "rate"),
    "rate-nan": (float("nan"), 0, 75, None, "rate"),
    "rate-inf": (float("inf"), 0, 75, None, "rate"),
    "negative-duration": (25.0, 0, -75, None, "no clips"),
    "absurd-duration": (25.0, 0, 1e15, None, "no clip could be scored"),
    "absurd-start": (25.0, 1e15, 75, None, "no clip could be scored"),
    "device-media": (25.0, 0, 75, "file:///dev/zero", "media not found"),
    "remote-media": (25.0, 0, 75, "http://example.com/x.mp4", "not a local file"),
}


@pytest.mark.parametrize("name", list(HOSTILE_TIMELINES))
def test_score_timeline_hostile_times_and_references(
    name: str, corpus: dict[str, BadInput], library: Path, tmp_path: Path, cli_env: dict
) -> None:
    import opentimelineio as otio

    rate, start, dur, url, fragment = HOSTILE_TIMELINES[name]
    tl = otio.schema.Timeline(name="edit")
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.append(
        otio.schema.Clip(
            name="c",
            media_reference=otio.schema.ExternalReference(
                target_url=url or corpus["corrupt-audio"].path.as_uri()
            ),
            source_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(start, rate), otio.opentime.RationalTime(dur, rate)
            ),
        )
    )
    tl.tracks.append(track)
    edit = tmp_path / "edit.otio"
    otio.adapters.write_to_file(tl, str(edit))
    out = tmp_path / "scored.otio"
    res = run_cli(
        ["score-timeline", str(edit), "-o", str(out), "--experts", "grammar", "--library",
         str(library), "--progress", "none"],
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert_one_line_error(res, fragment)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["otioz-deep", "otioz-bomb", "otiod-deep"])
def test_score_timeline_hostile_bundles(
    kind: str, library: Path, tmp_path: Path, cli_env: dict
) -> None:
    """.otioz/.otiod bundles: deeply nested JSON (OTIO's C++ reader would segfault) and a zip
    bomb (300 MB of timeline in a 300 kB file) are refused with one line, quickly."""
    import zipfile

    if kind.startswith("otioz"):
        edit = tmp_path / "edit.otioz"
        body = "[" * 100_000 if kind == "otioz-deep" else " " * (300 * 2**20)
        with zipfile.ZipFile(edit, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("content.otio", body)
            z.writestr("version.txt", "1.0.0")
    else:
        edit = tmp_path / "edit.otiod"
        edit.mkdir()
        (edit / "content.otio").write_text("[" * 100_000)
    out = tmp_path / "scored.otio"
    res = run_cli(
        ["score-timeline", str(edit), "-o", str(out), "--experts", "grammar", "--library",
         str(library), "--progress", "none"],
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert_one_line_error(res, "too")  # "nested too deeply" / "too large"
    assert res.max_rss_mb < 600, res.max_rss_mb
    assert not out.exists()


# ----------------------------------------------------------------------------- Blender runner
@pytest.fixture(scope="module")
def runner():  # noqa: ANN201
    from blender_support import addon_module

    return addon_module("runner")


@pytest.mark.parametrize(
    "name", ["zero-byte", "truncated-moov-at-end", "no-video-stream", "zero-fps"]
)
def test_blender_runner_reports_engine_error(
    name: str, corpus: dict[str, BadInput], library: Path, tmp_path: Path, runner
) -> None:
    """The add-on's engine call (no bpy): a failing engine gives one line for Blender's report
    and no cue sheet; the runner never raises anything but EngineError."""
    engine = tmp_path / "moodsic"
    engine.write_text(f'#!/bin/sh\nexec {sys.executable} -m moodsic_engine.cli "$@"\n')
    engine.chmod(0o755)
    cue = tmp_path / "c.moodsic.json"
    req = runner.ScoreRequest(
        video=str(corpus[name].path), cue=str(cue), library=str(library), experts="grammar"
    )
    run = runner.EngineRun(
        runner.score_args(runner.find_engine(str(engine)), req), env=runner.engine_env()
    )
    run.wait(timeout=CLI_TIMEOUT_S)
    assert run.error and "\n" not in run.error
    assert corpus[name].fragment in run.error.lower()
    assert not run.error.startswith("moodsic: error:")
    with pytest.raises(runner.EngineError):
        run.cue_path()
    assert not cue.exists()


def test_blender_runner_engine_crash_hang_and_missing(tmp_path: Path, runner) -> None:
    """A crashing engine (traceback), a hanging one (timeout kills its process group) and a
    missing one all end as one-line EngineErrors."""
    crash = tmp_path / "crash"
    crash.write_text(
        "#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
        "echo 'RuntimeError: boom' >&2\nexit 3\n"
    )
    hang = tmp_path / "hang"
    marker = tmp_path / "child-alive"
    hang.write_text(f"#!/bin/sh\n(sleep 3; touch {marker}) &\nsleep 30\n")
    for p in (crash, hang):
        p.chmod(0o755)
    req = runner.ScoreRequest(video=str(tmp_path / "v.mp4"), cue=str(tmp_path / "c.json"))
    run = runner.EngineRun(runner.score_args(str(crash), req))
    run.wait(timeout=30)
    assert run.error == "RuntimeError: boom"
    start = time.monotonic()
    run = runner.EngineRun(runner.score_args(str(hang), req))
    run.wait(timeout=1.0)
    assert time.monotonic() - start < 15
    assert "did not finish" in run.error and not run.running
    time.sleep(3.5)
    assert not marker.exists()  # the engine's own child was ended with it
    with pytest.raises(runner.EngineError, match="not found"):
        runner.find_engine(str(tmp_path / "no-such-engine"))
    not_exec = tmp_path / "plain"
    not_exec.write_text("x")
    with pytest.raises(runner.EngineError, match="not executable"):
        runner.find_engine(str(not_exec))


# ----------------------------------------------------------------------------- damaged library audio
def _damaged_audio(folder: Path) -> None:
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(22050 * 4) / 22050
    nan = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    nan[1000:3000] = np.nan
    inf = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    inf[::97] = np.inf
    sf.write(folder / "nan.wav", nan, 22050, subtype="FLOAT")
    sf.write(folder / "inf.wav", inf, 22050, subtype="FLOAT")
    sf.write(folder / "silent.wav", np.zeros(22050 * 3, np.float32), 22050, subtype="FLOAT")
    sf.write(folder / "tiny.wav", np.zeros(10, np.float32), 22050, subtype="FLOAT")
    (folder / "garbage.mp3").write_bytes(b"\xff\xfb" + bytes(1000))
    (folder / "empty.flac").write_bytes(b"")


@pytest.mark.slow
def test_library_with_damaged_audio(tmp_path: Path, cli_env: dict) -> None:
    """NaN/inf samples, silence, a 10-sample file, garbage and an empty file: the folder
    loads with the unreadable ones named, and a mix over the damaged tracks stays finite."""
    import warnings

    import numpy as np
    import soundfile as sf

    from moodsic_engine.library import load_library

    folder = tmp_path / "music"
    _damaged_audio(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = load_library(folder, cache_dir=tmp_path / "cache")
    assert sorted(t.title for t in lib.tracks) == ["inf", "nan"]
    assert all(np.isfinite([t.valence, t.arousal]).all() for t in lib.tracks)
    assert any("silent.wav" in w and "garbage.mp3" in w for w in lib.warnings)

    manifest = folder / "m.json"
    manifest.write_text(json.dumps({"tracks": [
        {"id": "n", "path": "nan.wav", "valence": 0.5, "arousal": -0.3},
        {"id": "i", "path": "inf.wav", "valence": -0.5, "arousal": 0.3}]}))  # fmt: skip
    video = good_video(tmp_path / "v.mp4", seconds=3)
    res = run_cli(
        ["score", str(video), "-o", str(tmp_path / "c.json"), "--experts", "grammar",
         "--library", str(manifest), "--mix", str(tmp_path / "m.wav"), "--progress", "none"],
        cwd=tmp_path, env=cli_env, timeout=300,
    )  # fmt: skip
    assert res.rc == 0, res.stderr[-2000:]
    y, _ = sf.read(tmp_path / "m.wav")
    assert np.isfinite(y).all() and 0 < np.abs(y).max() <= 1.0


# ----------------------------------------------------------------------------- batch manifests
HOSTILE_BATCH_MANIFESTS = {
    "deep.jsonl": ("[" * 100_000 + "\n", "not valid json"),
    "huge-int.jsonl": ('{"path": "VIDEO", "seed": ' + "9" * 5000 + "}\n", "not valid json"),
    "nan.jsonl": ('{"path": "VIDEO", "sample_fps": NaN}\n', "finite"),
    "not-object.jsonl": ("[1, 2]\n", "expected an object"),
    "nul-path.csv": ("path\n\x00\n", "unusable path"),
    "deep-cell.csv": ("path,seed\nVIDEO," + "[" * 100_000 + "\n", "seed"),
    "no-path-column.csv": ("file\nVIDEO\n", "path"),
    "escape-out.csv": ("path,out\nVIDEO,../../x\n", "inside the output folder"),
    "binary.csv": (None, "utf-8"),
}


@pytest.mark.parametrize("name", list(HOSTILE_BATCH_MANIFESTS))
def test_hostile_batch_manifest_refused_in_one_line(
    name: str, corpus: dict[str, BadInput], tmp_path: Path
) -> None:
    from moodsic_engine.batch import run_batch
    from moodsic_engine.errors import InputError

    text, fragment = HOSTILE_BATCH_MANIFESTS[name]
    manifest = tmp_path / name
    if text is None:
        manifest.write_bytes(bytes(range(256)) * 4)
    else:
        manifest.write_text(text.replace("VIDEO", str(corpus["corrupt-audio"].path)), "utf-8")
    with pytest.raises(InputError) as exc:
        run_batch(manifest, tmp_path / "out", config=Config(experts=("grammar",)))
    assert "\n" not in str(exc.value) and fragment in str(exc.value).lower(), str(exc.value)
    # nothing but the (flock) lock file of the output folder
    assert leftovers(tmp_path / "out") in ([], [".moodsic-batch/lock"])


# ----------------------------------------------------------------------------- evaluations
def _veatic(root: Path, ids: list[str]) -> Path:
    from media import lavfi_video

    (root / "videos").mkdir(parents=True)
    (root / "rating_averaged").mkdir()
    for vid in ids:
        lavfi_video(root / "videos" / f"{vid}.mp4", seconds=2.0, size="64x36")
        for axis in ("valence", "arousal"):
            (root / "rating_averaged" / f"{vid}_{axis}.csv").write_text("0.1\n" * 50)
    return root


def test_veatic_frame_number_1e12_refused_before_allocating(tmp_path: Path) -> None:
    import tracemalloc

    from moodsic_engine.errors import InputError
    from moodsic_engine.eval.veatic import read_ratings

    path = tmp_path / "1_valence.csv"
    path.write_text("frame,value\n0,0.1\n1e12,0.2\n")
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(InputError) as exc:
            read_ratings(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - t0 < 2 and peak < 10 << 20  # no array sized by 1e12
    assert "\n" not in str(exc.value) and "frame number" in str(exc.value)
    path.write_text("frame,value\n0,0.1\n1e400,0.2\n")  # inf
    with pytest.raises(InputError, match="frame number"):
        read_ratings(path)


def test_veatic_bad_videos_are_left_out_not_fatal(tmp_path: Path, cli_env: dict) -> None:
    """A corrupt video and a hostile rating file are each reported (one warning line) and
    left out of the report; the good video is evaluated; exit code 0."""
    root = _veatic(tmp_path / "veatic", ["1", "2", "3"])
    (root / "videos" / "2.mp4").write_bytes(b"\x00not a video" * 100)
    (root / "rating_averaged" / "3_valence.csv").write_text("frame,value\n0,0.1\n1e12,0.2\n")
    out = tmp_path / "report"
    res = run_cli(
        ["eval", "veatic", "--root", str(root), "-o", str(out), "--experts", "grammar",
         "--no-plots", "--progress", "none"],
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert res.rc == 0, res.stderr[-2000:]
    warns = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(warns) == 2 and all(ln.startswith("moodsic: warning: ") for ln in warns), warns
    assert "video 2 left out" in warns[0] and "video 3 left out" in warns[1]
    assert "VEATIC: 1 videos" in res.stdout and "left out 2: 2, 3" in res.stdout
    data = json.loads((out / "report.json").read_text())
    assert [v["id"] for v in data["videos"]] == ["1"]
    assert sorted(data["provenance"]["data"]["left_out"]) == ["2", "3"]
    assert any("video 3 left out" in w and "frame number" in w for w in data["warnings"])
    assert sorted(os.listdir(out / "videos")) == ["1.csv"]
    # every video bad: one line, exit 1
    (root / "videos" / "1.mp4").write_bytes(b"junk")
    res = run_cli(
        ["eval", "veatic", "--root", str(root), "-o", str(tmp_path / "r2"), "--experts",
         "grammar", "--no-plots", "--progress", "none"],
        cwd=tmp_path, env=cli_env,
    )  # fmt: skip
    assert res.rc == 1 and "no VEATIC video could be evaluated" in res.stderr.splitlines()[-1]


def test_findingemo_unreadable_image_is_left_out(tmp_path: Path) -> None:
    import warnings

    import numpy as np

    from moodsic_engine.eval.findingemo_face import evaluate_face_findingemo
    from moodsic_engine.experts.face import FaceEstimate
    from moodsic_engine.train.findingemo import (
        local_path,
        make_mini_findingemo,
        read_annotations,
        split_by_image,
    )

    class Constant:
        mode = "trained"

        def reset(self) -> None:
            pass

        def predict_frame(self, frame: np.ndarray, t: float):  # noqa: ANN202, ARG002
            return [FaceEstimate(0.2, 0.1, 0.04, 0.04, 1.0)], 1

    ann_path, images = make_mini_findingemo(tmp_path / "fe", n=40, seed=0)
    rel = read_annotations(ann_path)["rel_path"].tolist()
    split = split_by_image(rel, seed=0)
    broken = rel[split.test[0]]
    local_path(images, broken).write_bytes(b"not an image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = evaluate_face_findingemo(
            images, tmp_path / "out", Config(), annotations=ann_path, expert=Constant()
        )
    assert res.test_images == len(split.test) - 1
    assert any("1 unreadable image" in str(w.message) for w in caught)
    data = json.loads((tmp_path / "out" / "findingemo_face.json").read_text())
    assert broken not in [img["rel_path"] for img in data["images"]]
    assert len(data["provenance"]["data"]["left_out"]) == 1

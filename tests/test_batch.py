"""Batch machinery with a small fake scorer: discovery, manifests, pool faults, resume, summaries."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from test_batch_fakes import FAKES, make_clip

from moodsic_engine.batch import (
    EngineFns,
    apply_overrides,
    default_workers,
    discover,
    discover_many,
    run_batch,
)
from moodsic_engine.batch.report import JsonBatchReporter
from moodsic_engine.config import Config
from moodsic_engine.errors import ExpertUnavailable, InputError
from moodsic_engine.progress import JsonProgress

FNS = EngineFns(**FAKES)


@pytest.fixture(scope="module")
def clip_bank(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four distinct 3 s clips, generated once and copied where each test needs them."""
    d = tmp_path_factory.mktemp("bank")
    return [make_clip(d / f"c{i}.mp4", seconds=3.0, hue=i * 60) for i in range(4)]


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    score_log, load_log = tmp_path / "score.log", tmp_path / "load.log"
    monkeypatch.setenv("MOODSIC_FAKE_LOG", str(score_log))
    monkeypatch.setenv("MOODSIC_FAKE_LOADLOG", str(load_log))
    monkeypatch.delenv("MOODSIC_FAKE_SLEEP", raising=False)
    return score_log, load_log


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _tree(clip_bank: list[Path], root: Path) -> Path:
    """in/a/c0.mp4, in/a/c1.mp4, in/b/deep/c2.mp4, in/c3.mov plus a zero-byte and a truncated file."""
    for src, rel in zip(
        clip_bank, ["a/c0.mp4", "a/c1.mp4", "b/deep/c2.mp4", "c3.mov"], strict=True
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / rel)
    (root / "empty.mp4").write_bytes(b"")
    data = clip_bank[0].read_bytes()
    (root / "b" / "truncated.mp4").write_bytes(data[: len(data) // 3])
    return root


def test_discover_folder_mirrors_tree(tmp_path: Path, clip_bank: list[Path]) -> None:
    root = _tree(clip_bank, tmp_path / "in")
    (root / "notes.txt").write_text("not a video")
    (root / ".hidden").mkdir()
    shutil.copy(clip_bank[0], root / ".hidden" / "x.mp4")
    shutil.copy(clip_bank[0], root / "a" / "c0.mov")  # same stem as a/c0.mp4
    (root / "out").mkdir()
    shutil.copy(clip_bank[0], root / "out" / "old.scored.mp4")  # a previous batch's output
    clips = discover(root, exclude=(root / "out").resolve())
    rels = sorted(c.rel for c in clips)
    assert rels == ["a/c0.mov", "a/c0.mp4", "a/c1", "b/deep/c2", "b/truncated", "c3", "empty"]
    shutil.copy(clip_bank[0], root / "a" / "c1.scored.mp4")
    in_place = discover(root, exclude=root.resolve())  # -o the input folder itself
    assert "a/c1.scored" not in {c.rel for c in in_place} and "out/old.scored" not in {
        c.rel for c in in_place
    }
    assert {"a/c1", "b/deep/c2"} <= {c.rel for c in in_place}
    (root / "a" / "c1.scored.mp4").unlink()
    globbed = discover(str(root / "a" / "*.mp4"))
    assert sorted(c.rel for c in globbed) == ["c0", "c1"]
    recursive = discover(str(root / "**" / "c*.mp4"))
    assert sorted(c.rel for c in recursive) == ["a/c0", "a/c1", "b/deep/c2"]
    several = discover_many([root / "a" / "c1.mp4", root / "b", str(root / "a" / "c1.*")])
    assert sorted(c.rel for c in several) == ["a/c1", "b/deep/c2", "b/truncated"]
    with pytest.raises(InputError, match="no video files"):
        discover(root / "b" / "deep" / "nothing*.mp4")
    with pytest.raises(InputError, match="not found"):
        discover(tmp_path / "missing")


def test_manifests_carry_per_clip_options(tmp_path: Path, clip_bank: list[Path]) -> None:
    d = tmp_path / "m"
    d.mkdir()
    for i in range(3):
        shutil.copy(clip_bank[i], d / f"v{i}.mp4")
    (d / "list.csv").write_text(
        "path,seed,sample_fps,out,mix,experts\n"
        "v0.mp4,7,,first,true,grammar\n"
        "v1.mp4,,4,,,\n"
        f"{d / 'v2.mp4'},,,,false,\n"
    )
    clips = discover(d / "list.csv")
    assert [c.rel for c in clips] == ["first", "v1", "v2"]
    assert clips[0].overrides == {"seed": 7, "experts": "grammar"} and clips[0].mix is True
    cfg0 = apply_overrides(Config(), clips[0].overrides, "x")
    assert cfg0.seed == 7 and cfg0.experts == ("grammar",)
    assert apply_overrides(Config(), clips[1].overrides, "x").sample.sample_fps == 4.0
    assert clips[2].mix is False and clips[2].path == (d / "v2.mp4").resolve()

    (d / "list.jsonl").write_text(
        '{"path": "v0.mp4", "segment": {"min_segment_s": 3}}\n# a comment\n"v1.mp4"\n'
        '{"path": "v2.mp4", "config": {"segment": {"min_segment_s": 5}, "seed": 4}}\n'
    )
    jl = discover(d / "list.jsonl")
    assert apply_overrides(Config(), jl[0].overrides, "x").segment.min_segment_s == 3.0
    assert jl[1].rel == "v1"
    cfg2 = apply_overrides(Config(), jl[2].overrides, "x")  # options under a "config" key
    assert cfg2.segment.min_segment_s == 5.0 and cfg2.seed == 4

    (d / "bad.csv").write_text("path,segment.bogus\nv0.mp4,1\n")
    with pytest.raises(InputError, match=r"bad\.csv line 2.*bogus"):
        run_batch(d / "bad.csv", tmp_path / "o", fns=FNS)
    (d / "dup.jsonl").write_text('{"path": "v0.mp4"}\n{"path": "v0.mp4", "seed": 2}\n')
    with pytest.raises(InputError, match="same output"):
        discover(d / "dup.jsonl")


def test_bad_clips_reported_good_ones_scored(
    tmp_path: Path, clip_bank: list[Path], logs: tuple[Path, Path]
) -> None:
    score_log, load_log = logs
    root = _tree(clip_bank, tmp_path / "in")
    (root / "list.csv").write_text("path\n")  # not a video: ignored in folder mode
    out = tmp_path / "out"
    buf = io.StringIO()
    result = run_batch(
        root, out, workers=2, fns=FNS, reporter=JsonBatchReporter(JsonProgress(buf).emit)
    )
    assert result.exit_code == 3
    by_rel = {r["rel"]: r for r in result.records}
    assert {k for k, r in by_rel.items() if r["status"] == "ok"} == {
        "a/c0",
        "a/c1",
        "b/deep/c2",
        "c3",
    }
    assert "empty (0 bytes)" in by_rel["empty"]["error"]
    assert by_rel["b/truncated"]["status"] == "failed"
    assert by_rel["b/truncated"]["error"].startswith("cannot read truncated.mp4")
    for rel in ("a/c0", "a/c1", "b/deep/c2", "c3"):
        cue = json.loads((out / f"{rel}.moodsic.json").read_text())
        assert cue["schema"] == "moodsic.cue/1" and len(cue["segments"]) == 2
    assert not (out / "empty.moodsic.json").exists()
    # Each of the two workers loaded the experts and the library exactly once.
    loads = _lines(load_log)
    assert len([x for x in loads if x.startswith("experts")]) == 2
    assert len({x.split()[1] for x in loads}) == 2
    # ... with its share of the cores for numpy/torch thread pools.
    share = str(max(1, default_workers() // 2))
    assert [x.split()[2] for x in loads if x.startswith("experts")] == [share, share]
    assert len(_lines(score_log)) == 4
    # Summaries: one JSON line and one CSV row per clip, in input order.
    rows = [json.loads(x) for x in (out / "batch.jsonl").read_text().splitlines()]
    assert [r["input"] for r in rows] == [str(c.path) for c in discover(root)]
    assert all(r["moods"] == ["bright", "calm"] for r in rows if r["status"] == "ok")
    csv_lines = (out / "batch.csv").read_text().splitlines()
    assert csv_lines[0].startswith("input,status") and len(csv_lines) == 7
    sheet = (out / "contact_sheet.html").read_text()
    assert sheet.count("<svg") == 4 and "empty (0 bytes)" in sheet
    # JSON progress: clip events, progress with a rate and an ETA, done == total at the end.
    events = [json.loads(x) for x in buf.getvalue().splitlines()]
    prog = [e for e in events if e["event"] == "progress"]
    assert prog[-1]["done"] == prog[-1]["total"] == 6
    assert prog[-1]["clips_per_s"] > 0 and prog[-1]["eta_s"] == 0
    assert sum(e["event"] == "clip" for e in events) == 6


def test_hang_and_crash_are_isolated(
    tmp_path: Path, clip_bank: list[Path], logs: tuple[Path, Path]
) -> None:
    score_log, load_log = logs
    root = tmp_path / "in"
    root.mkdir()
    for i in range(3):
        shutil.copy(clip_bank[i], root / f"ok{i}.mp4")
    shutil.copy(clip_bank[3], root / "hang.mp4")
    shutil.copy(clip_bank[3], root / "crash.mp4")
    result = run_batch(root, tmp_path / "out", workers=2, timeout_s=4, fns=FNS)
    by_rel = {r["rel"]: r for r in result.records}
    assert [by_rel[f"ok{i}"]["status"] for i in range(3)] == ["ok"] * 3
    assert by_rel["hang"]["error"] == "timed out after 4 s"
    assert by_rel["hang"]["seconds"] >= 4
    assert "worker crashed" in by_rel["crash"]["error"] and "SIGKILL" in by_rel["crash"]["error"]
    assert result.exit_code == 3
    # Two workers at the start, one replacement after the crash and one after the timeout
    # (replacements are only started while clips remain, so there may be fewer).
    n_loads = len([x for x in _lines(load_log) if x.startswith("experts")])
    assert 2 <= n_loads <= 4
    assert sorted(Path(x.split()[1]).name for x in _lines(score_log)) == [
        "ok0.mp4",
        "ok1.mp4",
        "ok2.mp4",
    ]


def test_resume_by_content_and_config(
    tmp_path: Path, clip_bank: list[Path], logs: tuple[Path, Path]
) -> None:
    score_log, _ = logs
    root = tmp_path / "in"
    root.mkdir()
    for i in range(3):
        shutil.copy(clip_bank[i], root / f"v{i}.mp4")
    out = tmp_path / "out"
    first = run_batch(root, out, workers=1, fns=FNS)
    assert first.count("ok") == 3 and len(_lines(score_log)) == 3
    cue0 = (out / "v0.moodsic.json").read_bytes()

    again = run_batch(root, out, workers=1, fns=FNS)
    assert again.count("skipped") == 3 and len(_lines(score_log)) == 3
    assert again.records[0]["segments"] == 2  # the summary keeps the stored record

    shutil.copy(clip_bank[3], root / "v1.mp4")  # new content under the same name
    (out / "v2.moodsic.json").unlink()  # an output gone
    third = run_batch(root, out, workers=1, fns=FNS)
    assert [r["status"] for r in third.records] == ["skipped", "ok", "ok"]
    assert len(_lines(score_log)) == 5
    assert (out / "v0.moodsic.json").read_bytes() == cue0

    seeded = run_batch(root, out, workers=1, fns=FNS, config=Config(seed=3))
    assert seeded.count("ok") == 3 and len(_lines(score_log)) == 8
    assert (out / "v0.moodsic.json").read_bytes() != cue0

    forced = run_batch(root, out, workers=1, fns=FNS, config=Config(seed=3), resume=False)
    assert forced.count("ok") == 3 and len(_lines(score_log)) == 11


def test_mix_and_mux_outputs(
    tmp_path: Path, clip_bank: list[Path], logs: tuple[Path, Path]
) -> None:
    root = tmp_path / "in"
    (root / "s").mkdir(parents=True)
    shutil.copy(clip_bank[0], root / "s" / "a.mp4")
    shutil.copy(clip_bank[1], root / "b.mp4")
    out = tmp_path / "out"
    run_batch(root, out, workers=1, mux=True, fns=FNS)
    assert (out / "s" / "a.scored.mp4").stat().st_size == (root / "s" / "a.mp4").stat().st_size
    assert not (out / "s" / "a.mix.wav").exists()  # only asked for the mux
    assert not list(out.rglob(".*part*"))
    result = run_batch(root, out, workers=1, mix=True, mux=True, fns=FNS)
    assert result.count("ok") == 2  # asking for more outputs redoes the clips
    assert (out / "b.mix.wav").stat().st_size > 1000
    assert result.records[0]["outputs"]["mix"] == str(out / "b.mix.wav")


def test_missing_manifest_clip_and_fatal_load(
    tmp_path: Path, clip_bank: list[Path], logs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(clip_bank[0], d / "here.mp4")
    (d / "list.jsonl").write_text('{"path": "here.mp4"}\n{"path": "gone.mp4"}\n')
    result = run_batch(d / "list.jsonl", tmp_path / "out", workers=1, fns=FNS)
    assert [r["status"] for r in result.records] == ["ok", "failed"]
    assert result.records[1]["error"].startswith("video not found")
    monkeypatch.setenv("MOODSIC_FAKE_LOAD_FAIL", "1")
    with pytest.raises(ExpertUnavailable, match="fake expert needs weights"):
        run_batch(d / "list.jsonl", tmp_path / "out2", workers=2, fns=FNS)


def test_line_and_bar_reporters(
    tmp_path: Path, clip_bank: list[Path], logs: tuple[Path, Path]
) -> None:
    from rich.console import Console

    from moodsic_engine.batch.report import LineReporter, RichBatchReporter

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(clip_bank[0], root / "good.mp4")
    (root / "bad.mp4").write_bytes(b"")
    buf = io.StringIO()
    run_batch(root, tmp_path / "out", workers=1, fns=FNS, reporter=LineReporter(buf))
    lines = buf.getvalue().splitlines()
    assert lines[0] == "batch: 2 clips, 0 unchanged, 2 to score"
    assert any(x.startswith("[2/2] ") and "clips/s, ETA 00:00" in x for x in lines)
    assert any("bad failed: video file is empty" in x for x in lines)

    screen = io.StringIO()
    bar = RichBatchReporter(Console(file=screen, force_terminal=True, width=120))
    result = run_batch(root, tmp_path / "out2", workers=1, fns=FNS, reporter=bar)
    shown = screen.getvalue()
    assert "2/2" in shown and "clips/s" in shown and "1 failed" in shown
    assert result.count("ok") == 1


def test_one_batch_per_output_folder(
    tmp_path: Path, clip_bank: list[Path], logs: tuple[Path, Path]
) -> None:
    import subprocess
    import sys

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(clip_bank[0], root / "a.mp4")
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path; from moodsic_engine.batch import outdir_lock\n"
            f"with outdir_lock(Path({str(out)!r})):\n    print('held', flush=True); time.sleep(60)"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=r"another batch \(pid \d+\) is writing to"):
            run_batch(root, out, workers=1, fns=FNS)
    finally:
        holder.kill()
        holder.wait()
    assert run_batch(root, out, workers=1, fns=FNS).count("ok") == 1  # free again

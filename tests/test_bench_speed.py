"""`moodsic bench speed`: the generated clip, the report lines and their numbers, memory runs.

Speed targets are printed as ratios, never asserted: these tests check that the numbers
are measured and consistent, not that the machine is fast."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from media import FFPROBE

from moodsic_engine.bench import (
    decode_seconds,
    generate_clip,
    measure_rss,
    speed_report,
    time_pipeline,
)
from moodsic_engine.config import Config
from moodsic_engine.eval.stability import bench_clusters
from moodsic_engine.library import Library, Track, library_from_tracks


@pytest.fixture(scope="module")
def library() -> Library:
    """A small library with the bench's four mood clusters (the built-in one renders audio)."""
    corners = [(-0.4, -0.4), (-0.4, 0.4), (0.4, -0.4), (0.4, 0.4)]
    tracks = [
        Track(f"t{i}", f"T{i}", "A", "", 60.0, v + 0.05 * j, a)
        for i, ((v, a), j) in enumerate((c, j) for c in corners for j in range(2))
    ]
    return library_from_tracks(tracks, clusters=bench_clusters())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_clip(tmp_path_factory.mktemp("bench") / "c.mp4", 4.0, size="160x90")


def test_generated_clip_has_b_frames_and_the_asked_format(clip: Path) -> None:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height,r_frame_rate:frame=pict_type", "-of", "default=nw=1", str(clip)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "codec_name=h264" in out and "width=160" in out and "r_frame_rate=25/1" in out
    types = re.findall(r"pict_type=(\w)", out)
    assert len(types) == 100 and "B" in types


def test_time_pipeline_splits_stages(clip: Path, library: Library) -> None:
    from moodsic_engine.experts import load_experts

    cfg = Config(experts=("grammar",))
    t = time_pipeline(clip, load_experts(cfg), cfg, library)
    assert t.duration_s == pytest.approx(4.0) and t.samples == 8  # 0, 0.5, ... 3.5 s
    assert set(t.stages) == {
        "sample+decode", "expert grammar", "fuse", "stabilize", "segment", "match+cue",
    }  # fmt: skip
    assert all(v >= 0 for v in t.stages.values())
    assert sum(t.stages.values()) <= t.total_s * 1.5 + 0.05
    assert t.stages["expert grammar"] > 0
    assert decode_seconds(clip) > 0


def test_speed_report_lines(clip: Path, library: Library) -> None:
    lines = speed_report(clip, ("grammar",), library=library)
    text = "\n".join(lines)
    m = re.search(
        r"decode-all \(ffmpeg -threads 2\): ([\d.]+) s; pipeline / decode-all: ([\d.]+)", text
    )
    assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0
    total = float(re.search(r"pipeline \[grammar\]: ([\d.]+) s for 4.0 s", text).group(1))
    rtf = float(re.search(r"real-time factor: ([\d.]+)x", text).group(1))
    # the total is printed to 0.01 s and the factor to 0.1: compare within those roundings
    assert 4.0 / (total + 0.005) - 0.05 <= rtf <= 4.0 / max(total - 0.005, 1e-3) + 0.05
    assert "stages (s): sample+decode" in text and re.search(
        r"peak RSS \(this process\): \d+ MB", text
    )


def test_each_expert_alone_reports_unavailable_ones(
    clip: Path, tmp_path: Path, library: Library
) -> None:
    from moodsic_engine.bench import _alone

    lines = _alone("scene", clip, Config(), tmp_path, library, 1.0)
    assert lines[0].startswith("pipeline [scene alone]: unavailable:")
    lines = _alone("grammar", clip, Config(), tmp_path, library, 1.0)
    assert re.match(r"pipeline \[grammar alone\]: [\d.]+ s, [\d.]+x real time", lines[0])


@pytest.mark.slow
def test_memory_run_in_a_fresh_process(clip: Path) -> None:
    r = measure_rss(clip, ("grammar",))
    assert r["seconds"] > 0 and 20 < r["rss_mb"] < 4000
    assert r["process_peak_mb"] >= r["rss_mb"] - 1


def test_cli_bench_speed(clip: Path, library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import moodsic_engine.library
    from moodsic_engine.cli import app

    monkeypatch.setattr(moodsic_engine.library, "load_library", lambda *a, **k: library)

    res = CliRunner().invoke(app, ["bench", "speed", str(clip), "--experts", "grammar"])
    assert res.exit_code == 0, res.output
    assert "pipeline / decode-all" in res.output and "real-time factor" in res.output

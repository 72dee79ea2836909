"""Re-rolls from an earlier cue sheet: its analysis stands in for decoding the video again
when (and only when) it was made from the same file with the same analysis settings."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from media import FFMPEG, lavfi_video, run

from moodsic_engine import pipeline
from moodsic_engine.api import score_video_to_files
from moodsic_engine.config import Config

GRAMMAR = Config(experts=("grammar",))


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("reuse")
    video = d / "clip.mp4"  # three 8 s scenes in different moods
    run([FFMPEG, "-loglevel", "error", "-y", "-filter_complex",
         "testsrc2=s=160x90:r=25:d=8[a];color=c=0x102040:s=160x90:r=25:d=8[b];"
         "smptebars=s=160x90:r=25:d=8[c];[a][b][c]concat=n=3:v=1:a=0",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(video)])  # fmt: skip
    first = score_video_to_files(video, d / "first.json", config=GRAMMAR)
    assert len(first.cue.segments) >= 2
    return video, first.cue_path


def _no_analysis(*args: object, **kwargs: object) -> None:
    raise AssertionError("the video was analysed again")


def test_reroll_from_an_earlier_cue_matches_a_full_rescore(
    scored: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video, first = scored
    full = score_video_to_files(video, tmp_path / "full.json", config=GRAMMAR, reroll={1: 1})
    monkeypatch.setattr(pipeline, "analyze_video", _no_analysis)
    monkeypatch.setattr("moodsic_engine.experts.load_experts", _no_analysis)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reusing must not warn
        fast = score_video_to_files(
            video, tmp_path / "fast.json", config=GRAMMAR, reroll={1: 1}, reuse=first
        )
    assert fast.cue_path.read_bytes() == full.cue_path.read_bytes()
    before = pipeline.CueSheet.from_json(first)
    assert fast.cue.segments[1].track.id != before.segments[1].track.id
    assert [s.track.id for i, s in enumerate(fast.cue.segments) if i != 1] == [
        s.track.id for i, s in enumerate(before.segments) if i != 1
    ]


def test_changed_settings_or_another_file_analyse_again(
    scored: tuple[Path, Path], tmp_path: Path
) -> None:
    video, first = scored
    cfg = GRAMMAR.replace(**{"sample.sample_fps": 3.0})
    with pytest.warns(UserWarning, match=r"analysis settings differ \(sample\)"):
        out = score_video_to_files(video, tmp_path / "a.json", config=cfg, reuse=first)
    assert len(out.cue.samples) == 72  # 24 s at 3 samples/s: analysed again

    other = lavfi_video(tmp_path / "clip.mp4", seconds=24, size="160x90", source="smptebars")
    with pytest.warns(UserWarning, match="another video file"):
        out = score_video_to_files(other, tmp_path / "b.json", config=GRAMMAR, reuse=first)
    earlier = pipeline.CueSheet.from_json(first)
    assert out.cue.engine["video_fingerprint"] != earlier.engine["video_fingerprint"]
    assert out.cue.samples != earlier.samples  # the bars were analysed, not the old clip

    # Segment and matching settings act after the analysis: still reused, and applied.
    shutil.copy(first, tmp_path / "earlier.json")
    longer = GRAMMAR.replace(**{"segment.min_segment_s": 30.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = score_video_to_files(
            video, tmp_path / "c.json", config=longer, reuse=tmp_path / "earlier.json"
        )
    assert len(out.cue.segments) == 1

"""Media paths in cue sheets resolve from the cue sheet itself, and every export made from a
cue sheet links media that exists, whatever folder the command runs in."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import opentimelineio as otio
import pytest

from moodsic_engine.cue import CueSheet
from otio_adapter.testing import make_cue, write_video
from otio_adapter.timeline import url_path


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _cwd_relative_cue(root: Path, out: str, video: str) -> CueSheet:
    """A cue sheet as `moodsic score` holds it in memory when run in `root`: the video and
    the tracks named relative to the working folder."""
    cue = make_cue(root / out, duration_s=8.0, boundaries_s=(0.0, 4.0), track_seconds=10.0)
    write_video(root / video, 8.0, size="64x36")
    segments = [
        dataclasses.replace(s, track=dataclasses.replace(s.track, path=f"{out}/{s.track.path}"))
        for s in cue.segments
    ]
    return dataclasses.replace(
        cue, video=dataclasses.replace(cue.video, path=video), segments=tuple(segments)
    )


@pytest.mark.parametrize(
    ("video", "stored"),
    [
        ("moodsic-demo/demo.mp4", "demo.mp4"),
        ("footage/day 1/a%b#c.mp4", "../footage/day 1/a%b#c.mp4"),
    ],
)
def test_cue_records_paths_relative_to_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, video: str, stored: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / video).parent.mkdir(parents=True, exist_ok=True)
    cue = _cwd_relative_cue(tmp_path, "moodsic-demo", video)
    path = cue.to_json("moodsic-demo/demo.moodsic.json").resolve()
    data = json.loads(path.read_text())
    assert data["video"]["path"] == stored
    assert [s["track"]["path"] for s in data["segments"]] == ["track0.wav", "track1.wav"]
    # read from anywhere, the paths name the same files
    monkeypatch.chdir(tmp_path / "moodsic-demo")
    back = CueSheet.from_json("demo.moodsic.json")
    assert Path(back.video.path) == (tmp_path / video)
    assert all(Path(s.track.path).is_file() for s in back.segments)
    # and written again next to the first, byte for byte the same file
    assert back.to_json("again.moodsic.json").read_text() == path.read_text()


def test_media_far_from_the_cue_sheet_is_recorded_absolute(tmp_path: Path) -> None:
    """A library cache elsewhere on the disk stays where it is when the cue folder moves."""
    far = tmp_path / "cache" / "moodsic" / "library"
    far.mkdir(parents=True)
    cue = make_cue(far, write_audio=True)
    cue = dataclasses.replace(
        cue,
        segments=tuple(
            dataclasses.replace(s, track=dataclasses.replace(s.track, path=str(far / s.track.path)))
            for s in cue.segments
        ),
    )
    path = cue.to_json(tmp_path / "home" / "me" / "film" / "clip.moodsic.json")
    stored = [s["track"]["path"] for s in json.loads(path.read_text())["segments"]]
    assert stored == [str(far / f"track{i}.wav") for i in range(len(stored))]


def test_a_path_that_names_no_file_is_kept_as_written(tmp_path: Path) -> None:
    cue = make_cue(tmp_path, write_audio=False)
    cue = dataclasses.replace(cue, video=dataclasses.replace(cue.video, path="My Timeline"))
    path = cue.to_json(tmp_path / "sub" / "edit.moodsic.json")
    data = json.loads(path.read_text())
    assert data["video"]["path"] == "My Timeline"
    assert [s["track"]["path"] for s in data["segments"]][:2] == ["track0.wav", "track1.wav"]


@pytest.mark.slow
def test_every_export_of_a_demo_style_cue_links_existing_media(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`moodsic demo -o moodsic-demo`, then otioconvert from another folder: each export
    points at moodsic-demo/demo.mp4 (it pointed at moodsic-demo/moodsic-demo/demo.mp4)."""
    monkeypatch.chdir(tmp_path)
    cue = _cwd_relative_cue(tmp_path, "moodsic-demo", "moodsic-demo/demo.mp4")
    cue.to_json("moodsic-demo/demo.moodsic.json")
    video = (tmp_path / "moodsic-demo" / "demo.mp4").resolve()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    src = tmp_path / "moodsic-demo" / "demo.moodsic.json"
    for suffix in ("otio", "otioz", "fcpxml"):
        out = elsewhere / f"demo.{suffix}"
        run = subprocess.run(
            [_bin("otioconvert"), "-i", str(src), "-o", str(out)],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        if suffix == "otioz":
            with zipfile.ZipFile(out) as z:
                names = z.namelist()
            assert "media/demo.mp4" in names and "media/track0.wav" in names
            continue
        if suffix == "fcpxml":
            text = out.read_text()
            assert video.as_uri() in text
            continue
        tl = otio.adapters.read_from_file(str(out))
        urls = [c.media_reference.target_url for c in tl.find_clips()]
        assert urls[0] == video.as_uri()
        assert all(u.startswith("file:///") and Path(url_path(u)).is_file() for u in urls)

"""Source times on a media file's own timecode clock (an EDL's source in/out) map to the
right frames of the file, whatever its rate."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from otio_adapter.edit_track import edit_clips
from otio_adapter.media import media_timecode, media_timecode_s

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def _camera_file(path: Path, rate: str, timecode: str, seconds: float = 3.0) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"color=c=gray:s=64x36:r={rate}:d={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-timecode", timecode, str(path)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return path


def _edl_style_clip(path: Path, start: int, frames: int, rate: float) -> otio.schema.Timeline:
    """One clip whose source range is on the media's timecode clock, with no available
    range (what OTIO's CMX 3600 reader gives)."""
    clip = otio.schema.Clip(
        name=path.name,
        media_reference=otio.schema.ExternalReference(target_url=path.as_uri()),
        source_range=TR(RT(start, rate), RT(frames, rate)),
    )
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.append(clip)
    return otio.schema.Timeline(tracks=[track])


@pytest.mark.parametrize(
    ("rate", "timecode", "frames"),
    [
        ("24000/1001", "19:00:00:00", 19 * 3600 * 24),
        ("25", "10:00:00:12", 10 * 3600 * 25 + 12),
        ("30000/1001", "01:00:00;00", 107892),  # drop-frame: 01:00:00;00 is frame 107892
        ("10", "00:00:05:03", 53),  # a rate OTIO's timecode functions refuse
    ],
)
def test_media_timecode_is_the_frame_its_label_names(
    tmp_path: Path, rate: str, timecode: str, frames: int
) -> None:
    path = _camera_file(tmp_path / "cam.mov", rate, timecode)
    assert media_timecode(path) == (frames, Fraction(rate))
    assert media_timecode_s(path) == pytest.approx(float(Fraction(frames) / Fraction(rate)))


def test_an_edl_at_24_on_a_23976_camera_file_counts_frames_not_seconds(tmp_path: Path) -> None:
    # 19:00:01:00 at 24 in the EDL is the 24th frame of a 23.976 file starting at 19:00:00:00
    # (1.001 s in); a difference in seconds would put it 69.4 s before the file's start
    path = _camera_file(tmp_path / "A001.mov", "24000/1001", "19:00:00:00")
    start = (19 * 3600 + 1) * 24
    clips, _, _ = edit_clips(_edl_style_clip(path, start, 48, 24.0))
    (clip,) = clips
    assert clip.problem == ""
    assert clip.src_start_s == pytest.approx(24 * 1001 / 24000)
    assert clip.src_end_s == pytest.approx(72 * 1001 / 24000)


def test_without_a_timecode_the_source_range_is_the_files_own_time(tmp_path: Path) -> None:
    path = tmp_path / "plain.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=64x36:r=25:d=3",
         "-c:v", "libx264", "-preset", "ultrafast", str(path)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert media_timecode(path) is None
    (clip,), _, _ = edit_clips(_edl_style_clip(path, 25, 25, 25.0))
    assert (clip.src_start_s, clip.src_end_s) == (1.0, 2.0)

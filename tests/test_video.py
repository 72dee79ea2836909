import struct

import numpy as np
import pytest
from media import FFMPEG, frame_pts, lavfi_video, pipe_video, run, scene_frames

from moodsic_engine.config import SampleConfig
from moodsic_engine.errors import VideoError
from moodsic_engine.video import probe_video, sample_video


def collect(path, cfg=None, **kw):
    sampler = sample_video(path, cfg or SampleConfig(), **kw)
    batches = list(sampler)
    times = np.concatenate([b.times for b in batches])
    frames = np.concatenate([b.frames for b in batches])
    return sampler, times, frames


def test_sampler_rate_size_and_timestamps(tmp_path):
    path = lavfi_video(tmp_path / "a.mp4", seconds=6, size="320x180", extra=["-bf", "2"])
    sampler, times, frames = collect(path)
    assert sampler.skipping  # 25 fps >> 2 samples/s: B-frames skipped
    assert frames.shape[1:] == (224, 398, 3) and frames.dtype == np.uint8
    assert len(times) == 12  # 0, 0.5, ... 5.5
    targets = np.arange(12) / 2.0
    # nearest decoded frame: within two frame intervals of each target
    assert np.all(np.abs(times - targets) <= 2 / 25 + 1e-9)
    pts = frame_pts(path)
    assert all(np.min(np.abs(pts - t)) < 1e-6 for t in times)  # true presentation timestamps
    assert sampler.end_s == pytest.approx(6.0)


def test_sampler_on_variable_frame_rate(tmp_path):
    # 2 s at 25 fps, then 4 s at 5 fps, as real VFR timestamps
    src = lavfi_video(tmp_path / "cfr.mp4", seconds=3.6, size="160x90")
    vfr = tmp_path / "vfr.mkv"
    run([
        FFMPEG, "-loglevel", "error", "-y", "-i", str(src),
        "-vf", "setpts='if(lt(N,50),N/25,2+(N-50)/5)/TB'", "-fps_mode", "vfr",
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", str(vfr),
    ])  # fmt: skip
    pts = frame_pts(vfr)
    assert np.diff(pts)[:10].max() < 0.05 and np.diff(pts)[-5:].min() > 0.15
    _, times, _ = collect(vfr, SampleConfig(sample_fps=4.0))
    assert all(np.min(np.abs(pts - t)) < 1e-6 for t in times)
    assert np.all(np.diff(times) > 0)
    # in the 5 fps part a 4 Hz sampler takes the nearest real frames, never a frame twice
    late = times[times > 2.1]
    assert len(late) == len(np.unique(late))
    assert np.all(np.abs(late * 5 - np.round(late * 5)) < 1e-6)


def test_cut_detector_finds_known_cuts(tmp_path):
    cut_frames = [50, 130, 185, 260]  # 2.0, 5.2, 7.4, 10.4 s at 25 fps
    path = pipe_video(tmp_path / "cuts.mp4", scene_frames(cut_frames), 300, bframes=2)
    sampler, _, _ = collect(path)
    cuts = np.array(sampler.cuts)
    truth = np.array(cut_frames) / 25.0
    assert len(cuts) == len(truth), cuts
    # within one decoded-frame interval (B-frames skipped: at most 3 frames apart)
    assert np.all(np.abs(cuts - truth) <= 3 / 25 + 1e-6)


def test_no_cuts_in_a_single_moving_shot(tmp_path):
    path = pipe_video(tmp_path / "pan.mp4", scene_frames([]), 150)
    sampler, _, _ = collect(path)
    assert sampler.cuts == ()


def test_source_range(tmp_path):
    path = lavfi_video(tmp_path / "a.mp4", seconds=8)
    _, times, _ = collect(path, start_s=3.0, end_s=6.0)
    assert times[0] == pytest.approx(3.0, abs=0.05) and times[-1] < 6.0
    assert len(times) == 6


def test_rotation_metadata_is_applied(tmp_path):
    src = lavfi_video(tmp_path / "src.mp4", seconds=2, size="160x90")
    rot = tmp_path / "rot.mp4"
    run(
        [
            FFMPEG,
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(src),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
            str(rot),
        ]
    )
    info = probe_video(rot)
    assert info.rotation in (90, 270) and (info.width, info.height) == (90, 160)
    _, _, frames = collect(rot)
    assert frames.shape[1] > frames.shape[2]  # portrait after rotation


def test_memory_is_bounded_by_batches(tmp_path):
    path = lavfi_video(tmp_path / "a.mp4", seconds=10)
    sizes = [len(b) for b in sample_video(path, SampleConfig(), batch_size=4)]
    assert max(sizes) == 4 and sum(sizes) == 20


def _mp4_with_zero_timescale(tmp_path):
    src = lavfi_video(tmp_path / "z.mp4", seconds=3, extra=["-movflags", "+faststart"])
    data = bytearray(src.read_bytes())
    i = data.find(b"mdhd")
    off = i + 8 + (16 if data[i + 4] == 1 else 8)
    data[off : off + 4] = struct.pack(">I", 0)
    bad = tmp_path / "zero-fps.mp4"
    bad.write_bytes(bytes(data))
    return bad


def make_bad_inputs(tmp_path):
    """name -> (path, expected message fragment)."""
    good = lavfi_video(tmp_path / "good.mp4", seconds=4)
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "folder.mp4").mkdir()
    audio = tmp_path / "audio.m4a"
    run(
        [
            FFMPEG,
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=d=2",
            "-c:a",
            "aac",
            str(audio),
        ]
    )
    return {
        "missing": (tmp_path / "nope.mp4", "not found"),
        "directory": (tmp_path / "folder.mp4", "directory"),
        "text": (tmp_path / "text.mp4", "not a readable video"),
        "empty": (tmp_path / "empty.mp4", "empty"),
        "truncated": (tmp_path / "truncated.mp4", "not a readable video"),
        "audio-only": (audio, "no video stream"),
        "zero-fps": (_mp4_with_zero_timescale(tmp_path), "frame-rate"),
    }


@pytest.mark.parametrize(
    "name", ["missing", "directory", "text", "empty", "truncated", "audio-only", "zero-fps"]
)
def test_bad_inputs_raise_one_clear_video_error(tmp_path, name):
    path, fragment = make_bad_inputs(tmp_path)[name]
    with pytest.raises(VideoError, match=fragment) as exc:
        list(sample_video(path))
    assert "\n" not in str(exc.value)


def test_truncated_tail_of_faststart_file_is_reported(tmp_path):
    good = lavfi_video(tmp_path / "fs.mp4", seconds=20, extra=["-movflags", "+faststart"])
    cut = tmp_path / "fs-cut.mp4"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.4)])
    with pytest.raises(VideoError, match="truncated|readable"):
        list(sample_video(cut))


_BLOCKING_PROBE = r"""
import resource, sys
from moodsic_engine.config import SampleConfig
from moodsic_engine.video import sample_video
cfg = SampleConfig(decoder_threads=int(sys.argv[2]))
list(sample_video(sys.argv[1], cfg))  # warm-up: codec code paged in, file in the page cache
before = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
for _ in range(3):
    list(sample_video(sys.argv[1], cfg))
print(resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw - before)
"""


def _blocking_waits(path, threads: int) -> int:
    """Times the sampling thread blocked over three passes, in a fresh single-threaded
    interpreter: starting and joining a helper thread (FFmpeg's or ours) blocks it."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", _BLOCKING_PROBE, str(path), str(threads)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return int(out.stdout.split()[-1])


def test_a_one_thread_budget_starts_no_threads(tmp_path):
    # A batch worker on its share of the cores gets a budget of one thread. PyAV's defaults
    # start a thread pool per opened decoder (the rotation probe) and per converted frame
    # (swscale's automatic thread count): about 100 blocking joins per clip; none may remain.
    src = lavfi_video(tmp_path / "src.mp4", seconds=6, size="320x180")
    rot = tmp_path / "rot.mp4"
    run([FFMPEG, "-loglevel", "error", "-y", "-i", str(src), "-c", "copy",
         "-metadata:s:v:0", "rotate=90", str(rot)])  # fmt: skip
    assert probe_video(rot).rotation in (90, 270)  # the probe decodes a frame
    assert _blocking_waits(rot, threads=1) <= 3
    # With a budget of two, frames are handed to the conversion helper thread and waited
    # for: the probe sees that blocking, so it measures what it should.
    assert _blocking_waits(rot, threads=2) > 3


def test_sparse_sampling_of_hevc_and_of_a_stream_without_timestamps(tmp_path):
    # HEVC: dropping every B-frame (fine for H.264) stops its decoder after two frames, which
    # read as a truncated file. Raw H.264 has no timestamps: time is counted in decoded
    # frames, so nothing may be skipped.
    hevc = lavfi_video(tmp_path / "h.mp4", seconds=6, size="320x180", extra=["-c:v", "libx265"])
    raw = tmp_path / "r.h264"
    run([FFMPEG, "-loglevel", "error", "-y", "-i", str(hevc), "-c:v", "libx264",
         "-preset", "ultrafast", "-f", "h264", str(raw)])  # fmt: skip
    for path, skipped in ((hevc, True), (raw, False)):
        sampler, times, frames = collect(path)
        assert sampler.skipping is skipped
        assert sampler.end_s == pytest.approx(6.0)
        assert len(times) == 12 and np.all(np.abs(times - np.arange(12) / 2.0) <= 2 / 25 + 1e-9)
        assert (sampler.decoded < 120) if skipped else (sampler.decoded == 150)


def test_ten_bit_video_has_no_false_cuts(tmp_path):
    # 10-bit planes hold 16-bit samples: read as bytes, the low byte of a slow fade wraps
    # every few frames and looked like three cuts (HDR phone footage is 10-bit).
    path = tmp_path / "fade10.mp4"
    run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "color=c=white:s=320x180:r=25:d=8", "-vf", "fade=in:0:200", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", str(path)])  # fmt: skip
    sampler, times, _ = collect(path)
    assert sampler.cuts == ()
    assert len(times) == 16 and sampler.end_s == pytest.approx(8.0)

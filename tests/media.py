"""Generated test media (no downloads): videos through an ffmpeg pipe or lavfi, audio with numpy."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"


def run(cmd: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(cmd), check=True, capture_output=True)


def lavfi_video(
    path: Path,
    *,
    seconds: float = 4.0,
    size: str = "160x90",
    rate: str = "25",
    source: str = "testsrc2",
    audio: bool = False,
    extra: Sequence[str] = (),
) -> Path:
    cmd = [
        FFMPEG,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"{source}=s={size}:r={rate}:d={seconds}",
    ]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=f=330:d={seconds}", "-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra, str(path)]
    run(cmd)
    return path


def pipe_video(
    path: Path,
    frame_fn: Callable[[int], np.ndarray],
    n_frames: int,
    *,
    rate: str = "25",
    bframes: int = 2,
    extra: Sequence[str] = (),
) -> Path:
    """Encode frames from `frame_fn(k) -> HxWx3 uint8` as H.264 (with B-frames)."""
    first = frame_fn(0)
    h, w = first.shape[:2]
    cmd = [
        FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", rate, "-i", "-",
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", str(bframes), "-pix_fmt", "yuv420p",
        *extra, str(path),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(first.tobytes())
    for k in range(1, n_frames):
        proc.stdin.write(frame_fn(k).tobytes())
    proc.stdin.close()
    assert proc.wait() == 0
    return path


def scene_frames(
    cut_frames: Sequence[int], size: tuple[int, int] = (96, 160), seed: int = 0
) -> Callable[[int], np.ndarray]:
    """A frame function whose content changes completely at each cut frame, with gentle motion inside shots."""
    rng = np.random.default_rng(seed)
    n_shots = len(cut_frames) + 1
    h, w = size
    textures = [
        (rng.random((h // 8, w // 8, 3)) * rng.random(3) * 255)
        .astype(np.uint8)
        .repeat(8, 0)
        .repeat(8, 1)
        for _ in range(n_shots)
    ]

    def frame(k: int) -> np.ndarray:
        shot = int(np.searchsorted(np.asarray(cut_frames), k, side="right"))
        return np.roll(textures[shot], k % w, axis=1)

    return frame


def frame_pts(path: Path) -> np.ndarray:
    out = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return np.array(
        sorted(float(x.strip().strip(",")) for x in out.split() if x.strip().strip(","))
    )


def stream_types(path: Path) -> list[str]:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [x.strip().strip(",") for x in out.split() if x.strip()]


def media_duration(path: Path, stream: str = "a:0") -> float:
    out = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "stream=duration",
            "-of",
            "csv=p=0",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip().strip(","))

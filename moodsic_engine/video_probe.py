"""Opening and probing media with PyAV: the header facts of a video (size as displayed,
exact frame rate, duration, rotation, audio), its footage stream, and the working frame size
frames are sampled at. Still images and cover art are told apart from footage here."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .config import SampleConfig
from .errors import VideoError


class StillImageError(VideoError):
    """The file is a still image: no video on its own, a picture when shown for a span."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int  # as displayed (after rotation)
    height: int
    fps: Fraction
    duration_s: float  # declared; the sampler measures the real one
    frames: int  # declared or derived from duration
    rotation: int  # degrees the stored picture is turned for display
    has_audio: bool
    start_time_s: float = 0.0


def open_media(path: str | os.PathLike[str]):  # noqa: ANN201 - av container
    """Open a local media file with PyAV, or raise VideoError with one line."""
    import av

    p = Path(path)
    if not p.exists():
        raise VideoError(f"video not found: {p}")
    if p.is_dir():
        raise VideoError(f"expected a video file but {p} is a directory")
    if p.stat().st_size == 0:
        raise VideoError(f"video file is empty (0 bytes): {p}")
    try:
        # An absolute path, so FFmpeg never reads a name like "Interview: part 1.mp4" or
        # "http:x.mp4" as a protocol; and only local files, also for playlists it may follow.
        return av.open(
            os.path.abspath(p),
            mode="r",
            metadata_errors="ignore",
            container_options={"protocol_whitelist": "file"},
        )
    except av.FFmpegError as exc:
        raise VideoError(
            f"cannot read {p.name}: not a readable video ({first_line(exc)})"
        ) from None
    except (OSError, UnicodeError, ValueError) as exc:
        raise VideoError(f"cannot read {p.name}: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    """An exception's first line (at most 200 characters), for one-line errors."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def video_stream(container, name: str):  # noqa: ANN001, ANN202
    """The container's first footage stream (not cover art); StillImageError for a lone
    picture, VideoError when there is no video at all."""
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):  # how FFmpeg opens a lone PNG/JPEG/...
        raise StillImageError(f"{name} is a still image ({fmt.removesuffix('_pipe')}), not a video")
    # Cover art in a music file (or an MP4) is a one-picture "video" stream: not footage.
    footage = [s for s in container.streams.video if not int(s.disposition) & _ATTACHED_PIC]
    if not footage:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        what = ", ".join(kinds) + (" (cover art)" if container.streams.video else "")
        raise VideoError(f"{name} has no video stream (streams: {what})")
    return footage[0]


_ATTACHED_PIC = 0x0400  # AV_DISPOSITION_ATTACHED_PIC


def _rate(stream) -> Fraction | None:  # noqa: ANN001
    for attr in ("average_rate", "guessed_rate", "base_rate"):
        try:
            rate = getattr(stream, attr)
        except Exception:  # noqa: BLE001 - PyAV raises on some broken headers
            rate = None
        if rate is not None and rate.numerator > 0 and rate.denominator > 0:
            fr = Fraction(rate.numerator, rate.denominator)
            if 1 <= fr <= 1000:  # below 1 fps is a broken timescale, not footage
                return fr
    return None


def _info(container, path: str, cfg: SampleConfig) -> VideoInfo:  # noqa: ANN001
    name = Path(path).name
    stream = video_stream(container, name)
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0:
        raise VideoError(f"{name}: video stream has no frame size")
    if width * height > cfg.max_pixels:
        raise VideoError(
            f"{name}: declared frame size {width}x{height} is too large to decode safely"
        )
    fps = _rate(stream)
    if fps is None:
        raise VideoError(f"{name}: missing or zero frame-rate metadata")
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    if duration <= 0 and container.duration is not None:
        duration = container.duration / 1_000_000
    if not math.isfinite(duration) or duration < 0:
        duration = 0.0
    frames = int(stream.frames or 0) or int(round(duration * fps))
    rotation = _first_frame_rotation(container, stream)
    if rotation % 180:
        width, height = height, width
    start = 0.0
    if stream.start_time is not None and stream.time_base is not None:
        start = max(0.0, float(stream.start_time * stream.time_base))
    return VideoInfo(
        path=str(path),
        width=width,
        height=height,
        fps=fps,
        duration_s=duration,
        frames=frames,
        rotation=rotation,
        has_audio=bool(container.streams.audio),
        start_time_s=start,
    )


def _first_frame_rotation(container, stream) -> int:  # noqa: ANN001
    """Display rotation (degrees counter-clockwise) read from the first decoded frame."""
    import av

    try:
        # One frame: decoder threads would only cost their start-up (FFmpeg's automatic
        # count starts a pool per open) and make the decoder read ahead to fill them.
        stream.codec_context.thread_count = 1
        for frame in container.decode(stream):
            return int(round(float(getattr(frame, "rotation", 0) or 0))) % 360
    except (av.FFmpegError, ValueError, OSError):
        return 0
    return 0


def probe_video(path: str | os.PathLike[str], cfg: SampleConfig | None = None) -> VideoInfo:
    """Read a video's header facts, or raise VideoError with one line saying what is wrong."""
    cfg = cfg or SampleConfig()
    container = open_media(path)
    try:
        return _info(container, str(path), cfg)
    finally:
        container.close()


def working_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Size with the short side at `short_side`, aspect kept, even dimensions.

    The long side is capped at 8x `short_side`: a 2x8000 stream would otherwise become
    224x896000 frames (hundreds of MB each)."""
    scale = min(short_side / min(width, height), 8 * short_side / max(width, height))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h

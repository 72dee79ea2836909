"""Sampling a still image shown for a span of an edit.

Editors put photos, title cards and Photoshop files on the timeline; they are on screen for
as long as the edit shows them. A still has no duration of its own, so it is sampled only
when the caller names the span (`end_s`): the one picture, decoded once, is handed to the
experts at every sample time of the span, with no motion and no cuts. Asked for without a
span (``moodsic score photo.png``), a still is still refused as not a video.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from .config import SampleConfig
from .detail import MIN_DETAIL_RATIO, ArrayDetail
from .errors import VideoError
from .experts.base import FrameBatch

STILL_FPS = Fraction(25)  # a still has no rate; this only counts its "frames"
# A still's full-resolution picture is kept (for small faces' crops) at most this large: a
# 24-megapixel photo would otherwise hold 72 MB for the whole span.
DETAIL_SHORT_SIDE = 2160


def decode_still(
    path: str | os.PathLike[str], cfg: SampleConfig, *, full: list[np.ndarray] | None = None
) -> np.ndarray:
    """The picture of a still image at working size: [H, W, 3] uint8 RGB. With `full` (a
    list), the picture at up to DETAIL_SHORT_SIDE is appended to it as well (for crops that
    need more pixels than the working size; see moodsic_engine.detail)."""
    import av

    from .video import open_media, working_size

    name = Path(path).name
    container = open_media(path)
    try:
        stream = container.streams.video[0] if container.streams.video else None
        if stream is None:
            raise VideoError(f"{name}: no picture in this image file")
        ctx = stream.codec_context
        if int(ctx.width or 0) * int(ctx.height or 0) > cfg.max_pixels:
            raise VideoError(f"{name}: image {ctx.width}x{ctx.height} is too large to decode")
        stream.codec_context.thread_count = 1
        for frame in container.decode(stream):
            width, height = working_size(frame.width, frame.height, cfg.short_side)
            if full is not None and min(frame.width, frame.height) >= MIN_DETAIL_RATIO * min(
                width, height
            ):
                fw, fh = working_size(
                    frame.width, frame.height, min(DETAIL_SHORT_SIDE, frame.width, frame.height)
                )
                full.append(frame.reformat(width=fw, height=fh, format="rgb24").to_ndarray())
            return frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    except av.FFmpegError as exc:
        raise VideoError(f"{name}: cannot decode this image ({exc})") from None
    finally:
        container.close()
    raise VideoError(f"{name}: no decodable picture in this image file")


class StillSampler:
    """The sampler interface of `moodsic_engine.video.VideoSampler` over a still shown from
    `start_s` to `end_s`: the same picture at every sample time, motion 0, no cuts."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        cfg: SampleConfig,
        *,
        start_s: float,
        end_s: float,
        batch_size: int = 16,
        detail: bool = False,
    ) -> None:
        from .video import VideoInfo

        if not math.isfinite(end_s) or end_s <= start_s:
            raise VideoError(f"{Path(path).name}: a still needs a span to be shown for")
        if cfg.sample_fps <= 0 or not math.isfinite(cfg.sample_fps):
            raise VideoError("sample_fps must be a positive number")
        self.path = str(path)
        self.cfg = cfg
        self.start_s = max(0.0, float(start_s))
        self.end_limit = float(end_s)
        self.batch_size = max(1, int(batch_size))
        full: list[np.ndarray] | None = [] if detail else None
        self.picture = decode_still(path, cfg, full=full)
        height, width = self.picture.shape[:2]
        # one picture for the whole span: every sample shares the same detail frame
        self.detail = ArrayDetail(full[0], (width, height)) if full else None
        self.info = VideoInfo(
            path=self.path,
            width=width,
            height=height,
            fps=STILL_FPS,
            duration_s=self.end_limit,
            frames=max(1, round(Fraction(self.end_limit) * STILL_FPS)),
            rotation=0,
            has_audio=False,
        )
        self.cuts: tuple[float, ...] = ()
        self.end_s: float | None = None
        self.decoded = 0
        self.skipping = False

    def expected_samples(self) -> int:
        span = max(0.0, self.end_limit - self.start_s)
        return max(1, int(math.ceil(span * self.cfg.sample_fps - 1e-9)))

    def __iter__(self) -> Iterator[FrameBatch]:
        n = self.expected_samples()
        times = self.start_s + np.arange(n, dtype=np.float64) / self.cfg.sample_fps
        for first in range(0, n, self.batch_size):
            chunk = times[first : first + self.batch_size]
            yield FrameBatch(
                frames=np.repeat(self.picture[None], len(chunk), axis=0),
                times=chunk,
                motion=np.zeros(len(chunk)),
                index0=first,
                detail=(self.detail,) * len(chunk) if self.detail is not None else None,
            )
        self.decoded = 1
        self.end_s = self.end_limit

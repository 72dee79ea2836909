"""SAMPLE: a streaming frame sampler with shot-cut detection (PyAV).

Frames are decoded once, in order, and only a couple are held at a time: memory does not
grow with video length. When the sample rate is far below the frame rate the decoder is
told to skip non-reference frames (usually most B-frames), and each sample takes the nearest decoded
frame with its true presentation timestamp. Every decoded frame is also reduced to a
thumbnail for cut detection and motion activity, so cuts are found to within one decoded
frame interval.

Probing (`probe_video`, `open_media`, `VideoInfo`) is in video_probe.py and the frame-change
measures in frame_change.py; both are re-exported here.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import SampleConfig
from .detail import MIN_DETAIL_RATIO, DecodedDetail, detail_batch_size
from .errors import VideoError
from .experts.base import FrameBatch
from .frame_change import THUMB_H, THUMB_W, frame_change, thumb_stats
from .video_probe import (
    StillImageError,
    VideoInfo,
    first_line,
    open_media,
    probe_video,
    video_stream,
    working_size,
)

if TYPE_CHECKING:
    from .still import StillSampler

__all__ = [
    "THUMB_H",
    "THUMB_W",
    "StillImageError",
    "VideoInfo",
    "VideoSampler",
    "open_media",
    "probe_video",
    "sample_video",
    "working_size",
]

# A decode that ends this far short of the declared duration means a damaged file.
_TRUNCATION_SLACK = 0.9


# Which frames the decoder may drop when sampling sparsely. Non-reference frames are always
# safe (nothing is predicted from them). H.264 may drop every B-frame (measured on x264's
# B-pyramid: the kept frames decode bit-exact, 148 of 500 decoded against 263 with NONREF);
# HEVC may not (dropping every B-frame of an x265 file stopped decoding after two frames).
_SKIP_MODE = {"h264": "BIDIR"}


class _InlineExecutor:
    """The ThreadPoolExecutor calls the sampler uses, run on the calling thread."""

    def submit(self, fn, *args):  # noqa: ANN001, ANN002, ANN202
        done: Future[np.ndarray] = Future()
        done.set_result(fn(*args))
        return done

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:  # noqa: ARG002
        return None


class VideoSampler:
    """Iterate to get FrameBatch objects; afterwards `cuts`, `end_s` and `decoded` are set."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        cfg: SampleConfig,
        *,
        start_s: float = 0.0,
        end_s: float | None = None,
        batch_size: int = 16,
        detail: bool = False,
    ) -> None:
        self.path = str(path)
        self.cfg = cfg
        self.start_s = max(0.0, float(start_s))
        self.end_limit = end_s
        self.batch_size = max(1, int(batch_size))
        # Hand each sample's decoded frame on as FrameBatch.detail (moodsic_engine.detail)
        # when it is larger than the working frame, for crops that need real pixels.
        self.detail = bool(detail)
        self.info = probe_video(path, cfg)
        if cfg.sample_fps <= 0 or not math.isfinite(cfg.sample_fps):
            raise VideoError("sample_fps must be a positive number")
        if not 1 <= cfg.short_side <= 4320:  # frames are held in batches at this size
            raise VideoError("short_side must be between 1 and 4320 pixels")
        self.cuts: tuple[float, ...] = ()
        self.end_s: float | None = None  # measured end of the last decoded frame
        self.decoded = 0
        self.skipping = False

    def expected_samples(self) -> int:
        end = self.end_limit if self.end_limit is not None else self.info.duration_s
        span = max(0.0, end - self.start_s)
        return max(1, int(math.ceil(span * self.cfg.sample_fps - 1e-9)))  # targets k/fps < end

    def __iter__(self) -> Iterator[FrameBatch]:
        import av

        cfg = self.cfg
        name = Path(self.path).name
        container = open_media(self.path)
        # With a budget of two or more threads, sampled frames are converted on a helper thread
        # while decoding goes on; with one (e.g. each worker of a full batch pool), inline.
        converter: ThreadPoolExecutor | _InlineExecutor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="moodsic-convert")
            if cfg.decoder_threads >= 2
            else _InlineExecutor()
        )
        try:
            stream = video_stream(container, name)
            stream.thread_type = "AUTO"
            fps = self.info.fps
            codec_name = stream.codec_context.name
            self.skipping = bool(cfg.skip_frames and float(fps) >= cfg.skip_ratio * cfg.sample_fps)
            threads = max(1, int(cfg.decoder_threads))
            if self.skipping:
                # Skipping starts at the second frame (below), once timestamps are known to
                # exist. Without B-frames the I/P chain decodes in order anyway: frame threads only add
                # latency (measured 0.38 s vs 0.30 s for a minute of 360p), and the core they
                # would take converts the sampled frames on the thread below instead.
                threads = 1
            stream.codec_context.thread_count = threads
            if self.start_s > 0 and stream.time_base is not None:
                container.seek(int(self.start_s / stream.time_base), stream=stream, backward=True)
            rot = self.info.rotation
            stored_w, stored_h = (
                (self.info.height, self.info.width)
                if rot % 180
                else (self.info.width, self.info.height)
            )
            work_w, work_h = working_size(stored_w, stored_h, cfg.short_side)
            keep_detail = self.detail and min(stored_w, stored_h) >= MIN_DETAIL_RATIO * min(
                work_w, work_h
            )
            batch_size = (
                detail_batch_size(self.batch_size, stored_w, stored_h)
                if keep_detail
                else self.batch_size
            )
            work_display = (work_h, work_w) if rot % 180 else (work_w, work_h)
            details: list[DecodedDetail] = []
            step = 1.0 / cfg.sample_fps
            frame_dur = float(1 / fps)
            origin = self.info.start_time_s

            next_target = self.start_s
            prev = None  # (frame, t)
            last_used_t: float | None = None
            prev_luma = prev_hist = None
            motions: list[float] = []
            cut_times: list[float] = []
            recent_scores: list[float] = []
            frames_buf: list[Future[np.ndarray]] = []
            times_buf: list[float] = []
            motion_buf: list[float] = []
            index = 0
            last_t = None

            # One scaler for the whole clip, single-threaded: PyAV's default makes a new
            # swscale context per frame with a thread per core (measured 1.7 ms per 224p
            # frame against 0.3 ms), and spawns threads a batch worker has no cores for.
            # Only one thread converts at a time (the helper or this one), so it is shared.
            reformatter = av.video.reformatter.VideoReformatter()

            def convert(frame) -> np.ndarray:  # noqa: ANN001
                # area averaging: a proper downscale, and cheaper than the bicubic default
                img = reformatter.reformat(
                    frame, width=work_w, height=work_h, format="rgb24", interpolation="AREA",
                    threads=1,
                ).to_ndarray()  # fmt: skip
                return np.ascontiguousarray(np.rot90(img, k=rot // 90)) if rot else img

            def take(frame, t: float) -> None:  # noqa: ANN001
                nonlocal last_used_t
                if last_used_t is not None and abs(t - last_used_t) < 1e-9:
                    return  # never hand the same frame out twice
                # swscale releases the GIL: converting here overlaps with decoding the next frames
                frames_buf.append(converter.submit(convert, frame))
                if keep_detail:
                    details.append(DecodedDetail(frame, rot, work_display))
                times_buf.append(t)
                motion_buf.append(float(np.mean(motions)) if motions else 0.0)
                motions.clear()
                last_used_t = t

            def flush() -> FrameBatch:
                nonlocal index
                batch = FrameBatch(
                    frames=np.stack([f.result() for f in frames_buf]),
                    times=np.asarray(times_buf, dtype=np.float64),
                    motion=np.asarray(motion_buf, dtype=np.float64),
                    index0=index,
                    detail=tuple(details) if keep_detail else None,
                )
                index += len(frames_buf)
                frames_buf.clear()
                details.clear()
                times_buf.clear()
                motion_buf.clear()
                return batch

            decoded_iter = container.decode(stream)
            while True:
                try:
                    frame = next(decoded_iter)
                except StopIteration:
                    break
                except av.FFmpegError as exc:
                    if self.decoded == 0:
                        raise VideoError(f"cannot decode {name}: {first_line(exc)}") from None
                    break  # damaged tail: keep what decoded; truncation is checked below
                if frame.pts is not None and frame.time is not None:
                    t = float(frame.time) - origin
                else:
                    t = self.decoded * frame_dur
                if self.skipping and self.decoded == 0:
                    if frame.pts is None:
                        # A raw elementary stream has no timestamps: time is counted in
                        # decoded frames, so every frame must be decoded.
                        self.skipping = False
                    else:
                        stream.codec_context.skip_frame = _SKIP_MODE.get(codec_name, "NONREF")
                if t < self.start_s - frame_dur / 2:
                    continue
                if self.end_limit is not None and t >= self.end_limit:
                    break
                self.decoded += 1
                last_t = t
                luma, hist = thumb_stats(frame)
                if prev_luma is not None:
                    score, luma_change = frame_change(prev_luma, prev_hist, luma, hist)
                    # (statistics: numpy's median costs 25x more on 15 numbers, every frame)
                    baseline = statistics.median(recent_scores) if recent_scores else 0.0
                    is_cut = score >= cfg.cut_threshold and score >= 2.5 * baseline
                    if is_cut and (not cut_times or t - cut_times[-1] >= cfg.cut_min_gap_s):
                        if t > self.start_s + 1e-6:
                            cut_times.append(t)
                        recent_scores.clear()
                    else:
                        gap_frames = max(1.0, (t - prev[1]) / frame_dur) if prev else 1.0
                        motions.append(luma_change / gap_frames)
                        recent_scores.append(score)
                        del recent_scores[:-15]
                prev_luma, prev_hist = luma, hist

                while t >= next_target - 1e-9:
                    if prev is not None and abs(prev[1] - next_target) < abs(t - next_target):
                        take(prev[0], prev[1])
                    else:
                        take(frame, t)
                    next_target += step
                    if t - next_target > step:
                        # A timestamp jump (hours, years): every target left inside the gap
                        # maps to a frame already taken, so go to the last one directly
                        # instead of looping once per target (time bounded by frames, not gap).
                        next_target += math.floor((t - next_target) / step) * step
                    if len(frames_buf) >= batch_size:
                        yield flush()
                prev = (frame, t)

            if prev is not None and (last_used_t is None or prev[1] > last_used_t + 1e-9):
                # the last frame serves a target that still falls inside the clip
                if next_target < prev[1] + frame_dur - 1e-9 or last_used_t is None:
                    take(prev[0], prev[1])
            if frames_buf:
                yield flush()
            if last_t is None:
                raise VideoError(f"{name}: no decodable video frames (truncated or corrupt file)")
            self.end_s = last_t + frame_dur
            declared_end = self.end_limit if self.end_limit is not None else self.info.duration_s
            if (
                declared_end > 0
                and self.end_s
                < self.start_s + _TRUNCATION_SLACK * (declared_end - self.start_s) - 1.0
            ):
                raise VideoError(
                    f"{name}: truncated or corrupt: decoded {self.end_s:.1f} s of a declared {declared_end:.1f} s"
                )
            self.cuts = tuple(round(c, 6) for c in cut_times)
        finally:
            converter.shutdown(wait=True, cancel_futures=True)
            container.close()


def sample_video(
    path: str | os.PathLike[str],
    cfg: SampleConfig | None = None,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    batch_size: int = 16,
    detail: bool = False,
) -> VideoSampler | StillSampler:
    """A sampler over `path` from `start_s` to `end_s` (source seconds); see VideoSampler.

    A still image (a photo or title card on an edit's timeline) is sampled only when
    `end_s` names how long it is shown (`moodsic_engine.still`); otherwise it is refused.
    """
    cfg = cfg or SampleConfig()
    try:
        return VideoSampler(
            path, cfg, start_s=start_s, end_s=end_s, batch_size=batch_size, detail=detail
        )
    except StillImageError:
        if end_s is None:
            raise
    from .still import StillSampler

    return StillSampler(
        path, cfg, start_s=start_s, end_s=end_s, batch_size=batch_size, detail=detail
    )

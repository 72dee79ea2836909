"""Frame-to-frame change on small thumbnails: the cut score and the luma change (motion)
between two decoded frames. Runs on every decoded frame (the sampler's cut detection, live
sources), so it reads the YUV planes directly instead of converting colour."""

from __future__ import annotations

import numpy as np

THUMB_W, THUMB_H = 64, 36
HIST_BINS = 16


def _plane_thumbs(frame) -> list[np.ndarray]:  # noqa: ANN001
    """Strided views of the Y, U, V planes at about THUMB_W x THUMB_H (no colour conversion).

    Subsampling the planes directly is several times cheaper than asking swscale for an RGB
    thumbnail, and cut detection runs on every decoded frame.
    """
    fmt = frame.format
    # 8-bit planar YUV only: a 10-bit plane holds 16-bit samples, read here as bytes.
    if (
        not fmt.name.startswith(("yuv", "yuvj"))
        or len(frame.planes) < 3
        or any(c.bits != 8 for c in fmt.components)
    ):
        frame = frame.reformat(width=THUMB_W * 2, height=THUMB_H * 2, format="yuv420p", threads=1)
    out = []
    for plane in frame.planes[:3]:
        arr = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[
            : plane.height, : plane.width
        ]
        sy, sx = max(1, plane.height // THUMB_H), max(1, plane.width // THUMB_W)
        out.append(arr[::sy, ::sx])
    return out


def thumb_stats(frame) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Y/U/V thumbnails stacked (float 0..1, [3, h, w]) and normalised Y/U/V histograms."""
    planes = _plane_thumbs(frame)
    h = min(p.shape[0] for p in planes)
    w = min(p.shape[1] for p in planes)
    thumbs = np.stack([p[:h, :w] for p in planes]).astype(np.float32) / 255.0
    hist = np.stack(
        [np.bincount((p // (256 // HIST_BINS)).ravel(), minlength=HIST_BINS) for p in planes]
    ).astype(np.float64)
    hist /= hist.sum(axis=1, keepdims=True)
    return thumbs, hist


def frame_change(
    thumb_a: np.ndarray, hist_a: np.ndarray, thumb_b: np.ndarray, hist_b: np.ndarray
) -> tuple[float, float]:
    """(cut score, mean luma change) between two frames, both 0..1. The cut score mixes pixel
    change (luma and chroma) and histogram change; the luma change is the motion measure."""
    delta = np.abs(thumb_a - thumb_b).reshape(3, -1).mean(axis=1)
    pix = float(delta[0] + 0.5 * (delta[1] + delta[2]))
    hist = float(np.abs(hist_a - hist_b).sum(axis=1).mean() / 2.0)
    return 0.5 * (min(1.0, 3.0 * pix) + hist), float(delta[0])

"""Full-resolution pictures of samples, for crops that need more pixels than the working frame.

The sampler scales every sample to a small working size (short side 224 by default). A face
of 40-100 working pixels would reach EmoNet upscaled 2-4x; its crop is better taken from
the decoded frame itself. A `DetailFrame` stands for one sample's decoded picture and cuts
crops out of it in working-frame coordinates, converting only the region a crop needs.

Memory: a detail frame holds the decoder's own frame (YUV, no copy) and lives only as long
as the `FrameBatch` that carries it; the sampler shortens batches so that the frames one
batch holds stay under `DETAIL_BATCH_BYTES`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The decoded frames one batch may hold (a 1080p YUV 4:2:0 frame is 3.1 MB, so 16 samples
# fit; 4K frames are 12.4 MB, so 4K batches shrink to 5 samples).
DETAIL_BATCH_BYTES = 64 << 20
# Below this ratio of decoded to working pixels a detail frame adds nothing worth its cost.
MIN_DETAIL_RATIO = 1.25


class DetailFrame:
    """One sample's picture at a resolution above the working frame's.

    Subclasses give `_region`; `warp` maps working-frame coordinates to detail pixels.
    `sx`, `sy`: detail pixels per working pixel along x and y.
    """

    width: int
    height: int
    sx: float
    sy: float

    @property
    def scale(self) -> float:
        return min(self.sx, self.sy)

    def _region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """RGB uint8 [y1 - y0, x1 - x0, 3] of the detail picture (bounds inside it)."""
        raise NotImplementedError

    def warp(self, m: np.ndarray, size: int) -> np.ndarray:
        """The crop that `cv2.warpAffine(working, m, (size, size))` would give, taken from
        the detail picture: uint8 [size, size, 3]; outside the picture is black.

        m: [2, 3] affine map from working-frame pixels to crop pixels.
        """
        import cv2

        m = np.asarray(m, dtype=np.float64)
        # crop <- detail: undo the working -> detail scaling
        md = np.column_stack([m[:, 0] / self.sx, m[:, 1] / self.sy, m[:, 2]])
        back = cv2.invertAffineTransform(md)
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64)
        pts = corners @ back[:, :2].T + back[:, 2]
        x0 = max(0, int(np.floor(pts[:, 0].min())) - 2)
        y0 = max(0, int(np.floor(pts[:, 1].min())) - 2)
        x1 = min(self.width, int(np.ceil(pts[:, 0].max())) + 3)
        y1 = min(self.height, int(np.ceil(pts[:, 1].max())) + 3)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return np.zeros((size, size, 3), np.uint8)
        region = self._region(x0, y0, x1, y1)
        lin = md[:, :2]
        offset = lin @ np.array([x0, y0], dtype=np.float64) + md[:, 2]
        shrink = float(np.sqrt(abs(np.linalg.det(lin))))
        if shrink < 0.75:
            # Much larger than the crop: average down first (warpAffine only interpolates,
            # which aliases fine detail such as eyelashes into noise). An area resize keeps
            # more detail than a Gaussian pyramid step (measured: the 60-pixel face's crop
            # 2.3x sharper than the upscaled one, against 1.7x) for ~2 ms of CPU.
            rh, rw = region.shape[:2]
            nw, nh = max(1, round(rw * shrink)), max(1, round(rh * shrink))
            region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
            lin = lin @ np.diag([rw / nw, rh / nh])
        mr = np.column_stack([lin, offset])
        return cv2.warpAffine(
            np.ascontiguousarray(region),
            mr,
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )


class ArrayDetail(DetailFrame):
    """A detail picture held as an RGB array (stills, tests)."""

    def __init__(self, rgb: np.ndarray, work_size: tuple[int, int]) -> None:
        self.rgb = np.asarray(rgb)
        self.height, self.width = self.rgb.shape[:2]
        self.sx = self.width / work_size[0]
        self.sy = self.height / work_size[1]

    def _region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        return self.rgb[y0:y1, x0:x1]


class DecodedDetail(DetailFrame):
    """A decoded PyAV video frame, kept as the decoder made it. 8-bit YUV 4:2:0 regions are
    converted on their own (about 0.3 ms for a face region of a 1080p frame); other formats
    and rotated video are converted whole once, on first use."""

    def __init__(self, frame: Any, rotation: int, work_size: tuple[int, int]) -> None:
        self._frame = frame
        self._rot = int(rotation) % 360
        self._rgb: np.ndarray | None = None
        stored_w, stored_h = int(frame.width), int(frame.height)
        self.width, self.height = (stored_h, stored_w) if self._rot % 180 else (stored_w, stored_h)
        self.sx = self.width / work_size[0]
        self.sy = self.height / work_size[1]

    def _region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        f = self._frame
        if self._rgb is None and self._rot == 0 and f.format.name == "yuv420p":
            return _yuv420_region(f, x0, y0, x1, y1)
        if self._rgb is None:
            rgb = f.to_ndarray(format="rgb24")
            self._rgb = np.rot90(rgb, k=self._rot // 90) if self._rot else rgb
        return self._rgb[y0:y1, x0:x1]


def _yuv420_region(frame: Any, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """RGB of a region of an 8-bit YUV 4:2:0 frame, converted by OpenCV (BT.601, as
    swscale does for untagged video; measured within 1.1 levels of swscale's output)."""
    import cv2

    ex0, ey0 = x0 - x0 % 2, y0 - y0 % 2
    ex1 = min(x1 + x1 % 2, frame.width - frame.width % 2)
    ey1 = min(y1 + y1 % 2, frame.height - frame.height % 2)
    if ex1 - ex0 < 2 or ey1 - ey0 < 2:
        return np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    planes = [
        np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[: p.height, : p.width]
        for p in frame.planes[:3]
    ]
    y = planes[0][ey0:ey1, ex0:ex1]
    u = planes[1][ey0 // 2 : ey1 // 2, ex0 // 2 : ex1 // 2]
    v = planes[2][ey0 // 2 : ey1 // 2, ex0 // 2 : ex1 // 2]
    i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape((ey1 - ey0) * 3 // 2, -1)
    rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    out = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    h, w = min(y1, ey1) - y0, min(x1, ex1) - x0
    out[:h, :w] = rgb[y0 - ey0 : y0 - ey0 + h, x0 - ex0 : x0 - ex0 + w]
    return out


def frame_bytes(width: int, height: int) -> int:
    """Bytes of one 8-bit YUV 4:2:0 frame (what a held decoded frame costs, about)."""
    return width * height * 3 // 2


def detail_batch_size(batch_size: int, width: int, height: int) -> int:
    """Samples per batch so the detail frames one batch holds stay under DETAIL_BATCH_BYTES."""
    return max(1, min(batch_size, DETAIL_BATCH_BYTES // max(1, frame_bytes(width, height))))

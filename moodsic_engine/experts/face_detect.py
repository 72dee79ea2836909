"""Face detection, scoring, alignment and landmark geometry for the face expert.

Detection uses MediaPipe's short-range BlazeFace model (bundled in `models/`, Apache-2.0)
through the Tasks `FaceDetector`; OpenCV's Haar cascade (ships with OpenCV) is the
fallback when MediaPipe cannot run. The 468-point face-mesh model (also bundled) runs
through OpenCV's TFLite importer: it refines the eye centres and the face box for
alignment, and feeds the weight-free geometric V/A estimate.

Which boxes count as faces (detector confidence, size, the mesh's confirmation) is decided
in `face_confirm`. Crops that the working frame would upscale can be cut from the sample's
full-resolution picture instead (`align_face(..., detail=...)`, see moodsic_engine.detail).

Everything here works on plain numpy arrays; coordinates are pixels of the given frame.
"""

from __future__ import annotations

import contextlib
import math
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..detail import MIN_DETAIL_RATIO
from ..errors import ResourceError

MODELS_DIR = Path(__file__).with_name("models")
DETECTOR_MODEL = MODELS_DIR / "face_detection_short_range.tflite"
LANDMARK_MODEL = MODELS_DIR / "face_landmark.tflite"

ALIGN_SIZE = 256  # EmoNet's input side
# Crop side relative to the detector's box side, when no mesh refines the box. EmoNet was
# trained on crops of about 1.8x the 68-landmark box; BlazeFace boxes are a little larger.
CROP_SCALE = 1.6
LANDMARK_SIZE = 192  # face-mesh model input side
LANDMARK_CROP_SCALE = 1.5  # MediaPipe's own ROI expansion for the mesh model
MAX_OUTSIDE = 0.5  # faces with more of their box outside the frame than this are ignored


@dataclass(frozen=True)
class Face:
    """One detected face in frame pixels."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    confidence: float
    right_eye: tuple[float, float] | None  # the subject's right eye (image left)
    left_eye: tuple[float, float] | None
    score: float = 0.0  # confidence x sqrt(relative area) x centrality

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def side(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, y1 - y0)


def as_rgb(frame: np.ndarray) -> np.ndarray:
    """Any of [H,W], [H,W,1], [H,W,3], [H,W,4] (uint8 or float in [0,1]) -> contiguous uint8 RGB."""
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        scale = 255.0 if a.size and float(np.nanmax(a)) <= 1.0 else 1.0
        a = np.clip(np.nan_to_num(a.astype(np.float32)) * scale, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"frame of shape {a.shape} is not an image")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)


# ----------------------------------------------------------------------------- scoring
def centrality(center: tuple[float, float], width: int, height: int) -> float:
    """1 at the frame centre, 0.4 at a corner: the main subject is usually framed centrally."""
    dx = (center[0] - width / 2) / (width / 2)
    dy = (center[1] - height / 2) / (height / 2)
    d = min(1.0, math.hypot(dx, dy) / math.sqrt(2))
    return 1.0 - 0.6 * d


def outside_fraction(box: tuple[float, float, float, float], width: int, height: int) -> float:
    x0, y0, x1, y1 = box
    area = max(1e-6, (x1 - x0) * (y1 - y0))
    ix = max(0.0, min(x1, width) - max(x0, 0.0))
    iy = max(0.0, min(y1, height) - max(y0, 0.0))
    return 1.0 - ix * iy / area


def score_faces(
    faces: list[Face], width: int, height: int, *, min_face_frac: float, min_confidence: float
) -> list[Face]:
    """Drop unusable faces (low confidence, tiny, mostly outside); score and sort the rest."""
    short = float(min(width, height))
    out = []
    for f in faces:
        if f.confidence < min_confidence or f.side < min_face_frac * short:
            continue
        if outside_fraction(f.box, width, height) > MAX_OUTSIDE:
            continue
        x0, y0, x1, y1 = f.box
        rel_area = (x1 - x0) * (y1 - y0) / float(width * height)
        s = f.confidence * math.sqrt(max(rel_area, 0.0)) * centrality(f.center, width, height)
        out.append(Face(f.box, f.confidence, f.right_eye, f.left_eye, s))
    return sorted(out, key=lambda f: -f.score)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _overlap_small(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> float:
    """Intersection over the smaller box: 1 when one box lies inside the other."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def _nms(faces: list[Face], threshold: float = 0.4) -> list[Face]:
    """One box per face. The whole-frame pass and a tile can box the same face at different
    sizes, one inside the other, so nested boxes count as duplicates too."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -f.confidence):
        if all(iou(f.box, k.box) < threshold and _overlap_small(f.box, k.box) < 0.6 for k in kept):
            kept.append(f)
    return kept


# ----------------------------------------------------------------------------- detectors
@contextlib.contextmanager
def _quiet_stderr():  # noqa: ANN202 - a context manager
    """MediaPipe's C++ logging writes straight to fd 2 while a graph starts; keep it quiet."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(fd, 2)
    finally:
        os.close(fd)


def _close_quietly(detector: object) -> None:
    try:
        with _quiet_stderr():  # it logs an INFO line on close
            detector.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - at exit its executor may already be gone
        # Its __del__ would try again during teardown and print a traceback; the
        # process is ending, so the handle can simply be dropped.
        with contextlib.suppress(Exception):
            detector._handle = None  # type: ignore[attr-defined]


class MediaPipeDetector:
    """BlazeFace short-range through MediaPipe Tasks, run on the whole frame and, for wide
    or tall frames, on overlapping square tiles too (the model sees a 128x128 letterbox, so
    a face in a 16:9 frame would otherwise shrink by almost half)."""

    kind = "mediapipe"

    def __init__(self, model_path: Path, min_confidence: float = 0.5) -> None:
        try:
            from mediapipe.tasks.python import BaseOptions, vision
        except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
            raise ResourceError(f"MediaPipe cannot be imported: {exc}") from None
        if not Path(model_path).is_file():
            raise ResourceError(f"face detector model not found: {model_path}")
        opts = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            min_detection_confidence=min(min_confidence, 0.5),
        )
        try:
            with _quiet_stderr():
                self._det = vision.FaceDetector.create_from_options(opts)
        except Exception as exc:  # noqa: BLE001
            raise ResourceError(
                f"cannot load face detector {Path(model_path).name}: {exc}"
            ) from None
        import mediapipe as mp

        self._mp = mp
        self._warm = False
        # Close the graph before interpreter teardown; MediaPipe's own __del__ fails then.
        weakref.finalize(self, _close_quietly, self._det)

    def _run(self, rgb: np.ndarray, ox: int, oy: int) -> list[Face]:
        h, w = rgb.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        if self._warm:
            result = self._det.detect(image)
        else:  # the first call logs start-up warnings from C++ straight to fd 2
            with _quiet_stderr():
                result = self._det.detect(image)
            self._warm = True
        faces = []
        for d in result.detections:
            b = d.bounding_box
            box = (
                ox + b.origin_x,
                oy + b.origin_y,
                ox + b.origin_x + b.width,
                oy + b.origin_y + b.height,
            )
            kp = d.keypoints or []
            eyes = [(ox + k.x * w, oy + k.y * h) for k in kp[:2]] if len(kp) >= 2 else [None, None]
            conf = float(d.categories[0].score) if d.categories else 0.0
            faces.append(Face(tuple(float(v) for v in box), conf, eyes[0], eyes[1]))
        return faces

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        faces = self._run(rgb, 0, 0)
        side = min(h, w)
        if max(h, w) > 1.3 * side:
            n = math.ceil(max(h, w) / side) + 1
            starts = np.linspace(0, max(h, w) - side, n).round().astype(int)
            for s in starts:
                tile = rgb[:, s : s + side] if w > h else rgb[s : s + side, :]
                ox, oy = (int(s), 0) if w > h else (0, int(s))
                faces += self._run(np.ascontiguousarray(tile), ox, oy)
        return _nms(faces)

    def close(self) -> None:
        _close_quietly(self._det)


class HaarDetector:
    """OpenCV's frontal-face cascade; eyes from the eye cascade when two are found."""

    kind = "haar"

    def __init__(self) -> None:
        base = Path(cv2.data.haarcascades)
        self._face = cv2.CascadeClassifier(str(base / "haarcascade_frontalface_default.xml"))
        self._eyes = cv2.CascadeClassifier(str(base / "haarcascade_eye.xml"))
        if self._face.empty():
            raise ResourceError("OpenCV's Haar face cascade is missing")

    def detect(self, rgb: np.ndarray) -> list[Face]:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        found = self._face.detectMultiScale3(
            grey, 1.1, 5, minSize=(16, 16), outputRejectLevels=True
        )
        rects, _, weights = found
        faces = []
        for (x, y, fw, fh), wgt in zip(rects, np.ravel(weights), strict=False):
            # Cascade level weights are unbounded; squash to a confidence-like number.
            conf = float(1.0 / (1.0 + math.exp(-(float(wgt) - 2.0))))
            eyes = self._eyes.detectMultiScale(grey[y : y + fh // 2 + fh // 8, x : x + fw], 1.1, 4)
            right = left = None
            if len(eyes) >= 2:
                centers = sorted(
                    ((x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in eyes[:2])
                )
                right, left = centers[0], centers[1]
            faces.append(
                Face((float(x), float(y), float(x + fw), float(y + fh)), conf, right, left)
            )
        return _nms(faces)

    def close(self) -> None:
        pass


def make_detector(model: str = "", min_confidence: float = 0.5) -> MediaPipeDetector | HaarDetector:
    """MediaPipe with the given or bundled model; Haar when MediaPipe cannot run."""
    path = Path(model).expanduser() if model else DETECTOR_MODEL
    if model and not path.is_file():
        raise ResourceError(f"face detector model not found: {path}")
    try:
        return MediaPipeDetector(path, min_confidence)
    except ResourceError:
        if model:
            raise
        return HaarDetector()


# ----------------------------------------------------------------------------- alignment
def _from_detail(face: Face, size: int, crop_scale: float, detail: Any | None) -> bool:
    """Whether a crop is better cut from the sample's detail picture: it would be upscaled
    from the working frame and the detail picture has more pixels."""
    if detail is None or detail.scale < MIN_DETAIL_RATIO:
        return False
    return crop_scale * face.side < size


def alignment_matrix(
    face: Face, size: int = ALIGN_SIZE, crop_scale: float = CROP_SCALE
) -> np.ndarray:
    """2x3 affine map from frame pixels to a size x size crop: centred on the face, eyes level."""
    cx, cy = face.center
    angle = 0.0
    if face.right_eye is not None and face.left_eye is not None:
        (rx, ry), (lx, ly) = face.right_eye, face.left_eye
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
    scale = size / max(1.0, crop_scale * face.side)
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += size / 2 - cx
    m[1, 2] += size / 2 - cy
    return m


def align_face(
    rgb: np.ndarray,
    face: Face,
    size: int = ALIGN_SIZE,
    crop_scale: float = CROP_SCALE,
    detail: Any | None = None,
) -> np.ndarray:
    """Crop with margin, rotate so the eyes are level, resize: [size, size, 3] float32 in [0,1].

    `face` is in working-frame pixels (`rgb`). With `detail` (the sample's
    moodsic_engine.detail.DetailFrame) a crop that the working frame would upscale is cut
    from the detail picture instead: the same geometry, real pixels.
    """
    m = alignment_matrix(face, size, crop_scale)
    if _from_detail(face, size, crop_scale, detail):
        crop = detail.warp(m, size)
    else:
        crop = cv2.warpAffine(
            rgb,
            m,
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    return crop.astype(np.float32) / 255.0


def transform_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return p @ m[:, :2].T + m[:, 2]


# ----------------------------------------------------------------------------- landmarks
class LandmarkModel:
    """MediaPipe's 468-point face mesh (bundled tflite) through OpenCV's TFLite importer."""

    def __init__(self, path: Path = LANDMARK_MODEL) -> None:
        if not Path(path).is_file():
            raise ResourceError(f"face landmark model not found: {path}")
        try:
            self._net = cv2.dnn.readNetFromTFLite(str(path))
        except cv2.error as exc:
            raise ResourceError(f"OpenCV cannot read the face landmark model: {exc}") from None
        self._outs = self._net.getUnconnectedOutLayersNames()

    def landmarks(
        self, rgb: np.ndarray, face: Face, detail: Any | None = None
    ) -> tuple[np.ndarray, float]:
        """468 (x, y) points in the eyes-level crop's pixel frame (LANDMARK_SIZE square) and
        the model's face-presence probability. `detail`: see `align_face`."""
        crop = align_face(rgb, face, LANDMARK_SIZE, LANDMARK_CROP_SCALE, detail)
        self._net.setInput(cv2.dnn.blobFromImage(crop))
        mesh, presence = self._net.forward(self._outs)
        if mesh.size != 468 * 3:  # output order is not guaranteed
            mesh, presence = presence, mesh
        points = mesh.reshape(468, 3)[:, :2].astype(np.float64)
        prob = 1.0 / (1.0 + math.exp(-float(np.ravel(presence)[0])))
        return points, prob

    def refine(
        self, rgb: np.ndarray, face: Face, detail: Any | None = None
    ) -> tuple[Face, float, np.ndarray]:
        """The face re-boxed from the mesh the way EmoNet's training crops were made, with
        eye centres from the mesh (BlazeFace's eye keypoints are off by several degrees of
        roll); the mesh's face-presence probability; the 468 mesh points in frame pixels."""
        points, prob = self.landmarks(rgb, face, detail)
        back = cv2.invertAffineTransform(alignment_matrix(face, LANDMARK_SIZE, LANDMARK_CROP_SCALE))
        points = transform_points(back, points)
        right, left = eye_centres(points)
        # EmoNet's crops: centred on the 68-landmark box (jaw line and brows), side
        # (w + h) / 1.1. Mesh points along the jaw and brows stand in for that box; it is
        # measured in the eyes-level frame so head roll does not inflate it.
        roll = math.atan2(left[1] - right[1], left[0] - right[0])
        c, s = math.cos(roll), math.sin(roll)
        level = (points - right) @ np.array([[c, -s], [s, c]])
        sel = level[list(JAW_AND_BROWS)]
        (x0, y0), (x1, y1) = sel.min(0), sel.max(0)
        half = (x1 - x0 + y1 - y0) / 4  # a square box of side (w + h) / 2
        mid = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) @ np.array([[c, s], [-s, c]]) + right
        box = (mid[0] - half, mid[1] - half, mid[0] + half, mid[1] + half)
        refined = Face(
            tuple(float(v) for v in box),
            face.confidence,
            (float(right[0]), float(right[1])),
            (float(left[0]), float(left[1])),
            face.score,
        )
        return refined, prob, points


# Mesh points on the jaw line (ear to ear round the chin) and the brows: what the
# 68-point annotation of EmoNet's training data outlines.
JAW_AND_BROWS = (
    234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288,
    361, 323, 454, 70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
)  # fmt: skip
EMONET_CROP_SCALE = 2.0 / 1.1  # crop side (w + h) / 1.1 for the square box of side (w + h) / 2


# Face-mesh indices used by the geometric estimate.
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
LIP_UPPER_IN, LIP_LOWER_IN = 13, 14
R_EYE_OUT, R_EYE_IN, L_EYE_IN, L_EYE_OUT = 33, 133, 362, 263
R_EYE_TOP, R_EYE_BOT, L_EYE_TOP, L_EYE_BOT = 159, 145, 386, 374
R_BROW, L_BROW = 105, 334

# Neutral-face baselines of the features below (inter-ocular units), chosen so a relaxed,
# closed-mouth face maps near (0, 0) and the astronaut's broad smile maps clearly positive.
NEUTRAL = {"curve": 0.02, "width": 0.85, "open": 0.03, "eye": 0.15, "brow": 0.27}


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's right eye, left eye) centres from mesh points, from the eye corners."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    return (p[R_EYE_OUT] + p[R_EYE_IN]) / 2, (p[L_EYE_IN] + p[L_EYE_OUT]) / 2


def geometry_features(points: np.ndarray) -> dict[str, float]:
    """Expression features from mesh points (y down), in inter-ocular units. The points are
    first rotated so the eyes are level, so head roll does not read as a smile."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    r_eye, l_eye = eye_centres(p)
    roll = math.atan2(l_eye[1] - r_eye[1], l_eye[0] - r_eye[0])
    c, s = math.cos(-roll), math.sin(-roll)
    p = (p - r_eye) @ np.array([[c, s], [-s, c]])
    r_eye, l_eye = eye_centres(p)
    iod = max(1e-6, float(np.linalg.norm(l_eye - r_eye)))
    mouth_mid_y = (p[LIP_UPPER_IN, 1] + p[LIP_LOWER_IN, 1]) / 2
    corners_y = (p[MOUTH_RIGHT, 1] + p[MOUTH_LEFT, 1]) / 2
    eye_open = (p[R_EYE_BOT, 1] - p[R_EYE_TOP, 1] + p[L_EYE_BOT, 1] - p[L_EYE_TOP, 1]) / 2
    brow = (p[R_EYE_TOP, 1] - p[R_BROW, 1] + p[L_EYE_TOP, 1] - p[L_BROW, 1]) / 2
    return {
        "curve": float(mouth_mid_y - corners_y) / iod,  # corners above the lip centre: smile
        "width": float(np.linalg.norm(p[MOUTH_LEFT] - p[MOUTH_RIGHT])) / iod,
        "open": float(p[LIP_LOWER_IN, 1] - p[LIP_UPPER_IN, 1]) / iod,
        "eye": float(eye_open) / iod,
        "brow": float(brow) / iod,
    }


def geometry_va(points: np.ndarray) -> tuple[float, float]:
    """A coarse (valence, arousal) in [-1, 1] from mouth curvature/width, mouth opening,
    eye opening and brow raise. A weak cue: callers give it a large variance."""
    f = geometry_features(points)
    d = {k: f[k] - NEUTRAL[k] for k in NEUTRAL}
    v = 4.0 * d["curve"] + 1.5 * d["width"] - 0.8 * max(0.0, -d["brow"])
    a = 2.0 * max(0.0, d["open"]) + 3.0 * d["eye"] + 1.5 * d["brow"] + 0.5 * abs(d["width"])
    return float(np.tanh(v)), float(np.tanh(a))

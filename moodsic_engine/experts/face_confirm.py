"""What counts as a face: a detector box that the face mesh confirms.

A face is a detector box

1. scored at least `min_confidence` by the detector (default 0.6). BlazeFace short-range
   scored the real faces of the photo test set (astronaut, cameraman, Grace Hopper, at
   96-720 px frames, square and 16:9) 0.78-0.96 wherever the mesh could read them, and
   every box it put on animals, objects and textures (chelsea the cat, coffee, rocket,
   coins, Hubble deep field, brick, grass, gravel, the colour wheel, the astronaut's
   spacesuit, ...) at most 0.66;
2. whose side is at least `min_face_frac` of the frame's short side (default 0.04) and
   which lies mostly inside the frame;
3. confirmed by the 468-point face mesh (MediaPipe's face_landmark.tflite, bundled, run
   through OpenCV): the mesh's face-presence probability on the box's crop is at least
   `min_presence` (0.5, MediaPipe's own default). When the first crop fails, the mesh runs
   once more on the crop centred on its own landmarks (MediaPipe re-centres its region of
   interest the same way); a real face that was boxed off-centre passes then, a texture
   does not. The mesh rejected every box on the non-face photos with confidence >= 0.6
   (their presence at most 0.43; real faces 0.64-1.0).

The two gates need each other: the mesh alone was fooled by the spacesuit in a 96-pixel
frame (presence 0.90, detector 0.54) and by the cat (0.93, detector 0.57); the detector alone
put 0.62-0.66 on the cat, the colour wheel and the Shepp-Logan phantom (presence < 0.45).

Without a mesh model (an OpenCV build without its TFLite importer) nothing can confirm a
box: a face then needs detector confidence UNCONFIRMED_MIN_CONFIDENCE (0.75). The crops the
mesh sees come from the sample's full-resolution picture when it has one (see
moodsic_engine.detail), so small faces are judged on real pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .face_detect import Face, LandmarkModel, as_rgb, iou, score_faces

# Detector confidence a face needs when no mesh model can confirm it.
UNCONFIRMED_MIN_CONFIDENCE = 0.75
# Two confirmed boxes whose meshes outline the same face (IoU above this) are one face.
SAME_FACE_IOU = 0.5


@dataclass(frozen=True)
class FaceRule:
    """The thresholds of what counts as a face (see the module docstring)."""

    min_confidence: float = 0.6
    min_face_frac: float = 0.04
    min_presence: float = 0.5


@dataclass(frozen=True)
class FoundFace:
    """A confirmed face in working-frame pixels.

    face: the box re-fitted from the mesh (EmoNet's crop geometry) with the mesh's eye
    centres, and the detection's confidence and score; detected: the detector's box;
    presence: the mesh's face-presence probability (NaN when no mesh ran);
    points: the 468 mesh points [468, 2] in working-frame pixels, or None.
    """

    face: Face
    detected: Face
    presence: float
    points: np.ndarray | None

    def record(self, width: int, height: int) -> tuple[float, float, float, float, float, float]:
        """(x, y, w, h, confidence, presence): the detector's box normalised to the frame."""
        x0, y0, x1, y1 = self.detected.box
        x0, x1 = max(0.0, x0) / width, min(float(width), x1) / width
        y0, y1 = max(0.0, y0) / height, min(float(height), y1) / height
        return (
            round(x0, 4),
            round(y0, 4),
            round(max(0.0, x1 - x0), 4),
            round(max(0.0, y1 - y0), 4),
            round(float(self.detected.confidence), 4),
            round(float(self.presence), 4) if np.isfinite(self.presence) else -1.0,
        )


def confirm(
    rgb: np.ndarray,
    candidates: list[Face],
    landmarks: LandmarkModel | None,
    min_presence: float = 0.5,
    detail: Any | None = None,
) -> list[FoundFace]:
    """The candidates (detector boxes already filtered by `score_faces`, best first) that
    the face mesh confirms, re-boxed from the mesh; duplicates of one face dropped."""
    out: list[FoundFace] = []
    for cand in candidates:
        if landmarks is None:
            if cand.confidence >= UNCONFIRMED_MIN_CONFIDENCE:
                out.append(FoundFace(cand, cand, float("nan"), None))
            continue
        refined, presence, points = landmarks.refine(rgb, cand, detail)
        if presence < min_presence:
            refined, presence, points = landmarks.refine(rgb, refined, detail)
            if presence < min_presence:
                continue
        face = Face(refined.box, cand.confidence, refined.right_eye, refined.left_eye, cand.score)
        if any(iou(face.box, f.face.box) > SAME_FACE_IOU for f in out):
            continue
        out.append(FoundFace(face, cand, float(presence), points))
    return out


def find_faces(
    frame: np.ndarray,
    detector: Any,
    landmarks: LandmarkModel | None,
    rule: FaceRule | None = None,
    detail: Any | None = None,
) -> list[FoundFace]:
    """Every face of a frame by the rule above, best scored first.

    frame: [H, W] or [H, W, 3|4] picture (the working frame); detector: a
    face_detect.MediaPipeDetector or HaarDetector; detail: the sample's DetailFrame or None.
    """
    rule = rule or FaceRule()
    rgb = as_rgb(frame)
    h, w = rgb.shape[:2]
    candidates = score_faces(
        detector.detect(rgb),
        w,
        h,
        min_face_frac=rule.min_face_frac,
        min_confidence=rule.min_confidence,
    )
    return confirm(rgb, candidates, landmarks, rule.min_presence, detail)

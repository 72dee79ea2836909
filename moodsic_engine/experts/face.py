"""Face expert: MediaPipe detection + eyes-level alignment -> EmoNet with test-time
augmentation; a landmark-geometry fallback when no EmoNet checkpoint is installed.

Per sample: every face is detected and scored (confidence x sqrt(relative area) x
centrality); the best `max_faces` get an estimate; the sample's estimate is their
score-weighted mean, and its variance adds the faces' disagreement. A sample without a
usable face is reported absent, never guessed, and costs no EmoNet call.

Cost control on CPU (where 5 views in one batch cost ~5x one view): the full set of
views is not run on every sample. A face seen for the first time (or changed a lot) gets
the original and its mirror; the remaining views run only when those two disagree by
more than `tta_uncertain_var`. A steady face (its face-mesh expression features moved
less than `steady_diff`) reuses its estimate for up to `reuse_max_s`, after which ONE
more view, the next in the rotation, is run and pooled with the recent views of the same
face: over time a steady face collects the full augmentation set at the price of one
view. A face that keeps moving gets one view at most every MIN_REFRESH_S; a new
expression or a different look (a cut) is evaluated at once. A budget keeps the views
run at most 2x the faces seen.

Alignment: the face mesh re-boxes each face the way EmoNet's training crops were made
(centre of the jaw-and-brows box, side (w + h) / 1.1) and levels the eyes to ~1 degree.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config import Config, FaceConfig
from ..errors import ExpertUnavailable, ResourceError
from ..weights import WeightsError, find_weight
from .base import Availability, ClipContext, Estimates, ExpertSeries, FrameBatch
from .face_confirm import FaceRule, FoundFace, confirm
from .face_detect import (
    EMONET_CROP_SCALE,
    LANDMARK_MODEL,
    Face,
    LandmarkModel,
    align_face,
    as_rgb,
    geometry_features,
    geometry_va,
    iou,
    make_detector,
    score_faces,
)

NAME = "face"
CHECKPOINT_NAMES = (
    "emonet_8.pth",
    "emonet_8.safetensors",
    "emonet_5.pth",
    "emonet_5.safetensors",
)
REPO_URL = "https://github.com/face-analysis/emonet"
DOWNLOADS = {
    name: f"{REPO_URL}/raw/master/pretrained/{name}" for name in ("emonet_8.pth", "emonet_5.pth")
}
LICENCE_TEXT = (
    "EmoNet pretrained models (emonet_8.pth, emonet_5.pth) by A. Toisoul, J. Kossaifi, A. Bulat, "
    "G. Tzimiropoulos and M. Pantic (Samsung AI Center Cambridge / Imperial College London), "
    "published at https://github.com/face-analysis/emonet under the Creative Commons "
    "Attribution-NonCommercial-NoDerivatives 4.0 International licence "
    "(https://creativecommons.org/licenses/by-nc-nd/4.0/): non-commercial use only, no "
    "redistribution of modified weights, credit the authors (Nature Machine Intelligence, 2021)."
)
MISSING_HINT = (
    f"no EmoNet checkpoint (emonet_8.pth) found: get it from {REPO_URL} (pretrained/, "
    "CC BY-NC-ND 4.0) with `moodsic weights fetch emonet --accept-license`, or pass --emonet PATH"
)
# Squared error of EmoNet on the cleaned AffectNet test set, from the authors' published
# RMSE (8 classes: V .29, A .27; 5 classes: V .24, A .24). No augmentation spread can make
# the expert more certain than its measured in-domain error.
PUBLISHED_MSE = {8: (0.29**2, 0.27**2), 5: (0.24**2, 0.24**2)}
# (mirror, zoom, dx, dy) of each test-time view, in order of use; dx, dy in crop pixels.
VIEWS: tuple[tuple[bool, float, float, float], ...] = (
    (False, 1.0, 0.0, 0.0),
    (True, 1.0, 0.0, 0.0),
    (False, 1.08, 0.0, 0.0),
    (False, 0.93, 6.0, 4.0),
    (True, 1.0, -6.0, -4.0),
    (True, 1.08, 4.0, -4.0),
    (False, 1.0, -4.0, 6.0),
    (True, 0.93, 0.0, 6.0),
)
CHANGE_FACTOR = 3.0  # a change of this many times `steady_diff` starts the face afresh
# Variance added to a reused estimate, in proportion to its age: this much at `reuse_max_s`
# (0.01 per second at the former 2 s limit; scaled with the limit so that reusing longer
# does not shift the fused weights towards the other experts).
STALE_DRIFT = 0.02
MIN_REFRESH_S = 0.9  # a face that is neither new nor steady gets a view at most this often
# Mean abs change (0..1) of the face thumbnail that means a different face (a cut); detection
# jitter alone gives about 0.03.
APPEARANCE_CHANGE = 0.12


# ----------------------------------------------------------------------------- views
def make_view(crop: np.ndarray, index: int) -> np.ndarray:
    """Test-time view `index` of an aligned crop [S, S, 3] (same shape and dtype)."""
    mirror, zoom, dx, dy = VIEWS[index % len(VIEWS)]
    out = crop[:, ::-1] if mirror else crop
    if zoom != 1.0 or dx or dy:
        s = crop.shape[0]
        m = cv2.getRotationMatrix2D((s / 2, s / 2), 0.0, zoom)
        m[0, 2] += dx
        m[1, 2] += dy
        out = cv2.warpAffine(np.ascontiguousarray(out), m, (s, s), borderMode=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(out)


def tta_views(crop: np.ndarray, n: int) -> np.ndarray:
    """The first n views of a crop stacked: [n, S, S, 3]."""
    return np.stack([make_view(crop, i) for i in range(n)])


def _to_tensor(views: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(views, dtype=np.float32)).permute(0, 3, 1, 2)


def _small(crop: np.ndarray) -> np.ndarray:
    """16x16 grey thumbnail of the crop's central part (the face, little background)."""
    s = crop.shape[0]
    grey = cv2.cvtColor(crop[s // 5 : s - s // 5, s // 5 : s - s // 5], cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA)


# ----------------------------------------------------------------------------- estimates
@dataclass
class _Track:
    """One face followed across samples of a clip."""

    box: tuple[float, float, float, float]
    seen_t: float
    thumb: np.ndarray | None = None  # expression features (or thumbnail) at the last evaluation
    look: np.ndarray | None = None  # thumbnail at the last evaluation
    eval_t: float = -math.inf
    views: list[tuple[float, int, float, float]] = field(default_factory=list)  # (t, view, v, a)
    next_view: int = 0
    spread: tuple[float, float] | None = None  # last spread across >= 2 views


@dataclass(frozen=True)
class FaceEstimate:
    v: float
    a: float
    var_v: float
    var_a: float
    weight: float


def fit_tta_scale(
    spread: np.ndarray, sq_err: np.ndarray, floor: tuple[float, float]
) -> tuple[float, float]:
    """Per-dimension `tta_var_scale` from labelled faces (the scene head's recipe): the scale
    s >= 0 with mean(floor + s * spread) == mean(squared error). spread, sq_err: [N, 2]."""
    sp = np.asarray(spread, dtype=np.float64).reshape(-1, 2)
    se = np.asarray(sq_err, dtype=np.float64).reshape(-1, 2)
    excess = se.mean(0) - np.asarray(floor, dtype=np.float64)
    s = np.maximum(excess, 0.0) / np.maximum(sp.mean(0), 1e-8)
    return float(s[0]), float(s[1])


def combine(faces: list[FaceEstimate]) -> tuple[float, float, float, float]:
    """Score-weighted mean; variance = weighted mean variance + spread between faces."""
    w = np.array([f.weight for f in faces], dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(faces), 1.0 / len(faces))
    v = np.array([f.v for f in faces])
    a = np.array([f.a for f in faces])
    mv, ma = float(w @ v), float(w @ a)
    var_v = float(w @ np.array([f.var_v for f in faces]) + w @ (v - mv) ** 2)
    var_a = float(w @ np.array([f.var_a for f in faces]) + w @ (a - ma) ** 2)
    return mv, ma, var_v, var_a


@dataclass
class FaceStats:
    samples: int = 0
    face_samples: int = 0
    faces: int = 0  # faces that got an estimate
    views: int = 0  # EmoNet views run
    reused: int = 0
    detect_s: float = 0.0
    model_s: float = 0.0


class FaceExpert:
    name = NAME
    wants_detail = True  # small faces' crops come from the full-resolution frame

    def __init__(
        self,
        cfg: FaceConfig,
        detector: Any,
        emonet: Any | None = None,
        landmarks: LandmarkModel | None = None,
        source: str = "",
    ) -> None:
        if emonet is None and landmarks is None:
            raise ExpertUnavailable("face: neither EmoNet nor the landmark model is loaded")
        self.cfg = cfg
        self.detector = detector
        self.emonet = emonet
        self.landmarks = landmarks
        self.source = source
        self.mode = "trained" if emonet is not None else "fallback"
        self.n_views = max(1, min(int(cfg.tta_views), len(VIEWS)))
        n_expr = getattr(emonet, "n_expression", 8)
        mse = PUBLISHED_MSE.get(n_expr, PUBLISHED_MSE[8])
        self.floor = (max(cfg.var_floor_v, mse[0]), max(cfg.var_floor_a, mse[1]))
        self.stats = FaceStats()
        self._tracks: list[_Track] = []
        self._last_t = -math.inf

    # -- public protocol -------------------------------------------------------------
    def predict(self, batch: FrameBatch) -> Estimates:
        n = len(batch)
        if batch.index0 == 0 or (n and float(batch.times[0]) < self._last_t):
            self.reset()
        v, a = np.zeros(n), np.zeros(n)
        var_v, var_a = np.ones(n), np.ones(n)
        present = np.zeros(n, dtype=bool)
        counts = np.zeros(n, dtype=np.int64)
        boxes = []
        for i in range(n):
            t = float(batch.times[i])
            self._last_t = t
            detail = batch.detail[i] if batch.detail is not None else None
            est, found = self._predict_sample(batch.frames[i], t, detail)
            counts[i] = len(found)
            h, w = batch.frames[i].shape[:2]
            boxes.append(tuple(f.record(w, h) for f in found))
            if est:
                v[i], a[i], var_v[i], var_a[i] = combine(est)
                present[i] = True
        return Estimates(v, a, var_v, var_a, present, counts, boxes=tuple(boxes))

    def finalize(self, series: ExpertSeries, context: ClipContext) -> ExpertSeries:  # noqa: ARG002
        s = self.stats
        info = dict(series.info)
        info.update(
            {
                "coverage": float(np.mean(series.present)) if len(series.present) else 0.0,
                "detector": getattr(self.detector, "kind", "?"),
                "model": self.source,
                "emonet_views": s.views,
                "faces_estimated": s.faces,
                "views_per_face": s.views / s.faces if s.faces else 0.0,
            }
        )
        return dataclasses.replace(series, info=info)

    def reset(self) -> None:
        """Forget the faces of the previous clip."""
        self._tracks = []
        self._last_t = -math.inf

    # -- one frame ------------------------------------------------------------------
    def find(self, frame: np.ndarray, detail: Any = None) -> tuple[np.ndarray, list[FoundFace]]:
        """The frame as RGB and its faces (face_confirm: detector boxes the mesh confirms),
        best scored first. detail: the sample's DetailFrame, for small faces' crops."""
        rgb = as_rgb(frame)
        h, w = rgb.shape[:2]
        cfg = self.cfg
        t0 = time.perf_counter()
        candidates = score_faces(
            self.detector.detect(rgb),
            w,
            h,
            min_face_frac=cfg.min_face_frac,
            min_confidence=cfg.min_confidence,
        )
        found = confirm(rgb, candidates, self.landmarks, cfg.min_mesh_presence, detail)
        self.stats.detect_s += time.perf_counter() - t0
        return rgb, found

    @property
    def rule(self) -> FaceRule:
        """What this expert counts as a face."""
        cfg = self.cfg
        return FaceRule(cfg.min_confidence, cfg.min_face_frac, cfg.min_mesh_presence)

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, list[Face]]:
        """The frame as RGB and its confirmed faces' detector boxes, best scored first."""
        rgb, found = self.find(frame)
        return rgb, [f.detected for f in found]

    def predict_frame(self, frame: np.ndarray, t: float) -> tuple[list[FaceEstimate], int]:
        """Estimates for the usable faces of one frame, and how many faces it has."""
        out, found = self._predict_sample(frame, t, None)
        return out, len(found)

    def _predict_sample(
        self, frame: np.ndarray, t: float, detail: Any
    ) -> tuple[list[FaceEstimate], list[FoundFace]]:
        self.stats.samples += 1
        rgb, found = self.find(frame, detail)
        self._tracks = [tr for tr in self._tracks if t - tr.seen_t <= 2 * self.cfg.reuse_max_s]
        out: list[FaceEstimate] = []
        used: set[int] = set()
        for face in found[: max(1, self.cfg.max_faces)]:
            if self.emonet is not None:
                est = self._emonet_face(rgb, face, t, used, detail)
            else:
                est = self._fallback_face(face)
            if est is not None:
                out.append(est)
        if out:
            self.stats.face_samples += 1
            self.stats.faces += len(out)
        return out, found

    def _fallback_face(self, found: FoundFace) -> FaceEstimate | None:
        if found.points is None:  # no mesh model: nothing to read an expression from
            return None
        v, a = geometry_va(found.points)
        var = float(self.cfg.fallback_var)
        return FaceEstimate(v, a, var, var, found.face.score)

    def _match(self, face: Face, used: set[int]) -> _Track | None:
        best, best_iou = None, 0.3
        for k, tr in enumerate(self._tracks):
            o = iou(face.box, tr.box)
            if k not in used and o > best_iou:
                best, best_iou = k, o
        if best is None:
            return None
        used.add(best)
        return self._tracks[best]

    def _run_views(self, crop: np.ndarray, indices: list[int]) -> list[tuple[int, float, float]]:
        from ..runtime.emonet_runtime import run_views  # ONNX Runtime or torch, same numbers

        t0 = time.perf_counter()
        val, aro = run_views(self.emonet, np.stack([make_view(crop, i) for i in indices]))
        self.stats.model_s += time.perf_counter() - t0
        self.stats.views += len(indices)
        return [
            (i, float(v), float(a))
            for i, v, a in zip(indices, val.tolist(), aro.tolist(), strict=True)
        ]

    def _budget(self, extra: int) -> bool:
        """Whether `extra` more views keep the total at most 2 views per face seen (plus one
        full set of views, so the first face of a clip can get all of them)."""
        return self.stats.views + extra <= 2 * (self.stats.faces + 1) + self.n_views

    def _emonet_face(
        self, rgb: np.ndarray, found: FoundFace, t: float, used: set[int], detail: Any = None
    ) -> FaceEstimate | None:
        cfg = self.cfg
        signature: np.ndarray | None = None
        # Small faces are cut from the sample's full-resolution picture (`detail`).
        face = found.face
        if found.points is not None:
            # Mesh eye centres level the crop to ~1 degree (BlazeFace's keypoints: ~5).
            # Expression geometry in inter-ocular units: unlike pixels of the crop, it does
            # not change when detection jitter moves or rescales the crop by a few pixels.
            signature = np.array(list(geometry_features(found.points).values()))
            crop = align_face(rgb, face, crop_scale=EMONET_CROP_SCALE, detail=detail)
        else:
            crop = align_face(rgb, face, detail=detail)  # detector box: an approximation
            signature = _small(crop)
        track = self._match(face, used)
        diff = math.inf
        if track is not None and track.thumb is not None and track.thumb.shape == signature.shape:
            d = np.abs(signature - track.thumb)
            diff = float(d.max() if signature.ndim == 1 else d.mean())
        # Another person in the same place after a cut has similar geometry but looks different.
        look = _small(crop)
        if track is not None and track.look is not None:
            if float(np.mean(np.abs(look - track.look))) > APPEARANCE_CHANGE:
                diff = math.inf
        fresh = track is None or diff > CHANGE_FACTOR * cfg.steady_diff
        if track is None:
            track = _Track(face.box, t)
            self._tracks.append(track)
        track.box, track.seen_t = face.box, t

        age = t - track.eval_t
        steady = diff <= cfg.steady_diff and age <= cfg.reuse_max_s
        # A face that keeps moving (talking, turning) is still re-evaluated at most every
        # MIN_REFRESH_S; only a large change (a new face or expression) is seen at once.
        if not fresh and (steady or age < MIN_REFRESH_S):
            self.stats.reused += 1
            return self._estimate(track, face, stale_s=age)

        if fresh:
            # New or changed face: original + mirror, the rest only when they disagree.
            track.views, track.spread = [], None
            first = [0, 1] if self.n_views > 1 and self._budget(2) else [0]
            results = self._run_views(crop, first)
            if len(results) > 1:
                sv = float(np.var([r[1] for r in results], ddof=1))
                sa = float(np.var([r[2] for r in results], ddof=1))
                rest = list(range(len(first), self.n_views))
                if rest and max(sv, sa) > cfg.tta_uncertain_var and self._budget(len(rest)):
                    results += self._run_views(crop, rest)
            track.next_view = len(results) % self.n_views
        else:
            # Drifting or due for a refresh: one more view, pooled with the recent ones.
            results = self._run_views(crop, [track.next_view])
            track.next_view = (track.next_view + 1) % self.n_views
        track.views = [x for x in track.views if t - x[0] <= 2 * cfg.reuse_max_s]
        track.views += [(t, i, v, a) for i, v, a in results]
        track.views = track.views[-self.n_views :]
        track.thumb, track.look, track.eval_t = signature, look, t
        return self._estimate(track, face, stale_s=0.0)

    def _estimate(self, track: _Track, face: Face, stale_s: float) -> FaceEstimate:
        v = np.array([x[2] for x in track.views])
        a = np.array([x[3] for x in track.views])
        if len(v) >= 2:
            track.spread = (float(np.var(v, ddof=1)), float(np.var(a, ddof=1)))
        # One view says nothing about its own spread: assume the doubt level that would
        # have triggered the full set of views.
        spread = track.spread or (self.cfg.tta_uncertain_var, self.cfg.tta_uncertain_var)
        k = self.cfg.tta_var_scale
        drift = STALE_DRIFT * max(0.0, stale_s) / max(self.cfg.reuse_max_s, 1e-3)
        return FaceEstimate(
            float(v.mean()),
            float(a.mean()),
            self.floor[0] + k * spread[0] + drift,
            self.floor[1] + k * spread[1] + drift,
            face.score,
        )

    def close(self) -> None:
        close = getattr(self.detector, "close", None)
        if close is not None:
            close()


# ----------------------------------------------------------------------------- probe / load
def find_checkpoint(cfg: FaceConfig, weights_dir: Path | None) -> Path | None:
    """--emonet PATH (must exist), else emonet_8/emonet_5 in the weights dir (or its emonet/)."""
    path = find_weight(cfg.emonet or None, weights_dir, CHECKPOINT_NAMES)
    if path is None and weights_dir is not None:
        path = find_weight(None, Path(weights_dir) / "emonet", CHECKPOINT_NAMES)
    return path


def expected_classes(path: Path) -> int | None:
    """5 or 8 when the file is named like the official checkpoints (emonet_5 / emonet_8), so
    a 5-class file saved under the 8-class name is refused instead of silently used."""
    m = re.search(r"emonet_([58])\b", Path(path).stem)
    return int(m.group(1)) if m else None


def _detector_line(cfg: FaceConfig) -> str:
    if cfg.detector:
        return f"detector {Path(cfg.detector).name}"
    if importlib.util.find_spec("mediapipe") is None:
        return "detector OpenCV Haar (MediaPipe not installed)"
    return "detector MediaPipe short-range (bundled)"


def probe(config: Config, weights_dir: Path | None = None) -> Availability:
    """Whether the face expert could run, and in which mode. Loads no model."""
    cfg = config.face
    if cfg.detector and not Path(cfg.detector).expanduser().is_file():
        return Availability(NAME, False, f"face detector model not found: {cfg.detector}")
    try:
        ckpt = find_checkpoint(cfg, weights_dir)
    except ResourceError as exc:
        return Availability(NAME, False, f"face: {exc}", "EmoNet")
    if ckpt is not None:
        return Availability(NAME, True, "", f"EmoNet {ckpt} (trained), {_detector_line(cfg)}")
    if LANDMARK_MODEL.is_file() and hasattr(cv2.dnn, "readNetFromTFLite"):
        return Availability(
            NAME,
            True,
            MISSING_HINT,
            f"landmark geometry (fallback, weak), {_detector_line(cfg)}; {MISSING_HINT}",
        )
    return Availability(NAME, False, f"face: {MISSING_HINT}", "EmoNet")


def load(config: Config, weights_dir: Path | None = None) -> FaceExpert:
    """Detector + EmoNet (trained) or detector + landmark model (fallback)."""
    cfg = config.face
    try:
        ckpt = find_checkpoint(cfg, weights_dir)
        emonet = landmarks = None
        landmark_error = ""
        try:
            landmarks = LandmarkModel()  # fallback estimate, and eye refinement for EmoNet
        except ResourceError as exc:
            landmark_error = str(exc)
        if ckpt is not None:
            emonet = _load_checkpoint(ckpt, fast=config.runtime)
            source = f"EmoNet {ckpt.name} ({emonet.n_expression} classes)"
        elif landmarks is None:
            raise ExpertUnavailable(f"face: {MISSING_HINT} (and fallback failed: {landmark_error})")
        else:
            source = "landmark geometry (fallback)"
        detector = make_detector(cfg.detector, cfg.min_confidence)
    except (ExpertUnavailable, WeightsError):
        raise  # a checkpoint that is there but unusable stops the run: never a quiet skip
    except ResourceError as exc:
        raise ExpertUnavailable(f"face: {exc}") from None
    return FaceExpert(cfg, detector, emonet=emonet, landmarks=landmarks, source=source)


def _load_checkpoint(ckpt: Path, fast: Any = None) -> Any:
    """The EmoNet in `ckpt`, or WeightsError naming the file and why it cannot be used.
    `fast` (a RuntimeConfig): its cached ONNX Runtime export where allowed (runtime module)."""
    try:
        if fast is not None and fast.onnx:
            from ..runtime.emonet_runtime import load_emonet_fast

            return load_emonet_fast(ckpt, expected_classes(ckpt), threads=fast.torch_threads)
        from .emonet import load_emonet

        return load_emonet(ckpt, expected_classes(ckpt))
    except WeightsError as exc:
        raise WeightsError(f"face: {exc}") from None
    except ResourceError as exc:  # it loads, but not as an EmoNet (keys, shapes, classes)
        raise WeightsError(f"face: cannot use weights {ckpt}: {exc}") from None


def verify(config: Config, weights_dir: Path | None = None) -> Availability:
    """`probe`, and the checkpoint it reports is loaded into a freshly built EmoNet (every
    key and shape checked) and compared with its checksum where one is known."""
    from ..weights import check_sha256

    av = probe(config, weights_dir)
    try:
        ckpt = find_checkpoint(config.face, weights_dir)
    except ResourceError:  # a named file that is missing or not a file: probe says so
        return av
    if ckpt is None:
        return av
    try:
        net = _load_checkpoint(ckpt)
        checked = check_sha256(ckpt) or "no checksum known"
    except WeightsError as exc:
        return Availability(NAME, False, str(exc), f"EmoNet {ckpt}", invalid=True)
    return Availability(
        NAME,
        True,
        "",
        f"EmoNet {ckpt} (trained, {net.n_expression} classes; loads, {checked}), "
        f"{_detector_line(config.face)}",
    )

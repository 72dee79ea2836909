"""Types shared by every expert: frame batches in, per-sample estimates out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class FrameBatch:
    """Consecutive samples of one clip, at working resolution."""

    frames: np.ndarray  # [B, H, W, 3] uint8 RGB
    times: np.ndarray  # [B] float64 seconds, true presentation timestamps
    motion: np.ndarray  # [B] float64 mean absolute luminance change per decoded frame (0..1)
    index0: int = 0  # index of frames[0] among all samples of the clip
    # per sample, its picture above working resolution (moodsic_engine.detail.DetailFrame)
    # or None; held only while the batch is processed
    detail: tuple[Any, ...] | None = None

    def __len__(self) -> int:
        return int(self.times.shape[0])


@dataclass(frozen=True)
class Estimates:
    """One expert's estimates for one batch. V/A on the reference scale [-1, 1]."""

    v: np.ndarray
    a: np.ndarray
    var_v: np.ndarray
    var_a: np.ndarray
    present: np.ndarray  # bool: False where the expert has nothing to say (e.g. no face)
    faces: np.ndarray | None = None  # int faces seen per sample (face expert only)
    # face expert: per sample, its faces as (x, y, w, h, confidence, mesh presence), box
    # normalised to the frame (0..1)
    boxes: tuple[tuple[tuple[float, ...], ...], ...] | None = None

    @classmethod
    def absent(cls, n: int) -> Estimates:
        z = np.zeros(n)
        return cls(z, z.copy(), np.ones(n), np.ones(n), np.zeros(n, dtype=bool))


@dataclass(frozen=True)
class ClipContext:
    """Facts about the whole clip, known once sampling is done."""

    duration_s: float
    fps: Fraction
    cuts: tuple[float, ...] = ()


@dataclass(frozen=True)
class ExpertSeries:
    """One expert over a whole clip."""

    name: str
    t: np.ndarray
    v: np.ndarray
    a: np.ndarray
    var_v: np.ndarray
    var_a: np.ndarray
    present: np.ndarray
    faces: np.ndarray | None = None
    mode: str = "trained"  # "trained", "zero-shot" or "fallback"
    boxes: tuple[tuple[tuple[float, ...], ...], ...] | None = None  # see Estimates.boxes
    info: dict[str, object] = field(default_factory=dict)

    @classmethod
    def concat(cls, name: str, mode: str, t: np.ndarray, parts: list[Estimates]) -> ExpertSeries:
        def cat(attr: str, dtype: type = np.float64) -> np.ndarray:
            arrays = [np.asarray(getattr(p, attr)) for p in parts]
            return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)

        faces = None
        if parts and all(p.faces is not None for p in parts):
            faces = cat("faces", np.int64)
        boxes = None
        if parts and all(p.boxes is not None for p in parts):
            boxes = tuple(b for p in parts for b in p.boxes)  # type: ignore[union-attr]
        return cls(
            name=name,
            t=np.asarray(t, dtype=np.float64),
            v=cat("v"),
            a=cat("a"),
            var_v=cat("var_v"),
            var_a=cat("var_a"),
            present=cat("present", bool),
            faces=faces,
            mode=mode,
            boxes=boxes,
        )

    def select(self, index: np.ndarray) -> ExpertSeries:
        """The same expert at a subset or reordering of its samples (mask or index array)."""
        return dataclasses.replace(
            self,
            t=self.t[index],
            v=self.v[index],
            a=self.a[index],
            var_v=self.var_v[index],
            var_a=self.var_a[index],
            present=self.present[index],
            faces=self.faces[index] if self.faces is not None else None,
            boxes=(
                tuple(self.boxes[int(k)] for k in np.arange(len(self.t))[index])
                if self.boxes is not None
                else None
            ),
        )

    def sanitized(self, var_floor: float, var_ceiling: float) -> ExpertSeries:
        """Non-finite values become absent; variances are clamped into [floor, ceiling]."""
        finite = np.isfinite(self.v) & np.isfinite(self.a)
        present = self.present.astype(bool) & finite
        var_v = np.nan_to_num(self.var_v, nan=var_ceiling, posinf=var_ceiling)
        var_a = np.nan_to_num(self.var_a, nan=var_ceiling, posinf=var_ceiling)
        return dataclasses.replace(
            self,
            v=np.where(present, np.clip(np.nan_to_num(self.v), -1, 1), 0.0),
            a=np.where(present, np.clip(np.nan_to_num(self.a), -1, 1), 0.0),
            var_v=np.clip(var_v, var_floor, var_ceiling),
            var_a=np.clip(var_a, var_floor, var_ceiling),
            present=present,
        )


class Expert(Protocol):
    """What the pipeline needs from an expert. Models are loaded once, in `load()`."""

    name: str
    mode: str  # "trained", "zero-shot" or "fallback"

    def predict(self, batch: FrameBatch) -> Estimates:
        """Estimates for every sample of the batch (batched inference)."""
        ...

    def finalize(self, series: ExpertSeries, context: ClipContext) -> ExpertSeries:
        """Adjust the whole-clip series once cuts and duration are known (default: unchanged)."""
        ...


@dataclass(frozen=True)
class Availability:
    name: str
    ready: bool
    reason: str = ""  # one line: why not, and what to fetch
    uses: str = ""  # what it would use (model, weights path, mode)
    invalid: bool = False  # a weights file is there but cannot be used (reason says why)

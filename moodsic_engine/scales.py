"""Every dataset's V/A scale <-> the reference scale [-1, 1] (DESIGN.md, "Scales").

Conversions happen at the edge (loaders, readers, model outputs) and nowhere else.
All functions are vectorised over numpy arrays and also accept plain floats.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def _arr(x: ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


# FindingEmo: valence -3..3, arousal 0..6
def findingemo_valence_to_ref(v: ArrayLike) -> FloatArray:
    return _arr(v) / 3.0


def findingemo_arousal_to_ref(a: ArrayLike) -> FloatArray:
    return _arr(a) / 3.0 - 1.0


def ref_to_findingemo_valence(v: ArrayLike) -> FloatArray:
    return _arr(v) * 3.0


def ref_to_findingemo_arousal(a: ArrayLike) -> FloatArray:
    return (_arr(a) + 1.0) * 3.0


# DEAM static song-level: 1..9 on both axes
def deam_static_to_ref(x: ArrayLike) -> FloatArray:
    return (_arr(x) - 5.0) / 4.0


def ref_to_deam_static(x: ArrayLike) -> FloatArray:
    return _arr(x) * 4.0 + 5.0


# DEAM dynamic (2 Hz) and VEATIC: already -1..1
def deam_dynamic_to_ref(x: ArrayLike) -> FloatArray:
    return _arr(x).copy()


def veatic_to_ref(x: ArrayLike) -> FloatArray:
    return _arr(x).copy()


ref_to_deam_dynamic = deam_dynamic_to_ref
ref_to_veatic = veatic_to_ref


# EmoNet: roughly -1..1; clip at the edge
def emonet_to_ref(x: ArrayLike) -> FloatArray:
    return np.clip(_arr(x), -1.0, 1.0)


# Named scales for manifests: (lo, hi) of the source range for both axes.
NAMED_SCALES: dict[str, tuple[float, float]] = {
    "ref": (-1.0, 1.0),
    "unit": (0.0, 1.0),
    "deam": (1.0, 9.0),
    "1-9": (1.0, 9.0),
    "1-5": (1.0, 5.0),
    "1-7": (1.0, 7.0),
    "0-10": (0.0, 10.0),
    "percent": (0.0, 100.0),
}


def range_to_ref(x: ArrayLike, lo: float, hi: float) -> FloatArray:
    """Linear map of [lo, hi] onto [-1, 1]."""
    return (_arr(x) - lo) / (hi - lo) * 2.0 - 1.0


def ref_to_range(x: ArrayLike, lo: float, hi: float) -> FloatArray:
    return (_arr(x) + 1.0) / 2.0 * (hi - lo) + lo


def clip_ref(x: ArrayLike) -> FloatArray:
    """Clip to the reference range, mapping NaN to 0 so nothing non-finite leaks out."""
    return np.clip(np.nan_to_num(_arr(x), nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)

"""VEATIC as published: finding its videos and rating files, reading the per-frame ratings,
and aligning prediction series to the annotated frames.

Layout: `videos/{id}.mp4` and `rating_averaged/{id}_valence.csv`,
`rating_averaged/{id}_arousal.csv` with per-frame averaged ratings in [-1, 1] (the
reference scale, so no conversion). A rating file holds one value per line, or
`frame,value` rows, with or without a header.

Alignment is by timestamp: annotated frame k sits at k / fps with the video's exact
rational frame rate, and each prediction series (sampled at `sample_fps`, on true frame
timestamps) is linearly interpolated there; before the first and after the last sample the
edge value is held. A series with gaps (the face expert where no face is seen) counts only
at frames whose nearest sample has a value.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..fileio import regular_file

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi", ".webm")


@dataclass(frozen=True)
class VeaticVideo:
    id: str
    video: Path
    valence: Path
    arousal: Path


def _id_key(vid: str) -> tuple[int, int | str]:
    return (0, int(vid)) if vid.isdigit() else (1, vid)


def find_veatic(
    root: str | Path, *, videos: list[str] | tuple[str, ...] | None = None, limit: int | None = None
) -> list[VeaticVideo]:
    """Videos with both rating files, sorted by id (numerically where ids are numbers)."""
    root = Path(root)
    vdir, rdir = root / "videos", root / "rating_averaged"
    if not vdir.is_dir() or not rdir.is_dir():
        raise InputError(
            f"{root} is not a VEATIC folder (expected videos/ and rating_averaged/ inside it)"
        )
    found: dict[str, VeaticVideo] = {}
    for p in sorted(vdir.iterdir()):
        if p.suffix.lower() not in VIDEO_EXTS or not p.is_file():
            continue
        val, aro = rdir / f"{p.stem}_valence.csv", rdir / f"{p.stem}_arousal.csv"
        if val.is_file() and aro.is_file():
            found[p.stem] = VeaticVideo(p.stem, p, val, aro)
    if videos:
        missing = [v for v in videos if v not in found]
        if missing:
            raise InputError(
                f"VEATIC video id(s) not found with both rating files under {root}: {', '.join(missing)}"
            )
        items = [found[v] for v in videos]
    else:
        items = [found[k] for k in sorted(found, key=_id_key)]
    if limit is not None:
        items = items[: max(0, int(limit))]
    if not items:
        raise InputError(f"no VEATIC videos with rating files under {root}")
    return items


# 10 hours at 120 fps: more frames than any rated video has; the ratings array is sized by it.
MAX_RATED_FRAMES = 10 * 3600 * 120
MAX_RATING_BYTES = 256 << 20  # ~16 bytes a row: far above MAX_RATED_FRAMES rows

_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def read_ratings(path: str | Path) -> np.ndarray:
    """Per-frame ratings, index = frame number (0-based); NaN for frames without a rating.

    Accepts one value per line, or `frame,value` rows (the last column is the value), with or
    without a header line. Frame numbers that start at 1 and run 1..n are taken as 1-based.
    """
    p = regular_file(path, "rating file", max_bytes=MAX_RATING_BYTES)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read rating file {p}: {exc}") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    rows = [[c.strip() for c in r if c.strip()] for r in rows]
    if rows and not all(_NUM.match(c) for c in rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise InputError(f"rating file {p.name} has no values")
    bad = next((i for i, r in enumerate(rows) if not all(_NUM.match(c) for c in r)), None)
    if bad is not None:
        raise InputError(
            f"rating file {p.name}: line {bad + 1} is not numeric: {','.join(rows[bad])}"
        )
    if len(rows) > MAX_RATED_FRAMES:
        raise InputError(f"rating file {p.name} has {len(rows)} rows (at most {MAX_RATED_FRAMES})")
    width = {len(r) for r in rows}
    if width == {1}:
        return np.array([float(r[0]) for r in rows], dtype=np.float64)
    if min(width) < 2:
        raise InputError(f"rating file {p.name} mixes one-column and frame,value rows")
    frames = np.array([float(r[0]) for r in rows])
    values = np.array([float(r[-1]) for r in rows], dtype=np.float64)
    if np.any(frames < 0) or np.any(frames != np.round(frames)):
        raise InputError(f"rating file {p.name}: frame numbers must be whole and >= 0")
    # The array is sized by the largest frame number: refuse one no video can have before
    # allocating (1e12 would ask for 8 TB).
    if frames.max() >= MAX_RATED_FRAMES:
        raise InputError(
            f"rating file {p.name}: frame number {frames.max():.0f} is beyond any video "
            f"(at most {MAX_RATED_FRAMES - 1})"
        )
    idx = frames.astype(np.int64)
    if idx.min() == 1 and len(np.unique(idx)) == len(idx) and idx.max() == len(idx):
        idx = idx - 1
    out = np.full(int(idx.max()) + 1, np.nan)
    out[idx] = values
    return out


def read_labels(item: VeaticVideo) -> np.ndarray:
    """[F, 2] (valence, arousal); the shorter file is padded with NaN."""
    v, a = read_ratings(item.valence), read_ratings(item.arousal)
    n = max(len(v), len(a))
    out = np.full((n, 2), np.nan)
    out[: len(v), 0] = v
    out[: len(a), 1] = a
    return out


def frame_times(n_frames: int, fps: Fraction) -> np.ndarray:
    """k / fps for k in 0..n-1, from exact integers (no accumulated rounding)."""
    fps = Fraction(fps)
    k = np.arange(int(n_frames), dtype=np.int64)
    return (k * fps.denominator) / float(fps.numerator)


def align(t: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Interpolate a sample series to the times `at` (see the module docstring).

    `values` is [N] or [N, k]; rows with a NaN are gaps. Returns [len(at)] or [len(at), k].
    """
    t = np.asarray(t, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    flat = vals.ndim == 1
    vals = vals.reshape(len(t), -1)
    at = np.asarray(at, dtype=np.float64)
    out = np.full((len(at), vals.shape[1]), np.nan)
    ok = np.all(np.isfinite(vals), axis=1)
    if len(t) and ok.any():
        for j in range(vals.shape[1]):
            out[:, j] = np.interp(at, t[ok], vals[ok, j])
        # nearest sample (ties to the earlier one) decides whether the frame is covered
        right = np.clip(np.searchsorted(t, at, side="left"), 0, len(t) - 1)
        left = np.clip(right - 1, 0, len(t) - 1)
        nearest = np.where(np.abs(at - t[left]) <= np.abs(t[right] - at), left, right)
        out[~ok[nearest]] = np.nan
    return out[:, 0] if flat else out

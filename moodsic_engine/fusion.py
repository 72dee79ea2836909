"""FUSE: inverse-variance weighting of the experts present at each sample.

For experts i present at a sample, with value x_i and variance s_i (clamped to
[var_floor, var_ceiling]): fused = sum(x_i / s_i) / sum(1 / s_i), fused variance =
1 / sum(1 / s_i). Where no expert is present the fused value is NaN and the variance
infinite; the stabilizer holds through such samples.

The weights are only as good as the variances: each expert's are calibrated first (raw
spread -> expected squared error, moodsic_engine.calibration), so an expert that is sure of
itself but often wrong is weighed by its real error, not by its confidence.
"""

from __future__ import annotations

import numpy as np

from .config import FusionConfig
from .experts.base import ExpertSeries


def fuse(
    series: list[ExpertSeries], cfg: FusionConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(va[N, 2], var[N, 2]) from expert series sampled on the same times."""
    cfg = cfg or FusionConfig()
    if not series:
        raise ValueError("fuse needs at least one expert series")
    n = len(series[0].t)
    cleaned = []
    for s in series:
        if len(s.t) != n:
            raise ValueError(f"expert {s.name} has {len(s.t)} samples, expected {n}")
        cleaned.append(s.sanitized(cfg.var_floor, cfg.var_ceiling))
    # Weighted mean as offsets from one expert's value: experts that agree give exactly that
    # value whatever their weights (a plain sum / sum drifts by a rounding step).
    ref = np.zeros((n, 2))
    for c in reversed(cleaned):
        ref = np.where(c.present[:, None], np.stack([c.v, c.a], axis=1), ref)
    num = np.zeros((n, 2))
    den = np.zeros((n, 2))
    for clean in cleaned:
        w = np.stack([1.0 / clean.var_v, 1.0 / clean.var_a], axis=1) * clean.present[:, None]
        num += w * (np.stack([clean.v, clean.a], axis=1) - ref)
        den += w
    with np.errstate(divide="ignore", invalid="ignore"):
        va = np.where(den > 0, ref + num / np.where(den > 0, den, 1.0), np.nan)
        var = np.where(den > 0, 1.0 / np.where(den > 0, den, 1.0), np.inf)
    return np.clip(va, -1.0, 1.0), var


def fusion_weights(
    series: list[ExpertSeries], cfg: FusionConfig | None = None
) -> dict[str, np.ndarray]:
    """Each expert's share of the fused value, name -> [N, 2] in [0, 1] (0 where absent;
    the shares of the experts present at a sample sum to 1)."""
    cfg = cfg or FusionConfig()
    raw: dict[str, np.ndarray] = {}
    for s in series:
        clean = s.sanitized(cfg.var_floor, cfg.var_ceiling)
        w = np.stack([1.0 / clean.var_v, 1.0 / clean.var_a], axis=1) * clean.present[:, None]
        raw[s.name] = w
    total = sum(raw.values()) if raw else np.zeros((0, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            k: np.where(total > 0, w / np.where(total > 0, total, 1.0), 0.0) for k, w in raw.items()
        }

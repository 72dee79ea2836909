"""STABILIZE: an EMA that holds its last stable value while the fused uncertainty is high.

At each sample the mean fused variance is compared with `gate`. Below it, the stable value
moves toward the fused value by alpha (scaled to the actual sample spacing, so VFR input
and other sample rates behave the same). Above it (or where nothing was fused), the value is
held, but never for longer than `max_hold_s`: after that the EMA follows the data again, so
a clip that is uncertain throughout still gets a score.
"""

from __future__ import annotations

import numpy as np

from .config import StabilizeConfig


def stabilize(
    t: np.ndarray,
    va: np.ndarray,
    var: np.ndarray,
    cfg: StabilizeConfig | None = None,
    sample_fps: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(stable va[N, 2] in [-1, 1], held[N] bool)."""
    cfg = cfg or StabilizeConfig()
    t = np.asarray(t, dtype=np.float64)
    va = np.asarray(va, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    n = len(t)
    out = np.zeros((n, 2))
    held = np.zeros(n, dtype=bool)
    if n == 0:
        return out, held
    finite = np.all(np.isfinite(va), axis=1)
    uncertainty = np.where(
        finite, np.nanmean(np.where(np.isfinite(var), var, np.inf), axis=1), np.inf
    )
    ref_dt = 1.0 / sample_fps if sample_fps > 0 else 0.5
    keep = 1.0 - float(np.clip(cfg.ema_alpha, 0.0, 1.0))

    state: np.ndarray | None = None
    hold_start: float | None = None
    for i in range(n):
        confident = finite[i] and uncertainty[i] <= cfg.gate
        if state is None:
            if finite[i]:
                state = va[i].copy()
                out[i] = state
            held[i] = not finite[i]  # nothing to show yet: report 0 as held
            continue
        if not confident:
            if hold_start is None:
                hold_start = t[i]
            if t[i] - hold_start < cfg.max_hold_s or not finite[i]:
                held[i] = True
                out[i] = state
                continue
        else:
            hold_start = None
        dt = t[i] - t[i - 1] if i > 0 else ref_dt
        alpha = 1.0 - keep ** max(dt / ref_dt, 0.0)
        state = state + alpha * (va[i] - state)
        out[i] = state
    return np.clip(np.nan_to_num(out), -1.0, 1.0), held

"""STABILIZE, one sample at a time: the batch stabilizer's EMA-with-hold as a causal filter.

`OnlineStabilizer.update(t, va, var)` returns what `stabilize.stabilize` returns for the
last sample of the series seen so far, so feeding a recorded series sample by sample gives
exactly the batch output (tested). It keeps three numbers of state, so it can run for days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import StabilizeConfig


@dataclass(frozen=True)
class StableSample:
    """One stabilized sample: V/A in [-1, 1] and whether the value was held."""

    t: float
    valence: float
    arousal: float
    held: bool

    @property
    def va(self) -> np.ndarray:
        """[2] array (valence, arousal)."""
        return np.array([self.valence, self.arousal])


class OnlineStabilizer:
    """Causal EMA that holds while the fused variance is above the gate (see stabilize.py).

    Parameters
    ----------
    cfg
        The batch stabilizer's settings (alpha per sample at `sample_fps`, gate, max hold).
    sample_fps
        The sample rate alpha refers to; live analysis passes its own rate (default 1/s).
    """

    def __init__(self, cfg: StabilizeConfig | None = None, sample_fps: float = 2.0) -> None:
        self.cfg = cfg or StabilizeConfig()
        self._ref_dt = 1.0 / sample_fps if sample_fps > 0 else 0.5
        self._keep = 1.0 - float(np.clip(self.cfg.ema_alpha, 0.0, 1.0))
        self._state: np.ndarray | None = None
        self._hold_start: float | None = None
        self._last_t: float | None = None

    def reset(self) -> None:
        """Forget everything (a new session)."""
        self._state = None
        self._hold_start = None
        self._last_t = None

    def update(self, t: float, va: np.ndarray, var: np.ndarray) -> StableSample:
        """Take one fused sample (va[2], var[2]; NaN va = nothing fused) and return the stable one."""
        va = np.asarray(va, dtype=np.float64).reshape(2)
        var = np.asarray(var, dtype=np.float64).reshape(2)
        t = float(t)
        finite = bool(np.all(np.isfinite(va)))
        # Mean of the finite variances, as the batch nanmean over var-with-inf does.
        v = np.where(np.isfinite(var), var, np.inf)
        uncertainty = float(np.mean(v)) if finite else math.inf
        confident = finite and uncertainty <= self.cfg.gate
        prev_t, self._last_t = self._last_t, t
        held = False
        if self._state is None:
            if finite:
                self._state = va.copy()
            held = not finite  # nothing to show yet: 0, held
            return self._out(t, self._state, held)
        if not confident:
            if self._hold_start is None:
                self._hold_start = t
            if t - self._hold_start < self.cfg.max_hold_s or not finite:
                return self._out(t, self._state, True)
        else:
            self._hold_start = None
        dt = t - prev_t if prev_t is not None else self._ref_dt
        alpha = 1.0 - self._keep ** max(dt / self._ref_dt, 0.0)
        self._state = self._state + alpha * (va - self._state)
        return self._out(t, self._state, held)

    @staticmethod
    def _out(t: float, state: np.ndarray | None, held: bool) -> StableSample:
        s = np.zeros(2) if state is None else np.clip(np.nan_to_num(state), -1.0, 1.0)
        return StableSample(t=t, valence=float(s[0]), arousal=float(s[1]), held=held)

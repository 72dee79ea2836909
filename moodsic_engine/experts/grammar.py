"""Film-grammar expert: affect from colour, motion and editing rhythm. Needs no weights.

- Colour -> pleasure and arousal after Valdez & Mehrabian (1994): with brightness B and
  saturation S in [0, 1], Pleasure = .69 B + .22 S and Arousal = -.31 B + .60 S.
- Motion activity and cut density raise arousal, after Hanjalic & Xu (2005), whose
  arousal model combines motion, shot-cut rhythm and sound energy.

These are weak cues, and the variance says so: fusion leans on the model experts
whenever they are present. The variances (`grammar.var_v`, `grammar.var_a` plus the colour
and motion cues' disagreement on arousal) are hand-set: no published error figure exists
for these rules. A calibration file fitted by `moodsic eval veatic` on labelled clips maps
them to the squared error the rules really make (moodsic_engine/calibration.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..config import Config, GrammarConfig
from .base import Availability, ClipContext, Estimates, ExpertSeries, FrameBatch

# Mid-grey (B = S = .5) maps to 0; the extremes of each formula map to about +-1.
_P_MID, _P_HALF = 0.455, 0.455
_A_MID, _A_HALF = 0.145, 0.455
# Arousal mix: colour, motion, cut rhythm.
_W_COLOUR, _W_MOTION, _W_CUTS = 0.35, 0.40, 0.25


def colour_affect(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(valence, arousal) in [-1, 1] per frame from mean HSV brightness and saturation."""
    # Frame means need few pixels: every 4th row and column (~5,600 at 224 px) is plenty,
    # and max/min on uint8 before any float conversion keeps this off the profile.
    small = frames[:, ::4, ::4, :]
    mx = small.max(axis=-1)
    mn = small.min(axis=-1)
    mxf = mx.astype(np.float32)
    sat = (mxf - mn) / np.maximum(mxf, 1.0)
    n = len(frames)
    b = mxf.reshape(n, -1).mean(axis=1).astype(np.float64) / 255.0
    s = sat.reshape(n, -1).mean(axis=1).astype(np.float64)
    pleasure = 0.69 * b + 0.22 * s
    arousal = -0.31 * b + 0.60 * s
    v = np.clip((pleasure - _P_MID) / _P_HALF, -1.0, 1.0)
    a = np.clip((arousal - _A_MID) / _A_HALF, -1.0, 1.0)
    return v, a


def motion_arousal(motion: np.ndarray, gain: float) -> np.ndarray:
    """Mean absolute luma change per frame (0..1) -> arousal in [-1, 1], saturating."""
    return 2.0 * (1.0 - np.exp(-gain * np.maximum(motion, 0.0))) - 1.0


def cut_arousal(
    t: np.ndarray, cuts: tuple[float, ...], window_s: float, high_rate: float
) -> np.ndarray:
    """Cut density around each time -> arousal in [-1, 1] (no cuts: -1, `high_rate` or more: +1)."""
    if len(t) == 0:
        return np.zeros(0)
    c = np.asarray(cuts, dtype=np.float64)
    half = window_s / 2.0
    counts = np.searchsorted(c, t + half, side="right") - np.searchsorted(c, t - half, side="left")
    rate = counts / window_s
    return np.clip(2.0 * rate / high_rate - 1.0, -1.0, 1.0)


class GrammarExpert:
    name = "grammar"
    mode = "rules"  # hand-written rules, no weights: nothing trained, nothing to fall back from

    def __init__(self, cfg: GrammarConfig) -> None:
        self.cfg = cfg

    def predict(self, batch: FrameBatch) -> Estimates:
        v_col, a_col = colour_affect(batch.frames)
        a_mot = motion_arousal(batch.motion, self.cfg.motion_gain)
        w = _W_COLOUR + _W_MOTION
        a = (_W_COLOUR * a_col + _W_MOTION * a_mot) / w
        # Disagreement between cues is real uncertainty on top of the cue's own weakness.
        spread = 0.5 * (a_col - a_mot) ** 2
        n = len(batch)
        return Estimates(
            v=v_col,
            a=a,
            var_v=np.full(n, self.cfg.var_v),
            var_a=self.cfg.var_a + 0.1 * spread,
            present=np.ones(n, dtype=bool),
        )

    def finalize(self, series: ExpertSeries, context: ClipContext) -> ExpertSeries:
        a_cut = cut_arousal(series.t, context.cuts, self.cfg.cut_window_s, self.cfg.cuts_per_s_high)
        w = _W_COLOUR + _W_MOTION
        a = np.clip(w * series.a + _W_CUTS * a_cut, -1.0, 1.0)
        return dataclasses.replace(series, a=a)


def probe(config: Config, weights_dir: Path | None = None) -> Availability:  # noqa: ARG001
    return Availability("grammar", True, "", "colour, motion and cut rhythm (no weights)")


def load(config: Config, weights_dir: Path | None = None) -> GrammarExpert:  # noqa: ARG001
    return GrammarExpert(config.grammar)

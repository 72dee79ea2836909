"""Rolling analysis: each live sample through the same experts, fusion, the online stabilizer
and the online segmenter, using only the past.

Experts run on a batch of one frame, as the batch pipeline runs them on batches. Their
`finalize` step, which sees a whole clip in batch mode, is given only the past here: the shot
cuts seen so far, and a time shifted back by half the cut window, so the grammar expert's
cut-rate window [t - w/2, t + w/2] becomes the trailing window [t - w, t].
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..config import Config
from ..experts import ClipContext, ExpertSeries, FrameBatch, LoadedExperts
from ..fusion import fuse
from ..segment import ClusterModel
from ..segment_online import MoodChange, OnlineSegmenter
from ..stabilize_online import OnlineStabilizer
from .sources import LiveFrame


@dataclass(frozen=True)
class LiveStep:
    """What one sample told: fused and stable V/A, faces, and a mood decision if one was made."""

    t: float
    source_t: float
    fused: tuple[float, float] | None  # None: no expert had anything to say
    fused_var: tuple[float, float] | None
    stable: tuple[float, float]
    held: bool
    faces: int | None  # None without the face expert
    experts: dict[str, tuple[float, float]]
    change: MoodChange | None
    challenger: int | None = None  # the likeliest next mood (cluster index), if any


class LiveAnalyzer:
    """Causal analysis of live samples (see the module docstring).

    Parameters
    ----------
    experts
        Loaded once by the caller (`moodsic_engine.experts.load_experts`).
    clusters
        The library's mood clusters.
    config
        Fusion, stabilizer and segmenter settings (the batch ones).
    sample_fps
        The live sample rate; the stabilizer's alpha is per sample at this rate.
    min_dwell_s, max_delay_s
        The online segmenter's minimum dwell and decision backstop.
    """

    def __init__(
        self,
        experts: LoadedExperts,
        clusters: ClusterModel,
        config: Config,
        *,
        sample_fps: float = 1.0,
        min_dwell_s: float = 20.0,
        max_delay_s: float = 3.0,
        coverage_window: int = 60,
    ) -> None:
        self.experts = experts
        self.config = config
        self.stabilizer = OnlineStabilizer(config.stabilize, sample_fps=sample_fps)
        self.segmenter = OnlineSegmenter(
            clusters, config.segment, min_dwell_s=min_dwell_s, max_delay_s=max_delay_s
        )
        self._window = float(config.grammar.cut_window_s)
        self._cuts: deque[float] = deque()  # cuts inside the trailing window only
        self._faces: deque[bool] = deque(maxlen=coverage_window)
        self._has_face = "face" in experts.names
        self._index = 0

    @property
    def face_coverage(self) -> float | None:
        """Share of recent samples with a face (None without the face expert)."""
        if not self._has_face:
            return None
        return float(np.mean(self._faces)) if self._faces else 0.0

    def step(self, lf: LiveFrame) -> LiveStep:
        """Analyse one sample; the frame is not kept."""
        for c in lf.cuts:
            self._cuts.append(c)
        while self._cuts and self._cuts[0] < lf.t - self._window:
            self._cuts.popleft()
        batch = FrameBatch(
            frames=lf.frame[None],
            times=np.array([lf.t]),
            motion=np.array([lf.motion]),
            index0=self._index,
        )
        self._index += 1
        half = self._window / 2.0
        context = ClipContext(
            duration_s=lf.t + 1.0, fps=Fraction(25), cuts=tuple(c - half for c in self._cuts)
        )
        fcfg = self.config.fusion
        series = []
        faces: int | None = None
        for expert in self.experts.experts:
            est = expert.predict(batch)
            s = ExpertSeries.concat(expert.name, expert.mode, batch.times - half, [est])
            s = dataclasses.replace(expert.finalize(s, context), t=batch.times)
            series.append(s.sanitized(fcfg.var_floor, fcfg.var_ceiling))
            if s.faces is not None:
                faces = int(s.faces[0])
        del batch  # the frame goes no further than the experts
        va, var = fuse(series, fcfg)
        if self._has_face:
            face = next(s for s in series if s.name == "face")
            self._faces.append(bool(face.present[0]))
        stable = self.stabilizer.update(lf.t, va[0], var[0])
        change = self.segmenter.update(lf.t, stable.va)
        fused_ok = bool(np.all(np.isfinite(va[0])))
        return LiveStep(
            t=lf.t,
            source_t=lf.source_t,
            fused=(float(va[0, 0]), float(va[0, 1])) if fused_ok else None,
            fused_var=(float(var[0, 0]), float(var[0, 1])) if fused_ok else None,
            stable=(stable.valence, stable.arousal),
            held=stable.held,
            faces=faces,
            experts={s.name: (float(s.v[0]), float(s.a[0])) for s in series if bool(s.present[0])},
            change=change,
            challenger=self.segmenter.challenger(),
        )

"""SEGMENT, one sample at a time: causal mood decisions for live use.

The batch segmenter (segment.py) sees the whole clip: a Viterbi path where each change of
mood costs `switch_penalty` nats, then short runs merged. Live, only the past is known, so:

1. Each stable sample's posterior over the library's mood clusters (the same model).
2. A CUSUM per other mood: lead_k = max(0, lead_k + log p_k - log p_current). A lead that
   reaches `switch_penalty` is the same evidence the Viterbi path pays for a change, so the
   online and batch decisions agree on what is a change; the sample where that lead last
   left zero is the change's onset (where the batch boundary falls). One sample adds at
   most half the penalty, and a mood is only decided at a sample where it is the most
   probable one: otherwise the one or two samples where the smoothed value crosses a third
   mood on its way between two opposite moods would decide it, where the batch path, seeing
   both sides, never goes there.
3. A backstop bounds the decision delay: a mood that has been the most probable one for
   `max_delay_s` in a row wins even if its lead is still small (weak but steady evidence).
4. The first mood is decided after `warmup_s` (the most likely one over those samples), so
   one odd first frame does not pick the session's opening music.
5. A minimum dwell: no change until the current mood has lasted `min_dwell_s`, so the
   music never flaps; evidence gathered meanwhile still counts when the dwell ends.

Decision latency after the stable value crosses into a new mood: at most `max_delay_s` plus
one sample (the backstop), usually less (a clear change decides in 1-3 samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SegmentConfig
from .segment import ClusterModel


@dataclass(frozen=True)
class MoodChange:
    """A decided mood: the first one of a session, or a change.

    Times are in the caller's seconds. `onset_t` is the sample where the evidence for this
    mood began (the batch boundary's estimate); `decided_t` is the sample that decided it.
    """

    decided_t: float
    onset_t: float
    index: int
    mood: str
    mood_label: str
    valence: float
    arousal: float
    confidence: float
    first: bool = False


class OnlineSegmenter:
    """Causal mood decisions over stable V/A samples (see the module docstring).

    Parameters
    ----------
    clusters
        The library's mood-cluster model (posterior over K moods for [N, 2] V/A).
    cfg
        The batch segmenter's settings: `switch_penalty` is shared; `min_segment_s` is the
        default minimum dwell.
    min_dwell_s
        Shortest time a mood is kept once decided (default `cfg.min_segment_s`).
    max_delay_s
        Backstop: a mood that has been the most probable for this long wins.
    warmup_s
        The first mood is decided once this much time has been seen.
    """

    def __init__(
        self,
        clusters: ClusterModel,
        cfg: SegmentConfig | None = None,
        *,
        min_dwell_s: float | None = None,
        max_delay_s: float = 4.0,
        warmup_s: float = 3.0,
    ) -> None:
        self.clusters = clusters
        self.cfg = cfg or SegmentConfig()
        self.min_dwell_s = float(self.cfg.min_segment_s if min_dwell_s is None else min_dwell_s)
        self.max_delay_s = float(max_delay_s)
        self.warmup_s = float(warmup_s)
        self._cap = max(1e-6, self.cfg.switch_penalty / 2.0)  # evidence one sample may add
        self._first_t: float | None = None
        self.current: int | None = None
        self.since_t = 0.0
        k = len(clusters.slugs)
        self._lead = np.zeros(k)
        self._lead_start = np.zeros(k)  # sample time where each lead last rose from zero
        self._top: int | None = None  # the per-sample most probable mood, and since when
        self._top_since = 0.0
        self._warm = np.zeros(k)  # summed log posterior before the first decision

    def update(self, t: float, va: np.ndarray) -> MoodChange | None:
        """Take one stable sample (va[2]); a MoodChange when the mood is decided or changes."""
        t = float(t)
        va = np.clip(np.nan_to_num(np.asarray(va, dtype=np.float64).reshape(1, 2)), -1.0, 1.0)
        post = np.asarray(self.clusters.posterior(va), dtype=np.float64).reshape(-1)
        lp = np.log(post + 1e-9)
        top = int(np.argmax(post))
        if top != self._top:
            self._top, self._top_since = top, t
        if self.current is None:
            if self._first_t is None:
                self._first_t = t
            self._warm += np.clip(lp - lp.max(), -self._cap, 0.0)  # one odd sample counts little
            if t - self._first_t < self.warmup_s - 1e-9:
                return None
            return self._decide(int(np.argmax(self._warm)), t, self._first_t, post, va, first=True)
        cur = self.current
        step = np.clip(lp - lp[cur], -self._cap, self._cap)
        rising = (self._lead <= 0.0) & (step > 0.0)
        self._lead_start = np.where(rising, t, self._lead_start)
        self._lead = np.maximum(0.0, self._lead + step)
        self._lead[cur] = 0.0
        if t - self.since_t < self.min_dwell_s - 1e-9:
            return None
        # A mood past the threshold is decided at a sample that favours it most of all: on the
        # way between two opposite moods, a third one's lead can pass the threshold as the value
        # already sits in the destination.
        if self._lead[top] >= self.cfg.switch_penalty:
            return self._decide(top, t, float(self._lead_start[top]), post, va)
        if top != cur and t - self._top_since >= self.max_delay_s - 1e-9:
            onset = float(self._lead_start[top]) if self._lead[top] > 0 else self._top_since
            return self._decide(top, t, onset, post, va)
        return None

    def challenger(self) -> int | None:
        """The mood most likely to come next (the largest lead, else the most probable mood
        when it is not the current one), or None. Callers use it to get ready early."""
        if self.current is None:  # warming up: the mood that leads so far
            return int(np.argmax(self._warm)) if self._first_t is not None else None
        best = int(np.argmax(self._lead))
        if self._lead[best] > 0.0:
            return best
        return self._top if self._top is not None and self._top != self.current else None

    def _decide(
        self, k: int, t: float, onset: float, post: np.ndarray, va: np.ndarray, first: bool = False
    ) -> MoodChange:
        self.current = k
        self.since_t = t
        self._lead[:] = 0.0
        return MoodChange(
            decided_t=t,
            onset_t=min(onset, t),
            index=k,
            mood=str(self.clusters.slugs[k]),
            mood_label=str(self.clusters.labels[k]),
            valence=float(va[0, 0]),
            arousal=float(va[0, 1]),
            confidence=float(np.clip(post[k], 0.0, 1.0)),
            first=first,
        )


def segment_stream(
    t: np.ndarray,
    va: np.ndarray,
    clusters: ClusterModel,
    cfg: SegmentConfig | None = None,
    *,
    min_dwell_s: float | None = None,
    max_delay_s: float = 4.0,
    warmup_s: float = 3.0,
) -> list[MoodChange]:
    """Run an OnlineSegmenter over a recorded series (t[N], va[N, 2]); its decisions in order."""
    seg = OnlineSegmenter(
        clusters, cfg, min_dwell_s=min_dwell_s, max_delay_s=max_delay_s, warmup_s=warmup_s
    )
    va = np.asarray(va, dtype=np.float64).reshape(-1, 2)
    out = []
    for ti, vi in zip(np.asarray(t, dtype=np.float64), va, strict=True):
        change = seg.update(float(ti), vi)
        if change is not None:
            out.append(change)
    return out
